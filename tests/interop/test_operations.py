"""Operations of a real `offerd serve`: the admin listener apart from gRPC, bind errors that say which listener
and address, /metrics as Prometheus tools read it, `snapshot inspect`, and the example systemd unit."""

import pathlib
import re
import shutil
import socket
import subprocess

import pytest

from conftest import FIXTURES, OFFERD, ROOT, Server, build_snapshot, free_port
from helpers import decide, decide_error, request


def serve_must_fail(fresh_dir, *args):
    build_snapshot(FIXTURES / "profiles.jsonl", fresh_dir / "p.snap", "v1")
    out = subprocess.run(
        [OFFERD, "serve", "--catalog", str(FIXTURES / "catalog.json"), "--snapshot", str(fresh_dir / "p.snap"),
         "--events", "none", *args],
        capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    return out.stdout + out.stderr


def test_a_grpc_port_in_use_names_the_listener_and_the_address(fresh_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = serve_must_fail(fresh_dir, "--port", str(port), "--admin-port", "0")
    assert f"cannot listen for gRPC on 127.0.0.1:{port}: address already in use" in log, log
    assert "errno" not in log and "bind(descriptor" not in log, log


def test_an_admin_port_in_use_names_the_admin_listener(fresh_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = serve_must_fail(fresh_dir, "--port", "0", "--admin-port", str(port))
    assert f"cannot listen for admin on 127.0.0.1:{port}: address already in use" in log, log


def test_an_address_of_no_interface_is_named(fresh_dir):
    # 192.0.2.0/24 is TEST-NET-1: no interface of a test machine has it. (Admin port 0 would disable the listener.)
    port = free_port()
    log = serve_must_fail(fresh_dir, "--port", "0", "--admin-host", "192.0.2.1", "--admin-port", str(port))
    assert f"cannot listen for admin on 192.0.2.1:{port}: cannot assign requested address" in log, log


def test_the_admin_endpoints_listen_on_admin_host_only(stubs, fresh_dir):
    # Every 127/8 address is loopback on Linux: gRPC on 127.0.0.1, admin on 127.0.0.2 only.
    s = Server(fresh_dir, admin_host="127.0.0.2")
    try:
        assert s.admin("/readyz")[0] == 200
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", s.admin_port), timeout=5).close()
        assert decide(stubs, s.target, request(stubs.pb)).propositions
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", s.port), timeout=5).close()
        log = s.log_path.read_text()
        assert f"admin=127.0.0.2:{s.admin_port}" in log and f"grpc=127.0.0.1:{s.port}" in log, log
    finally:
        assert s.stop() == 0


def test_metrics_have_help_status_names_and_only_possible_pairs(stubs, fresh_dir):
    # With an event log, so the live-state metrics are there too.
    s = Server(fresh_dir, extra_args=["--events", f"file:{fresh_dir / 'events.log'}"])
    try:
        decide(stubs, s.target, request(stubs.pb))
        bad = decide_error(stubs, s.target, request(stubs.pb, id=""))
        assert bad.code().name == "INVALID_ARGUMENT"
        status, text = s.admin("/metrics")
        assert status == 200
        lines = text.splitlines()
        types = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
        helps = [line.split()[2] for line in lines if line.startswith("# HELP ")]
        assert types and sorted(types) == sorted(helps), (types, helps)
        assert {"offerd_events_total", "offerd_event_log_up", "offerd_ready", "offerd_decision_outcomes_total",
                "offerd_grpc_call_duration_seconds"} <= set(types), types
        for index, line in enumerate(lines):
            if line.startswith("# TYPE "):
                assert lines[index - 1].startswith(f"# HELP {line.split()[2]} "), line
        decide_method = 'method="offerd.v1.Decisioning/Decide"'
        assert re.search(r'offerd_grpc_calls_total\{' + decide_method + r',status="OK"\} 1\n', text), text
        assert re.search(r'offerd_grpc_calls_total\{' + decide_method + r',status="INVALID_ARGUMENT"\} 1\n', text)
        assert not re.search(r'status="\d+"', text)
        pairs = re.findall(r'offerd_decisions_total\{outcome="(\w+)",reason="(\w+)"\}', text)
        assert len(pairs) == 11, pairs
        assert ("offers", "decision_not_found") not in pairs and ("unspecified", "unspecified") not in pairs
        per_decision = re.findall(r'offerd_decision_outcomes_total\{decision="([^"]+)",outcome="(\w+)"\} (\d+)', text)
        assert ("dec-home", "offers", "1") in per_decision or ("dec-home", "fallback", "1") in per_decision, \
            per_decision
    finally:
        assert s.stop() == 0


def test_snapshot_inspect_prints_rfc3339_and_names_the_file_once(fresh_dir):
    snap = fresh_dir / "p.snap"
    build_snapshot(FIXTURES / "profiles.jsonl", snap, "v1")
    out = subprocess.run([OFFERD, "snapshot", "inspect", str(snap)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", out.stdout, re.M), out.stdout
    missing = fresh_dir / "missing.snap"
    out = subprocess.run([OFFERD, "snapshot", "inspect", str(missing)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.count("missing.snap") == 1, out.stderr
    assert out.stderr.strip() == f"{missing}: no such file"


def test_the_example_systemd_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (ROOT / "examples" / "offerd.service").read_text()
    for option in ["NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=\n",
                   "SystemCallFilter=@system-service", "--admin-host 127.0.0.1"]:
        assert option in unit, option
    # Every option the unit passes to serve is one serve knows.
    serve_help = subprocess.run([OFFERD, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    for option in set(re.findall(r"(--[a-z-]+)", unit.split("ExecStart=")[1].split("ExecReload=")[0])):
        assert option in serve_help, option
    copy = tmp_path / "offerd.service"
    copy.write_text(unit.replace("/usr/local/bin/offerd", str(pathlib.Path(OFFERD).resolve())))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                         timeout=60)
    complaints = [line for line in (out.stdout + out.stderr).splitlines() if "offerd.service" in line]
    assert out.returncode == 0 and not complaints, out.stdout + out.stderr
