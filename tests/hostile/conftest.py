"""Fixtures for the hostile-peer suite: reuses the interop suite's `Server` and stubs, and adds a control client
that keeps calling Decide on its own connection while an attack runs, plus RSS sampling of the server."""

import importlib.util
import pathlib
import sys
import threading
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
INTEROP = HERE.parent / "interop"

# The interop conftest is loaded under another module name: both files are called conftest.py.
_spec = importlib.util.spec_from_file_location("interop_conftest", INTEROP / "conftest.py")
interop = importlib.util.module_from_spec(_spec)
sys.modules["interop_conftest"] = interop
_spec.loader.exec_module(interop)
sys.path.insert(0, str(INTEROP))

stubs = interop.stubs
Server = interop.Server


def rss_kib(pid):
    """The process's resident set size (VmRSS) in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hostile"))
    yield s
    assert s.stop() == 0, s.log_path.read_text()


class ControlClient:
    """Calls Decide in a loop on its own gRPC channel and samples the server's RSS, until stopped. `channel`: a
    channel of the caller's (a TLS one for a TLS server); by default a cleartext channel to the server."""

    def __init__(self, stubs, server, channel=None):
        import grpc
        from helpers import request

        self.server = server
        self.channel = channel if channel is not None else grpc.insecure_channel(server.target)
        self.stub = stubs.pb_grpc.DecisioningStub(self.channel)
        self.req = request(stubs.pb)
        self.calls = 0
        self.failures = []
        self.rss_before = rss_kib(server.proc.pid)
        self.rss_max = self.rss_before
        self.rss_after = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # One call before the attack: the channel is connected, the baseline is a serving server.
        self.stub.Decide(self.req, timeout=10)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                response = self.stub.Decide(self.req, timeout=5)
                if not response.profile_found:
                    self.failures.append("profile not found")
                self.calls += 1
            except Exception as e:  # any failure of the control client fails the test
                self.failures.append(repr(e))
            try:
                self.rss_max = max(self.rss_max, rss_kib(self.server.proc.pid))
            except (OSError, RuntimeError) as e:
                self.failures.append(f"server process gone: {e}")
                return
            time.sleep(0.002)

    def stop(self):
        # The server must still answer after the attack, not only during it.
        target = self.calls + 3
        deadline = time.time() + 10
        while self.calls < target and time.time() < deadline and self._thread.is_alive():
            time.sleep(0.01)
        self._stop.set()
        self._thread.join(timeout=30)
        self.channel.close()
        if self.server.proc.poll() is None:
            self.rss_after = rss_kib(self.server.proc.pid)


# The server's RSS may grow while an attack runs (buffers, allocator caches) but must stay bounded: far below
# what an unbounded attack would cost (hundreds of MiB for the floods below).
RSS_GROWTH_LIMIT_KIB = 64 * 1024


@pytest.fixture()
def control(stubs, server):
    """A control client running for the whole test; checked after the attack."""
    client = ControlClient(stubs, server)
    yield client
    check_control(client, server)


def check_control(client, server):
    """Stops the control client after an attack and checks it: the server lives, every call succeeded, some were
    made, the RSS stayed bounded."""
    client.stop()
    assert server.proc.poll() is None, "the server died: " + server.log_path.read_text()[-4000:]
    assert client.failures == [], client.failures[:5]
    assert client.calls > 0, "the control client made no call during the attack"
    growth = client.rss_max - client.rss_before
    print(f"\ncontrol calls {client.calls}, RSS before {client.rss_before} KiB, max {client.rss_max} KiB, "
          f"after {client.rss_after} KiB")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB during the attack"
