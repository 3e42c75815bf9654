#!/usr/bin/env python3
"""Helpers for open_loop.sh.

  open_loop.py max-rate WORK WORKLOAD CALLS     median closed-loop calls/s of WORKLOAD's h2load rounds, an integer
  open_loop.py report CSV MAX_RATES             the Markdown table of the sweep
  open_loop.py plot CSV MAX_RATES OUT.png       latency percentiles against the rate (matplotlib)

CSV is what offerd-loadgen --csv writes (one row per round); MAX_RATES holds `workload calls/s` lines."""

import csv
import glob
import os
import re
import statistics
import sys


def h2load_rate(path, calls):
    """calls/s of one h2load round, or None when it did not finish every call."""
    out = open(path).read() if os.path.exists(path) else ""
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    if not m or not done or int(done.group(1)) != calls:
        return None
    return float(m.group(1))


def max_rate(work, workload, calls):
    rates = [h2load_rate(p, calls) for p in sorted(glob.glob(os.path.join(work, f"closed-{workload}-*.txt")))]
    rates = [r for r in rates if r is not None]
    if not rates:
        sys.exit(f"no complete closed-loop round for {workload} in {work}")
    print(int(statistics.median(rates)))


def read_max_rates(path):
    rates = {}
    for line in open(path):
        name, rate = line.split()
        rates[name] = int(rate)
    return rates


def basis_rate(rates, workload):
    """The rate a workload's percentages are of: its own maximum; health runs at the priority workload's rates."""
    if workload == "health" and "priority" in rates:
        return rates["priority"]
    return rates.get(workload) or rates.get("priority") or 0


def rows_with_percent(csv_path, max_rates_path):
    """The CSV rows, each with `percent` (of the workload's maximum; health: of the priority workload's)."""
    rates = read_max_rates(max_rates_path)
    rows = list(csv.DictReader(open(csv_path)))
    for row in rows:
        basis = basis_rate(rates, row["label"])
        row["basis"] = basis
        # Derived again from the counts (offerd-loadgen's rule, 0.5%), so CSVs written under the earlier 1% rule
        # read the same way.
        row["generator_kept_up"] = "yes" if int(row["late_sends"]) <= 0.005 * int(row["sent"]) else "no"
        row["percent"] = round(100 * int(row["target_rate"]) / basis) if basis else 0
    return rows


def number(text, digits=0):
    value = float(text)
    return "n/a" if value != value else f"{value:,.{digits}f}"


def report(csv_path, max_rates_path):
    rows = rows_with_percent(csv_path, max_rates_path)
    print()
    print("Maximum (closed loop, h2load -c 16 -m 32, median): "
          + ", ".join(f"{name} {rate:,} calls/s" for name, rate in read_max_rates(max_rates_path).items()))
    print()
    print("Open loop (offerd-loadgen), latency in microseconds from each call's scheduled send time:")
    print()
    print("| workload | % of max | target calls/s | achieved calls/s | p50 | p90 | p99 | p99.9 | max | errors | "
          "send lag p99 | generator kept up | generator CPU % |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for row in sorted(rows, key=lambda r: (r["label"], r["percent"])):
        print(f"| {row['label']} | {row['percent']} | {int(row['target_rate']):,} | {number(row['achieved_rate'])} | "
              f"{number(row['p50_us'])} | {number(row['p90_us'])} | {number(row['p99_us'])} | "
              f"{number(row['p999_us'])} | {number(row['max_us'])} | {row['errors']} | "
              f"{number(row['send_lag_p99_us'])} | {row['generator_kept_up']} | "
              f"{number(row['generator_cpu_percent'])} |")


def plot(csv_path, max_rates_path, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows_with_percent(csv_path, max_rates_path)
    rates = read_max_rates(max_rates_path)
    workloads = list(dict.fromkeys(row["label"] for row in rows))
    colors = dict(zip(workloads, ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"]))
    styles = {"p50_us": ("p50", ":"), "p99_us": ("p99", "-"), "p999_us": ("p99.9", "--"),
              "send_lag_p99_us": ("send lag p99 (generator)", "-.")}
    fig, ax = plt.subplots(figsize=(12, 5.5))
    for workload in workloads:
        selected = sorted((r for r in rows if r["label"] == workload), key=lambda r: r["percent"])
        xs = [r["percent"] for r in selected]
        basis = basis_rate(rates, workload)
        for column, (name, style) in styles.items():
            ys = [float(r[column]) for r in selected]
            ax.plot(xs, ys, style, color=colors[workload], marker="o", markersize=3,
                    alpha=0.45 if column.startswith("send_lag") else 1.0,
                    label=f"{workload} {name} (max {basis:,}/s)" if name == "p99" else f"{workload} {name}")
        behind = [r for r in selected if r["generator_kept_up"] != "yes"]
        if behind:
            ax.scatter([r["percent"] for r in behind], [float(r["p99_us"]) for r in behind], s=80,
                       facecolors="none", edgecolors="black", zorder=5)
    ax.axhline(1000, color="gray", linewidth=0.8)
    ax.annotate("1 ms", xy=(1, 1000), xycoords=("axes fraction", "data"), xytext=(-4, 2),
                textcoords="offset points", ha="right", va="bottom", color="gray")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, % of the workload's closed-loop maximum (open loop, exact intervals)")
    ax.set_ylabel("latency from scheduled send (us)")
    ax.set_title("offerd, one core: latency against rate (offerd-loadgen)\n"
                 "circled: the generator fell behind (>0.5% of sends late)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"plot: {out}")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "max-rate":
        max_rate(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif command == "report":
        report(sys.argv[2], sys.argv[3])
    elif command == "plot":
        plot(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
