#!/usr/bin/env bash
# `make bench-scale`: the dashboard and the sidecar over a large log (issue 11).
#
# In a throwaway cluster (bench/lib.sh):
# 1. BENCH_EVENTS (10,000,000) events over the 13 months before a "now" fixed once, from
#    bench/dashboard/scale_events.sql, loaded month by month as pg_restore fills partitions:
#    for each UTC month, oldest first, in one transaction, an empty table is made and attached
#    as the month's partition of audit.events (and of each summary table, audit.summary_tables()),
#    the month's events are inserted straight into it, then its indexes and guards are built
#    (audit.setup_events_partition, audit.setup_summary_partition); a month whose partition
#    exists already (made ahead by maintenance) is loaded into it. After each month,
#    `audit-trail maintain` summarizes the events just committed. Both are timed, apart.
#    Nothing goes through the default partition: no rows moved, no summary of the whole log
#    in one statement, so the disk holds the log once (100M events fit; see below);
# 2. VACUUM ANALYZE and a checkpoint; then BENCH_TAIL (2,000) events captured from the CRM's
#    tables after maintenance, so the tail that filters read directly is not empty;
#    then audit.row_as_of and audit.history of the contact the load changed
#    BENCH_HISTORY_EVENTS (10,000) times over the 13 months (docs/undo.md). BENCH_UNTIL=history
#    stops there, with a results file of the load and the history alone;
# 3. the release binary serves the dashboard; bench/dashboard/scale.py times BENCH_REPEAT (20)
#    requests of the first page of each filter (and two later pages, and the Overview);
# 4. `audit-trail export --since --until` of one month to a file: seconds and rows;
# 5. `audit-trail archive --partition` of that month: seconds and rows/s;
# 6. capture on this log against an empty log (below);
# 7. the rest of the year archived, DuckDB over it, retention dropping the oldest month
#    (bench/scale_lifetime.sh).
# Writes bench/results/scale-<date>[-BENCH_TAG].md. Needs target/release/audit-trail (or
# AUDIT_TRAIL_BIN) and the extension installed (make install).
#
# Disk: about 0.5 GB per million events plus max_wal_size plus 2 GB, free where the cluster
# lives (/tmp); the script refuses to start with less. At 100M events, keep the WAL small:
#   BENCH_EVENTS=100000000 BENCH_MAX_WAL_SIZE=4GB make bench-scale   (~56 GB free needed)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-10000000}"
BENCH_TAIL="${BENCH_TAIL:-2000}"
BENCH_HISTORY_EVENTS="${BENCH_HISTORY_EVENTS:-10000}"
BENCH_UNTIL="${BENCH_UNTIL:-}"
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

# Room for the log, its summary and the WAL, before loading anything.
WAL_BYTES="$(bval postgres "SELECT pg_size_bytes(current_setting('max_wal_size'))")"
FREE_KB="$(df -Pk "$BENCH_TMP" | awk 'NR == 2 { print $4 }')"
read -r NEED_GB FREE_GB ENOUGH < <(awk -v e="$BENCH_EVENTS" -v w="$WAL_BYTES" -v f="$FREE_KB" \
    'BEGIN { need = 0.5 * e / 1e6 + w / 2^30 + 2; free = f / 2^20
             printf "%.1f %.1f %d\n", need, free, (free >= need) }')
[ "$ENOUGH" = 1 ] || die "$BENCH_EVENTS events need about $NEED_GB GB free in $(dirname "$BENCH_TMP") (0.5 GB per million events + max_wal_size $BENCH_MAX_WAL_SIZE + 2 GB); $FREE_GB GB free (BENCH_MAX_WAL_SIZE=4GB needs less)"

# "Now" fixed once: every month's share of the events is exact.
GEN_NOW="$(bval scale "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")"
# The UTC months of the 13 months (395 days) before it, oldest first: start and next start.
MONTHS="$(bval scale "SELECT to_char(m, 'YYYY-MM-DD') || ' ' || to_char(m + interval '1 month', 'YYYY-MM-DD')
    FROM generate_series(date_trunc('month', ('$GEN_NOW'::timestamptz - interval '395 days') AT TIME ZONE 'UTC'),
                         date_trunc('month', '$GEN_NOW'::timestamptz AT TIME ZONE 'UTC'),
                         interval '1 month') AS m ORDER BY m")"
SUMMARY_TABLES="$(bval scale "SELECT string_agg(t, ' ' ORDER BY o) FROM unnest(audit.summary_tables()) WITH ORDINALITY AS u (t, o)")"
log "loading $BENCH_EVENTS events over 13 months before $GEN_NOW, month by month (summary tables: $SUMMARY_TABLES)"

# One month, in one transaction: its partitions made empty and attached (unless $3 = t: the
# events partition exists, made ahead by maintenance, with its indexes and guards, which let
# rows into it while it is empty), its events inserted straight into the events partition,
# then the indexes and guards of the new ones.
load_month() {
    local from="$1" to="$2" exists="$3" suffix="${1//-/}" t
    local bound="FOR VALUES FROM ('$from 00:00+00') TO ('$to 00:00+00')"
    {
        echo "BEGIN;"
        if [ "$exists" = f ]; then
            echo "CREATE TABLE audit.events_$suffix (LIKE audit.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION);"
            echo "ALTER TABLE audit.events ATTACH PARTITION audit.events_$suffix $bound;"
        fi
        echo "\\i '$HERE/dashboard/scale_events.sql'"
        if [ "$exists" = f ]; then
            echo "SELECT audit.setup_events_partition('audit.events_$suffix');"
        fi
        for t in $SUMMARY_TABLES; do
            [ "$(bval scale "SELECT to_regclass('audit.${t}_$suffix') IS NOT NULL")" = f ] || continue
            echo "CREATE TABLE audit.${t}_$suffix (LIKE audit.$t INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
            echo "ALTER TABLE audit.$t ATTACH PARTITION audit.${t}_$suffix $bound;"
            echo "SELECT audit.setup_summary_partition('audit.${t}_$suffix');"
        done
        echo "COMMIT;"
    } | bpsql -d scale -o /dev/null -v events="$BENCH_EVENTS" -v now="$GEN_NOW" -v history="$BENCH_HISTORY_EVENTS" \
        -v month_from="$from 00:00+00" -v month_to="$to 00:00+00" -v target="audit.events_$suffix"
}

LOAD_S=0
MAINTAIN_S=0
SUMMARIZED=0
MONTH_COUNT=0
PREMADE=0
while read -r FROM TO; do
    EXISTS="$(bval scale "SELECT to_regclass('audit.events_${FROM//-/}') IS NOT NULL")"
    [ "$EXISTS" = f ] || PREMADE=$((PREMADE + 1))
    T0="$(now)"
    load_month "$FROM" "$TO" "$EXISTS"
    T1="$(now)"
    "$SIDECAR" maintain --db "$DB" >"$BENCH_TMP/maintain.json"
    T2="$(now)"
    LOAD_S="$(awk -v a="$LOAD_S" -v b="$(seconds "$T0" "$T1")" 'BEGIN { printf "%.2f", a + b }')"
    MAINTAIN_S="$(awk -v a="$MAINTAIN_S" -v b="$(seconds "$T1" "$T2")" 'BEGIN { printf "%.2f", a + b }')"
    N="$(python3 -c 'import json, sys; print(json.load(sys.stdin).get("summarized_events") or 0)' \
        <"$BENCH_TMP/maintain.json")"
    SUMMARIZED=$((SUMMARIZED + N))
    MONTH_COUNT=$((MONTH_COUNT + 1))
    log "month $FROM: loaded in $(seconds "$T0" "$T1")s$([ "$EXISTS" = f ] || echo " (into the partition made ahead)"), maintain $(seconds "$T1" "$T2")s ($N events summarized)"
done <<<"$MONTHS"
DEFAULT_ROWS="$(bval scale "SELECT count(*) FROM audit.events_default")"
LOADED="$(bval scale "SELECT count(*) FROM audit.events")"
UNSUMMARIZED="$(bval scale "SELECT count(*) FROM audit.events WHERE txid >= (SELECT watermark FROM audit.summary_state)")"
log "loaded $LOADED events in ${LOAD_S}s over $MONTH_COUNT months, maintain ${MAINTAIN_S}s; $SUMMARIZED summarized, $UNSUMMARIZED not, $DEFAULT_ROWS in the default partition"
[ "$DEFAULT_ROWS" = 0 ] || die "$DEFAULT_ROWS events landed in audit.events_default"
[ "$UNSUMMARIZED" = 0 ] || die "$UNSUMMARIZED events are not summarized after the last maintain"
# Tracking logs an event: the tables come after the direct INSERTs (each into an empty
# partition) and after the maintains (which are what is timed).
bpsql -d scale -o /dev/null -f "$HERE/dashboard/crm.sql"
VACUUM_ARGS=(-c "VACUUM (ANALYZE) audit.events")
for t in $SUMMARY_TABLES; do VACUUM_ARGS+=(-c "VACUUM (ANALYZE) audit.$t"); done
T0="$(now)"
bpsql -d scale "${VACUUM_ARGS[@]}"
VACUUM_S="$(seconds "$T0" "$(now)")"
bpsql -d postgres -c "CHECKPOINT"

# The tail: events captured after maintenance, as an hour of activity would leave them.
bpsql -d scale -o /dev/null -c "BEGIN; SELECT audit.set_actor('user3@example.com', source => 'api');
    INSERT INTO crm.contacts SELECT g, 'Tail ' || g, 't' || g || '@example.com'
      FROM generate_series(1, $BENCH_TAIL / 2) g; COMMIT;" \
    -c "BEGIN; SELECT audit.set_actor('user0@example.com', source => 'import');
    UPDATE crm.contacts SET email = 'u' || id || '@example.com'; COMMIT;"
bpsql -d scale -c "ANALYZE audit.events"

# History of the contact changed BENCH_HISTORY_EVENTS times across every month: medians of 20
# calls, timed in the server (the result fetched, so the call cannot be planned away).
history_ms() {
    bval scale "CREATE FUNCTION pg_temp.bench_ms(expr text) RETURNS float8 LANGUAGE plpgsql AS \$\$
      DECLARE s timestamptz := clock_timestamp(); ignored text;
      BEGIN EXECUTE expr INTO ignored; RETURN extract(epoch FROM clock_timestamp() - s) * 1000; END \$\$;
      SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2)
        FROM (SELECT pg_temp.bench_ms(\$q\$$1\$q\$) AS ms FROM generate_series(1, 22) g OFFSET 2) t"
}
HISTORY_ROWS="$(bval scale "SELECT count(*) FROM audit.events WHERE entity = 'contact' AND subject_id = '900001'")"
HISTORY_PARTS="$(bval scale "SELECT count(DISTINCT tableoid) FROM audit.events WHERE entity = 'contact' AND subject_id = '900001'")"
ASOF_NOW_MS="$(history_ms "SELECT audit.row_as_of('crm.contacts', '900001', now())")"
ASOF_HALF_MS="$(history_ms "SELECT audit.row_as_of('crm.contacts', '900001', '$GEN_NOW'::timestamptz - interval '197 days')")"
ASOF_EARLY_MS="$(history_ms "SELECT audit.row_as_of('crm.contacts', '900001', '$GEN_NOW'::timestamptz - interval '390 days')")"
HISTORY_MS="$(history_ms "SELECT count(*) FROM audit.history('crm.contacts', '900001')")"
[ "$(bval scale "SELECT audit.row_as_of('crm.contacts', '900001', now()) ->> 'phone'")" = "+1-555-1" ] ||
    die "audit.row_as_of did not rebuild the contact's latest version"
log "history of one contact ($HISTORY_ROWS events in $HISTORY_PARTS partitions): row_as_of ${ASOF_NOW_MS}/${ASOF_HALF_MS}/${ASOF_EARLY_MS} ms, history ${HISTORY_MS} ms"
history_md() {
    cat <<MD

## History of one contact across the log (docs/undo.md)

One contact changed $HISTORY_ROWS times, evenly over the 13 months ($HISTORY_PARTS partitions),
among the other events; medians of 20 calls after 2 warm-up calls, timed in the server.

| call | ms |
|---|---:|
| \`audit.row_as_of\` now | $ASOF_NOW_MS |
| \`audit.row_as_of\` 197 days ago (halfway through its history) | $ASOF_HALF_MS |
| \`audit.row_as_of\` 390 days ago (near its creation) | $ASOF_EARLY_MS |
| \`audit.history\`, all $HISTORY_ROWS versions | $HISTORY_MS |
MD
}

COUNT="$(bval scale "SELECT count(*) FROM audit.events")"
TAIL="$(bval scale "SELECT count(*) FROM audit.events WHERE txid >= (SELECT watermark FROM audit.summary_state)")"
SIZE="$(bval scale "SELECT pg_size_pretty(sum(pg_total_relation_size(partition::regclass))) FROM audit.partitions")"
SUMMARY_ROWS="$(bval scale "SELECT count(*) FROM audit.event_summary")"
SUMMARY_SIZE="$(bval scale "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit.event_summary'::regclass")"
PARTITIONS="$(bval scale "SELECT count(*) FROM audit.partitions")"
log "audit.events: $COUNT events ($TAIL in the tail) in $PARTITIONS partitions, $SIZE; summary: $SUMMARY_ROWS rows, $SUMMARY_SIZE"

if [ "$BENCH_UNTIL" = history ]; then
    OUT="$RESULTS/scale-$DATE-history.md"
    python3 - "$MACHINE" >"$OUT" <<PY
import json, sys
m = json.loads(sys.argv[1])
print(f"""# Scale benchmark, load and history only: $COUNT events

- command: \`BENCH_EVENTS=$BENCH_EVENTS BENCH_UNTIL=history make bench-scale\` (bench/scale.sh), $(date -u +%Y-%m-%dT%H:%MZ)
- machine: {m['cpu']}, {m['nproc']} cores, {m['memory']}; {m['postgres']}
- settings: {m['settings']}
- git: {m['git']}; load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)
- audit.events: $COUNT events over 13 months in $PARTITIONS partitions, $SIZE with indexes
- loading: $LOAD_S s, maintain after each month $MAINTAIN_S s, VACUUM ANALYZE $VACUUM_S s""")
PY
    history_md >>"$OUT"
    log "wrote $OUT ($(($(date +%s) - STARTED))s)"
    cat "$OUT"
    exit 0
fi

bpsql -d postgres -c "CREATE ROLE bench_admin LOGIN PASSWORD 'bench' IN ROLE audit_admin"
as_postgres sh -c "printf 'local all bench_admin scram-sha-256\nlocal all all trust\n' >'$BENCH_TMP/data/pg_hba.conf'"
bpsql -d postgres -o /dev/null -c "SELECT pg_reload_conf()"
# Token viewers too (the JSON API below): a secret of the bench's own, read through a role in
# audit_admin over the socket.
bpsql -d postgres -c "CREATE ROLE bench_viewers LOGIN IN ROLE audit_admin"
(umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n' >"$BENCH_TMP/viewer.secret")
"$SIDECAR" serve --db "host=$PGHOST port=$PGPORT dbname=scale" --listen 127.0.0.1:0 \
    --viewer-secret-file "$BENCH_TMP/viewer.secret" \
    --viewer-db "host=$PGHOST port=$PGPORT user=bench_viewers dbname=scale" \
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
# One organization's first page through the JSON API, as an application's backend asks for it:
# a token minted with the secret (the standard library's HMAC), one kept-alive connection,
# 3 warm-up requests, then BENCH_REPEAT timed (request sent to last byte received).
python3 - "$URL" "$BENCH_TMP/viewer.secret" "org4242" "$BENCH_REPEAT" >"$BENCH_TMP/api_pages.md" <<'PY'
import base64, hashlib, hmac, http.client, json, statistics, sys, time, urllib.parse
url, secret_file, tenant, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
secret = open(secret_file, "rb").read()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(
    {"sub": "bench", "tenant": tenant, "iat": now, "exp": now + 3000}).encode())
token = signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())
host = urllib.parse.urlparse(url).netloc
conn = http.client.HTTPConnection(host, timeout=60)
for label, path in [
    (f"`GET /api/v1/events` (token of {tenant}): its newest 50", "/api/v1/events?limit=50"),
    (f"`GET /api/v1/events?actor=user0%40example.com` (token of {tenant})",
     "/api/v1/events?limit=50&actor=user0%40example.com"),
]:
    times, rows = [], 0
    for i in range(3 + repeat):
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": "Bearer " + token})
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 200:
            sys.exit(f"{path}: HTTP {reply.status}: {body[:200]!r}")
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000)
        rows = len(json.loads(body)["events"])
    times.sort()
    print("| %s, %d rows (HTTP) | %d | %.1f | %.1f |" % (label, rows, len(times),
                                                        statistics.median(times), times[-1]))
PY
kill "$SERVE_PID" 2>/dev/null || true
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=""

# The same pages in SQL, as a DBA would ask: audit.search's first page of one organization
# (and of filters the summary serves), against the report view. Each query BENCH_REPEAT
# times in one session after 2 warm-up runs (the slow report filter: BENCH_SLOW_REPEAT, 3);
# psql's \timing, medians.
sql_pages() {
    local label="$1" repeat="$2" sql="$3"
    {
        echo "SET jit = off;"
        for _ in 1 2; do echo "$sql"; done
        echo "\\timing on"
        for _ in $(seq 1 "$repeat"); do echo "$sql"; done
    } | bpsql -d scale -o /dev/null | python3 -c '
import statistics, sys
label = sys.argv[1]
t = sorted(float(l.split()[1]) for l in sys.stdin if l.startswith("Time:"))
print("| %s | %d | %.1f | %.1f |" % (label, len(t), statistics.median(t), t[-1]))' "$label"
}
TENANT="org4242"
{
    echo "| query | runs | median ms | max ms |"
    echo "|---|---:|---:|---:|"
    sql_pages "\`audit.search(tenant => '$TENANT')\`: one organization's newest 50 (of $((COUNT / 10000)) or so)" \
        "$BENCH_REPEAT" "SELECT id, summary FROM audit.search(tenant => '$TENANT');"
    sql_pages "\`audit.search(tenant => '$TENANT', actors => '{user0@example.com}')\`" \
        "$BENCH_REPEAT" "SELECT id, summary FROM audit.search(tenant => '$TENANT', actors => '{user0@example.com}');"
    sql_pages "\`audit.search(tenant => 'org-none')\`: an organization with no events" \
        "$BENCH_REPEAT" "SELECT id, summary FROM audit.search(tenant => 'org-none');"
    sql_pages "\`audit.search(actors => '{nobody@example.com}')\`: an actor matching nothing" \
        "$BENCH_REPEAT" "SELECT id, summary FROM audit.search(actors => '{nobody@example.com}');"
    sql_pages "\`audit.search(entities => '{contact}', actions => '{delete}')\`" \
        "$BENCH_REPEAT" "SELECT id, summary FROM audit.search(entities => '{contact}', actions => '{delete}');"
    sql_pages "the README's first query: \`audit.report\` newest 50" \
        "$BENCH_REPEAT" "SELECT occurred_at, summary, before, after FROM audit.report ORDER BY occurred_at DESC, id DESC LIMIT 50;"
    sql_pages "\`audit.report WHERE actor = 'nobody@example.com'\` newest 50 (no fast path: for contrast)" \
        "${BENCH_SLOW_REPEAT:-3}" "SELECT occurred_at, summary FROM audit.report WHERE actor = 'nobody@example.com' ORDER BY occurred_at DESC, id DESC LIMIT 50;"
    cat "$BENCH_TMP/api_pages.md"
} >"$BENCH_TMP/sql_pages.md"
cat "$BENCH_TMP/sql_pages.md"

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
# Capture on this log against an empty log (goal: at least 0.97 of the empty log's
# throughput): pgbench single-row INSERTs and UPDATEs of a tracked table, in the scale
# database and in a new one whose log is empty, interleaved round by round, medians of
# BENCH_CAPTURE_ROUNDS (3) runs of BENCH_CAPTURE_SECONDS (15). The table is filled before it
# is tracked, so the "empty" log holds only the track event. It runs last: its million or so
# events in one hour are a burst that the dashboard's filters would read whole (see
# docs/storage.md), which is not the log this benchmark describes.
CAPTURE_SECONDS="${BENCH_CAPTURE_SECONDS:-15}"
CAPTURE_ROUNDS="${BENCH_CAPTURE_ROUNDS:-3}"
bpsql -d postgres -c "CREATE DATABASE empty_log"
bpsql -d empty_log -o /dev/null -c "CREATE EXTENSION audit_trail" -c "CREATE SCHEMA crm"
for db in scale empty_log; do
    bpsql -d "$db" -o /dev/null \
        -c "CREATE TABLE crm.capture_bench (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                            name text, email text)" \
        -c "INSERT INTO crm.capture_bench (id, name, email)
              SELECT g, 'Contact ' || g, 'c' || g || '@example.com' FROM generate_series(1, 100000) g" \
        -c "SELECT setval(pg_get_serial_sequence('crm.capture_bench', 'id'), 100000)" \
        -c "VACUUM (ANALYZE) crm.capture_bench" \
        -c "SELECT audit.track('crm.capture_bench', 'contact')"
done
cat >"$BENCH_TMP/capture_insert.sql" <<'SQL'
INSERT INTO crm.capture_bench (name, email) VALUES ('New contact', 'new@example.com');
SQL
cat >"$BENCH_TMP/capture_update.sql" <<'SQL'
\set id random(1, 100000)
UPDATE crm.capture_bench SET email = 'c' || :id || '.' || pg_catalog.random() || '@example.com'
 WHERE id = :id;
SQL
CURRENT_PARTITION_ROWS="$(bval scale "SELECT rows_estimate FROM audit.partitions WHERE NOT is_default AND from_time <= now() AND to_time > now()")"
echo "round,workload,database,tps" >"$BENCH_TMP/capture.csv"
log "capture: $CAPTURE_ROUNDS rounds of ${CAPTURE_SECONDS}s per workload and database"
for round in $(seq 1 "$CAPTURE_ROUNDS"); do
    for workload in insert update; do
        for db in empty_log scale; do
            bpsql -d postgres -o /dev/null -c "CHECKPOINT"
            TPS="$("$BINDIR/pgbench" -n -M prepared -c 2 -j 2 -T "$CAPTURE_SECONDS" \
                -f "$BENCH_TMP/capture_$workload.sql" "$db" 2>"$BENCH_TMP/pgbench.err" |
                sed -n 's/^tps = \([0-9.]*\) .*/\1/p')"
            [ -n "$TPS" ] || {
                cat "$BENCH_TMP/pgbench.err" >&2
                die "pgbench $workload on $db printed no tps"
            }
            echo "$round,$workload,$db,$TPS" >>"$BENCH_TMP/capture.csv"
        done
    done
done
CAPTURE_MD="$(python3 "$HERE/dashboard/capture_ratio.py" "$BENCH_TMP/capture.csv")"
bpsql -d postgres -c "DROP DATABASE empty_log"
"$SIDECAR" maintain --db "$DB" >/dev/null

# shellcheck source=bench/scale_lifetime.sh
. "$HERE/scale_lifetime.sh"

LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
DATA_DU="$(as_postgres du -sh "$BENCH_TMP/data" | cut -f1)"
WAL_DU="$(as_postgres du -sh "$BENCH_TMP/data/pg_wal" | cut -f1)"
WAL_SETTINGS="$(bval scale "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('max_wal_size','min_wal_size','wal_compression','wal_level','full_page_writes','checkpoint_timeout','wal_buffers')")"

OUT="$RESULTS/scale-$DATE.md"
python3 - "$MACHINE" >"$OUT" <<PY
import json, sys
m = json.loads(sys.argv[1])
print(f"""# Scale benchmark: the dashboard and the sidecar over $COUNT events

- command: \`BENCH_EVENTS=$BENCH_EVENTS BENCH_MAX_WAL_SIZE=$BENCH_MAX_WAL_SIZE make bench-scale\` (bench/scale.sh), $(date -u +%Y-%m-%dT%H:%MZ)
- machine: {m['cpu']}, {m['nproc']} cores, {m['memory']}; {m['postgres']}
- settings: {m['settings']}
- git: {m['git']}; load average before: $LOAD_BEFORE, after: $LOAD_AFTER
- audit.events: $COUNT events over 13 months in $PARTITIONS partitions, $SIZE with indexes;
  $TAIL of them in the tail (captured after maintenance, read without the summary)
- audit.event_summary: $SUMMARY_ROWS rows, $SUMMARY_SIZE with indexes
- disk: the cluster's data directory $DATA_DU at the end (du; pg_wal $WAL_DU); WAL settings:
  $WAL_SETTINGS

## Loading and maintenance

| step | seconds |
|---|---:|
| INSERT ... SELECT of $BENCH_EVENTS events, month by month ($MONTH_COUNT months, oldest first) into empty partitions, indexes built after ($PREMADE month(s) into the partition maintenance had made ahead, indexes already there) | $LOAD_S |
| \`audit-trail maintain\` after each month: summary of its events ($SUMMARIZED summarized in all; the first run also makes the partitions ahead) | $MAINTAIN_S |
| VACUUM ANALYZE of the events and the summary tables ($SUMMARY_TABLES) | $VACUUM_S |

## Capture on this log vs an empty log

pgbench, 2 clients, ${CAPTURE_SECONDS} s runs, $CAPTURE_ROUNDS rounds interleaved (empty log, this
log), medians; the tracked table holds 100,000 rows in both databases. Capture writes into
the current month's partition, which held about $CURRENT_PARTITION_ROWS events here.

| workload | empty log, tps | this log, tps | ratio | rounds (empty / this) |
|---|---:|---:|---:|---|
$CAPTURE_MD

## Dashboard: first page of each filter (HTTP against \`audit-trail serve\`, release build)

Each view: 3 warm-up requests, then $BENCH_REPEAT timed on one kept-alive connection; time =
request sent to last byte received (HTTP, session, SQL, HTML). 50 rows a page.
""")
PY
{
    cat "$BENCH_TMP/views.md"
    cat <<MD

## The same pages in SQL (\`audit.search\`, the report view) and through the JSON API

psql in one session, \`jit = off\`, 2 warm-up runs, then timed (psql's \`\\timing\`: the
query's round trip); the API over one kept-alive HTTP connection, 3 warm-up requests (a
viewer token of the organization, minted with the serve's secret); 50 rows a page. Events
carry one of 10,000 organizations.

MD
    cat "$BENCH_TMP/sql_pages.md"
    cat <<MD

## Export and archive of one month ($MONTH, $MONTH_ROWS events)

| command | seconds | rows | rows/s | output |
|---|---:|---:|---:|---|
| \`audit-trail export --since ${MONTH}T00:00:00Z --until ${NEXT}T00:00:00Z --output FILE\` (CSV) | $EXPORT_S | $EXPORT_ROWS | $(awk -v r="$EXPORT_ROWS" -v s="$EXPORT_S" 'BEGIN { printf "%.0f", r / s }') | $EXPORT_BYTES |
| \`audit-trail archive --partition $PARTITION\` (Parquet) | $ARCHIVE_S | $MONTH_ROWS | $ARCHIVE_RATE | $ARCHIVE_BYTES |

the last maintain printed: \`$(tr -d '\n' <"$BENCH_TMP/maintain.json" | cut -c1-600)\`
MD
    cat "$BENCH_TMP/lifetime.md"
    history_md
} >>"$OUT"
log "wrote $OUT ($(($(date +%s) - STARTED))s)"
cat "$OUT"
