"""Start-up, reload, admin endpoints and graceful shutdown of a real `offerd serve`."""

import os
import re
import shutil
import signal
import subprocess
import time

import grpc

from conftest import FIXTURES, OFFERD, Server, build_snapshot
from helpers import decide, item_ids, request


def wait_for(predicate, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_missing_or_broken_files_refuse_to_start(fresh_dir):
    build_snapshot(FIXTURES / "profiles.jsonl", fresh_dir / "ok.snap", "v1")
    broken = fresh_dir / "broken.json"
    broken.write_text('{"offers": [{"id": "x", "status": "approved", "representations": [], "bogus": 1}]}')
    cases = [
        (["--catalog", str(fresh_dir / "missing.json"), "--snapshot", str(fresh_dir / "ok.snap")], "missing.json"),
        (["--catalog", str(broken), "--snapshot", str(fresh_dir / "ok.snap")], "broken.json"),
        (["--catalog", str(FIXTURES / "catalog.json"), "--snapshot", str(broken)], "broken.json"),
    ]
    for args, name in cases:
        out = subprocess.run([OFFERD, "serve", "--port", "0", "--admin-port", "0", "--events", "none", *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert name in out.stderr + out.stdout


def test_admin_endpoints_and_metrics(stubs, fresh_dir):
    s = Server(fresh_dir)
    try:
        decide(stubs, s.target, request(stubs.pb, id="optout-perso"))
        status, body = s.admin("/healthz")
        assert status == 200
        status, body = s.admin("/readyz")
        assert status == 200
        status, metrics = s.admin("/metrics")
        assert status == 200
        assert re.search(r'offerd_grpc_calls_total\{method="offerd.v1.Decisioning/Decide",status="OK"\} [1-9]', metrics), metrics
        assert re.search(r'offerd_decisions_total\{outcome="fallback",reason="personalization_denied"\} [1-9]', metrics)
        assert 'offerd_catalog_info{version="interop-1"} 1' in metrics
        assert 'offerd_snapshot_info{version="snap-1"} 1' in metrics
        assert "offerd_snapshot_profiles 6" in metrics
        assert "offerd_grpc_call_duration_seconds_bucket" in metrics
        assert s.admin("/nope")[0] == 404
    finally:
        assert s.stop() == 0


def test_snapshot_and_catalog_reload_keep_last_good(stubs, fresh_dir):
    s = Server(fresh_dir)
    try:
        assert decide(stubs, s.target, request(stubs.pb)).snapshot_version == "snap-1"
        # Replace by rename: the new version is served.
        build_snapshot(FIXTURES / "profiles.jsonl", fresh_dir / "next.snap", "snap-2")
        os.rename(fresh_dir / "next.snap", s.snapshot)
        assert wait_for(lambda: decide(stubs, s.target, request(stubs.pb)).snapshot_version == "snap-2")
        # A corrupt replacement is refused and snap-2 keeps serving.
        data = bytearray((s.snapshot).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (fresh_dir / "bad.snap").write_bytes(bytes(data))
        os.rename(fresh_dir / "bad.snap", s.snapshot)
        assert wait_for(lambda: 'offerd_reloads_total{kind="snapshot",result="failure"} 1' in s.admin("/metrics")[1])
        assert decide(stubs, s.target, request(stubs.pb)).snapshot_version == "snap-2"
        # A truncated one too.
        build_snapshot(FIXTURES / "profiles.jsonl", fresh_dir / "t.snap", "snap-3")
        (fresh_dir / "t2.snap").write_bytes((fresh_dir / "t.snap").read_bytes()[:100])
        os.rename(fresh_dir / "t2.snap", s.snapshot)
        assert wait_for(lambda: 'offerd_reloads_total{kind="snapshot",result="failure"} 2' in s.admin("/metrics")[1])
        assert decide(stubs, s.target, request(stubs.pb)).snapshot_version == "snap-2"

        # Catalog: a broken rewrite in place is refused, a good one is served.
        original = s.catalog.read_text()
        s.catalog.write_text(original.replace('"priority": 80', '"priority": "high"'))
        assert wait_for(lambda: 'offerd_reloads_total{kind="catalog",result="failure"} 1' in s.admin("/metrics")[1])
        assert decide(stubs, s.target, request(stubs.pb)).catalog_version == "interop-1"
        s.catalog.write_text(original.replace('"interop-1"', '"interop-2"').replace('"priority": 80', '"priority": 1'))
        assert wait_for(lambda: decide(stubs, s.target, request(stubs.pb)).catalog_version == "interop-2")
        assert item_ids(decide(stubs, s.target, request(stubs.pb)).propositions[0]) == ["offer-gold-10"]

        # SIGHUP reloads too (same content, so versions stay; the log says so).
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "SIGHUP" in s.log_path.read_text())
        assert decide(stubs, s.target, request(stubs.pb)).catalog_version == "interop-2"
    finally:
        assert s.stop() == 0


def test_sigterm_during_load_finishes_in_flight_calls(stubs, fresh_dir):
    s = Server(fresh_dir, extra_args=["--shutdown-grace", "5s"])
    body = fresh_dir / "body"
    import struct
    payload = request(stubs.pb).SerializeToString()
    body.write_bytes(struct.pack(">BI", 0, len(payload)) + payload)
    load = subprocess.Popen(
        ["h2load", "-n", "200000", "-c", "8", "-m", "8", "-d", str(body), "-H", "content-type: application/grpc",
         "-H", "te: trailers", f"http://{s.target}/offerd.v1.Decisioning/Decide"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Under load before the signal: wait for answered calls, not for a fixed time.
    def answered():
        text = s.admin("/metrics")[1]
        found = re.search(r'offerd_grpc_calls_total\{method="offerd.v1.Decisioning/Decide",status="OK"\} (\d+)', text)
        return found is not None and int(found.group(1)) >= 100
    assert wait_for(answered, timeout=60), s.admin("/metrics")[1]
    started = time.time()
    assert s.stop(signal.SIGTERM) == 0, s.log_path.read_text()
    assert time.time() - started < 8
    out, _ = load.communicate(timeout=60)
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    assert m, out
    done, succeeded, failed, errored = map(int, m.groups())
    assert succeeded > 0
    # Every call that got an answer got a whole, successful one: nothing half-written.
    status_codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert status_codes and int(status_codes.group(3)) == 0 and int(status_codes.group(4)) == 0, out
    log = s.log_path.read_text()
    assert "shutdown complete" in log
    # New connections are refused after shutdown.
    try:
        decide(stubs, s.target, request(stubs.pb), timeout=2)
        assert False, "a call succeeded after shutdown"
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
