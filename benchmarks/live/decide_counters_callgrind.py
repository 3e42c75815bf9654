#!/usr/bin/env python3
"""Instructions per decision with live counters, counted by callgrind (issue 14: a profile with 20 live counters
at most 1 µs over one with nothing live): a stable figure where server CPU per call on a shared machine moves by
about 1 µs from round to round (decide_cpu.py).

The decisions are made by benchmarks/peers' offerd-decide-loop with `--events LOG`: the path of `offerd decide batch
--events file:LOG --dry-run` (`BatchDecider.decideOne`), which is the server's live-state decision path in one
thread (the overlay's filter, the profile key, `decideInputs`, the engine's live counts; no transport, a JSON
response); `offerd` itself stops at start under valgrind 3.19 here. decide_cpu.py's catalog (20 offers, each capped
on displays per day, so every candidate's rule asks for its count) and a file log written by a real `offerd serve`
through RecordEvents: `live` profiles have displays of 5 offers today (5 offers x 4 periods = 20 live counters
each), `empty` profiles have nothing in the log. Each kind runs twice under callgrind, with FEW and FEW + CALLS
calls (BODIES profiles in turn), and the difference in instructions over CALLS is one decision's cost: live minus
empty is the cost of the counters.

usage: decide_counters_callgrind.py OFFERD_BIN DECIDE_LOOP_BIN[,DECIDE_LOOP_BIN...] [CALLS] [FEW]"""

import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile

import grpc

from live_harness import free_port, ready, stubs, wait_for, write_display_capped_catalog

PROFILES = 1000  # of each kind in the snapshot and (live) in the log
BODIES = 50  # of each kind, used in turn


def instructions(work, loop, kind, calls):
    """Total instructions of `calls` decisions for profiles of kind `kind`, in turn."""
    out = work / f"callgrind.{kind}.{calls}"
    requests = [arg for n in range(BODIES) for arg in ("--request", work / f"{kind}-{n}.bin")]
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", loop, "--catalog", work / "catalog.json",
         "--snapshot", work / "profiles.snap", "--events", work / "events.log", *requests, "--calls", str(calls)],
        check=True, capture_output=True, timeout=3600)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    sys.exit(f"no total in {out}")


def main():
    offerd = sys.argv[1]
    loops = sys.argv[2].split(",")
    calls = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    few = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    work = pathlib.Path(tempfile.mkdtemp(prefix="offerd-counters-"))
    pb, pb_grpc = stubs(work / "stubs")
    write_display_capped_catalog(work / "catalog.json", "live-counters")
    (work / "profiles.jsonl").write_text("".join(
        json.dumps({"identities": [{"namespace": "ECID", "id": f"{kind}{n}"}]}) + "\n"
        for kind in ("empty", "live") for n in range(PROFILES)))
    subprocess.run([offerd, "snapshot", "build", "--input", work / "profiles.jsonl", "--output",
                    work / "profiles.snap"], check=True, stdout=subprocess.DEVNULL)

    # The log, written by a real server: 5 displays (of 5 offers) today for every `live` profile.
    port, admin = free_port(), free_port()
    server = subprocess.Popen(
        [offerd, "serve", "--catalog", work / "catalog.json", "--snapshot", work / "profiles.snap", "--port",
         str(port), "--admin-port", str(admin), "--events", f"file:{work}/events.log", "--log-level", "warning"],
        stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: ready(admin), "the server that writes the log")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DecisioningStub(channel)
            for first in range(0, PROFILES, 20):
                request = pb.RecordEventsRequest()
                for n in range(first, first + 20):
                    for offer in range(5):
                        event = request.events.add(event_id=f"d-{n}-{offer}", type=pb.EVENT_TYPE_DISPLAY,
                                                   offer_ids=[f"o{19 - offer}"])
                        event.identity.namespace = "ECID"
                        event.identity.id = f"live{n}"
                assert stub.RecordEvents(request, timeout=30).recorded == 100
    finally:
        server.terminate()
        server.wait(timeout=30)

    for kind in ("empty", "live"):
        for n in range(BODIES):
            request = pb.DecideRequest()
            request.identity.namespace = "ECID"
            request.identity.id = f"{kind}{n}"
            request.scopes.add(decision_id="d", placement_id="web", item_count=3)
            message = request.SerializeToString()
            (work / f"{kind}-{n}.bin").write_bytes(struct.pack(">BI", 0, len(message)) + message)
    # valgrind 3.19 cannot read Swift's DWARF 5 (and takes minutes over DWARF it can read): a copy without debug
    # info keeps the symbol table, which is all callgrind_annotate needs (as benchmarks/callgrind/run.sh does).
    stripped = []
    for number, loop in enumerate(loops):
        stripped.append(work / f"offerd-decide-loop-{number}")
        subprocess.run(["objcopy", "--strip-debug", loop, stripped[-1]], check=True)

    print(f"instructions per decision ({few} and {few + calls} calls of each kind, {BODIES} profiles in turn)")
    print("| build | empty profile | live profile (20 counters) | live minus empty |")
    print("|---|---|---|---|")
    for binary, copy in zip(loops, stripped):
        per_line = {}
        for kind in ("empty", "live"):
            per_line[kind] = (instructions(work, copy, kind, few + calls) - instructions(work, copy, kind, few)) / calls
        print(f"| {binary} | {per_line['empty']:,.0f} | {per_line['live']:,.0f} | "
              f"{per_line['live'] - per_line['empty']:,.0f} |")
    print(f"work directory: {work}")


if __name__ == "__main__":
    main()
