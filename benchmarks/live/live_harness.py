"""What the live-state benchmarks share: ports, readiness, core pinning, Python stubs generated from proto/."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]
# REALTIME=1 in the environment runs what `pinned` starts, and the client that calls `pin_this_client`, under
# SCHED_FIFO (`chrt -f`, needs root; Redis above the client), as benchmarks/load/open_loop.sh does: on a machine shared with other work
# (compiles), the latencies are then offerd's and Redis's, not the scheduler's run queue.
REALTIME = os.environ.get("REALTIME") == "1"


def pinned(core, argv, priority=10):
    """`argv` pinned to `core`, under SCHED_FIFO at `priority` with REALTIME=1. Tasks of one FIFO priority on one
    core do not take turns: one that never blocks keeps the core, so what must answer a busy client on its core
    (Redis) takes a higher priority than the client."""
    return ["taskset", "-c", core] + (["chrt", "-f", str(priority)] if REALTIME else []) + argv


def pin_this_client(core):
    """With REALTIME=1, this Python process (the client) moves to `core` under SCHED_FIFO; otherwise nothing changes,
    so that runs without it compare with earlier ones."""
    if REALTIME:
        os.sched_setaffinity(0, {int(core)})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def ready(admin_port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def start_redis(work, processes, core="1"):
    """A throwaway redis-server (no persistence) pinned to `core`, appended to `processes`; returns its port."""
    port = free_port()
    processes.append(subprocess.Popen(
        pinned(core, [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                      "--save", "", "--appendonly", "no", "--dir", str(work)], priority=20),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0,
             "redis")
    return port


def write_display_capped_catalog(path, version):
    """The live Decide benchmarks' catalog: 20 offers, each capped on displays per day (so that every candidate's
    rule asks the live counts, and a Decide records no decision event), one collection, one decision `d` on
    placement `web`."""
    offers = [{"id": f"o{n}", "status": "approved", "priority": n, "tags": ["t"],
               "capping": [{"limit": 1_000_000, "event": "display", "period": "day"}],
               "representations": [{"placement": "web", "content": f"o{n}"}]} for n in range(20)]
    path.write_text(json.dumps({
        "version": version, "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
        "offers": offers, "collections": [{"id": "all", "anyTags": ["t"]}],
        "decisions": [{"id": "d", "status": "live",
                       "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]}]}]}))


def stubs(directory):
    directory.mkdir(parents=True, exist_ok=True)
    if protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={directory}", f"--grpc_python_out={directory}",
                    "offerd/v1/decisioning.proto"]) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, str(directory))
    import offerd.v1.decisioning_pb2 as pb
    import offerd.v1.decisioning_pb2_grpc as pb_grpc
    return pb, pb_grpc


def stop_all(processes):
    """Stops the servers in the reverse of their start order (offerd before the Redis it writes to)."""
    for proc in reversed(processes):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
