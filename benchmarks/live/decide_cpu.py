#!/usr/bin/env python3
"""Decide CPU per call with live state (issue 14, SPEC 9.7), side by side in one run: three offerd servers with
`--events none`, `--events file:` and `--events redis://` (a fresh redis-server, no persistence), each on core 0
with one event loop thread, loaded in turn by h2load on core 1; rounds interleaved (none, file, redis, none, ...),
medians over rounds. Server CPU per call = the server process's CPU time (every thread: event loop, writer,
follower) over a round, divided by the round's calls.

The catalog: 20 offers, each capped on displays per day (a rule Decide reads live counts for, and records no
decision event for: a Decide here records nothing). Two profiles:
- `empty`: nothing in the overlay;
- `live`: 20 live counters (displays of 5 offers recorded with RecordEvents before the rounds: 5 offers x 4
  periods), read by every Decide (each of the 20 candidates' rules asks for its count).
With `--events none` both profiles have nothing live: its `live` column is the same work without counters.

usage: decide_cpu.py OFFERD_BIN[,OFFERD_BIN...] [ROUNDS] [CALLS]

With several binaries (builds to compare: before,after) every binary gets its three servers, and each round
loads all of them in turn (binary by binary, each events mode in turn), so that the builds share the machine's moments;
it also prints, per binary, the median over rounds of each round's difference from `--events none` (runs next to each
other in time, which a loaded machine's noise disturbs less than the columns' medians).
MODES=none,file (environment) starts only those servers, PROFILES=empty loads only that profile: more rounds in the
same time where the machine's noise needs them."""

import json
import os
import pathlib
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile

import grpc

from live_harness import free_port, ready, start_redis, stop_all, stubs, wait_for, write_display_capped_catalog

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, every thread


def main():
    binaries = sys.argv[1].split(",")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    calls = int(sys.argv[3]) if len(sys.argv) > 3 else 50_000
    work = pathlib.Path(tempfile.mkdtemp(prefix="offerd-live-cpu-"))
    processes = []
    try:
        pb, pb_grpc = stubs(work / "stubs")
        write_display_capped_catalog(work / "catalog.json", "live-cpu")
        (work / "profiles.jsonl").write_text("".join(
            json.dumps({"identities": [{"namespace": "ECID", "id": who}]}) + "\n" for who in ("empty", "live")))
        subprocess.run([binaries[0], "snapshot", "build", "--input", str(work / "profiles.jsonl"),
                        "--output", str(work / "profiles.snap")], check=True, stdout=subprocess.DEVNULL)
        bodies = {}
        for who in os.environ.get("PROFILES", "empty,live").split(","):
            request = pb.DecideRequest()
            request.identity.namespace = "ECID"
            request.identity.id = who
            request.scopes.add(decision_id="d", placement_id="web", item_count=3)
            message = request.SerializeToString()
            bodies[who] = work / f"{who}.bin"
            bodies[who].write_bytes(struct.pack(">BI", 0, len(message)) + message)

        redis_port = start_redis(work, processes)
        servers = {}
        modes = [(build, name, events)
                 for build in range(len(binaries))
                 for name, events in (("none", "none"), ("file", "file:{work}/events-{build}.log"),
                                      ("redis", f"redis://127.0.0.1:{redis_port}?key=cpu-{{build}}"))
                 if name in os.environ.get("MODES", "none,file,redis").split(",")]
        modes = [(build, name, events.format(work=work, build=build)) for build, name, events in modes]
        for build, mode, events in modes:
            binary = binaries[build]
            name = (build, mode)
            port, admin = free_port(), free_port()
            proc = subprocess.Popen(
                ["taskset", "-c", "0", binary, "serve", "--catalog", str(work / "catalog.json"),
                 "--snapshot", str(work / "profiles.snap"), "--port", str(port), "--admin-port", str(admin),
                 "--threads", "1", "--log-level", "warning", "--events", events],
                stdout=subprocess.DEVNULL, stderr=open(work / f"{build}-{mode}.log", "w"))
            processes.append(proc)
            wait_for(lambda: ready(admin), f"{name} to be ready")
            servers[name] = (proc, port)
            if mode != "none":
                request = pb.RecordEventsRequest()
                for n in range(5):
                    event = request.events.add(event_id=f"display-{n}", type=pb.EVENT_TYPE_DISPLAY,
                                               offer_ids=[f"o{19 - n}"])
                    event.identity.namespace = "ECID"
                    event.identity.id = "live"
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    assert pb_grpc.DecisioningStub(channel).RecordEvents(request, timeout=10).recorded == 5

        results = {(name, who): [] for name in servers for who in bodies}
        for _ in range(rounds):
            for name, (proc, port) in servers.items():
                for who, body in bodies.items():
                    before = cpu_ticks(proc.pid)
                    out = subprocess.run(
                        ["taskset", "-c", "1", "h2load", "-n", str(calls), "-c", "4", "-m", "16", "-d", str(body),
                         "-H", "content-type: application/grpc", "-H", "te: trailers",
                         f"http://127.0.0.1:{port}/offerd.v1.Decisioning/Decide"],
                        capture_output=True, text=True, timeout=600).stdout
                    after = cpu_ticks(proc.pid)
                    if f"{calls} succeeded" not in out:
                        sys.exit(f"h2load against {name}: {out}")
                    results[(name, who)].append((after - before) / TICKS / calls * 1e6)
        print(f"server CPU per Decide, microseconds (median of {rounds} rounds of {calls} calls; all rounds)")
        print("| build | profile | --events none | --events file: | --events redis:// |")
        print("|---|---|---|---|---|")
        for build, binary in enumerate(binaries):
            for who in bodies:
                cells = []
                for mode in ("none", "file", "redis"):
                    values = results.get(((build, mode), who))
                    if values is None:
                        cells.append("-")
                        continue
                    cells.append(f"{statistics.median(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})")
                print(f"| {binary} | {who} | " + " | ".join(cells) + " |")
        print("per round, minus --events none in the same round (median; all rounds)")
        for build, binary in enumerate(binaries):
            for who in bodies:
                cells = []
                for mode in ("file", "redis"):
                    values, base = results.get(((build, mode), who)), results.get(((build, "none"), who))
                    if values is None or base is None:
                        cells.append("-")
                        continue
                    gaps = [v - b for v, b in zip(values, base)]
                    cells.append(f"{statistics.median(gaps):+.2f} ({', '.join(f'{g:+.2f}' for g in gaps)})")
                print(f"| {binary} | {who} | " + " | ".join(cells) + " |")
    finally:
        stop_all(processes)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
