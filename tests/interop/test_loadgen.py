"""offerd-loadgen (benchmarks/loadgen), the open-loop generator of benchmarks/load/open_loop.sh, against a real
offerd and against small h2 servers that stop answering or drop the connection: every scheduled call is sent and
ends up counted exactly once, as a success or under its failure kind. Verdicts are counts, never times."""

import csv
import os
import pathlib
import re
import socket
import subprocess
import threading

import h2.config
import h2.connection
import h2.events
import pytest

from helpers import grpc_frame, request

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOADGEN = os.environ.get("LOADGEN_BIN", str(ROOT / "benchmarks" / "loadgen" / ".build" / "debug" / "offerd-loadgen"))

if "LOADGEN_BIN" not in os.environ and not os.path.exists(LOADGEN):
    pytest.skip("offerd-loadgen is not built (scripts/test.sh builds it; or set LOADGEN_BIN)", allow_module_level=True)


def loadgen(url, bodies, csv_path, *args, timeout=120):
    command = [LOADGEN, "--url", url, "--csv", str(csv_path), "--label", "test", "--pause", "0"]
    for body in bodies:
        command += ["--body", str(body)]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def rows(csv_path):
    return list(csv.DictReader(open(csv_path)))


@pytest.fixture()
def decide_bodies(stubs, tmp_path):
    """Two valid Decide bodies and one the server cannot parse."""
    paths = []
    for n, identity in enumerate(["4711", "4712"]):
        path = tmp_path / f"good-{n}.bin"
        payload = request(stubs.pb, id=identity, scopes=[("dec-home", "web-banner", 2)]).SerializeToString()
        path.write_bytes(grpc_frame(payload))
        paths.append(path)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(grpc_frame(b"\xff\xff\xff\xff"))  # a truncated varint: not a DecideRequest
    return paths, bad


def test_every_scheduled_call_is_sent_and_answered(server, decide_bodies, tmp_path):
    good, _ = decide_bodies
    csv_path = tmp_path / "out.csv"
    out = loadgen(f"http://{server.target}/offerd.v1.Decisioning/Decide", good, csv_path,
                  "--rate", 100, "--rate", 150, "--duration", 2, "--warmup", 1, "--connections", 3,
                  "--drain-timeout", 60, "--timer-gap-us", 2000)  # sends due between timers go out on reads
    assert out.returncode == 0, out.stderr
    result = rows(csv_path)
    assert [(r["target_rate"], r["sent"], r["succeeded"], r["errors"], r["unanswered"]) for r in result] == [
        ("100", "200", "200", "0", "0"), ("150", "300", "300", "0", "0")], out.stdout
    for r in result:
        percentiles = [float(r[c]) for c in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")]
        assert 0 < percentiles[0] and percentiles == sorted(percentiles), r
        assert r["connections"] == "3" and r["seconds"] == "2.000"
    assert out.stdout.count("test @ ") == 2


def test_failed_calls_are_counted_as_grpc_errors(server, decide_bodies, tmp_path):
    good, bad = decide_bodies
    csv_path = tmp_path / "out.csv"
    # Bodies alternate by call number, so exactly the odd calls carry the unparsable body.
    out = loadgen(f"http://{server.target}/offerd.v1.Decisioning/Decide", [good[0], bad], csv_path,
                  "--rate", 100, "--duration", 2, "--warmup", 1, "--connections", 2, "--drain-timeout", 60,
                  "--spin-us", 300)  # the polling path too
    assert out.returncode == 0, out.stderr
    [r] = rows(csv_path)
    assert (r["sent"], r["succeeded"], r["errors"], r["unanswered"]) == ("200", "100", "100", "0"), out.stdout


def test_a_wrong_method_stops_at_the_first_call(server, decide_bodies, tmp_path):
    good, _ = decide_bodies
    out = loadgen(f"http://{server.target}/offerd.v1.Decisioning/Nope", good, tmp_path / "out.csv",
                  "--rate", 100, "--duration", 1)
    assert out.returncode != 0
    # Every connection's first call fails; whichever answer is read first is the one reported.
    assert re.search(rf"the first call on connection \d+ to {server.target}/offerd.v1.Decisioning/Nope failed: "
                     r"grpc-status 12\n", out.stderr), out.stderr


@pytest.mark.parametrize("contents, words", [
    (b"\x00\x00\x00\x00\x09abc", "the gRPC prefix says 9 message bytes, the file holds 3"),
    (b"\x00\x00", "shorter than a gRPC message prefix"),
])
def test_a_bad_body_file_is_refused_by_name(server, tmp_path, contents, words):
    body = tmp_path / "body.bin"
    body.write_bytes(contents)
    out = loadgen(f"http://{server.target}/offerd.v1.Decisioning/Decide", [body], tmp_path / "out.csv",
                  "--rate", 10, "--duration", 1)
    assert out.returncode != 0
    assert f"--body {body}" in out.stderr and words in out.stderr, out.stderr


def test_nothing_listening_is_a_clear_error(decide_bodies, tmp_path):
    good, _ = decide_bodies
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        out = loadgen(f"http://127.0.0.1:{port}/offerd.v1.Decisioning/Decide", good, tmp_path / "out.csv",
                      "--rate", 10, "--duration", 1)
    assert out.returncode != 0
    assert f"cannot connect to 127.0.0.1:{port}" in out.stderr, out.stderr


class StubbornServer:
    """An HTTP/2 server (python h2) that answers the first call on each connection with grpc-status 0, then
    either never answers again (`silent`) or closes the connection at the next call (`hang-up`)."""

    def __init__(self, mode):
        self.mode = mode
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(sock)
            threading.Thread(target=self.serve, args=(sock,), daemon=True).start()

    def serve(self, sock):
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        answered = False
        try:
            while data := sock.recv(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.StreamEnded):
                        if not answered:
                            answered = True
                            conn.send_headers(event.stream_id, [(":status", "200"),
                                                                ("content-type", "application/grpc")])
                            conn.send_data(event.stream_id, b"\x00\x00\x00\x00\x00")
                            conn.send_headers(event.stream_id, [("grpc-status", "0")], end_stream=True)
                        elif self.mode == "hang-up":
                            sock.close()
                            return
                sock.sendall(conn.data_to_send())
        except OSError:
            pass

    def close(self):
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


@pytest.mark.parametrize("mode, kind", [("silent", "unanswered"), ("hang-up", "connection_lost")])
def test_calls_without_an_answer_are_counted_not_lost(decide_bodies, tmp_path, mode, kind):
    good, _ = decide_bodies
    stub = StubbornServer(mode)
    csv_path = tmp_path / "out.csv"
    try:
        out = loadgen(f"http://127.0.0.1:{stub.port}/offerd.v1.Decisioning/Decide", good, csv_path,
                      "--rate", 50, "--duration", 1, "--warmup", 0, "--connections", 2, "--drain-timeout", 1)
    finally:
        stub.close()
    assert out.returncode == 0, out.stderr
    [r] = rows(csv_path)
    assert (r["sent"], r["succeeded"], r["errors"]) == ("50", "0", "50"), out.stdout
    assert r["unanswered"] == ("50" if kind == "unanswered" else "0"), out.stdout
    assert r["p99_us"] == "nan"
