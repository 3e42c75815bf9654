"""What the live-state benchmarks share: ports, readiness, Python stubs generated from proto/."""

import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
