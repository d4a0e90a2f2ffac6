#!/usr/bin/env python3
"""Times Audit Log pages of a running `audit-trail serve` (see run.sh).

Signs in through the real form (CSRF token and cookie), then for each view makes 3 warm-up
requests and --repeat timed ones on one kept-alive connection, checking each answer (status
200, the expected kind of page). A time is from sending the request to the last byte of the
response. Prints a Markdown report and writes it with a JSON twin.
"""

import argparse
import datetime
import http.client
import json
import re
import statistics
import sys
import time
import urllib.parse

TARGET_MS = 200.0

# (name, query string, counted against the 200 ms target?): all of them are.
def views():
    today = datetime.datetime.now(datetime.timezone.utc).date()
    week_from = (today - datetime.timedelta(days=67)).isoformat()
    week_to = (today - datetime.timedelta(days=61)).isoformat()
    return [
        ("All events, last 30 days (the default view)", "range=30d", True),
        ("Contact changes tab, last 7 days", "range=7d&entity=contact", True),
        ("Groups tab, last 30 days", "range=30d&entity=group", True),
        ("User profile changes tab, all time", "range=all&entity=user", True),
        ("Exports tab, last 30 days", "range=30d&action=export", True),
        ("One actor of 40, last 30 days", "range=30d&actor=user7%40example.com", True),
        ("Deletes by imports, last 7 days", "range=7d&action=delete&source=import", True),
        (
            "Actor + entity + action, last 30 days",
            "range=30d&actor=user3%40example.com&entity=contact&action=update",
            True,
        ),
        ("History of contact 4242 (entity + subject), all time",
         "range=all&entity=contact&subject=4242", True),
        (f"Custom week ({week_from} to {week_to})",
         f"range=custom&from={week_from}&to={week_to}", True),
        # Worst cases: a filter no index serves, matching nothing, scans the whole range.
        ("Worst case: an actor with no events, last 30 days",
         "range=30d&actor=nobody%40example.com", True),
        ("Worst case: an actor with no events, all time",
         "range=all&actor=nobody%40example.com", True),
        ("Worst case: subject 4242 without an entity, all time", "range=all&subject=4242", True),
    ]


class Dashboard:
    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.cookies = {}

    def request(self, method, path, body=None):
        headers = {"Connection": "keep-alive"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        start = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - start) * 1000.0
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response.status, response.headers, data.decode("utf-8", "replace"), elapsed

    def sign_in(self, role, password):
        status, _, page, _ = self.request("GET", "/sign-in")
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        body = urllib.parse.urlencode({"csrf": token, "role": role, "password": password})
        status, headers, page, _ = self.request("POST", "/sign-in", body)
        if status != 303 or "audit_trail_session" not in self.cookies:
            sys.exit(f"sign-in failed: {status} {page[:300]}")


def rows(page):
    return page.count('<tr data-href="')


def older_link(page):
    m = re.search(r'href="([^"]+)" rel="next"', page)
    return m.group(1).replace("&#38;", "&").replace("&amp;", "&") if m else None


def measure(dash, path, repeat, check):
    for _ in range(3):
        status, _, page, _ = dash.request("GET", path)
        if status != 200:
            sys.exit(f"{path}: HTTP {status}: {page[:300]}")
        check(page)
    times = []
    for _ in range(repeat):
        status, _, page, ms = dash.request("GET", path)
        if status != 200:
            sys.exit(f"{path}: HTTP {status}")
        times.append(ms)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(times[-1], 2),
        "min_ms": round(times[0], 2),
        "rows": rows(page),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--role", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--machine", default="{}")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--md")
    ap.add_argument("--json")
    args = ap.parse_args()

    dash = Dashboard(args.url)
    dash.sign_in(args.role, args.password)

    def is_list(page):
        if "<h1>Audit Log</h1>" not in page:
            sys.exit("not the Audit Log page")

    results = []
    for name, query, counted in views():
        r = measure(dash, f"/reports/audit-log?{query}", args.repeat, is_list)
        results.append({"view": name, "query": query, "target": counted, **r})

    # The second page (Older) of the default view, and one event's detail page.
    _, _, first, _ = dash.request("GET", "/reports/audit-log?range=30d")
    older = older_link(first)
    if older is None:
        sys.exit("the default view has no Older link")
    r = measure(dash, older, args.repeat, is_list)
    results.append({"view": "Older: the second page of the default view", "query":
                    older.split("?", 1)[1], "target": True, **r})
    event = re.search(r'<tr data-href="(/reports/audit-log/events/\d+)', first).group(1)

    def is_event(page):
        if "Event details" not in page:
            sys.exit("not an event page")

    r = measure(dash, event, args.repeat, is_event)
    r["rows"] = None
    results.append({"view": "Event detail page (not a list)", "query": event, "target": True,
                    **r})

    params = dict(p.split("=", 1) for p in args.param)
    machine = json.loads(args.machine)
    counted = [r for r in results if r["target"]]
    worst = max(r["p95_ms"] for r in counted)
    verdict = "met" if worst < TARGET_MS else "NOT met"

    lines = [
        "# Dashboard benchmark: first page of filtered Audit Log views",
        "",
        f"- events: {params.get('events', '?')} in audit.events ({params.get('table_size', '?')}"
        " with indexes), 90 days, 40 actors",
        f"- each view: 3 warm-up requests, then {args.repeat} timed, one kept-alive connection;"
        " time = request sent to last byte received (HTTP + session + SQL + HTML)",
        f"- binary: `{params.get('binary', '?')}`",
        f"- machine: {machine.get('cpu', '?')}, {machine.get('nproc', '?')} cores,"
        f" {machine.get('memory', '?')}; {machine.get('postgres', '?')}",
        f"- settings: {machine.get('settings', '?')}",
        f"- git: {machine.get('git', '?')}",
        "",
        f"**Target (< {TARGET_MS:.0f} ms for every first page and p95): {verdict}** — slowest"
        f" p95 of the target views: {worst:.1f} ms.",
        "",
        "| view | rows | median ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        name = r["view"] if r["target"] else f"*{r['view']}* (not counted)"
        shown = "—" if r["rows"] is None else r["rows"]
        lines.append(
            f"| {name} | {shown} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} |"
            f" {r['max_ms']:.1f} |"
        )
    lines += [
        "",
        "The worst cases: a filter that no index serves (actor, source, action, or a subject"
        " without its entity) and that matches nothing makes PostgreSQL read every event of the"
        " date range to find that out. Any filter that matches often fills a page after a"
        " short walk down the (occurred_at, id) index, newest first.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.md:
        with open(args.md, "w") as f:
            f.write(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "params": params, "repeat": args.repeat,
                       "target_ms": TARGET_MS, "met": worst < TARGET_MS, "results": results},
                      f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
