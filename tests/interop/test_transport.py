"""HTTP/2 behaviour with Debian's nghttp2 clients (nghttp, h2load) and raw sockets."""

import re
import socket
import struct
import subprocess
import time

from helpers import decide, grpc_frame, nghttp, request


def test_nghttp_sees_grpc_status_zero_in_trailers(stubs, server, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(grpc_frame(request(stubs.pb).SerializeToString()))
    out = nghttp(f"http://{server.target}/offerd.v1.Decisioning/Decide", body,
                 ["content-type: application/grpc", "te: trailers"])
    assert out.returncode == 0, out.stderr
    assert ":status: 200" in out.stdout
    assert "content-type: application/grpc" in out.stdout
    # the trailers come in a HEADERS frame after the DATA frame
    data_at = out.stdout.find("recv DATA frame")
    status_at = out.stdout.find("grpc-status: 0")
    assert data_at >= 0 and status_at > data_at, out.stdout


def test_server_enforces_grpc_timeout(stubs, server, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(grpc_frame(request(stubs.pb).SerializeToString()))
    out = nghttp(f"http://{server.target}/offerd.v1.Decisioning/Decide", body,
                 ["content-type: application/grpc", "te: trailers", "grpc-timeout: 1n"])
    assert "grpc-status: 4" in out.stdout, out.stdout


def test_wrong_content_type_and_method(server, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"hello")
    out = nghttp(f"http://{server.target}/offerd.v1.Decisioning/Decide", body, ["content-type: text/plain"])
    assert ":status: 415" in out.stdout, out.stdout
    out = nghttp(f"http://{server.target}/offerd.v1.Decisioning/Decide", method="GET")
    assert ":status: 405" in out.stdout, out.stdout


def test_h2load_smoke_has_no_failures(stubs, server, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(grpc_frame(request(stubs.pb, scopes=[("dec-home", "web-banner", 3)]).SerializeToString()))
    out = subprocess.run(
        ["h2load", "-n", "5000", "-c", "4", "-m", "16", "-d", str(body),
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         f"http://{server.target}/offerd.v1.Decisioning/Decide"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  out.stdout)
    assert m, out.stdout
    total, started, done, succeeded, failed, errored = map(int, m.groups())
    assert (done, succeeded, failed, errored) == (5000, 5000, 0, 0), out.stdout


def test_garbage_preface_closes_connection_and_server_keeps_serving(stubs, server):
    host, port = server.target.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x00" * 100)
        s.settimeout(5)
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert decide(stubs, server.target, request(stubs.pb)).profile_found


def test_disconnect_mid_frame_does_not_hurt(stubs, server):
    host, port = server.target.split(":")
    for cut in [5, 24, 30, 40]:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            settings = struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0)
            s.sendall((preface + settings + b"\x00\x00\x10\x01\x04")[:cut])
    assert decide(stubs, server.target, request(stubs.pb)).profile_found



def h2_events_until(sock, connection, done, timeout):
    """Feeds the socket into an h2 client connection until done(events so far) or the peer closes."""
    import h2.events

    events = []
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while not done(events) and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            events.append(h2.events.ConnectionTerminated())
            break
        events += connection.receive_data(chunk)
        sock.sendall(connection.data_to_send())
    return events


def h2_connect(target):
    import h2.config
    import h2.connection

    host, port = target.split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    sock.sendall(connection.data_to_send())
    return sock, connection


def h2_send_decide_headers(sock, connection, target, extra=()):
    stream = connection.get_next_available_stream_id()
    connection.send_headers(stream, [
        (":method", "POST"), (":scheme", "http"), (":path", "/offerd.v1.Decisioning/Decide"),
        (":authority", target), ("content-type", "application/grpc"), ("te", "trailers"), *extra])
    sock.sendall(connection.data_to_send())
    return stream


def grpc_status_of(events):
    """The grpc-status of a call, from its trailers or from a trailers-only answer."""
    import h2.events

    for e in events:
        if isinstance(e, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
            status = dict(e.headers).get(b"grpc-status")
            if status is not None:
                return status
    return None


def stream_ended_or_closed(events):
    import h2.events

    return any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated))
               for e in events)


def test_deadline_that_passes_before_the_message_arrives(stubs, server):
    # Exact, with no race: the PING's acknowledgement proves the server has read the HEADERS (frames are handled
    # in order), so its 200 ms deadline is armed; the message is sent only after 300 ms more. Whether the server's
    # timer answers first or the dispatch finds the deadline passed, the answer is DEADLINE_EXCEEDED.
    import h2.events

    sock, connection = h2_connect(server.target)
    with sock:
        stream = h2_send_decide_headers(sock, connection, server.target, [("grpc-timeout", "200m")])
        connection.ping(b"fence---")
        sock.sendall(connection.data_to_send())
        events = h2_events_until(sock, connection, lambda ev: any(
            isinstance(e, (h2.events.PingAckReceived, h2.events.ConnectionTerminated)) for e in ev), 30)
        assert any(isinstance(e, h2.events.PingAckReceived) for e in events), events
        time.sleep(0.3)
        if not stream_ended_or_closed(events):
            connection.send_data(stream, grpc_frame(request(stubs.pb).SerializeToString()), end_stream=True)
            sock.sendall(connection.data_to_send())
        events += h2_events_until(sock, connection, stream_ended_or_closed, 30)
    assert grpc_status_of(events) == b"4", events
    assert decide(stubs, server.target, request(stubs.pb)).profile_found


def test_idle_timeout_flag_closes_idle_connections_only(stubs, tmp_path):
    # Only what always holds: a connection whose one stream stays open for longer than --idle-timeout is not
    # idle, so its call is answered; once no stream is open, GOAWAY(NO_ERROR) and the close come, and never
    # sooner than the idle timeout after the last stream ended. The exact timing is tested with a manual clock
    # in the transport's unit tests.
    import h2.events
    from conftest import Server

    idle_server = Server(tmp_path, extra_args=["--idle-timeout", "1s"])
    try:
        sock, connection = h2_connect(idle_server.target)
        with sock:
            stream = h2_send_decide_headers(sock, connection, idle_server.target)
            time.sleep(2.5)  # the stream stays open across more than two idle timeouts
            message_sent = time.monotonic()
            connection.send_data(stream, grpc_frame(request(stubs.pb).SerializeToString()), end_stream=True)
            sock.sendall(connection.data_to_send())
            events = h2_events_until(sock, connection, stream_ended_or_closed, 30)
            assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in events), events
            assert grpc_status_of(events) == b"0", events
            events = h2_events_until(sock, connection, lambda ev: any(
                isinstance(e, h2.events.ConnectionTerminated) for e in ev), 60)
            waited = time.monotonic() - message_sent
        terminated = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert terminated, f"connection still open 60 s after its last call, events {events}"
        assert terminated[0].error_code == 0, f"expected GOAWAY(NO_ERROR) before the close, got {terminated[0]}"
        assert waited >= 1.0, f"closed {waited:.2f} s after the last call with --idle-timeout 1s"
    finally:
        assert idle_server.stop() == 0, idle_server.log_path.read_text()


def test_idle_timeout_flag_rejects_bad_values(tmp_path):
    from conftest import FIXTURES, OFFERD

    out = subprocess.run([OFFERD, "serve", "--catalog", str(FIXTURES / "catalog.json"), "--snapshot", "x.snap",
                          "--idle-timeout", "soon"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "idle-timeout" in out.stderr, out.stderr
