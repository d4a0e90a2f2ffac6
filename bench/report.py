#!/usr/bin/env python3
"""Turns the raw measurements of bench/run.sh or bench/export.sh into a Markdown report
(printed and written) and a JSON file: medians per variant and workload, and ratios."""

import argparse
import csv
import datetime
import json
import statistics
import sys

WORKLOADS = {
    "insert": ("single-row INSERT", "tps"),
    "update": ("single-row UPDATE", "tps"),
    "delete": ("single-row DELETE", "tps"),
    "insert_rate": ("single-row INSERT at a fixed rate (bench/wal.sh)", "tps"),
    "bulk_update": ("bulk UPDATE of score and updated_at", "seconds"),
    "bulk_insert": ("bulk INSERT ... SELECT", "seconds"),
    "bulk_touch": ("bulk UPDATE of ignored updated_at only", "seconds"),
    "wide_update": ("UPDATE of one int column over 1,000 rows of 1 MB", "seconds"),
}

# Further metrics a workload may report besides its own (lower is better).
EXTRA_METRICS = {
    "peak_anon_mb": "the backend's peak private memory (RssAnon, sampled every 20 ms)",
    "vmhwm_mb": "the backend's VmHWM (peak resident, shared buffers it touched included)",
    "capture_eps": "WAL capture: events written per second, from the workload's start to its last event (higher is better)",
    "lag_p50_ms": "WAL capture: lag, now minus the newest written commit, p50",
    "lag_p99_ms": "WAL capture: lag, p99",
}

UNITS = {"tps": "tps", "seconds": "s", "peak_anon_mb": "MB", "vmhwm_mb": "MB",
         "capture_eps": "events/s", "lag_p50_ms": "ms", "lag_p99_ms": "ms"}


def fmt(value, metric):
    if value is None:
        return "-"
    if metric == "tps":
        return f"{value:,.0f}"
    if metric.endswith("_mb"):
        return f"{value:,.1f}"
    return f"{value:.3f}"


def header(machine, params, title):
    m = json.loads(machine)
    p = dict(kv.split("=", 1) for kv in params)
    lines = [
        f"# {title} ({datetime.date.today().isoformat()})",
        "",
        f"- Machine: {m['cpu']}, {m['nproc']} CPUs (nproc), {m['memory']} RAM",
        f"- Server: {m['postgres']}",
        f"- Settings: {m['settings']}",
        f"- Code: git {m['git']} (extension as installed by `make install`, release build)",
    ]
    return lines, m, p


def capture(args):
    rows = list(csv.DictReader(open(args.raw)))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]
    lines, machine, params = header(args.machine, args.params, "Capture benchmark")
    elapsed = int(params.get("elapsed", 0))
    lines += [
        f"- Run: {params['rounds']} rounds, interleaved (each round runs every workload on every "
        f"variant, variant order rotating); pgbench {params['seconds']} s per run, "
        f"{params['clients']} clients (-c {params['clients']} -j {params['clients']} "
        f"-M {params.get('query_mode', 'prepared')}; "
        f"the DELETE run instead deletes every preloaded row once, in random order); "
        f"{int(params['rows']):,} preloaded rows; every run in a fresh copy of the variant's "
        f"template database; total {elapsed // 60} min {elapsed % 60} s",
        "",
        "Medians. TPS workloads: ratio = tps / tps of `none` (higher is better). Bulk workloads: "
        "ratio = seconds / seconds of `none` (lower is better); memory: MB / MB of `none`.",
        "",
    ]
    head = ["workload", "unit"] + variants + [f"{v} / none" for v in variants[1:]]
    if "audit_trail" in variants and "plpgsql" in variants:
        head.append("audit_trail vs plpgsql")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    summary = {}
    measures = []
    for w in workloads:
        title, own = WORKLOADS[w]
        measures.append((w, title, own))
        for metric, what in EXTRA_METRICS.items():
            if any(r["workload"] == w and r["metric"] == metric for r in rows):
                measures.append((w, f"{title}: {what}", metric))
    for w, title, metric in measures:
        values = {
            v: [
                float(r["value"])
                for r in rows
                if r["workload"] == w and r["variant"] == v and r["metric"] == metric
            ]
            for v in variants
        }
        med = {v: statistics.median(x) if x else None for v, x in values.items()}
        base = med.get("none")
        ratios = {
            v: (med[v] / base if base and med[v] is not None else None) for v in variants[1:]
        }
        cells = [title, UNITS[metric]]
        cells += [fmt(med[v], metric) for v in variants]
        for v in variants[1:]:
            r = ratios[v]
            cells.append("-" if r is None else (f"{r:.2f}" if metric == "tps" else f"{r:.2f}x"))
        versus = None
        if "audit_trail" in med and "plpgsql" in med and med["audit_trail"] and med["plpgsql"]:
            versus = (
                med["audit_trail"] / med["plpgsql"]
                if metric == "tps"
                else med["plpgsql"] / med["audit_trail"]
            )
            if metric.endswith("_mb"):
                cells.append(
                    f"{versus:.2f}x less" if versus >= 1 else f"{1 / versus:.2f}x more"
                )
            else:
                cells.append(
                    f"{versus:.2f}x faster" if versus >= 1 else f"{1 / versus:.2f}x slower"
                )
        lines.append("| " + " | ".join(cells) + " |")
        summary[w if metric == WORKLOADS[w][1] else f"{w}:{metric}"] = {
            "title": title,
            "metric": metric,
            "better": "higher" if metric == "tps" else "lower",
            "runs": values,
            "median": med,
            "ratio_to_none": ratios,
            "audit_trail_speedup_over_plpgsql": versus,
        }
    checks = [r for r in rows if r["check"] != "ok"]
    lines += [
        "",
        "Every captured run was checked: events written = transactions (single-row), = rows "
        "(bulk INSERT/UPDATE, wide-row UPDATE), = 0 (ignored-column UPDATE); every single-row "
        "DELETE hit a row. "
        + ("All checks passed." if not checks else f"**{len(checks)} check(s) failed** (below)."),
        "",
        "## Every run",
        "",
        "| round | workload | variant | value | transactions | events | check |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        metric = r["metric"]
        lines.append(
            f"| {r['round']} | {r['workload']} | {r['variant']} | "
            f"{fmt(float(r['value']), metric)} {UNITS[metric]} | "
            f"{r['transactions'] if metric == 'tps' else '-'} | {r['events'] or '-'} | {r['check']} |"
        )
    text = "\n".join(lines) + "\n"
    open(args.md, "w").write(text)
    json.dump(
        {
            "benchmark": "capture",
            "date": datetime.date.today().isoformat(),
            "machine": machine,
            "params": params,
            "workloads": summary,
            "raw": rows,
        },
        open(args.json, "w"),
        indent=2,
    )
    sys.stdout.write(text)


def export(args):
    rows = list(csv.DictReader(open(args.raw)))
    tools = list(dict.fromkeys(r["tool"] for r in rows))
    lines, machine, params = header(args.machine, args.params, "Export benchmark")
    events = int(params["events"])
    lines += [
        f"- Data: {events:,} events in audit.events ({params['table_size']} with its indexes, "
        f"new_data about {params['new_data_bytes']} bytes as text), prewarmed in shared_buffers",
        f"- Query (both tools): the export's columns `ORDER BY occurred_at, id`; plan: "
        f"`{params['plan']}`",
        f"- Run: {params['rounds']} rounds interleaved (tool order rotating); wall time, CPU time "
        f"(user + system) and peak RSS of the client process from GNU time (the server "
        f"backend's work is in the wall time only); `audit-trail export` writes a temporary "
        f"file, fsyncs it and renames it into place, psql's \\copy does not fsync; total {int(params['elapsed']) // 60} min "
        f"{int(params['elapsed']) % 60} s",
        "",
        "Medians.",
        "",
        "| tool | wall s | rows/s | client CPU s | peak RSS (client) | file size |",
        "|---|---|---|---|---|---|",
    ]
    summary = {}
    for t in tools:
        mine = [r for r in rows if r["tool"] == t]
        wall = statistics.median(float(r["wall_seconds"]) for r in mine)
        rss = statistics.median(int(r["max_rss_kb"]) for r in mine)
        cpu = statistics.median(float(r["client_cpu_seconds"]) for r in mine)
        size = statistics.median(int(r["file_bytes"]) for r in mine)
        n = statistics.median(int(r["rows"]) for r in mine)
        summary[t] = {
            "wall_seconds": wall,
            "rows_per_second": n / wall,
            "max_rss_kb": rss,
            "client_cpu_seconds": cpu,
            "file_bytes": size,
            "rows": n,
        }
        lines.append(
            f"| {t} | {wall:.2f} | {n / wall:,.0f} | {cpu:.2f} | {rss / 1024:.1f} MiB | "
            f"{size / 1048576:.0f} MiB |"
        )
    if len(tools) == 2:
        a, b = tools
        lines += [
            "",
            f"`{a}` takes {summary[a]['wall_seconds'] / summary[b]['wall_seconds']:.2f}x the wall "
            f"time of `{b}`.",
        ]
    lines += [
        "",
        "## Every run",
        "",
        "| round | tool | wall s | client CPU s | peak RSS | rows | file bytes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['tool']} | {float(r['wall_seconds']):.2f} | "
            f"{float(r['client_cpu_seconds']):.2f} | "
            f"{int(r['max_rss_kb']) / 1024:.1f} MiB | {int(r['rows']):,} | {int(r['file_bytes']):,} |"
        )
    text = "\n".join(lines) + "\n"
    open(args.md, "w").write(text)
    json.dump(
        {
            "benchmark": "export",
            "date": datetime.date.today().isoformat(),
            "machine": machine,
            "params": params,
            "tools": summary,
            "raw": rows,
        },
        open(args.json, "w"),
        indent=2,
    )
    sys.stdout.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["capture", "export"])
    parser.add_argument("--raw", required=True)
    parser.add_argument("--machine", required=True, help="JSON from lib.sh machine_json")
    parser.add_argument("--param", dest="params", action="append", default=[], help="key=value")
    parser.add_argument("--md", required=True)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    (capture if args.kind == "capture" else export)(args)


if __name__ == "__main__":
    main()
