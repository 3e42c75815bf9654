#!/usr/bin/env python3
"""Fault scripts of issue 6 against a real `offerd serve` (parts 3, 4 and 5).

    python3 benchmarks/faults/faults.py reload   [--replacements 100] [--corrupt 10] [--truncated 10]
    python3 benchmarks/faults/faults.py shutdown [--grace 5]
    python3 benchmarks/faults/faults.py soak     [--calls 10000000]

Each prints its counts and memory figures and exits non-zero when a criterion fails. OFFERD_BIN names the
binary (default: .build/release/offerd, else .build/debug/offerd). Reuses the interop suite's Server class."""

import argparse
import importlib.util
import json
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests" / "interop"
if "OFFERD_BIN" not in os.environ:
    release = ROOT / ".build" / "release" / "offerd"
    os.environ["OFFERD_BIN"] = str(release if release.exists() else ROOT / ".build" / "debug" / "offerd")
_spec = importlib.util.spec_from_file_location("interop_conftest", INTEROP / "conftest.py")
interop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(interop)
sys.path.insert(0, str(INTEROP))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def make_stubs():
    from grpc_tools import protoc

    out = pathlib.Path(tempfile.mkdtemp(prefix="offerd-faults-stubs-"))
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}", f"--grpc_python_out={out}",
                      "offerd/v1/decisioning.proto"])
    assert rc == 0
    for package in ["offerd", "offerd/v1"]:
        (out / package / "__init__.py").touch()
    sys.path.insert(0, str(out))
    from offerd.v1 import decisioning_pb2, decisioning_pb2_grpc

    return decisioning_pb2, decisioning_pb2_grpc


def request_body(pb, path):
    from helpers import request

    message = request(pb).SerializeToString()
    path.write_bytes(b"\0" + len(message).to_bytes(4, "big") + message)
    return path


H2LOAD_SUMMARY = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored")


def h2load(target, body, extra, timeout=None):
    args = ["h2load", *extra, "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
            f"http://{target}/offerd.v1.Decisioning/Decide"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    match = H2LOAD_SUMMARY.search(out.stdout)
    if not match:
        raise RuntimeError(f"h2load failed: {out.stdout}\n{out.stderr}")
    total, started, done, succeeded, failed, errored = map(int, match.groups())
    rps = re.search(r"finished in [^,]+, ([\d.]+) req/s", out.stdout)
    return {"total": total, "done": done, "succeeded": succeeded, "failed": failed, "errored": errored,
            "req/s": float(rps.group(1)) if rps else None}


def grpc_status_counts(server):
    """offerd_grpc_calls_total by status, summed over methods, from /metrics."""
    _, text = server.admin("/metrics")
    counts = {}
    for line in text.splitlines():
        m = re.match(r'offerd_grpc_calls_total\{([^}]*)\} (\d+)', line)
        if m:
            status = re.search(r'status="(\w+)"', m.group(1)).group(1)
            counts[status] = counts.get(status, 0) + int(m.group(2))
    return {status: count for status, count in counts.items() if count}


def atomic_write(path, data):
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.rename(temporary, path)


# Part 3: reload under load


def reload_under_load(args):
    pb, pb_grpc = make_stubs()
    import grpc

    work = pathlib.Path(tempfile.mkdtemp(prefix="offerd-faults-reload-"))
    source = interop.FIXTURES / "profiles.jsonl"
    catalog_text = json.loads((interop.FIXTURES / "catalog.json").read_text())
    snapshots = []
    for i in range(args.replacements + 1):
        path = work / f"snap-{i:03d}.snap"
        interop.build_snapshot(source, path, f"snap-{i:03d}")
        snapshots.append(path.read_bytes())

    def catalog_bytes(i):
        catalog_text["version"] = f"cat-{i:03d}"
        return json.dumps(catalog_text).encode()

    (work / "catalog.json").write_bytes(catalog_bytes(0))
    (work / "profiles.snap").write_bytes(snapshots[0])
    server = interop.Server(work, catalog=work / "catalog.json", snapshot=work / "profiles.snap")
    body = request_body(pb, work / "body")

    # Capacity first, then load at about half of it for the whole run (h2load --rps is per client).
    capacity = h2load(server.target, body, ["-n", "20000", "-c", "4", "-m", "8"])["req/s"]
    baseline_rss = rss_kib(server.proc.pid)
    clients = 4
    rps = max(1, int(capacity / 2 / clients))
    plan = ["valid"] * args.replacements
    rng = random.Random(3)
    bad = rng.sample(range(args.replacements), args.corrupt + args.truncated)
    for k in bad[:args.corrupt]:
        plan[k] = "corrupt"
    for k in bad[args.corrupt:]:
        plan[k] = "truncated"
    duration = args.interval * args.replacements + 3
    load_result = {}
    load = threading.Thread(target=lambda: load_result.update(
        h2load(server.target, body, ["-D", str(int(duration)), "-c", str(clients), "-m", "8", "--rps", str(rps)])))
    seen = []
    poll_errors = []
    stop = threading.Event()

    def poll():
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisioningStub(channel)
            from helpers import request

            req = request(pb)
            while not stop.is_set():
                try:
                    response = stub.Decide(req, timeout=5)
                    seen.append((response.catalog_version, response.snapshot_version))
                except grpc.RpcError as e:
                    poll_errors.append(f"{e.code()}: {e.details()}")
                time.sleep(0.005)

    poller = threading.Thread(target=poll)
    load.start()
    poller.start()
    time.sleep(1)
    peak_rss = baseline_rss
    for k, kind in enumerate(plan, start=1):
        if kind == "valid":
            atomic_write(work / "catalog.json", catalog_bytes(k))
            atomic_write(work / "profiles.snap", snapshots[k])
        elif kind == "corrupt":
            broken = bytearray(snapshots[k])
            for offset in rng.sample(range(len(broken)), 16):
                broken[offset] ^= 0xFF
            atomic_write(work / "profiles.snap", bytes(broken))
            atomic_write(work / "catalog.json", catalog_bytes(k).replace(b'"offers"', b'"offerz"', 1))
        else:
            atomic_write(work / "profiles.snap", snapshots[k][:len(snapshots[k]) // 2])
            atomic_write(work / "catalog.json", catalog_bytes(k)[:len(catalog_bytes(k)) // 2])
        if args.trigger == "sighup":
            server.proc.send_signal(signal.SIGHUP)
        time.sleep(args.interval)
        peak_rss = max(peak_rss, rss_kib(server.proc.pid))
    load.join()
    stop.set()
    poller.join()
    time.sleep(2)
    end_rss = rss_kib(server.proc.pid)
    _, metrics = server.admin("/metrics")
    reloads = {m.group(1): int(m.group(2)) for m in
               re.finditer(r'offerd_reloads_total\{([^}]*)\} (\d+)', metrics)}
    statuses = grpc_status_counts(server)
    exit_code = server.stop()

    def index(version):
        return int(version.rsplit("-", 1)[1])

    distinct = len(set(seen))
    backwards = sum(1 for a, b in zip(seen, seen[1:])
                    if index(b[0]) < index(a[0]) or index(b[1]) < index(a[1]))
    last = seen[-1] if seen else None
    print(json.dumps({
        "replacements": args.replacements, "corrupt": args.corrupt, "truncated": args.truncated,
        "capacity_rps": capacity, "load_rps_target": rps * clients, "h2load": load_result,
        "grpc_statuses": statuses, "poller_calls": len(seen), "poller_errors": poll_errors[:5],
        "poller_error_count": len(poll_errors), "versions_backwards": backwards,
        "distinct_version_pairs_seen": distinct,
        "last_versions": last, "trigger": args.trigger,
        "reload_counters": reloads, "rss_kib": {"baseline": baseline_rss, "peak": peak_rss, "end": end_rss},
        "exit_code": exit_code,
    }, indent=2))
    ok = (load_result.get("failed") == 0 and load_result.get("errored") == 0 and not poll_errors
          and backwards == 0 and set(statuses) <= {"OK"} and exit_code == 0 and distinct > 1
          and end_rss <= baseline_rss * 1.10 + 4096)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


# Part 4: shutdown under load


def shutdown_under_load(args):
    pb, pb_grpc = make_stubs()
    import grpc
    from helpers import request

    work = pathlib.Path(tempfile.mkdtemp(prefix="offerd-faults-shutdown-"))
    server = interop.Server(work, extra_args=["--shutdown-grace", f"{args.grace}s"])
    outcomes = {}
    lock = threading.Lock()
    stop = threading.Event()

    def caller():
        # A fresh channel per burst so new connections are attempted after SIGTERM too.
        while not stop.is_set():
            with grpc.insecure_channel(server.target) as channel:
                stub = pb_grpc.DecisioningStub(channel)
                for _ in range(50):
                    if stop.is_set():
                        break
                    try:
                        stub.Decide(request(pb), timeout=5, wait_for_ready=False)
                        key = "OK"
                    except grpc.RpcError as e:
                        key = e.code().name
                    with lock:
                        outcomes[key] = outcomes.get(key, 0) + 1

    threads = [threading.Thread(target=caller) for _ in range(args.callers)]
    for t in threads:
        t.start()
    body = request_body(pb, work / "body")
    load_result = {}
    load = threading.Thread(target=lambda: load_result.update(
        h2load(server.target, body, ["-D", "6", "-c", "8", "-m", "16"])))
    load.start()
    time.sleep(2)
    with lock:
        before = dict(outcomes)
    sigterm_at = time.time()
    server.proc.send_signal(signal.SIGTERM)
    refused = accepted = 0
    last_accepted_ms = None
    while server.proc.poll() is None and time.time() - sigterm_at < args.grace + 5:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                accepted += 1
                last_accepted_ms = round(1000 * (time.time() - sigterm_at), 1)
        except OSError:
            refused += 1
        time.sleep(0.02)
    exit_code = server.proc.wait(timeout=args.grace + 10)
    exit_seconds = time.time() - sigterm_at
    stop.set()
    for t in threads:
        t.join()
    load.join()
    server.log.close()
    allowed = {"OK", "UNAVAILABLE"}
    print(json.dumps({
        "grace_s": args.grace, "outcomes_before_sigterm": before, "outcomes_total": outcomes,
        "h2load": load_result, "connects_after_sigterm": {"refused": refused, "accepted": accepted,
                                   "last_accepted_ms_after_sigterm": last_accepted_ms},
        "exit_code": exit_code, "exit_seconds": round(exit_seconds, 3),
    }, indent=2))
    ok = exit_code == 0 and exit_seconds <= args.grace + 1 and set(outcomes) <= allowed and refused > 0
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


# Part 5: soak


def soak(args):
    pb, _ = make_stubs()
    work = pathlib.Path(tempfile.mkdtemp(prefix="offerd-faults-soak-"))
    server = interop.Server(work)
    body = request_body(pb, work / "body")
    first = max(1, args.calls // 10)
    started = time.time()
    warm = h2load(server.target, body, ["-n", str(first), "-c", str(args.connections), "-m", "32"])
    rss_after_first = rss_kib(server.proc.pid)
    rest = h2load(server.target, body, ["-n", str(args.calls - first), "-c", str(args.connections), "-m", "32"])
    rss_end = rss_kib(server.proc.pid)
    statuses = grpc_status_counts(server)
    exit_code = server.stop()
    growth = (rss_end - rss_after_first) / rss_after_first
    print(json.dumps({
        "calls": args.calls, "first_10_percent": warm, "rest": rest, "grpc_statuses": statuses,
        "rss_kib": {"after_first_10_percent": rss_after_first, "end": rss_end},
        "rss_growth_percent": round(100 * growth, 2), "seconds": round(time.time() - started, 1),
        "exit_code": exit_code,
    }, indent=2))
    failed = warm["failed"] + warm["errored"] + rest["failed"] + rest["errored"]
    ok = failed == 0 and growth <= 0.05 and set(statuses) <= {"OK"} and exit_code == 0
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    reload_ = commands.add_parser("reload", help="replace catalog and snapshot under load")
    reload_.add_argument("--replacements", type=int, default=100)
    reload_.add_argument("--corrupt", type=int, default=10)
    reload_.add_argument("--truncated", type=int, default=10)
    reload_.add_argument("--interval", type=float, default=None,
                         help="seconds between replacements (default 0.2 with sighup, 2.5 with watch)")
    reload_.add_argument("--trigger", choices=["sighup", "watch"], default="sighup",
                         help="reload by SIGHUP after each replacement, or leave it to the file watcher (which "
                              "polls every second and publishes a file only once it is unchanged for two polls)")
    shutdown = commands.add_parser("shutdown", help="SIGTERM during load")
    shutdown.add_argument("--grace", type=int, default=5)
    shutdown.add_argument("--callers", type=int, default=4)
    soak_ = commands.add_parser("soak", help="N calls, RSS at the end vs after the first 10%%")
    soak_.add_argument("--calls", type=int, default=10_000_000)
    soak_.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if args.command == "reload" and args.interval is None:
        args.interval = 0.2 if args.trigger == "sighup" else 2.5
    return {"reload": reload_under_load, "shutdown": shutdown_under_load, "soak": soak}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
