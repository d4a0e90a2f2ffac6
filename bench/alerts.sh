#!/usr/bin/env bash
# `make bench-alerts`: how fast `audit-trail alert` evaluates the built-in rules, and how soon
# an alert reaches a webhook after the change that raised it (docs/alerts.md).
#
# In a throwaway cluster:
# 1. BENCH_EVENTS (1,000,000) events from bench/events.sql are evaluated by one
#    `alert --once` with the built-in rules, BENCH_ROUNDS (3) times (a new consumer each
#    round): events/s, median;
# 2. a tracked CRM takes BENCH_RATE (1,000) contact inserts a second with pgbench for
#    BENCH_SECONDS (30) while a user is deleted every second (each raises `user-deleted`);
#    `alert --webhook` posts to a local receiver: the delay from each delete's commit to the
#    receiver, p50/p99/max.
# Writes bench/results/alerts-<date>.md. Needs target/release/audit-trail and python3.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-1000000}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
BENCH_RATE="${BENCH_RATE:-1000}"
BENCH_SECONDS="${BENCH_SECONDS:-30}"
SIDECAR="${AUDIT_TRAIL_BIN:-$ROOT/target/release/audit-trail}"
[ -x "$SIDECAR" ] || die "$SIDECAR is missing: cargo build --release -p audit-trail"

DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
now() { date +%s.%N; }

cluster_start
log "generating $BENCH_EVENTS events"
bpsql -d postgres -c "CREATE DATABASE alerts"
bpsql -d alerts -o /dev/null -c "CREATE EXTENSION audit_trail"
bpsql -d alerts -v events="$BENCH_EVENTS" -f "$HERE/events.sql"
bpsql -d postgres -c "CHECKPOINT"
DB="host=$PGHOST port=$PGPORT user=postgres dbname=alerts"

RATES=()
for round in $(seq 1 "$BENCH_ROUNDS"); do
    start="$(now)"
    "$SIDECAR" alert --once --consumer "bench$round" --db "$DB" --stdout \
        >"$BENCH_TMP/alerts-$round.jsonl" 2>"$BENCH_TMP/alert.err" || {
        cat "$BENCH_TMP/alert.err" >&2
        die "audit-trail alert failed"
    }
    end="$(now)"
    RATES+=("$(awk -v n="$BENCH_EVENTS" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')")
    log "round $round: ${RATES[-1]} events/s, $(wc -l <"$BENCH_TMP/alerts-$round.jsonl") alerts"
done
MEDIAN="$(printf '%s\n' "${RATES[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
ALERTS="$(wc -l <"$BENCH_TMP/alerts-1.jsonl")"

log "latency at $BENCH_RATE events/s for ${BENCH_SECONDS}s"
bpsql -d postgres -c "CREATE DATABASE crm"
bpsql -d crm -o /dev/null -c "CREATE EXTENSION audit_trail" \
    -c "CREATE TABLE contacts (id bigserial PRIMARY KEY, name text)" \
    -c "CREATE TABLE users (id bigint PRIMARY KEY, name text)" \
    -c "INSERT INTO users SELECT g, 'u' FROM generate_series(1, $((BENCH_SECONDS + 10))) g" \
    -c "SELECT audit.track('contacts', 'contact')" -c "SELECT audit.track('users', 'user')"
RECEIVER_PORT="$(free_port)"
# The receiver writes, for each POST, its arrival time and the alert's event ids.
python3 - "$RECEIVER_PORT" "$BENCH_TMP/received.tsv" <<'PY' &
import http.server, json, sys, time
port, out = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        out.write("%f\t%s\n" % (time.time(), ",".join(map(str, body.get("event_ids", [])))))
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
RECEIVER=$!
"$SIDECAR" alert --consumer latency --db "host=$PGHOST port=$PGPORT user=postgres dbname=crm" \
    --webhook "http://127.0.0.1:$RECEIVER_PORT/hook" --poll-seconds 1 2>"$BENCH_TMP/alerter.log" &
ALERTER=$!
sleep 1
echo "INSERT INTO contacts (name) VALUES ('x');" >"$BENCH_TMP/insert.sql"
"$BINDIR/pgbench" -n -d crm -c 2 -R "$BENCH_RATE" -T "$BENCH_SECONDS" -f "$BENCH_TMP/insert.sql" \
    >"$BENCH_TMP/pgbench.log" 2>&1 &
PGBENCH=$!
for i in $(seq 1 "$BENCH_SECONDS"); do
    # A different admin each time: one actor's second delete within the window would join
    # the first alert instead of raising its own.
    bpsql -d crm -c "BEGIN" -c "SELECT audit.set_actor('admin$i@example.com')" \
        -c "DELETE FROM users WHERE id = $i" -c "COMMIT" >/dev/null
    sleep 1
done
wait "$PGBENCH" || true
sleep 3
kill -INT "$ALERTER" 2>/dev/null || true
wait "$ALERTER" 2>/dev/null || true
kill "$RECEIVER" 2>/dev/null || true
# Each user delete raised one alert (user-deleted fires on any); its delay is the arrival time
# minus the delete's commit (occurred_at is the statement's start, a few ms before).
bpsql -d crm -At -c "SELECT id, extract(epoch FROM occurred_at) FROM audit.events
                      WHERE entity = 'user' AND action = 'delete'" >"$BENCH_TMP/deletes.tsv"
LATENCY="$(python3 - "$BENCH_TMP/deletes.tsv" "$BENCH_TMP/received.tsv" <<'PY'
import sys, statistics
deletes = dict(line.strip().split("|") for line in open(sys.argv[1]) if line.strip())
delays = []
for line in open(sys.argv[2]):
    arrived, ids = line.rstrip("\n").split("\t")
    for i in ids.split(","):
        if i in deletes:
            delays.append(float(arrived) - float(deletes[i]))
delays.sort()
if not delays:
    print("no alert arrived")
else:
    p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]
    print("%d of %d deletes alerted; p50 %.2f s, p99 %.2f s, max %.2f s"
          % (len(delays), len(deletes), p(0.5), p(0.99), delays[-1]))
PY
)"
log "$LATENCY"

MACHINE="$(machine_json)"
cat >"$RESULTS/alerts-$DATE.md" <<MD
# Alerts benchmark ($DATE)

\`make bench-alerts\` (bench/alerts.sh), PostgreSQL in a throwaway cluster.

| measure | result | goal |
|---|---|---|
| built-in rules over $BENCH_EVENTS events (bench/events.sql), \`alert --once\`, median of $BENCH_ROUNDS | $MEDIAN events/s (rounds: ${RATES[*]}; $ALERTS alerts) | >= 50,000 events/s |
| commit to webhook, one alert a second amid $BENCH_RATE events/s for ${BENCH_SECONDS} s | $LATENCY | p99 <= 2 s |

Machine: $MACHINE
MD
log "wrote bench/results/alerts-$DATE.md"
