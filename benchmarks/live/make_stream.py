#!/usr/bin/env python3
"""Writes N decision events into a Redis stream in offerd's event-log encoding (EventLogCodec, one stream entry
per batch of 4,096), for the start-up replay benchmark (replay.sh). Raw RESP over a socket: no client library.
With `file`, writes the same batches as an offerd file log instead (FileEventLog's format: a 32-byte header,
then per batch its length, CRC-32C and payload; the CRC-32C comes from a few lines of C built here with `cc`,
as Python has none).

usage: make_stream.py PORT KEY EVENTS [KEYS] [OFFERS]
       make_stream.py file PATH EVENTS [KEYS] [OFFERS]"""

import ctypes
import os
import socket
import struct
import subprocess
import sys
import tempfile
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


CRC32C_C = r"""
#include <stddef.h>
#include <stdint.h>
uint32_t crc32c(uint32_t crc, const unsigned char *bytes, size_t count) {
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[n] = c;
        }
    }
    crc = ~crc;
    for (size_t i = 0; i < count; i++) crc = table[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}
"""


def load_crc32c(directory):
    source = os.path.join(directory, "crc32c.c")
    library = os.path.join(directory, "crc32c.so")
    with open(source, "w") as f:
        f.write(CRC32C_C)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", library, source], check=True)
    function = ctypes.CDLL(library).crc32c
    function.restype = ctypes.c_uint32
    function.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
    return lambda data, crc=0: function(crc, data, len(data))


def write_file_log(path, events, keys, offers, now):
    with tempfile.TemporaryDirectory() as directory:
        crc32c = load_crc32c(directory)
        with open(path, "wb") as out:
            head = b"OFFEVLOG" + struct.pack("<III", 1, 1, 0)
            out.write((head + struct.pack("<I", crc32c(head))).ljust(32, b"\0"))
            sent = 0
            number = 0
            while sent < events:
                count = min(4096, events - sent)
                number += 1
                payload = batch(sent, count, number, keys, offers, now)
                length = struct.pack("<I", len(payload))
                out.write(length + struct.pack("<I", crc32c(payload, crc32c(length))) + payload)
                sent += count
    print(f"{events} events in {number} file records")


def main():
    events = int(sys.argv[3])
    keys = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
    offers = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    now = int(time.time() * 1000)
    if sys.argv[1] == "file":
        write_file_log(sys.argv[2], events, keys, offers, now)
        return
    port, key = int(sys.argv[1]), sys.argv[2]
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
