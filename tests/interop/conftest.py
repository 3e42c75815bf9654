"""Fixtures for the interop suite: generated Python stubs, a built snapshot, and
a real `offerd serve` process on free ports, driven by real clients (grpcio,
nghttp, h2load, nginx)."""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
OFFERD = os.environ.get("OFFERD_BIN", str(ROOT / ".build" / "debug" / "offerd"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    """Generates grpcio stubs from proto/ into a temp dir and imports them."""
    out = tmp_path_factory.mktemp("stubs")
    from grpc_tools import protoc

    protos = ["offerd/v1/decisioning.proto", "grpc/health/v1/health.proto"]
    for proto in protos:
        rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}", f"--grpc_python_out={out}", proto])
        assert rc == 0, f"protoc failed for {proto}"
    for package in ["offerd", "offerd/v1", "grpc", "grpc/health", "grpc/health/v1"]:
        (out / package / "__init__.py").touch()
    # The generated health stubs live in a package named `grpc`, which would shadow grpcio: load them by path.
    sys.path.insert(0, str(out))
    import importlib.util

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    pb = load("offerd.v1.decisioning_pb2", out / "offerd/v1/decisioning_pb2.py")
    pb_grpc = load("offerd.v1.decisioning_pb2_grpc", out / "offerd/v1/decisioning_pb2_grpc.py")
    health_pb = load("grpc_health_stub_pb2", out / "grpc/health/v1/health_pb2.py")
    sys.path.remove(str(out))

    class Stubs:
        pass

    s = Stubs()
    s.pb, s.pb_grpc, s.health_pb = pb, pb_grpc, health_pb
    return s


def build_snapshot(source, output, version):
    subprocess.run(
        [OFFERD, "snapshot", "build", "--input", str(source), "--output", str(output), "--version", version],
        check=True,
        capture_output=True,
    )


class Server:
    """A running `offerd serve` on free ports, with its log captured to a file."""

    def __init__(self, workdir, extra_args=(), catalog=None, snapshot=None, admin_host="127.0.0.1"):
        self.workdir = pathlib.Path(workdir)
        self.catalog = catalog or self.workdir / "catalog.json"
        self.snapshot = snapshot or self.workdir / "profiles.snap"
        if catalog is None:
            shutil.copy(FIXTURES / "catalog.json", self.catalog)
        if snapshot is None:
            build_snapshot(FIXTURES / "profiles.jsonl", self.snapshot, "snap-1")
        self.port = free_port()
        self.admin_port = free_port()
        self.admin_host = admin_host
        self.log_path = self.workdir / f"offerd-{self.port}.log"
        self.log = open(self.log_path, "w")
        # No event log unless the test names one: the suites written before live state expect every Decide to
        # see the snapshot alone (the CLI's own default is a file log in the working directory).
        if "--events" not in extra_args:
            extra_args = ("--events", "none", *extra_args)
        self.proc = subprocess.Popen(
            [OFFERD, "serve", "--catalog", str(self.catalog), "--snapshot", str(self.snapshot),
             "--port", str(self.port), "--admin-host", admin_host, "--admin-port", str(self.admin_port),
             "--threads", "2",
             *extra_args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"offerd exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"http://{self.admin_host}:{self.admin_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError("offerd did not become ready: " + self.log_path.read_text())

    def admin(self, path):
        try:
            with urllib.request.urlopen(f"http://{self.admin_host}:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"), extra_args=["--allow-explain"])
    yield s
    assert s.stop() == 0, s.log_path.read_text()


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """A server with the defaults: explain refused, unknown profiles decided."""
    s = Server(tmp_path_factory.mktemp("strict"))
    yield s
    assert s.stop() == 0, s.log_path.read_text()


@pytest.fixture()
def fresh_dir():
    d = tempfile.mkdtemp(prefix="offerd-test-")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)
