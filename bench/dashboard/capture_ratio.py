#!/usr/bin/env python3
"""Markdown rows for bench/scale.sh's capture step: from a CSV of round,workload,database,tps
(database `empty_log` or `scale`), the median tps of each workload in each database, their
ratio (this log / empty log) and every round."""

import csv
import statistics
import sys


def main():
    rows = list(csv.DictReader(open(sys.argv[1], newline="")))
    for workload in ("insert", "update"):
        tps = {
            db: [float(r["tps"]) for r in rows if r["workload"] == workload and r["database"] == db]
            for db in ("empty_log", "scale")
        }
        if not tps["empty_log"] or not tps["scale"]:
            sys.exit(f"no rounds of {workload} in {sys.argv[1]}")
        empty, scale = statistics.median(tps["empty_log"]), statistics.median(tps["scale"])
        rounds = " / ".join(", ".join(f"{x:.0f}" for x in tps[db]) for db in ("empty_log", "scale"))
        print(f"| single-row {workload.upper()} | {empty:.0f} | {scale:.0f} | "
              f"**{scale / empty:.3f}** | {rounds} |")


if __name__ == "__main__":
    main()
