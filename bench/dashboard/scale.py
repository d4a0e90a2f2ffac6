#!/usr/bin/env python3
"""Times the first page of each dashboard filter over a large log (see bench/scale.sh).

Signs in like measure.py, then for each view makes 3 warm-up requests and --repeat timed ones
on one kept-alive connection; prints a Markdown table (median, p95, max, rows of the page) and
writes it to --md. A time is from sending the request to the last byte of the page.
"""

import argparse
import http.client
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import Dashboard, measure, older_link  # noqa: E402

TARGET_MS = 100.0


def views():
    return [
        ("Time range only: last 30 days", "range=30d"),
        ("Time range only: all time", "range=all"),
        ("Actor, busiest (user0, ~10 %), all time", "range=all&actor=user0%40example.com"),
        ("Actor, rare (user999), all time", "range=all&actor=user999%40example.com"),
        ("Actor matching nothing, all time", "range=all&actor=nobody%40example.com"),
        ("Actor matching nothing, last 30 days", "range=30d&actor=nobody%40example.com"),
        ("Entity + action: user / delete, all time", "range=all&entity=user&action=delete"),
        ("Source, common (import), all time", "range=all&source=import"),
        ("Source matching nothing, all time", "range=all&source=nowhere"),
        ("Table crm.group_members, all time", "range=all&table=crm.group_members"),
        ("Subject: contact 4242, all time", "range=all&entity=contact&subject=4242"),
        ("Two actors (busy + rare), all time",
         "range=all&actor=user0%40example.com&actor=user999%40example.com"),
        ("Combination: user3 + contact + update, last 30 days",
         "range=30d&actor=user3%40example.com&entity=contact&action=update"),
        ("Combination: sync + delete + crm.users, all time",
         "range=all&source=sync&action=delete&table=crm.users"),
        ("Combination: busy actor user0 + sync + delete + crm.users, all time",
         "range=all&actor=user0%40example.com&source=sync&action=delete&table=crm.users"),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--role", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--md", required=True)
    args = ap.parse_args()

    dash = Dashboard(args.url)
    dash.sign_in(args.role, args.password)

    def is_list(page):
        if "<h1>Audit Log</h1>" not in page:
            sys.exit("not the Audit Log page")

    def is_overview(page):
        if "<h1>Overview</h1>" not in page:
            sys.exit("not the Overview page")

    results = []
    failed = []

    def timed(name, query, path, check):
        """Measures one view; a view that fails is reported as such and the others go on
        (a new signed-in connection, as the failed one may be closed)."""
        nonlocal dash
        try:
            return measure(dash, path, args.repeat, check)
        except (OSError, http.client.HTTPException, SystemExit) as e:
            failed.append(f"{name} (`{query}`): {type(e).__name__}: {e}")
            dash = Dashboard(args.url)
            dash.sign_in(args.role, args.password)
            return None

    for name, query in views():
        path = f"/reports/audit-log?{query}"
        results.append((name, query, timed(name, query, path, is_list)))
    # A later page: the second page of the rare actor's and of the busy source's filter.
    for name, query in [("Older page: rare actor", "range=all&actor=user999%40example.com"),
                        ("Older page: source import", "range=all&source=import")]:
        _, _, first, _ = dash.request("GET", f"/reports/audit-log?{query}")
        older = older_link(first)
        if older is None:
            continue
        results.append((name, older.split("?", 1)[1],
                        timed(name, older, older, is_list)))
    for name, query in [("Overview, last 30 days", "range=30d"),
                        ("Overview, last 7 days", "range=7d")]:
        r = timed(name, query, f"/reports/overview?{query}", is_overview)
        if r is not None:
            r["rows"] = None
        results.append((name, query, r))

    measured = [r for _, _, r in results if r is not None]
    worst = max(r["p95_ms"] for r in measured) if measured else float("nan")
    met = worst <= TARGET_MS and not failed
    lines = [
        f"Slowest p95: {worst:.1f} ms (target {TARGET_MS:.0f} ms:"
        f" {'met' if met else 'NOT met'}).",
        "",
    ]
    lines += [f"**FAILED**: {f}" for f in failed] + ([""] if failed else [])
    lines += [
        "| view | rows | median ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, query, r in results:
        if r is None:
            lines.append(f"| {name} (`{query}`) | failed | — | — | — |")
            continue
        shown = "—" if r["rows"] is None else r["rows"]
        lines.append(f"| {name} (`{query}`) | {shown} | {r['median_ms']:.1f} |"
                     f" {r['p95_ms']:.1f} | {r['max_ms']:.1f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    with open(args.md, "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
