#!/usr/bin/env python3
"""RecordEvents into a local Redis (issue 14: at least 50,000 events/s per server; p99 acknowledgement under 5 ms
at half that rate), and the propagation delay from one server to another on the same machine (goal: p99 under
50 ms).

- Throughput: one offerd (`--events redis://`, core 0, one event loop thread) and a fresh redis-server (no
  persistence, core 1); a client on core 1 keeps CONCURRENCY calls of EVENTS_PER_CALL display events in flight
  (pre-encoded, unique event ids over 10,000 identities, or IDENTITIES) for SECONDS; events/s = events recorded /
  elapsed.
- Acknowledgement: then an open loop at half that rate: calls sent on a fixed schedule, each timed from its
  scheduled send to its OK (so a stall delays every call behind it: no coordinated omission); p50, p99, max.
- Propagation: a second offerd on the same Redis (core 0 too), started after the acknowledgement loop (it replays
  the stream first; `follower` starts it before the loops). SAMPLES times: a display of the capped offer is
  recorded for a new identity through server A, and server B is asked (Decide, one call after the other) until
  the offer is capped there; the delay is from A's OK to the first Decide on B that saw it (and, in brackets,
  from the start of the RecordEvents call). Each Decide on B takes about a third of a millisecond from Python,
  which bounds the resolution.

REALTIME=1 in the environment: offerd, redis-server and this client under SCHED_FIFO (see live_harness.py).

usage: record_events.py OFFERD_BIN [SECONDS] [EVENTS_PER_CALL] [CONCURRENCY] [SAMPLES] [ACK_RATE] [follower]
(ACK_RATE: events/s of the acknowledgement loop instead of half the measured throughput, 0 for that half;
`follower`: start server B before the throughput and acknowledgement loops, so that it follows the stream on
A's core while they run, instead of after them)"""

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import grpc

from live_harness import REALTIME, free_port, pin_this_client, pinned, ready, start_redis, stop_all, stubs, wait_for

RECORD = "/offerd.v1.Decisioning/RecordEvents"
# Identities the recorded events are spread over (IDENTITIES=N in the environment): fewer means more event ids
# per profile key, more means more keys in the overlay.
IDENTITIES = int(os.environ.get("IDENTITIES", "10000"))


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Requests:
    """Pre-encoded RecordEvents requests with event ids never used before."""

    def __init__(self, pb, per_call):
        self.pb = pb
        self.per_call = per_call
        self.next = 0

    def make(self, count):
        out = []
        for _ in range(count):
            request = self.pb.RecordEventsRequest()
            for _ in range(self.per_call):
                n = self.next
                self.next += 1
                event = request.events.add(event_id=f"e{n}", type=self.pb.EVENT_TYPE_DISPLAY,
                                           offer_ids=[f"o{n % 20}"])
                event.identity.namespace = "ECID"
                event.identity.id = f"p{n % IDENTITIES}"
            out.append(request.SerializeToString())
        return out


async def closed_loop(target, bodies, concurrency, seconds):
    """Keeps `concurrency` calls in flight until `seconds` pass or the bodies run out; returns (events recorded
    per call list, elapsed)."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(RECORD, request_serializer=None, response_deserializer=None)
        queue = iter(bodies)
        done = []
        start = time.monotonic()
        deadline = start + seconds

        async def worker():
            for body in queue:
                if time.monotonic() > deadline:
                    return
                await call(body, timeout=30)
                done.append(1)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(done), time.monotonic() - start


async def open_loop(target, bodies, calls_per_second):
    """Sends the bodies on a fixed schedule; returns each call's latency (ms) from its scheduled send, and from its
    actual send (the difference is the client falling behind its schedule)."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(RECORD, request_serializer=None, response_deserializer=None)
        await call(bodies[0], timeout=30)  # connected before the clock starts
        latencies = []
        from_send = []
        start = time.monotonic() + 0.1
        interval = 1 / calls_per_second

        async def one(index, body):
            scheduled = start + index * interval
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.monotonic()
            await call(body, timeout=30)
            latencies.append((time.monotonic() - scheduled) * 1000)
            from_send.append((time.monotonic() - sent) * 1000)

        await asyncio.gather(*(one(i, body) for i, body in enumerate(bodies[1:])))
        return latencies, from_send


def main():
    binary = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    per_call = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    samples = int(sys.argv[5]) if len(sys.argv) > 5 else 300
    # Server B (the propagation target) starts after the acknowledgement loop unless asked for during it: on
    # core 0 it applies every event A writes, in step with A's follower, and so measures two servers on one core.
    with_follower = len(sys.argv) > 7 and sys.argv[7] == "follower"
    work = pathlib.Path(tempfile.mkdtemp(prefix="offerd-live-record-"))
    processes = []
    try:
        pb, pb_grpc = stubs(work / "stubs")
        offers = [{"id": f"o{n}", "status": "approved", "priority": 1, "tags": ["t"],
                   "representations": [{"placement": "web", "content": f"o{n}"}]} for n in range(20)]
        offers.append({"id": "capped", "status": "approved", "priority": 9, "tags": ["t"],
                       "capping": [{"limit": 1, "event": "display", "period": "day"}],
                       "representations": [{"placement": "web", "content": "capped"}]})
        (work / "catalog.json").write_text(json.dumps({
            "version": "live-record", "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
            "offers": offers, "collections": [{"id": "all", "anyTags": ["t"]}],
            "decisions": [{"id": "d", "status": "live",
                           "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]}]}]}))
        (work / "profiles.jsonl").write_text("")
        subprocess.run([binary, "snapshot", "build", "--input", str(work / "profiles.jsonl"),
                        "--output", str(work / "profiles.snap")], check=True, stdout=subprocess.DEVNULL)
        redis_port = start_redis(work, processes)
        targets = []

        def start_server(name):
            port, admin = free_port(), free_port()
            processes.append(subprocess.Popen(
                pinned("0", [binary, "serve", "--catalog", str(work / "catalog.json"),
                             "--snapshot", str(work / "profiles.snap"), "--port", str(port), "--admin-port", str(admin),
                             "--threads", "1", "--log-level", "warning",
                             "--events", f"redis://127.0.0.1:{redis_port}?key=rec"]),
                stdout=subprocess.DEVNULL, stderr=open(work / f"{name}.log", "w")))
            wait_for(lambda: ready(admin), f"server {name}")
            targets.append(f"127.0.0.1:{port}")

        start_server("a")
        pin_this_client("1")
        if REALTIME:
            print("REALTIME=1: offerd and this client under SCHED_FIFO 10, redis-server 20")
        if with_follower:
            start_server("b")

        requests = Requests(pb, per_call)
        bodies = requests.make(int(seconds * 200_000 / per_call) + concurrency)
        calls, elapsed = asyncio.run(closed_loop(targets[0], bodies, concurrency, seconds))
        rate = calls * per_call / elapsed
        print(f"RecordEvents throughput: {rate:,.0f} events/s ({calls} calls of {per_call} events, "
              f"{concurrency} in flight, {elapsed:.1f} s)")

        half = float(sys.argv[6]) if len(sys.argv) > 6 and float(sys.argv[6]) > 0 else rate / 2
        calls_per_second = half / per_call
        bodies = requests.make(max(200, int(calls_per_second * seconds)) + 1)
        latencies, from_send = asyncio.run(open_loop(targets[0], bodies, calls_per_second))
        print(f"acknowledgement at {half:,.0f} events/s ({calls_per_second:,.0f} calls/s of {per_call}): "
              f"p50 {percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms, "
              f"max {max(latencies):.2f} ms over {len(latencies)} calls (from the actual send: p50 "
              f"{percentile(from_send, 0.5):.2f} ms, p99 {percentile(from_send, 0.99):.2f} ms)")

        if not with_follower:
            start_server("b")
        with grpc.insecure_channel(targets[0]) as channel_a, grpc.insecure_channel(targets[1]) as channel_b:
            a = pb_grpc.DecisioningStub(channel_a)
            b = pb_grpc.DecisioningStub(channel_b)
            from_ok = []
            from_start = []
            for n in range(samples):
                who = f"propagation-{n}"
                decide = pb.DecideRequest()
                decide.identity.namespace = "ECID"
                decide.identity.id = who
                decide.scopes.add(decision_id="d", placement_id="web", item_count=1)
                decide.dry_run = True
                assert b.Decide(decide, timeout=10).propositions[0].items[0].id == "capped"
                record = pb.RecordEventsRequest()
                event = record.events.add(event_id=f"prop-{n}", type=pb.EVENT_TYPE_DISPLAY, offer_ids=["capped"])
                event.identity.namespace = "ECID"
                event.identity.id = who
                started = time.monotonic()
                a.RecordEvents(record, timeout=10)
                acknowledged = time.monotonic()
                while b.Decide(decide, timeout=10).propositions[0].items[0].id == "capped":
                    if time.monotonic() - acknowledged > 10:
                        sys.exit("server B never saw the display")
                seen = time.monotonic()
                from_ok.append((seen - acknowledged) * 1000)
                from_start.append((seen - started) * 1000)
        print(f"propagation A -> B over {samples} samples: from A's OK p50 {percentile(from_ok, 0.5):.2f} ms, "
              f"p99 {percentile(from_ok, 0.99):.2f} ms, max {max(from_ok):.2f} ms; from the call's start p50 "
              f"{percentile(from_start, 0.5):.2f} ms, p99 {percentile(from_start, 0.99):.2f} ms")
    finally:
        stop_all(processes)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
