#!/usr/bin/env python3
"""How far a total cap is overshot by concurrent decisions on two servers sharing one Redis stream (issue 14,
docs/live-state.md "Total caps overshoot"), against the decision rate.

Each round starts a fresh Redis and two `offerd serve --events redis://...` (one event loop thread each, both on
core 0; Redis and the load on core 1), then drives both servers at once with h2load for the same number of calls:
every call asks for one item of a collection holding `scarce` (a total cap of LIMIT per day) and `free`. Once
both servers have applied every decision event, the grants are the decision events written (only `scarce` has a
decision capping rule, so a `free` answer records nothing: tests/interop/test_total_cap.py checks that a grant is
written exactly once). Overshoot = grants - LIMIT; dividing it by the rate gives the window the bound in
docs/live-state.md speaks of (queue delay + propagation delay).

usage: total_cap_overshoot.py OFFERD_BIN [ROUNDS] [RATES]
    RATES: comma-separated calls/s per server (h2load --rps per client, 4 clients), `max` for no limit;
    default 500,2000,max"""

import json
import pathlib
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

from live_harness import free_port, ready, start_redis, stop_all, stubs, wait_for

LIMIT = 2_000
CALLS_PER_SERVER = 6_000
CLIENTS = 4


def metrics(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()

    def value(name):
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return int(float(match.group(1))) if match else 0

    return (value('offerd_events_total{type="decision",result="written"}'),
            value('offerd_events_total{type="any",result="applied"}'))


def settled_grants(admins):
    """Waits until both servers applied every decision event written by either; returns the grants."""
    last = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        readings = [metrics(a) for a in admins]
        written = sum(w for w, _ in readings)
        if all(applied >= written for _, applied in readings):
            if written == last:
                return written
            last = written
        time.sleep(0.5)
    sys.exit("the servers did not settle within 60 s")


def run_round(binary, work, body, rate):
    processes = []
    try:
        redis_port = start_redis(work, processes)
        servers = []
        for name in ("a", "b"):
            port, admin = free_port(), free_port()
            processes.append(subprocess.Popen(
                ["taskset", "-c", "0", binary, "serve", "--catalog", str(work / "catalog.json"),
                 "--snapshot", str(work / "profiles.snap"), "--port", str(port), "--admin-port", str(admin),
                 "--threads", "1", "--log-level", "warning",
                 "--events", f"redis://127.0.0.1:{redis_port}?key=overshoot"],
                stdout=subprocess.DEVNULL, stderr=open(work / f"{name}.log", "w")))
            wait_for(lambda: ready(admin), f"server {name} to be ready")
            servers.append((port, admin))
        pace = [] if rate == "max" else ["--rps", str(max(1, int(rate) // CLIENTS))]
        loads = [subprocess.Popen(
            ["taskset", "-c", "1", "h2load", "-n", str(CALLS_PER_SERVER), "-c", str(CLIENTS), "-m", "16", *pace,
             "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
             f"http://127.0.0.1:{port}/offerd.v1.Decisioning/Decide"],
            stdout=subprocess.PIPE, text=True) for port, _ in servers]
        outputs = [load.communicate(timeout=600)[0] for load in loads]
        achieved = 0.0
        for out in outputs:
            if f"{CALLS_PER_SERVER} succeeded" not in out:
                sys.exit(f"h2load: {out}")
            achieved += float(re.search(r"finished in .*?, ([\d.]+) req/s", out).group(1))
        grants = settled_grants([admin for _, admin in servers])
        return achieved, grants
    finally:
        stop_all(processes)


def main():
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rates = (sys.argv[3] if len(sys.argv) > 3 else "500,2000,max").split(",")
    work = pathlib.Path(tempfile.mkdtemp(prefix="offerd-overshoot-"))
    try:
        pb, _ = stubs(work / "stubs")
        (work / "catalog.json").write_text(json.dumps({
            "version": "overshoot", "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
            "offers": [
                {"id": "scarce", "status": "approved", "priority": 9, "tags": ["t"],
                 "capping": [{"limit": LIMIT, "scope": "total", "period": "day"}],
                 "representations": [{"placement": "web", "content": "scarce"}]},
                {"id": "free", "status": "approved", "priority": 1, "tags": ["t"],
                 "representations": [{"placement": "web", "content": "free"}]}],
            "collections": [{"id": "all", "anyTags": ["t"]}],
            "decisions": [{"id": "d", "status": "live",
                           "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]}]}]}))
        (work / "profiles.jsonl").write_text(json.dumps({"identities": [{"namespace": "ECID", "id": "x"}]}) + "\n")
        subprocess.run([binary, "snapshot", "build", "--input", str(work / "profiles.jsonl"),
                        "--output", str(work / "profiles.snap")], check=True, stdout=subprocess.DEVNULL)
        request = pb.DecideRequest()
        request.identity.namespace, request.identity.id = "ECID", "anyone"
        request.scopes.add(decision_id="d", placement_id="web", item_count=1)
        message = request.SerializeToString()
        body = work / "decide.bin"
        body.write_bytes(struct.pack(">BI", 0, len(message)) + message)

        print(f"total cap {LIMIT}, two servers x {CALLS_PER_SERVER} calls, {CLIENTS} h2load clients each")
        print("| target calls/s per server | achieved calls/s, both | overshoot (grants - limit) | window = overshoot"
              " / rate |")
        print("|---|---|---|---|")
        for rate in rates:
            results = [run_round(binary, work, body, rate) for _ in range(rounds)]
            overshoots = [grants - LIMIT for _, grants in results]
            windows = [o / achieved * 1e3 for (achieved, _), o in zip(results, overshoots)]
            print(f"| {rate} | {statistics.median(a for a, _ in results):,.0f} | "
                  f"{statistics.median(overshoots):.0f} ({', '.join(map(str, overshoots))}) | "
                  f"{statistics.median(windows):.2f} ms ({', '.join(f'{w:.2f}' for w in windows)}) |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
