"""A deliberately permissive HTTP/2 client for attacks: it writes whatever frames it is told to (no state
checks), and reads the server's frames back with a persistent HPACK decoder."""

import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x7, 0x8, 0x9, 0xB

SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5

DECIDE = "/offerd.v1.Decisioning/Decide"


def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def settings_frame(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", key, value) for key, value in pairs))


def rst_stream(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def window_update(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def ping(opaque=b"\0" * 8, ack=False):
    return frame(PING, ACK if ack else 0, 0, opaque)


def grpc_message(payload, flag=0, declared_length=None):
    length = len(payload) if declared_length is None else declared_length
    return struct.pack(">BI", flag, length) + payload


def request_headers(path=DECIDE, authority="localhost", extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers"), *extra]


class Response:
    """What the server said about one stream."""

    def __init__(self):
        self.headers = []
        self.data = b""
        self.rst_code = None
        self.ended = False

    def header(self, name):
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def grpc_status(self):
        value = self.header("grpc-status")
        return None if value is None else int(value)


class RawH2:
    """One TCP connection speaking raw HTTP/2 frames."""

    def __init__(self, target, timeout=5.0, connect=True, initial_settings=()):
        host, port = target.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16
        self.buffer = b""
        self.responses = {}
        self.goaway = None  # (last stream id, error code)
        self.closed = False
        self.settings_acks = 0
        self.pings_acked = 0
        self.send_blocked = False
        self.next_stream_id = 1
        self._header_block = None
        if connect:
            self.send(PREFACE + settings_frame(initial_settings))

    # Writing

    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data):
        """Sends, returning False when the server already closed the connection, or is not reading from us: a
        send that did not finish within the socket's timeout (both sides' buffers full, as when a flooding client
        starts to read its answers). Part of a frame may have gone then, so nothing more is sent on this
        connection; reading goes on. (The SETTINGS ACK sent while reading used to raise the timeout instead, and
        failed a test whenever the server's answers outgrew the buffers.)"""
        if self.send_blocked:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False
        except socket.timeout:
            self.send_blocked = True
            return False

    def new_stream_id(self):
        stream_id = self.next_stream_id
        self.next_stream_id += 2
        return stream_id

    def headers_frame(self, stream_id, headers, end_stream=False, end_headers=True):
        block = self.encoder.encode(headers)
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, stream_id, block)

    def unary_call_bytes(self, stream_id, message, extra_headers=()):
        body = grpc_message(message)
        return (self.headers_frame(stream_id, request_headers(extra=extra_headers))
                + frame(DATA, END_STREAM, stream_id, body))

    # Reading

    def read_until(self, condition, timeout=5.0):
        """Reads frames until `condition(self)` holds, the connection closes, or `timeout` passes."""
        deadline = time.time() + timeout
        while not condition(self) and not self.closed:
            remaining = deadline - time.time()
            if remaining <= 0:
                break
            self.sock.settimeout(min(remaining, 0.5))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, OSError):
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            self.buffer += chunk
            self._parse()
        return condition(self)

    def drain(self):
        """Reads whatever has already arrived, without waiting (attack loops call it between bursts so a GOAWAY
        is seen before the server's close turns into a TCP reset that discards it)."""
        self.read_until(lambda c: False, timeout=0.001)

    def read_until_closed(self, timeout=5.0):
        return self.read_until(lambda c: c.closed, timeout)

    def response(self, stream_id):
        return self.responses.setdefault(stream_id, Response())

    def _parse(self):
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[0:3], "big")
            if len(self.buffer) < 9 + length:
                return
            kind, flags = self.buffer[3], self.buffer[4]
            stream_id = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
            payload = self.buffer[9:9 + length]
            self.buffer = self.buffer[9 + length:]
            self._frame(kind, flags, stream_id, payload)

    def _frame(self, kind, flags, stream_id, payload):
        if kind == SETTINGS:
            if flags & ACK:
                self.settings_acks += 1
            else:
                self.server_settings = {struct.unpack(">H", payload[i:i + 2])[0]:
                                        struct.unpack(">I", payload[i + 2:i + 6])[0]
                                        for i in range(0, len(payload), 6)}
                self.try_send(frame(SETTINGS, ACK, 0))
        elif kind == PING:
            if flags & ACK:
                self.pings_acked += 1
        elif kind == GOAWAY:
            last_stream, code = struct.unpack(">II", payload[:8])
            self.goaway = (last_stream & 0x7FFFFFFF, code)
        elif kind == RST_STREAM:
            response = self.response(stream_id)
            response.rst_code = struct.unpack(">I", payload)[0]
            response.ended = True
        elif kind in (HEADERS, CONTINUATION):
            if kind == HEADERS:
                if flags & PADDED:
                    pad = payload[0]
                    payload = payload[1:len(payload) - pad]
                if flags & 0x20:  # PRIORITY
                    payload = payload[5:]
                self._header_block = (stream_id, flags & END_STREAM, b"")
            sid, end_stream, block = self._header_block
            block += payload
            self._header_block = (sid, end_stream, block)
            if flags & END_HEADERS:
                response = self.response(sid)
                response.headers += [(k.decode() if isinstance(k, bytes) else k,
                                      v.decode() if isinstance(v, bytes) else v)
                                     for k, v in self.decoder.decode(block, raw=True)]
                if end_stream:
                    response.ended = True
                self._header_block = None
        elif kind == DATA:
            response = self.response(stream_id)
            response.data += payload
            if flags & END_STREAM:
                response.ended = True

    def ended(self, stream_id):
        return stream_id in self.responses and self.responses[stream_id].ended

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
