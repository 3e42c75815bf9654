#!/usr/bin/env python3
"""Writes N decision events into a Redis stream in offerd's event-log encoding (EventLogCodec, one stream entry
per batch of 4,096), for the start-up replay benchmark (replay.sh). Raw RESP over a socket: no client library.

usage: make_stream.py PORT KEY EVENTS [KEYS] [OFFERS]"""

import socket
import sys
import time


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(text):
    data = text.encode()
    return varint(len(data)) + data


def batch(first, count, batch_number, keys, offers, time_ms):
    out = bytearray([1]) + varint(count)
    for n in range(first, first + count):
        out.append(1 if n == first else 0)
        if n == first:
            out += string("bench-writer") + varint(batch_number)
        out.append(1)  # decision
        out += string("ecid") + string(f"p{n % keys}")
        out += varint((time_ms << 1) ^ (time_ms >> 63))
        out += string("")  # event id
        out += varint(2) + string(f"o{n % offers}") + string(f"o{(n * 7 + 3) % offers}")
        out += string("")  # proposition id
        out += varint(0)  # consents
    return bytes(out)


def command(*parts):
    out = bytearray(f"*{len(parts)}\r\n".encode())
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out += f"${len(data)}\r\n".encode() + data + b"\r\n"
    return bytes(out)


def main():
    port, key, events = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    keys = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
    offers = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    now = int(time.time() * 1000)
    with socket.create_connection(("127.0.0.1", port)) as s:
        sent = 0
        number = 0
        while sent < events:
            count = min(4096, events - sent)
            number += 1
            s.sendall(command("XADD", key, "*", "batch", batch(sent, count, number, keys, offers, now)))
            sent += count
        # One reply per XADD (an entry id); read them all.
        replies = 0
        buffer = b""
        while replies < number:
            buffer += s.recv(1 << 16)
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                if line.startswith(b"-"):
                    sys.exit(f"redis: {line.decode()}")
                if line.startswith(b"$"):
                    continue
                replies += 1
    print(f"{events} events in {number} stream entries")


if __name__ == "__main__":
    main()
