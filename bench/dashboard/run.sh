#!/usr/bin/env bash
# Dashboard benchmark: how fast `audit-trail serve` returns the first page of filtered Audit
# Log views over BENCH_EVENTS (1,000,000) events. The target: under 200 ms.
#
# In a throwaway cluster (bench/lib.sh): the events of events.sql (90 days, 40 actors, the
# three categories and exports), the tracked tables of crm.sql, VACUUM ANALYZE and a
# checkpoint; then the release binary serves the dashboard on a free loopback port and
# measure.py signs in and times BENCH_REPEAT (30) requests of each view after 3 warm-up
# requests, on one kept-alive HTTP connection, as a browser would. The time is the whole
# request: HTTP, session, SQL and HTML rendering, until the last byte of the page.
#
# Writes bench/dashboard/results/dashboard-<date>.{md,json} and prints the Markdown.
# Needs target/release/audit-trail (cargo build --release -p audit-trail) and the extension
# installed in the system PostgreSQL (make install).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/../lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-1000000}"
BENCH_REPEAT="${BENCH_REPEAT:-30}"
SIDECAR="${AUDIT_TRAIL_BIN:-$ROOT/target/release/audit-trail}"

[ -x "$SIDECAR" ] || die "$SIDECAR is missing: cargo build --release -p audit-trail"
[ -f "$("$PG_CONFIG" --sharedir)/extension/audit_trail.control" ] ||
    die "audit_trail is not installed into $("$PG_CONFIG" --sharedir); run make install"

DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
STARTED="$(date +%s)"

cluster_start
SERVE_PID=""
cleanup() {
    local rc=$?
    if [ -n "$SERVE_PID" ]; then
        kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    cluster_stop
    exit "$rc"
}
trap cleanup EXIT

log "generating $BENCH_EVENTS events"
bpsql -d postgres -c "CREATE DATABASE dash"
bpsql -d dash -o /dev/null -c "CREATE EXTENSION audit_trail" -f "$HERE/crm.sql"
bpsql -d dash -o /dev/null -v events="$BENCH_EVENTS" -f "$HERE/events.sql"
bpsql -d dash -c "VACUUM (FREEZE, ANALYZE) audit.events"
bpsql -d postgres -c "CHECKPOINT"
TABLE_SIZE="$(bval dash "SELECT pg_size_pretty(pg_total_relation_size('audit.events'))")"
COUNT="$(bval dash "SELECT count(*) FROM audit.events")"
log "audit.events: $COUNT events, $TABLE_SIZE with indexes"
# Sign-in goes through the unix socket with the cluster's trust authentication: what is
# measured here is reading the log, not SCRAM.
bpsql -d postgres -c "CREATE ROLE bench_admin LOGIN PASSWORD 'bench' IN ROLE audit_admin"
# The dashboard signs in only over connections that check passwords.
as_postgres sh -c "printf 'local all bench_admin scram-sha-256\nlocal all all trust\n' >'$BENCH_TMP/data/pg_hba.conf'"
bpsql -d postgres -o /dev/null -c "SELECT pg_reload_conf()"

"$SIDECAR" serve --db "host=$PGHOST port=$PGPORT dbname=dash" --listen 127.0.0.1:0 \
    >"$BENCH_TMP/serve.out" 2>"$BENCH_TMP/serve.err" &
SERVE_PID=$!
URL=""
for _ in $(seq 1 100); do
    URL="$(grep -o 'http://[0-9.:]*' "$BENCH_TMP/serve.out" 2>/dev/null || true)"
    [ -n "$URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || {
    cat "$BENCH_TMP/serve.err" >&2
    die "audit-trail serve did not start"
}
log "dashboard on $URL"

MACHINE="$(machine_json)"
python3 "$HERE/measure.py" --url "$URL" --role bench_admin --password bench \
    --repeat "$BENCH_REPEAT" --machine "$MACHINE" --param events="$COUNT" \
    --param table_size="$TABLE_SIZE" --param binary="$SIDECAR" \
    --md "$RESULTS/dashboard-$DATE.md" --json "$RESULTS/dashboard-$DATE.json"
log "wrote bench/dashboard/results/dashboard-$DATE.md and .json ($(($(date +%s) - STARTED))s)"
