"""Hostile HTTP/2 peers against a real `offerd serve` (SPEC 2.3, 7, 8; issue 6 part 1).

Every test runs its attack while the `control` fixture keeps calling Decide on another connection: the control
client must see no failure, the server's RSS must stay bounded, and the server must still answer afterwards.
Each attacking connection must end with the right HTTP/2 error code (GOAWAY) or its stream must be reset or
answered with the right gRPC status. Attacks are bounded to a few seconds each."""

import random
import socket
import struct
import time

import pytest

from h2wire import (
    ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR, HEADERS, INTERNAL_ERROR, NO_ERROR, PREFACE, PROTOCOL_ERROR, REFUSED_STREAM, SETTINGS,
    SETTINGS_HEADER_TABLE_SIZE, SETTINGS_INITIAL_WINDOW_SIZE, RawH2, frame, grpc_message, ping,
    request_headers, rst_stream, settings_frame, window_update,
)
from helpers import request


@pytest.fixture(scope="module")
def message(stubs):
    return request(stubs.pb).SerializeToString()


def assert_connection_usable(connection, message):
    """A well-formed call on the same connection still gets an OK answer."""
    stream_id = connection.new_stream_id()
    connection.send(connection.unary_call_bytes(stream_id, message))
    assert connection.read_until(lambda c: c.ended(stream_id)), "no answer on the attacked connection"
    assert connection.responses[stream_id].grpc_status == 0, connection.responses[stream_id].headers


def assert_goaway(connection, codes, timeout=5, required=True):
    """The server ended the connection with GOAWAY carrying one of `codes`, then closed it.

    When the server closes while our flood is still unread in its socket, its kernel answers with a TCP reset,
    which can discard the GOAWAY before we read it; `required=False` accepts that for the floods."""
    connection.read_until_closed(timeout)
    assert connection.closed, "the server did not close the connection"
    if connection.goaway is None:
        assert not required, "no GOAWAY before the connection closed"
        print("\nconnection reset before the GOAWAY could be read")
        return
    print(f"\nGOAWAY last stream {connection.goaway[0]}, error code {connection.goaway[1]:#x}")
    assert connection.goaway[1] in codes, f"GOAWAY error code {connection.goaway[1]:#x}, expected {codes}"


# Rapid Reset and stream limits


def test_rapid_reset_is_stopped_with_goaway(server, control, message):
    """CVE-2023-44487: thousands of streams opened and reset at once."""
    attacker = RawH2(server.target)
    burst = bytearray()
    for _ in range(5000):
        stream_id = attacker.new_stream_id()
        burst += attacker.headers_frame(stream_id, request_headers()) + rst_stream(stream_id, CANCEL)
        if len(burst) > 32768:
            if not attacker.try_send(bytes(burst)):
                break
            attacker.drain()
            burst.clear()
    attacker.try_send(bytes(burst))
    # nghttp2's reset rate limit (1000 burst, 33/s) ends the session; nghttp2 itself picks the code.
    assert_goaway(attacker, {ENHANCE_YOUR_CALM, PROTOCOL_ERROR, INTERNAL_ERROR}, required=False)
    attacker.close()


def test_rapid_reset_with_complete_requests(server, control, message):
    """Full requests (END_STREAM) immediately reset: the answers must not pile up."""
    attacker = RawH2(server.target)
    burst = bytearray()
    for _ in range(3000):
        stream_id = attacker.new_stream_id()
        burst += attacker.unary_call_bytes(stream_id, message) + rst_stream(stream_id, CANCEL)
        if len(burst) > 32768:
            if not attacker.try_send(bytes(burst)):
                break
            attacker.drain()
            burst.clear()
    attacker.try_send(bytes(burst))
    assert_goaway(attacker, {ENHANCE_YOUR_CALM, PROTOCOL_ERROR, INTERNAL_ERROR}, required=False)
    attacker.close()


def test_more_streams_than_max_concurrent_streams(server, control, message):
    attacker = RawH2(server.target)
    attacker.read_until(lambda c: c.settings_acks >= 1 and hasattr(c, "server_settings"))
    limit = attacker.server_settings[0x3]
    assert limit == 100
    opened = []
    burst = bytearray()
    for _ in range(limit + 50):
        stream_id = attacker.new_stream_id()
        opened.append(stream_id)
        burst += attacker.headers_frame(stream_id, request_headers())
    attacker.send(bytes(burst))
    # Our SETTINGS were acknowledged, so nghttp2 treats the excess as a connection error (RFC 9113 5.1.2 allows
    # PROTOCOL_ERROR or REFUSED_STREAM); before the ACK it would refuse the excess streams one by one.
    attacker.read_until(lambda c: c.closed or all(c.ended(s) for s in opened[limit:]), timeout=5)
    resets = sum(1 for s in opened if s in attacker.responses and attacker.responses[s].rst_code is not None)
    print(f"\nGOAWAY {attacker.goaway}, resets {resets}")
    if attacker.goaway is not None:
        assert attacker.goaway[1] == PROTOCOL_ERROR, attacker.goaway
        assert attacker.goaway[0] < opened[limit], "GOAWAY names a stream beyond the limit as processed"
    else:
        for stream_id in opened[limit:]:
            assert attacker.responses[stream_id].rst_code in (REFUSED_STREAM, PROTOCOL_ERROR)
    attacker.close()


def test_streams_over_the_limit_before_settings_ack_are_refused(server, control, message):
    """A client that has not acknowledged our SETTINGS yet: the excess streams get RST_STREAM(REFUSED_STREAM)
    and the connection keeps working."""
    host, port = server.target.split(":")
    attacker = RawH2(server.target, connect=False)
    # Speak first, before reading (and so acknowledging) the server's SETTINGS.
    burst = bytearray(PREFACE + settings_frame())
    opened = [attacker.new_stream_id() for _ in range(130)]
    for stream_id in opened:
        burst += attacker.headers_frame(stream_id, request_headers())
    attacker._frame = _no_auto_ack(attacker)
    attacker.send(bytes(burst))
    attacker.read_until(lambda c: c.closed or all(c.ended(s) for s in opened[100:]), timeout=5)
    assert not attacker.closed
    assert all(attacker.responses[s].rst_code == REFUSED_STREAM for s in opened[100:])
    attacker.close()


def _no_auto_ack(connection):
    original = connection._frame

    def handle(kind, flags, stream_id, payload):
        if kind == SETTINGS and not flags & ACK:
            return  # never acknowledge
        original(kind, flags, stream_id, payload)

    return handle


# Header attacks


def test_continuation_flood_ends_the_connection(server, control):
    """CVE-2024-27316 family: a header block that never ends, in many CONTINUATION frames."""
    attacker = RawH2(server.target)
    block = attacker.encoder.encode(request_headers())
    attacker.send(frame(HEADERS, 0, 1, block))
    filler = attacker.encoder.encode([("x-filler", "a" * 8)])
    burst = b"".join(frame(CONTINUATION, 0, 1, filler) for _ in range(2000))
    attacker.try_send(burst)
    # nghttp2 stops after 8 CONTINUATION frames; the transport names it a flood.
    assert_goaway(attacker, {ENHANCE_YOUR_CALM}, required=False)
    attacker.close()


def test_empty_continuation_flood_ends_the_connection(server, control):
    attacker = RawH2(server.target)
    attacker.send(frame(HEADERS, 0, 1, attacker.encoder.encode(request_headers())))
    attacker.try_send(b"".join(frame(CONTINUATION, 0, 1) for _ in range(20000)))
    assert_goaway(attacker, {ENHANCE_YOUR_CALM}, required=False)
    attacker.close()


@pytest.mark.parametrize("header_bytes", [17 * 1024, 60 * 1024])
def test_header_block_over_the_limit_is_431(server, control, message, header_bytes):
    """SPEC 8: header list 16 KiB. The stream is answered 431 / RESOURCE_EXHAUSTED; the connection survives."""
    attacker = RawH2(server.target)
    headers = request_headers(extra=[("x-big", "v" * header_bytes)])
    block = attacker.encoder.encode(headers)
    # Split into HEADERS + CONTINUATIONs of at most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE).
    chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    if len(chunks) == 1:
        frames = frame(HEADERS, END_STREAM | END_HEADERS, 1, chunks[0])
    else:
        frames = frame(HEADERS, END_STREAM, 1, chunks[0])
        for i, chunk in enumerate(chunks[1:], start=1):
            frames += frame(CONTINUATION, END_HEADERS if i == len(chunks) - 1 else 0, 1, chunk)
    attacker.next_stream_id = 3
    attacker.send(frames)
    attacker.read_until(lambda c: c.ended(1) or c.closed)
    if attacker.goaway is not None:
        # nghttp2 may refuse an oversized header block at the HPACK layer as a connection error.
        assert attacker.goaway[1] in (COMPRESSION_ERROR, ENHANCE_YOUR_CALM), attacker.goaway
    else:
        answer = attacker.responses[1]
        assert answer.header(":status") == "431", answer.headers
        assert answer.grpc_status == 8, answer.headers
        assert_connection_usable(attacker, message)
    attacker.close()


def test_thousands_of_small_headers_are_431(server, control, message):
    """5000 one-byte indexed header fields (HPACK makes each repeat cost one byte): refused, connection lives."""
    attacker = RawH2(server.target)
    first = attacker.encoder.encode(request_headers(extra=[("x-a", "b")]))
    # After the first block the encoder has ("x-a", "b") in its dynamic table: each repeat is one byte.
    repeat = attacker.encoder.encode([("x-a", "b")])
    assert len(repeat) == 1
    block = first + repeat * 5000
    attacker.next_stream_id = 3
    attacker.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    attacker.read_until(lambda c: c.ended(1) or c.closed)
    if attacker.goaway is not None:
        assert attacker.goaway[1] in (ENHANCE_YOUR_CALM, COMPRESSION_ERROR), attacker.goaway
    else:
        answer = attacker.responses[1]
        assert answer.header(":status") == "431", answer.headers
        assert answer.grpc_status == 8
        assert_connection_usable(attacker, message)
    attacker.close()


def test_hpack_table_size_update_over_the_limit_is_compression_error(server, control):
    """A dynamic table size update above the server's SETTINGS_HEADER_TABLE_SIZE (4096)."""
    attacker = RawH2(server.target)
    # HPACK dynamic table size update to 2^20: 001xxxxx with 5-bit prefix integer.
    size = 1 << 20
    update = bytearray([0x3F])
    rest = size - 31
    while rest >= 128:
        update.append(rest % 128 + 128)
        rest //= 128
    update.append(rest)
    block = bytes(update) + attacker.encoder.encode(request_headers())
    attacker.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    assert_goaway(attacker, {COMPRESSION_ERROR})
    attacker.close()


def test_hpack_dynamic_table_churn_and_huge_table_setting(server, control, message):
    """The client asks for a 1 GiB encoder table (the server caps its own at 4 KiB) and churns the server's
    decoder table with large indexed literals: memory stays bounded and the connection still works."""
    attacker = RawH2(server.target, initial_settings=[(SETTINGS_HEADER_TABLE_SIZE, 1 << 30)])
    for round_ in range(300):
        stream_id = attacker.new_stream_id()
        extra = [(f"x-churn-{round_ % 7}", "z" * 3000)]
        attacker.send(attacker.headers_frame(stream_id, request_headers(extra=extra))
                      + frame(DATA, END_STREAM, stream_id, grpc_message(message)))
        if round_ % 50 == 49:
            assert attacker.read_until(lambda c: c.ended(stream_id)), "no answer during churn"
    assert attacker.read_until(lambda c: c.ended(stream_id))
    assert attacker.responses[stream_id].grpc_status == 0
    assert_connection_usable(attacker, message)
    attacker.close()


# Control-frame floods


def test_settings_flood_is_enhance_your_calm(server, control):
    attacker = RawH2(server.target)
    attacker.try_send(settings_frame([(SETTINGS_INITIAL_WINDOW_SIZE, 65535)]) * 50000)
    # A client that never reads the ACKs: nghttp2's outbound-ACK limit ends the session.
    assert_goaway(attacker, {ENHANCE_YOUR_CALM}, required=False)
    attacker.close()


def test_settings_frame_with_too_many_entries(server, control):
    attacker = RawH2(server.target)
    attacker.send(settings_frame([(SETTINGS_INITIAL_WINDOW_SIZE, 65535)] * 100))
    assert_goaway(attacker, {ENHANCE_YOUR_CALM, PROTOCOL_ERROR})
    attacker.close()


def test_ping_flood_is_enhance_your_calm(server, control):
    attacker = RawH2(server.target)
    attacker.try_send(ping() * 50000)
    assert_goaway(attacker, {ENHANCE_YOUR_CALM}, required=False)
    attacker.close()


def test_polite_pings_are_answered(server, control):
    """Not an attack: a client that reads its PING ACKs keeps its connection."""
    attacker = RawH2(server.target)
    for _ in range(20):
        before = attacker.pings_acked
        attacker.send(ping())
        assert attacker.read_until(lambda c: c.pings_acked > before)
    assert attacker.goaway is None
    attacker.close()


def test_window_update_flood_keeps_the_connection(server, control, message):
    """Tens of thousands of 1-byte WINDOW_UPDATEs: no reply is owed, so nothing queues; the connection works."""
    attacker = RawH2(server.target)
    attacker.send(window_update(0, 1) * 20000)
    assert_connection_usable(attacker, message)
    attacker.close()


def test_window_update_overflow_is_flow_control_error(server, control):
    attacker = RawH2(server.target)
    attacker.send(window_update(0, 0x7FFFFFFF) * 2)
    assert_goaway(attacker, {FLOW_CONTROL_ERROR})
    attacker.close()


def test_zero_window_update_is_protocol_error(server, control):
    attacker = RawH2(server.target)
    attacker.send(window_update(0, 0))
    assert_goaway(attacker, {PROTOCOL_ERROR})
    attacker.close()


def test_empty_data_frames_flood_is_enhance_your_calm(server, control):
    """CVE-2019-9518: 50 000 empty DATA frames on an open request stream. nghttp2 has no limit of its own; the
    transport ends the connection after 100 in a row."""
    attacker = RawH2(server.target)
    attacker.send(attacker.headers_frame(1, request_headers()))
    attacker.next_stream_id = 3
    for _ in range(10):
        if not attacker.try_send(frame(DATA, 0, 1) * 5000):
            break
        attacker.drain()
    assert_goaway(attacker, {ENHANCE_YOUR_CALM}, required=False)
    assert not attacker.ended(1) or attacker.responses[1].grpc_status is None
    attacker.close()


def test_a_few_empty_data_frames_are_harmless(server, control, message):
    attacker = RawH2(server.target)
    attacker.send(attacker.headers_frame(1, request_headers()) + frame(DATA, 0, 1) * 50
                  + frame(DATA, END_STREAM, 1, grpc_message(message)))
    attacker.next_stream_id = 3
    assert attacker.read_until(lambda c: c.ended(1))
    assert attacker.responses[1].grpc_status == 0
    assert attacker.goaway is None
    attacker.close()


# Peers that do not read, or stop in the middle


def test_client_that_never_reads_with_zero_window(server, control, stubs):
    """SETTINGS_INITIAL_WINDOW_SIZE 0 and a socket never read, while asking for thousands of responses."""
    attacker = RawH2(server.target, initial_settings=[(SETTINGS_INITIAL_WINDOW_SIZE, 0)])
    attacker.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    attacker.sock.settimeout(0.5)
    sent_calls = 0
    deadline = time.time() + 3
    payload = request(stubs.pb, scopes=[("dec-home", "web-banner", 3)] * 30, include_content=True).SerializeToString()
    while time.time() < deadline:
        burst = bytearray()
        for _ in range(50):
            burst += attacker.unary_call_bytes(attacker.new_stream_id(), payload)
        try:
            attacker.sock.sendall(bytes(burst))
            sent_calls += 50
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            break  # the server stopped reading from us: backpressure works
    print(f"\nzero-window client sent {sent_calls} calls before the server stopped reading or the time ran out")
    # Only now read. We never acknowledged the server's SETTINGS while sending, so nghttp2 refuses the streams
    # beyond MAX_CONCURRENT_STREAMS one by one (RST_STREAM REFUSED_STREAM); the responses of the first 100 are
    # stuck at our zero window, their streams open.
    attacker.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    attacker.read_until(lambda c: False, timeout=3)
    refused = sum(1 for r in attacker.responses.values() if r.rst_code == REFUSED_STREAM)
    stalled = sum(1 for r in attacker.responses.values() if r.headers and not r.ended)
    print(f"zero-window client: GOAWAY {attacker.goaway}, closed {attacker.closed}, "
          f"{refused} streams refused, {stalled} answers stalled at the zero window")
    if attacker.goaway is not None:
        assert attacker.goaway[1] in (PROTOCOL_ERROR, ENHANCE_YOUR_CALM), attacker.goaway
    else:
        assert refused > 0
    assert stalled <= 100, "more streams open than MAX_CONCURRENT_STREAMS"
    attacker.close()


def test_slowloris_connections_do_not_hurt_others(server, control):
    """Preface then nothing, and half a frame then nothing, on 300 connections held for 3 s: the idle peers cost
    other clients nothing even before the idle timeout (`--idle-timeout`, 300 s by default) ends them."""
    held = []
    for i in range(300):
        s = socket.create_connection(tuple([server.target.split(":")[0], int(server.target.split(":")[1])]))
        if i % 3 == 0:
            s.sendall(PREFACE)
        elif i % 3 == 1:
            s.sendall(PREFACE + settings_frame() + frame(HEADERS, END_HEADERS, 1, b"\x83\x86")[:12])
        else:
            s.sendall(PREFACE[:10])
        held.append(s)
    time.sleep(3)
    for s in held:
        s.close()


def test_garbage_instead_of_preface_is_closed(server, control):
    for garbage in [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,
                    bytes(random.Random(6).randrange(256) for _ in range(4096)), b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"]:
        attacker = RawH2(server.target, connect=False)
        attacker.try_send(garbage)
        attacker.read_until_closed(5)
        assert attacker.closed, f"connection still open after garbage {garbage[:16]!r}"
        if attacker.goaway is not None:
            assert attacker.goaway[1] == PROTOCOL_ERROR, attacker.goaway
        attacker.close()


def test_disconnect_in_the_middle_of_frames(server, control, message):
    rng = random.Random(61)
    host, port = server.target.split(":")
    conversation = RawH2(server.target, connect=False)
    full = (PREFACE + settings_frame() + conversation.unary_call_bytes(1, message)
            + conversation.unary_call_bytes(3, message))
    for _ in range(200):
        cut = rng.randrange(1, len(full))
        with socket.create_connection((host, int(port))) as s:
            s.sendall(full[:cut])
            if rng.random() < 0.5:
                # RST instead of FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# gRPC framing lies: stream-level errors, the connection stays usable


@pytest.mark.parametrize(
    "name, body, status",
    [
        ("4 GiB length prefix", grpc_message(b"\0" * 100, declared_length=0xFFFFFFFF), 8),
        ("prefix longer than the body", grpc_message(b"\x0a\x00", declared_length=1000), 3),
        ("two messages in a unary call", None, 3),
        ("compressed flag", None, 12),
        ("unknown flag", None, 3),
        ("no message", b"", 3),
        ("half a prefix", b"\0\0\0", 3),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_grpc_framing_lies(server, control, message, name, body, status):
    if name == "two messages in a unary call":
        body = grpc_message(message) * 2
    elif name == "compressed flag":
        body = grpc_message(message, flag=1)
    elif name == "unknown flag":
        body = grpc_message(message, flag=7)
    attacker = RawH2(server.target)
    attacker.send(attacker.headers_frame(1, request_headers()) + frame(DATA, END_STREAM, 1, body))
    attacker.next_stream_id = 3
    assert attacker.read_until(lambda c: c.ended(1)), f"{name}: no answer"
    answer = attacker.responses[1]
    assert answer.grpc_status == status, (name, answer.headers)
    if status == 12:
        assert answer.header("grpc-accept-encoding") == "identity"
    assert_connection_usable(attacker, message)
    attacker.close()


def test_4gib_prefix_without_end_stream_is_answered_then_reset(server, control, message):
    """The client keeps uploading after the prefix announced 4 GiB: RESOURCE_EXHAUSTED right away, then
    RST_STREAM(NO_ERROR) so it stops sending (RFC 9113 8.1)."""
    attacker = RawH2(server.target)
    attacker.send(attacker.headers_frame(1, request_headers())
                  + frame(DATA, 0, 1, grpc_message(b"\0" * 1000, declared_length=0xFFFFFFFF)))
    attacker.next_stream_id = 3
    assert attacker.read_until(lambda c: c.ended(1) and c.responses[1].rst_code is not None)
    answer = attacker.responses[1]
    assert answer.grpc_status == 8, answer.headers
    assert answer.rst_code == NO_ERROR
    assert_connection_usable(attacker, message)
    attacker.close()
