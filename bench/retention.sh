#!/usr/bin/env bash
# `make bench-retention`: what retention costs when it drops a month of events (docs/storage.md),
# next to deleting the same events row by row (what audit.purge did before partitions).
#
# In a throwaway cluster, BENCH_EVENTS (1,000,000) events from bench/events.sql are placed in
# one past month (two months back, UTC), in two databases:
# 1. `drop`: maintenance makes the month's partition (rows moved out of the default
#    partition, timed) and counts them into the summary; then `set_retention('1 month',
#    archive_first => false)` and one more maintain drop the month: seconds and WAL bytes;
# 2. `delete`: the same events left in the default partition and removed by audit.purge,
#    which deletes them row by row there: seconds and WAL bytes.
# Writes bench/results/retention-<date>.md.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-1000000}"
DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"

cluster_start
now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

MONTH_START="(date_trunc('month', (now() AT TIME ZONE 'UTC') - interval '2 months') AT TIME ZONE 'UTC')"
sed "s/now() - (:events - g) \* interval '2 seconds'/$MONTH_START + (g - 1) * (interval '27 days' \/ :events)/" \
    "$HERE/events.sql" >"$BENCH_TMP/events.sql"
grep -q "interval '27 days'" "$BENCH_TMP/events.sql" || die "bench/events.sql changed: update the rewrite in bench/retention.sh"

for db in drop delete; do
    log "generating $BENCH_EVENTS events in one past month ($db)"
    bpsql -d postgres -c "CREATE DATABASE $db"
    bpsql -d "$db" -o /dev/null -c "CREATE EXTENSION audit_trail"
    bpsql -d "$db" -v events="$BENCH_EVENTS" -f "$BENCH_TMP/events.sql"
done
bpsql -d postgres -c "CHECKPOINT"

# Runs SQL in a database and prints "<seconds> <WAL bytes>".
measure() {
    local db="$1" sql="$2" lsn start end wal
    lsn="$(bval "$db" "SELECT pg_current_wal_insert_lsn()")"
    start="$(now)"
    bpsql -d "$db" -o /dev/null -c "$sql"
    end="$(now)"
    wal="$(bval "$db" "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn')::bigint")"
    echo "$(seconds "$start" "$end") $wal"
}

log "drop: maintain makes the month's partition and summarizes"
read -r MOVE_S MOVE_WAL <<<"$(measure drop "SELECT audit.maintain()")"
PARTITION="$(bval drop "SELECT partition FROM audit.partitions WHERE NOT is_default AND closed ORDER BY from_time LIMIT 1")"
ROWS="$(bval drop "SELECT count(*) FROM $PARTITION")"
BYTES="$(bval drop "SELECT pg_total_relation_size('$PARTITION')")"
bpsql -d drop -o /dev/null -c "SELECT audit.set_retention('1 month', archive_first => false)"
# The rows moved out of the default partition left dead tuples there, which the next scan
# would prune (WAL): autovacuum clears them on a live system.
bpsql -d drop -c "VACUUM audit.events_default, audit.event_summary_default"
bpsql -d postgres -c "CHECKPOINT"
log "drop: retention drops $PARTITION ($ROWS events)"
read -r DROP_S DROP_WAL <<<"$(measure drop "SELECT audit.maintain()")"
LEFT="$(bval drop "SELECT count(*) FROM audit.events WHERE action <> 'purge' AND occurred_at < date_trunc('month', now())")"
[ "$LEFT" = 0 ] || die "retention left $LEFT events of the month"

log "delete: audit.purge deletes the same events row by row"
CUT="$(bval delete "SELECT max(occurred_at) + interval '1 second' FROM audit.events")"
read -r DELETE_S DELETE_WAL <<<"$(measure delete "SELECT audit.purge('$CUT')")"

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
{
    echo "# Retention: dropping a month vs deleting it ($DATE)"
    echo
    echo "Command: \`BENCH_EVENTS=$BENCH_EVENTS ./bench/retention.sh\` (make bench-retention)."
    echo "Machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}'), shared_buffers $BENCH_SHARED_BUFFERS, fsync $BENCH_FSYNC."
    echo
    echo "$ROWS events in one month ($PARTITION, $(mb "$BYTES") with its indexes)."
    echo
    echo "| step | seconds | WAL |"
    echo "|---|---|---|"
    echo "| maintain: make the partition, move the events out of the default partition, summarize | $MOVE_S | $(mb "$MOVE_WAL") |"
    echo "| retention drops the month (maintain) | $DROP_S | $(mb "$DROP_WAL") |"
    echo "| audit.purge deletes the same events row by row | $DELETE_S | $(mb "$DELETE_WAL") |"
    echo
    echo "Dropping takes time and WAL independent of the month's size (a catalog change and one"
    echo "event); the space is returned at once. Deleting writes WAL for every row and leaves the"
    echo "table's size to VACUUM. (The first line is a one-off: events written while no partition"
    echo "covered their month; events captured in a month that has its partition are never moved.)"
} | tee "$RESULTS/retention-$DATE.md"
