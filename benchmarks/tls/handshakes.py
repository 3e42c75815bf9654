#!/usr/bin/env python3
"""TLS handshakes per server CPU second, full and resumed, TLS 1.2 and 1.3.

`openssl s_time -reuse` does not read the TLS 1.3 ticket that arrives after the handshake, so it measures full
TLS 1.3 handshakes twice. This client reads it: for `resumed`, one full handshake first (and, for TLS 1.3, one
request), then a read until the server's NewSessionTicket has arrived (Python's `SSLSocket.session` then holds a resumable session), then
connections that offer that session, each checked to have resumed (`session_reused`); a connection that did not
is an error, not a slower figure.

One connection at a time: connect, handshake, close (no close_notify, no request). No ALPN unless --alpn says
so, like `openssl s_time`; with `--alpn h2` each connection also sets up an HTTP/2 session on the server. The server's CPU time (utime + stime of --pid, from
/proc/PID/stat) is read before and after; the figure is handshakes per server CPU second, which does not depend
on how fast this client is.

    handshakes.py --port 18655 --pid PID --mode resumed --tls 1.3 --seconds 10
"""

import argparse
import os
import socket
import ssl
import sys
import time


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context(version, alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn.split(","))
    pinned = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = pinned
    ctx.maximum_version = pinned
    return ctx


def handshake(ctx, host, port, session=None):
    raw = socket.create_connection((host, port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    return tls


def ticket(ctx, host, port, version):
    """A session to resume: after a full handshake, TLS 1.3 needs a read for the ticket to arrive. The server
    sends its tickets with its first write: at once on HTTP/2 (its SETTINGS), with the first answer on HTTP/1.1
    or before the protocol is known, so one request (answered 405) goes first there."""
    tls = handshake(ctx, host, port)
    if version == "1.3":
        if tls.selected_alpn_protocol() != "h2":
            tls.sendall(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        tls.settimeout(0.5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                tls.recv(1)
            except (socket.timeout, ssl.SSLWantReadError):
                pass
            session = tls.session
            if session is not None and session.has_ticket:
                break
        else:
            sys.exit("no TLS 1.3 session ticket within 5 s: the server issues none")
    session = tls.session
    tls.close()
    return session


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's process, for its CPU time")
    parser.add_argument("--mode", choices=["full", "resumed"], required=True)
    parser.add_argument("--tls", choices=["1.2", "1.3"], required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--alpn",
        default="",
        help="protocols to offer, comma-separated (h2: the server sets up an HTTP/2 session per connection); "
        "none by default, like openssl s_time",
    )
    args = parser.parse_args()

    ctx = context(args.tls, args.alpn)
    session = ticket(ctx, args.host, args.port, args.tls) if args.mode == "resumed" else None
    count = 0
    not_resumed = 0
    before = cpu_seconds(args.pid)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        tls = handshake(ctx, args.host, args.port, session)
        if args.mode == "resumed" and not tls.session_reused:
            not_resumed += 1
        if tls.version() != f"TLSv{args.tls}":
            sys.exit(f"negotiated {tls.version()}, not TLSv{args.tls}")
        tls.close()
        count += 1
    server_cpu = cpu_seconds(args.pid) - before
    print(
        f"{args.mode} TLS {args.tls}: {count} handshakes in {args.seconds:g} s, server CPU {server_cpu:.2f} s, "
        f"{count / server_cpu:.0f} per server CPU second"
        + (f", {not_resumed} not resumed" if args.mode == "resumed" else "")
    )
    if not_resumed:
        sys.exit(f"{not_resumed} of {count} connections did not resume")


if __name__ == "__main__":
    main()
