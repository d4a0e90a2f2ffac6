#!/usr/bin/env bash
# `make bench-follow`: the change stream's throughput and latency, in a throwaway cluster.
#
# Throughput: BENCH_EVENTS (500,000) events generated into audit.events, then
#   audit-trail follow --consumer tput --output-dir DIR --once --batch-size 10000
# timed from start to exit (files synced, cursor committed), BENCH_ROUNDS (3) times with a
# fresh consumer and directory: events/s, median.
#
# Latency: a tracked table written by pgbench at a fixed rate (BENCH_RATE, 1,000
# single-row transactions/s, 2 clients) for BENCH_SECONDS (30) through real capture, while a
# follower (`--stdout`, no --once) runs; each event's delay is the time its line reaches the
# reader minus its occurred_at (the statement's start, so this slightly overstates the
# commit-to-sink delay). p50/p99/max over all events. Writes bench/results/follow-<date>.md.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_EVENTS="${BENCH_EVENTS:-500000}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
BENCH_RATE="${BENCH_RATE:-1000}"
BENCH_SECONDS="${BENCH_SECONDS:-30}"
SIDECAR="${AUDIT_TRAIL_BIN:-$ROOT/target/release/audit-trail}"
[ -x "$SIDECAR" ] || die "$SIDECAR is missing: cargo build --release -p audit-trail"

DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
OUT="$HERE/results/follow-$DATE.md"
mkdir -p "$HERE/results"

cluster_start
CONN="host=$PGHOST port=$PGPORT user=postgres dbname=follow"
bpsql -d postgres -c "CREATE DATABASE follow"
bpsql -d follow -o /dev/null <<SQL
CREATE EXTENSION audit_trail;
CREATE TABLE items (id bigserial PRIMARY KEY, v text, at timestamptz DEFAULT now());
SELECT audit.track('items', 'item');
-- Throughput data: about 250-byte events in a few thousand transactions.
INSERT INTO audit.events (occurred_at, actor, db_user, source, entity, action, table_name,
                          subject_id, new_data)
SELECT now() - interval '1 day' + g * interval '1 ms', 'user' || (g % 40) || '@example.com',
       'crm_app', 'manual', 'contact', 'create', 'crm.contacts', g::text,
       jsonb_build_object('id', g, 'first_name', 'Ann', 'last_name', 'Lee' || g,
                          'email', 'ann' || g || '@example.com', 'phone', '+33 1 23 45 67 89',
                          'company', 'Northwind Traders', 'city', 'Lyon', 'score', g % 100)
  FROM generate_series(1, $BENCH_EVENTS) AS g;
VACUUM ANALYZE audit.events;
SQL

declare -a RATES
for round in $(seq 1 "$BENCH_ROUNDS"); do
    dir="$BENCH_TMP/out-$round"
    start=$(date +%s.%N)
    "$SIDECAR" follow --db "$CONN" --consumer "tput$round" --output-dir "$dir" --once \
        --batch-size 10000
    end=$(date +%s.%N)
    lines=$(cat "$dir"/audit-*.jsonl | wc -l)
    [ "$lines" -ge "$BENCH_EVENTS" ] || die "round $round delivered $lines of $BENCH_EVENTS events"
    rate=$(python3 -c "print(round($lines / ($end - $start)))")
    log "throughput round $round: $lines events in $(python3 -c "print(round($end - $start, 2))") s = $rate events/s"
    RATES+=("$rate")
    rm -rf "$dir"
done
MEDIAN_RATE=$(printf '%s\n' "${RATES[@]}" | sort -n | sed -n "$(( (BENCH_ROUNDS + 1) / 2 ))p")

# Latency: start the follower at the current end of the stream, then write at a fixed rate.
"$SIDECAR" follow --db "$CONN" --consumer lat --from now >/dev/null 2>&1
LAT="$BENCH_TMP/latency.txt"
"$SIDECAR" follow --db "$CONN" --consumer lat --stdout --poll-seconds 10 2>"$BENCH_TMP/follow.err" |
    python3 "$HERE/follow_latency.py" >"$LAT" &
READER=$!
# Stop the follower with the cluster, whatever happens.
trap 'pkill -TERM -f "audit-trail follow --db $CONN" || true; on_exit' EXIT
sleep 1
echo "INSERT INTO items (v) VALUES ('x');" >"$BENCH_TMP/insert.sql"
"$BINDIR/pgbench" -n -c 2 -j 2 -R "$BENCH_RATE" -T "$BENCH_SECONDS" -f "$BENCH_TMP/insert.sql" \
    follow >"$BENCH_TMP/pgbench.log" 2>&1 || { cat "$BENCH_TMP/pgbench.log" >&2; die "pgbench failed"; }
sleep 3
pkill -TERM -f "audit-trail follow --db $CONN --consumer lat" || true
wait "$READER" || true
EXPECTED=$(bval follow "SELECT count(*) FROM audit.events WHERE entity = 'item'")
read -r COUNT P50 P99 MAX <"$LAT"
[ "$COUNT" -eq "$EXPECTED" ] || die "the follower delivered $COUNT of $EXPECTED events"

{
    echo "# Follow benchmark ($DATE)"
    echo
    echo "- Machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); $(bval follow 'SELECT version()' | cut -d, -f1)"
    echo "- Settings: shared_buffers=$BENCH_SHARED_BUFFERS, synchronous_commit=off, fsync=$BENCH_FSYNC"
    echo "- Code: git $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "- Command: make bench-follow (bench/follow.sh)"
    echo
    echo "| measure | value |"
    echo "|---|---|"
    echo "| throughput into the file sink (--once, batches of 10,000, synced), median of $BENCH_ROUNDS | $MEDIAN_RATE events/s (rounds: ${RATES[*]}) |"
    echo "| latency at $BENCH_RATE events/s ($BENCH_SECONDS s, $COUNT events): p50 | $P50 ms |"
    echo "| p99 | $P99 ms |"
    echo "| max | $MAX ms |"
} >"$OUT"
cat "$OUT"
