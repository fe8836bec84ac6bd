#!/usr/bin/env python3
"""GPU time per kernel name from `ncu --csv --metrics gpu__time_duration.sum` (scripts/gpu_check.sh
with NCU=1 writes it to $OUT/ncu.csv): launches, total and share, largest first.

    python3 scripts/ncu_summary.py ncu.csv [--top 30]
"""
import argparse
import collections
import csv
import io
import re

UNITS = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    text = open(args.csv, errors="replace").read()
    # ncu prints its own lines (==PROF==) and the program's output before the table.
    start = text.find('"ID"')
    if start < 0:
        raise SystemExit("ncu_summary: no CSV table in " + args.csv)
    rows = csv.DictReader(io.StringIO(text[start:]))
    total_ms = collections.Counter()
    launches = collections.Counter()
    for row in rows:
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = re.sub(r"\(.*", "", row.get("Kernel Name", "?")).strip()
        value = float(row["Metric Value"].replace(",", ""))
        total_ms[name] += value * UNITS.get(row.get("Metric Unit", "nsecond"), 1e-6)
        launches[name] += 1
    whole = sum(total_ms.values())
    print(f"{sum(launches.values())} launches, {whole:.2f} ms of GPU time")
    print(f"{'ms':>9} {'share':>6} {'launches':>8}  kernel")
    for name, ms in total_ms.most_common(args.top):
        print(f"{ms:9.3f} {ms / whole:6.1%} {launches[name]:8d}  {name[:100]}")


if __name__ == "__main__":
    main()
