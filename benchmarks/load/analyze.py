#!/usr/bin/env python3
"""Helpers for run.sh.

  analyze.py response-size HOST:PORT BODY   size of a real Decide response (gRPC-framed)
  analyze.py max-rate WORK SERVER           median closed-loop calls/s of SERVER, an integer
  analyze.py report WORK CALLS SNAP_BYTES   the Markdown tables: medians over rounds
  analyze.py plot WORK OUT.png              latency percentiles per server (matplotlib)

Latencies come from h2load --log-file (third column: microseconds until the end of the response)."""

import collections
import os
import re
import statistics
import sys


def response_size(target, body_path):
    import grpc

    payload = open(body_path, "rb").read()[5:]
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/offerd.v1.Decisioning/Decide", request_serializer=None, response_deserializer=None)
        response = call(payload, timeout=10)
    print(len(response) + 5)


def percentile(values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def latencies(path):
    """Sorted latencies (us) of the successful calls in an h2load log, and the count of non-2xx answers."""
    values, failed = [], 0
    if not os.path.exists(path):
        return values, failed
    for line in open(path):
        parts = line.split()
        if len(parts) < 3:
            continue
        if parts[1].startswith("2"):
            values.append(int(parts[2]))
        else:
            failed += 1
    values.sort()
    return values, failed


def h2load_summary(path, calls):
    """(calls/s, succeeded, failed + errored + missing) from h2load's standard output."""
    out = open(path).read() if os.path.exists(path) else ""
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    req_s = float(m.group(3)) if m else float("nan")
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  out)
    if not m:
        return req_s, 0, calls
    total, _, done, succeeded, failed, errored = map(int, m.groups())
    return req_s, succeeded, failed + errored + max(0, calls - done if calls else 0)


def closed_loop_rows(work, calls):
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    rows = collections.OrderedDict()
    for line in open(os.path.join(work, "cpu.txt")):
        name, rnd, before, after = line.split()
        req_s, succeeded, errors = h2load_summary(os.path.join(work, f"out-{name}-{rnd}.txt"), calls)
        cpu_us = (int(after) - int(before)) / ticks_per_second * 1e6 / max(1, succeeded)
        loaded, _ = latencies(os.path.join(work, f"load-{name}-{rnd}.log"))
        single, _ = latencies(os.path.join(work, f"single-{name}-{rnd}.log"))
        row = rows.setdefault(name, collections.defaultdict(list))
        row["req_s"].append(req_s)
        row["cpu_us"].append(cpu_us)
        for label, values in (("load", loaded), ("single", single)):
            for p in (50, 99, 99.9):
                row[f"{label}_p{p}"].append(percentile(values, p))
        row["errors"].append(errors)
    return rows


def memory(work):
    """name -> {"idle": KiB, "load": max KiB seen after load rounds, "peak": VmHWM KiB}."""
    result = collections.defaultdict(dict)
    path = os.path.join(work, "memory.txt")
    if not os.path.exists(path):
        return result
    for line in open(path):
        name, when, kib = line.split()
        key = "load" if when.startswith("load-") else when
        result[name][key] = max(result[name].get(key, 0), int(kib))
    return result


def trailers(work):
    verdicts = collections.defaultdict(lambda: [0, 0])
    path = os.path.join(work, "trailers.txt")
    if os.path.exists(path):
        for line in open(path):
            name, _, verdict = line.split()
            verdicts[name][0 if verdict == "ok" else 1] += 1
    return verdicts


def open_loop_rows(work):
    """[(percent, rate, name, achieved calls/s, p50, p99, p99.9, errors)] in run order."""
    rows = []
    path = os.path.join(work, "rates.txt")
    if not os.path.exists(path):
        return rows
    for line in open(path):
        name, percent, rate = line.split()
        req_s, _, errors = h2load_summary(os.path.join(work, f"rate-{name}-{percent}.txt"), 0)
        values, failed = latencies(os.path.join(work, f"rate-{name}-{percent}.log"))
        rows.append((int(percent), int(rate), name, req_s, percentile(values, 50), percentile(values, 99),
                     percentile(values, 99.9), errors + failed))
    return rows


def median(values):
    values = [v for v in values if v == v]  # drop NaN (a round that did not finish)
    return statistics.median(values) if values else float("nan")


def report(work, calls, snapshot_bytes):
    rows = closed_loop_rows(work, calls)
    mem = memory(work)
    verdicts = trailers(work)
    print()
    print(f"Closed loop: medians over {max(len(r['req_s']) for r in rows.values())} interleaved rounds "
          f"of {calls} calls; latency in microseconds.")
    print()
    print("| server | calls/s | server CPU us/call | load p50 | load p99 | load p99.9 | single p50 | single p99 | "
          "single p99.9 | RSS idle MiB | RSS under load MiB | errors | trailers ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        med = {k: median(v) for k, v in row.items()}
        m = mem.get(name, {})
        ok, bad = verdicts[name]
        print(f"| {name} | {med['req_s']:.0f} | {med['cpu_us']:.1f} | {med['load_p50']:.0f} | {med['load_p99']:.0f} | "
              f"{med['load_p99.9']:.0f} | {med['single_p50']:.0f} | {med['single_p99']:.0f} | "
              f"{med['single_p99.9']:.0f} | {m.get('idle', 0) / 1024:.1f} | "
              f"{max(m.get('load', 0), m.get('peak', 0)) / 1024:.1f} | {sum(row['errors'])} | {ok}/{ok + bad} |")
    names = list(rows)
    if "offerd" in rows:
        base = median(rows["offerd"]["cpu_us"])
        for other in names:
            if other != "offerd":
                print(f"\nofferd / {other} CPU per call: {base / median(rows[other]['cpu_us']):.2f}x", end="")
        print()
    print(f"\nRSS under load is the peak (VmHWM); the snapshot file is {int(snapshot_bytes) / 1048576:.1f} MiB "
          "(mapped, or copied when no read lease can be had: either way idle RSS is about the file size).")
    open_rows = open_loop_rows(work)
    if open_rows:
        print()
        print("Open loop (h2load --rps), latency in microseconds:")
        print()
        print("| rate | server | target calls/s | achieved calls/s | p50 | p99 | p99.9 | errors |")
        print("|---|---|---|---|---|---|---|---|")
        for percent, rate, name, req_s, p50, p99, p999, errors in open_rows:
            print(f"| {percent}% | {name} | {rate} | {req_s:.0f} | {p50:.0f} | {p99:.0f} | {p999:.0f} | {errors} |")


def max_rate(work, name):
    rows = closed_loop_rows(work, 0)
    print(int(median(rows[name]["req_s"])))


def plot(work, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = closed_loop_rows(work, 0)
    open_rows = open_loop_rows(work)
    panels = [("closed loop, under load", "load"), ("one call in flight", "single")]
    percents = sorted({r[0] for r in open_rows})
    fig, axes = plt.subplots(1, len(panels) + len(percents), figsize=(4 * (len(panels) + len(percents)), 4),
                             sharey=False)
    labels = ["p50", "p99", "p99.9"]
    names = list(rows)
    width = 0.8 / max(1, len(names))
    for ax, (title, key) in zip(axes, panels):
        for i, name in enumerate(names):
            values = [median(rows[name][f"{key}_p{p}"]) for p in (50, 99, 99.9)]
            ax.bar([x + i * width for x in range(3)], values, width, label=name)
        ax.set_title(title)
    for ax, percent in zip(axes[len(panels):], percents):
        selected = [r for r in open_rows if r[0] == percent]
        for i, name in enumerate(names):
            match = [r for r in selected if r[2] == name]
            values = list(match[0][4:7]) if match else [0, 0, 0]
            ax.bar([x + i * width for x in range(3)], values, width, label=name)
        ax.set_title(f"open loop at {percent}% of offerd max" + (f"\n({selected[0][1]} calls/s)" if selected else ""))
    for ax in axes:
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(3)], labels)
        ax.set_yscale("log")
        ax.set_ylabel("latency (us)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"plot: {out}")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "response-size":
        response_size(sys.argv[2], sys.argv[3])
    elif command == "max-rate":
        max_rate(sys.argv[2], sys.argv[3])
    elif command == "report":
        report(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif command == "plot":
        plot(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
