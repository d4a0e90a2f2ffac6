#!/usr/bin/env bash
# `make bench-scale`: the dashboard and the sidecar over a large log (issue 11).
#
# In a throwaway cluster (bench/lib.sh):
# 1. BENCH_EVENTS (10,000,000) events over 13 months from bench/dashboard/scale_events.sql,
#    inserted while audit.events is empty (timed): they land in the default partition;
# 2. `audit-trail maintain` (timed): the monthly partitions, the rows moved into them, and the
#    hourly summary (audit.event_summary) of every event;
# 3. VACUUM ANALYZE and a checkpoint; then BENCH_TAIL (2,000) events captured from the CRM's
#    tables after maintenance, so the tail that filters read directly is not empty;
# 4. the release binary serves the dashboard; bench/dashboard/scale.py times BENCH_REPEAT (20)
#    requests of the first page of each filter (and two later pages, and the Overview);
# 5. `audit-trail export --since --until` of one month to a file: seconds and rows;
# 6. `audit-trail archive --partition` of that month: seconds and rows/s.
# Writes bench/results/scale-<date>.md. Needs target/release/audit-trail and the extension
# installed (make install). Disk: about 0.7 GB per million events.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-10000000}"
BENCH_TAIL="${BENCH_TAIL:-2000}"
BENCH_REPEAT="${BENCH_REPEAT:-20}"
SIDECAR="${AUDIT_TRAIL_BIN:-$ROOT/target/release/audit-trail}"
[ -x "$SIDECAR" ] || die "$SIDECAR is missing: cargo build --release -p audit-trail"

DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
STARTED="$(date +%s)"
now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

cluster_start
SERVE_PID=""
cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -s "$BENCH_TMP/serve.err" ]; then
        tail -5 "$BENCH_TMP/serve.err" >&2
    fi
    if [ -n "$SERVE_PID" ]; then
        kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    cluster_stop
    exit "$rc"
}
trap cleanup EXIT
DB="host=$PGHOST port=$PGPORT user=postgres dbname=scale"
MACHINE="$(machine_json)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

bpsql -d postgres -c "CREATE DATABASE scale"
bpsql -d scale -o /dev/null -c "CREATE EXTENSION audit_trail"
log "generating $BENCH_EVENTS events over 13 months"
T0="$(now)"
bpsql -d scale -v events="$BENCH_EVENTS" -f "$HERE/dashboard/scale_events.sql"
GENERATE_S="$(seconds "$T0" "$(now)")"
log "generated in ${GENERATE_S}s; maintain"
T0="$(now)"
"$SIDECAR" maintain --db "$DB" >"$BENCH_TMP/maintain.json"
MAINTAIN_S="$(seconds "$T0" "$(now)")"
log "maintain: ${MAINTAIN_S}s"
# Tracking logs an event, and makes the partitions of rows waiting in the default partition:
# the tables come after the direct INSERT (which needs an empty log) and after maintain (which
# is what is timed).
bpsql -d scale -o /dev/null -f "$HERE/dashboard/crm.sql"
T0="$(now)"
bpsql -d scale -c "VACUUM (ANALYZE) audit.events" -c "VACUUM (ANALYZE) audit.event_summary"
VACUUM_S="$(seconds "$T0" "$(now)")"
bpsql -d postgres -c "CHECKPOINT"

# The tail: events captured after maintenance, as an hour of activity would leave them.
bpsql -d scale -o /dev/null -c "BEGIN; SELECT audit.set_actor('user3@example.com', source => 'api');
    INSERT INTO crm.contacts SELECT g, 'Tail ' || g, 't' || g || '@example.com'
      FROM generate_series(1, $BENCH_TAIL / 2) g; COMMIT;" \
    -c "BEGIN; SELECT audit.set_actor('user0@example.com', source => 'import');
    UPDATE crm.contacts SET email = 'u' || id || '@example.com'; COMMIT;"
bpsql -d scale -c "ANALYZE audit.events"

COUNT="$(bval scale "SELECT count(*) FROM audit.events")"
TAIL="$(bval scale "SELECT count(*) FROM audit.events WHERE txid >= (SELECT watermark FROM audit.summary_state)")"
SIZE="$(bval scale "SELECT pg_size_pretty(sum(pg_total_relation_size(partition::regclass))) FROM audit.partitions")"
SUMMARY_ROWS="$(bval scale "SELECT count(*) FROM audit.event_summary")"
SUMMARY_SIZE="$(bval scale "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit.event_summary'::regclass")"
PARTITIONS="$(bval scale "SELECT count(*) FROM audit.partitions")"
log "audit.events: $COUNT events ($TAIL in the tail) in $PARTITIONS partitions, $SIZE; summary: $SUMMARY_ROWS rows, $SUMMARY_SIZE"

bpsql -d postgres -c "CREATE ROLE bench_admin LOGIN PASSWORD 'bench' IN ROLE audit_admin"
as_postgres sh -c "printf 'local all bench_admin scram-sha-256\nlocal all all trust\n' >'$BENCH_TMP/data/pg_hba.conf'"
bpsql -d postgres -o /dev/null -c "SELECT pg_reload_conf()"
"$SIDECAR" serve --db "host=$PGHOST port=$PGPORT dbname=scale" --listen 127.0.0.1:0 \
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
python3 "$HERE/dashboard/scale.py" --url "$URL" --role bench_admin --password bench \
    --repeat "$BENCH_REPEAT" --md "$BENCH_TMP/views.md"
kill "$SERVE_PID" 2>/dev/null || true
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=""

# One whole month, three months back (closed, so archive takes it).
MONTH="$(bval scale "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '3 months', 'YYYY-MM-DD')")"
NEXT="$(bval scale "SELECT to_char('$MONTH'::date + interval '1 month', 'YYYY-MM-DD')")"
PARTITION="events_${MONTH//-/}"
MONTH_ROWS="$(bval scale "SELECT count(*) FROM audit.$PARTITION")"
log "export of $MONTH (${MONTH_ROWS} events)"
T0="$(now)"
"$SIDECAR" export --db "$DB" --since "${MONTH}T00:00:00Z" --until "${NEXT}T00:00:00Z" \
    --output "$BENCH_TMP/month.csv"
EXPORT_S="$(seconds "$T0" "$(now)")"
EXPORT_ROWS="$(($(wc -l <"$BENCH_TMP/month.csv") - 1))"
EXPORT_BYTES="$(du -h "$BENCH_TMP/month.csv" | cut -f1)"
rm -f "$BENCH_TMP/month.csv"
log "archive of $PARTITION"
mkdir -p "$BENCH_TMP/archive"
T0="$(now)"
"$SIDECAR" archive --db "$DB" --output-dir "$BENCH_TMP/archive" --partition "$PARTITION" \
    >"$BENCH_TMP/archive.out"
ARCHIVE_S="$(seconds "$T0" "$(now)")"
ARCHIVE_BYTES="$(du -sh "$BENCH_TMP/archive" | cut -f1)"
ARCHIVE_RATE="$(awk -v r="$MONTH_ROWS" -v s="$ARCHIVE_S" 'BEGIN { printf "%.0f", r / s }')"
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

OUT="$RESULTS/scale-$DATE.md"
python3 - "$MACHINE" >"$OUT" <<PY
import json, sys
m = json.loads(sys.argv[1])
print(f"""# Scale benchmark: the dashboard and the sidecar over $COUNT events

- command: \`BENCH_EVENTS=$BENCH_EVENTS make bench-scale\` (bench/scale.sh), $(date -u +%Y-%m-%dT%H:%MZ)
- machine: {m['cpu']}, {m['nproc']} cores, {m['memory']}; {m['postgres']}
- settings: {m['settings']}
- git: {m['git']}; load average before: $LOAD_BEFORE, after: $LOAD_AFTER
- audit.events: $COUNT events over 13 months in $PARTITIONS partitions, $SIZE with indexes;
  $TAIL of them in the tail (captured after maintenance, read without the summary)
- audit.event_summary: $SUMMARY_ROWS rows, $SUMMARY_SIZE with indexes

## Loading and maintenance

| step | seconds |
|---|---:|
| INSERT ... SELECT of $BENCH_EVENTS events (into the default partition) | $GENERATE_S |
| \`audit-trail maintain\`: $PARTITIONS partitions, rows moved out of the default partition, summary of every event | $MAINTAIN_S |
| VACUUM ANALYZE of the events and the summary | $VACUUM_S |

## Dashboard: first page of each filter (HTTP against \`audit-trail serve\`, release build)

Each view: 3 warm-up requests, then $BENCH_REPEAT timed on one kept-alive connection; time =
request sent to last byte received (HTTP, session, SQL, HTML). 50 rows a page.
""")
PY
cat "$BENCH_TMP/views.md" >>"$OUT"
cat >>"$OUT" <<MD

## Export and archive of one month ($MONTH, $MONTH_ROWS events)

| command | seconds | rows | rows/s | output |
|---|---:|---:|---:|---|
| \`audit-trail export --since ${MONTH}T00:00:00Z --until ${NEXT}T00:00:00Z --output FILE\` (CSV) | $EXPORT_S | $EXPORT_ROWS | $(awk -v r="$EXPORT_ROWS" -v s="$EXPORT_S" 'BEGIN { printf "%.0f", r / s }') | $EXPORT_BYTES |
| \`audit-trail archive --partition $PARTITION\` (Parquet) | $ARCHIVE_S | $MONTH_ROWS | $ARCHIVE_RATE | $ARCHIVE_BYTES |

maintain printed: \`$(tr -d '\n' <"$BENCH_TMP/maintain.json" | cut -c1-600)\`
MD
log "wrote $OUT ($(($(date +%s) - STARTED))s)"
cat "$OUT"
