#!/usr/bin/env python3
"""Decide under load with live state, many callers (issue 15's catalog with the default event log): what a server
costs per call when every Decide records its decision events and reads the live caps of its candidates, for many
different people, side by side with `--events none` in one run.

The catalog is make_catalog.py's `real` (1,000 offers in 10 collections of 100, an eligibility condition on each,
every offer capped at 5 decisions per person, a priority criterion on checkout pages and a formula criterion).
The snapshot holds PROFILES profiles. For each CALLERS count, a body per caller (`ecid-N` spread over the snapshot)
is written to one file and offerd-loadgen rotates them call by call at RATE calls/s, open loop, for WARMUP + SECONDS:
with 100,000 callers at 40,000 calls/s that is about 5 calls per person, each person's caps far from full; with
1,000 callers about 500, so every person soon has every eligible offer capped (the worst case: each Decide walks
all its candidates asking their counts, and records nothing new).

Every (callers, workload, mode) cell starts a fresh server (an empty log, a new Redis key) pinned to core 0 with
one event loop thread; offerd-loadgen runs on core 1 (Redis too, for MODES with redis). Rounds are interleaved:
every cell once per round, in the same order. Server CPU per call = the server's CPU time over the loadgen run
(every thread: event loop, log writer, follower), divided by the calls sent in it (warm-up included).

usage: decide_load.py OFFERD_BIN[,OFFERD_BIN...] LOADGEN_BIN [ROUNDS]
With several binaries (builds to compare: before,after) each cell runs once per build in every round, the builds
next to each other in time.
environment: PROFILES (100000), CALLERS ("100000 1000"), RATE (40000), SECONDS (10), WARMUP (2),
             WORKLOADS ("priority formula"), MODES ("none file"; add redis for a Redis stream log),
             WORK (/tmp/offerd-decide-load: the snapshot is kept there between runs)"""

import csv
import os
import pathlib
import statistics
import subprocess
import sys

from live_harness import ROOT, free_port, pinned, ready, start_redis, stop_all, wait_for

TICKS = os.sysconf("SC_CLK_TCK")
PAGES = {"priority": "checkout", "formula": "home"}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, every thread


def main():
    binaries, loadgen = sys.argv[1].split(","), sys.argv[2]
    offerd = binaries[0]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    profiles = int(os.environ.get("PROFILES", "100000"))
    callers_counts = [int(c) for c in os.environ.get("CALLERS", "100000 1000").split()]
    rate = int(os.environ.get("RATE", "40000"))
    seconds = int(os.environ.get("SECONDS", "10"))
    warmup = int(os.environ.get("WARMUP", "2"))
    workloads = os.environ.get("WORKLOADS", "priority formula").split()
    modes = os.environ.get("MODES", "none file").split()
    work = pathlib.Path(os.environ.get("WORK", "/tmp/offerd-decide-load"))
    work.mkdir(parents=True, exist_ok=True)

    snapshot = work / f"profiles-{profiles}.snap"
    if not snapshot.exists():
        jsonl = work / f"profiles-{profiles}.jsonl"
        subprocess.run([offerd, "profiles", "generate", "--count", str(profiles), "--seed", "42",
                        "--output", str(jsonl)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([offerd, "snapshot", "build", "--input", str(jsonl), "--output", str(snapshot),
                        "--version", f"decide-load-{profiles}"], check=True, stdout=subprocess.DEVNULL)
    catalog = work / "catalog.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks/load/make_catalog.py"), str(catalog), "real"], check=True)
    bodies = {}
    for callers in callers_counts:
        for workload in workloads:
            directory = work / f"bodies-{callers}-{workload}"
            subprocess.run([sys.executable, str(ROOT / "benchmarks/load/make_requests.py"), str(directory),
                            str(callers), str(profiles), "1", PAGES[workload]],
                           check=True, env={**os.environ, "OFFERD_ONE_FILE": "1"})
            bodies[(callers, workload)] = directory / "req-1-all.bin"

    processes = []
    redis_port = start_redis(work, processes) if "redis" in modes else None
    cells = [(c, w, m, b) for c in callers_counts for w in workloads for m in modes for b in range(len(binaries))]
    results = {cell: [] for cell in cells}
    try:
        for round_number in range(1, rounds + 1):
            for callers, workload, mode, build in cells:
                events = {"none": "none",
                          "file": f"file:{work}/events-{round_number}-{callers}-{workload}.log",
                          "redis": f"redis://127.0.0.1:{redis_port}?key=load-{round_number}-{callers}-{workload}",
                          }[mode]
                if mode == "file":
                    pathlib.Path(events[len("file:"):]).unlink(missing_ok=True)
                port, admin = free_port(), free_port()
                server = subprocess.Popen(
                    pinned("0", [binaries[build], "serve", "--catalog", str(catalog), "--snapshot", str(snapshot),
                                 "--port", str(port), "--admin-port", str(admin), "--threads", "1",
                                 "--log-level", "warning", "--events", events]),
                    stdout=subprocess.DEVNULL, stderr=open(work / f"server-{mode}.log", "w"))
                try:
                    wait_for(lambda: ready(admin), f"offerd --events {events} to be ready")
                    rows = work / "round.csv"
                    rows.unlink(missing_ok=True)
                    before = cpu_seconds(server.pid)
                    subprocess.run(
                        pinned("1", [loadgen, "--url", f"http://127.0.0.1:{port}/offerd.v1.Decisioning/Decide",
                                     "--bodies", str(bodies[(callers, workload)]), "--rate", str(rate),
                                     "--duration", str(seconds), "--warmup", str(warmup), "--connections", "8",
                                     "--label", f"{callers} {workload} {mode}", "--csv", str(rows)]),
                        check=True, stdout=subprocess.DEVNULL, timeout=seconds + warmup + 120)
                    used = cpu_seconds(server.pid) - before
                finally:
                    server.terminate()
                    server.wait(timeout=30)
                with open(rows) as f:
                    row = next(csv.DictReader(f))
                if int(row["errors"]) or int(row["unanswered"]):
                    sys.exit(f"{callers} callers, {workload}, --events {mode}: {row['errors']} errors, "
                             f"{row['unanswered']} unanswered")
                calls = rate * (seconds + warmup)
                results[(callers, workload, mode, build)].append(
                    (used / calls * 1e6, float(row["p50_us"]), float(row["p99_us"]), row["generator_kept_up"]))
                print(f"round {round_number}: {binaries[build]}: {callers} callers, {workload}, --events {mode}: "
                      f"{used / calls * 1e6:.2f} us CPU/call, p50 {row['p50_us']} us, p99 {row['p99_us']} us, "
                      f"generator kept up: {row['generator_kept_up']}", flush=True)
    finally:
        stop_all(processes)

    print(f"\nserver CPU per Decide (median of {rounds} rounds; every round), {rate} calls/s for "
          f"{warmup} + {seconds} s, {profiles} profiles in the snapshot")
    print("| build | callers | calls per caller | workload | "
          + " | ".join(f"--events {m}: CPU/call" for m in modes) + " | " + " | ".join(f"{m}: p99" for m in modes) + " |")
    print("|---|---|---|---|" + "---|" * (2 * len(modes)))
    for build, binary in enumerate(binaries):
        for callers in callers_counts:
            for workload in workloads:
                cpu_cells, p99_cells = [], []
                for mode in modes:
                    values = results[(callers, workload, mode, build)]
                    cpu = [v[0] for v in values]
                    cpu_cells.append(f"{statistics.median(cpu):.2f} µs ({', '.join(f'{v:.2f}' for v in cpu)})")
                    p99_cells.append(f"{statistics.median(v[2] for v in values):.0f} µs")
                per_caller = rate * (seconds + warmup) / callers
                print(f"| {binary} | {callers:,} | {per_caller:,.0f} | {workload} | " + " | ".join(cpu_cells) + " | "
                      + " | ".join(p99_cells) + " |")


if __name__ == "__main__":
    main()
