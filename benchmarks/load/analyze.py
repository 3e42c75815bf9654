#!/usr/bin/env python3
"""Helpers for run.sh: the size of a real Decide response, and the report
(medians over rounds of calls/s, server CPU per call, latency percentiles)."""

import glob
import os
import re
import statistics
import struct
import sys


def response_size(target, body_path):
    import grpc

    payload = open(body_path, "rb").read()[5:]
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/offerd.v1.Decisioning/Decide", request_serializer=None, response_deserializer=None)
        response = call(payload, timeout=10)
    print(len(response) + 5)


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def report(work, calls, rss_kib, snapshot_bytes):
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    rows = {}
    for line in open(os.path.join(work, "cpu.txt")):
        name, rnd, before, after = line.split()
        out = open(os.path.join(work, f"out-{name}-{rnd}.txt")).read()
        m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
        req_s = float(m.group(3)) if m else float("nan")
        m = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
        succeeded, failed, errored = map(int, m.groups()) if m else (0, calls, 0)
        cpu_us = (int(after) - int(before)) / ticks_per_second * 1e6 / max(1, succeeded)
        latencies = []
        for log_line in open(os.path.join(work, f"single-{name}-{rnd}.log")):
            parts = log_line.split()
            if len(parts) >= 3:
                latencies.append(int(parts[2]))
        row = rows.setdefault(name, {"req_s": [], "cpu_us": [], "p50": [], "p99": [], "p999": [], "errors": 0})
        row["req_s"].append(req_s)
        row["cpu_us"].append(cpu_us)
        row["p50"].append(percentile(latencies, 50))
        row["p99"].append(percentile(latencies, 99))
        row["p999"].append(percentile(latencies, 99.9))
        row["errors"] += failed + errored
    print()
    print("| server | calls/s | server CPU us/call | single-call p50 us | p99 us | p99.9 us | errors |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        med = {k: statistics.median(v) for k, v in row.items() if isinstance(v, list)}
        print(f"| {name} | {med['req_s']:.0f} | {med['cpu_us']:.2f} | {med['p50']:.0f} | {med['p99']:.0f} | "
              f"{med['p999']:.0f} | {row['errors']} |")
    if "offerd" in rows and "nghttpd" in rows:
        ratio = statistics.median(rows["offerd"]["cpu_us"]) / statistics.median(rows["nghttpd"]["cpu_us"])
        print(f"\nofferd / nghttpd CPU per call: {ratio:.2f}x")
    print(f"offerd resident memory after load: {int(rss_kib) / 1024:.1f} MiB "
          f"(snapshot file {int(snapshot_bytes) / 1048576:.1f} MiB)")


if __name__ == "__main__":
    if sys.argv[1] == "response-size":
        response_size(sys.argv[2], sys.argv[3])
    else:
        report(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
