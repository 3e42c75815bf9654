#!/usr/bin/env python3
"""Instructions per decision with live counters, counted by callgrind (issue 14: a profile with 20 live counters
at most 1 µs over one with nothing live): a stable figure where server CPU per call on a shared machine moves by
about 1 µs from round to round (decide_cpu.py).

The decisions are `offerd decide batch --dry-run --threads 1 --events file:LOG`'s, the server's decision path in one
process (the overlay's filter, the key, `decideInputs`, the engine's live counts; no transport): decide_cpu.py's
catalog (20 offers, each capped on displays per day, so every candidate's rule asks for its count) and a file log
written by a real `offerd serve` through RecordEvents: `live` profiles have displays of 5 offers today (5 offers x
4 periods = 20 live counters each), `empty` profiles have nothing in the log. Each kind runs twice under callgrind,
with FEW and FEW + CALLS lines (distinct profiles in turn), and the difference in instructions over CALLS is the
cost of one line (reading, deciding and writing it): the live-minus-empty difference is the cost of the counters.

usage: decide_counters_callgrind.py OFFERD_BIN[,OFFERD_BIN...] [CALLS] [FEW]"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import grpc

from live_harness import free_port, ready, stubs, wait_for

PROFILES = 1000  # of each kind; the lines take them in turn


def instructions(work, binary, kind, lines):
    """Total instructions of one dry-run batch over `lines` lines of profile kind `kind`."""
    source = work / f"in-{kind}-{lines}.jsonl"
    source.write_text("".join(
        json.dumps({"identity": {"namespace": "ECID", "id": f"{kind}{n % PROFILES}"},
                    "scopes": [{"decisionId": "d", "placementId": "web", "itemCount": 3}]}) + "\n"
        for n in range(lines)))
    out = work / f"callgrind.{kind}.{lines}"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "decide", "batch", "--catalog",
         work / "catalog.json", "--snapshot", work / "profiles.snap", "--input", source, "--output", "/dev/null",
         "--events", f"file:{work}/events.log", "--dry-run", "--threads", "1", "--quiet"],
        check=True, capture_output=True, timeout=3600)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    sys.exit(f"no total in {out}")


def main():
    binaries = sys.argv[1].split(",")
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    few = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    work = pathlib.Path(tempfile.mkdtemp(prefix="offerd-counters-"))
    pb, pb_grpc = stubs(work / "stubs")
    offers = [{"id": f"o{n}", "status": "approved", "priority": n, "tags": ["t"],
               "capping": [{"limit": 1_000_000, "event": "display", "period": "day"}],
               "representations": [{"placement": "web", "content": f"o{n}"}]} for n in range(20)]
    (work / "catalog.json").write_text(json.dumps({
        "version": "live-counters", "placements": [{"id": "web", "channel": "web", "contentType": "text"}],
        "offers": offers, "collections": [{"id": "all", "anyTags": ["t"]}],
        "decisions": [{"id": "d", "status": "live",
                       "scopes": [{"placement": "web", "criteria": [{"collection": "all"}]}]}]}))
    (work / "profiles.jsonl").write_text("".join(
        json.dumps({"identities": [{"namespace": "ECID", "id": f"{kind}{n}"}]}) + "\n"
        for kind in ("empty", "live") for n in range(PROFILES)))
    subprocess.run([binaries[0], "snapshot", "build", "--input", work / "profiles.jsonl", "--output",
                    work / "profiles.snap"], check=True, stdout=subprocess.DEVNULL)

    # The log, written by a real server: 5 displays (of 5 offers) today for every `live` profile.
    port, admin = free_port(), free_port()
    server = subprocess.Popen(
        [binaries[0], "serve", "--catalog", work / "catalog.json", "--snapshot", work / "profiles.snap", "--port",
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

    print(f"instructions per decision ({few} and {few + calls} lines of each kind, {PROFILES} profiles in turn)")
    print("| build | empty profile | live profile (20 counters) | live minus empty |")
    print("|---|---|---|---|")
    for binary in binaries:
        per_line = {}
        for kind in ("empty", "live"):
            per_line[kind] = (instructions(work, binary, kind, few + calls) - instructions(work, binary, kind, few)) \
                / calls
        print(f"| {binary} | {per_line['empty']:,.0f} | {per_line['live']:,.0f} | "
              f"{per_line['live'] - per_line['empty']:,.0f} |")
    print(f"work directory: {work}")


if __name__ == "__main__":
    main()
