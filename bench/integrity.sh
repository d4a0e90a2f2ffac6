#!/usr/bin/env bash
# `make bench-integrity`: how fast `audit-trail seal` and `verify` go, and how far sealing
# lags behind commits under a steady write load (docs/integrity.md).
#
# In a throwaway cluster:
# 1. BENCH_EVENTS (1,000,000) events from bench/events.sql are sealed by one
#    `seal --once` (batches of 10,000): events/s, wall time;
# 2. `verify` of them, BENCH_ROUNDS (3) times: events/s, median;
# 3. a tracked table takes BENCH_RATE (1,000) single-row inserts a second for BENCH_SECONDS
#    (30) with pgbench while `seal --interval 1` runs: the delay from each event's commit
#    to the seal that covers it, p50/p99/max.
# Writes bench/results/integrity-<date>.md. Needs target/release/audit-trail.
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

cluster_start
KEY="$BENCH_TMP/seal.key"
"$SIDECAR" keygen --output "$KEY" 2>/dev/null
mkdir -p "$BENCH_TMP/checkpoints" "$BENCH_TMP/checkpoints-lag"
DB="host=$PGHOST port=$PGPORT user=postgres dbname=integrity"
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

log "generating $BENCH_EVENTS events"
bpsql -d postgres -c "CREATE DATABASE integrity"
bpsql -d integrity -o /dev/null -c "CREATE EXTENSION audit_trail"
bpsql -d integrity -v events="$BENCH_EVENTS" -f "$HERE/events.sql"
bpsql -d postgres -c "CHECKPOINT"

log "sealing"
start="$(now)"
"$SIDECAR" seal --once --db "$DB" --key "$KEY" --checkpoints "$BENCH_TMP/checkpoints" 2>/dev/null
end="$(now)"
SEALED="$(bval integrity "SELECT sealed_events FROM audit.integrity")"
SEAL_RATE="$(rate "$SEALED" "$start" "$end")"
SEAL_SECONDS="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
log "sealed $SEALED events in ${SEAL_SECONDS}s: $SEAL_RATE events/s"

VERIFY_RATES=()
for round in $(seq 1 "$BENCH_ROUNDS"); do
    start="$(now)"
    "$SIDECAR" verify --db "$DB" --pubkey "$KEY.pub" --checkpoints "$BENCH_TMP/checkpoints" >/dev/null
    end="$(now)"
    VERIFY_RATES+=("$(rate "$SEALED" "$start" "$end")")
    log "round $round verify: ${VERIFY_RATES[-1]} events/s"
done
VERIFY_MEDIAN="$(printf '%s\n' "${VERIFY_RATES[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"

log "seal lag at $BENCH_RATE events/s for ${BENCH_SECONDS}s"
bpsql -d postgres -c "CREATE DATABASE lag"
bpsql -d lag -o /dev/null -c "CREATE EXTENSION audit_trail" \
    -c "CREATE TABLE items (id bigserial PRIMARY KEY, v text)" \
    -c "SELECT audit.track('items', 'item')"
LAG_DB="host=$PGHOST port=$PGPORT user=postgres dbname=lag"
"$SIDECAR" seal --interval 1 --db "$LAG_DB" --key "$KEY" \
    --checkpoints "$BENCH_TMP/checkpoints-lag" 2>"$BENCH_TMP/sealer.log" &
SEALER=$!
echo "INSERT INTO items (v) VALUES ('x');" >"$BENCH_TMP/insert.sql"
"$BINDIR/pgbench" -n -d lag -c 2 -R "$BENCH_RATE" -T "$BENCH_SECONDS" -f "$BENCH_TMP/insert.sql" \
    >"$BENCH_TMP/pgbench.log" 2>&1
sleep 3
kill -INT "$SEALER" 2>/dev/null || true
wait "$SEALER" 2>/dev/null || true
LAG="$(bval lag "
    SELECT pg_catalog.format('%s events sealed of %s; lag p50 %s s, p99 %s s, max %s s',
           count(*), (SELECT count(*) FROM audit.events),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)::numeric, 2),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)::numeric, 2),
           round(max(lag)::numeric, 2))
      FROM (SELECT extract(epoch FROM s.sealed_at - e.occurred_at) AS lag
              FROM audit.events AS e
              JOIN audit.seals AS s
                ON (e.txid, e.id) >= (s.first_txid, s.first_id)
               AND (e.txid, e.id) <= (s.last_txid, s.last_id)) AS l")"
log "$LAG"

MACHINE="$(machine_json)"
cat >"$RESULTS/integrity-$DATE.md" <<MD
# Integrity benchmark ($DATE)

\`make bench-integrity\` (bench/integrity.sh), PostgreSQL in a throwaway cluster.

| measure | result | goal |
|---|---|---|
| seal, $SEALED events (bench/events.sql), one \`seal --once\` | $SEAL_RATE events/s (${SEAL_SECONDS} s) | >= 150,000 events/s |
| verify, the same events with checkpoints, median of $BENCH_ROUNDS | $VERIFY_MEDIAN events/s (rounds: ${VERIFY_RATES[*]}) | >= 150,000 events/s |
| seal lag, $BENCH_RATE events/s for ${BENCH_SECONDS} s, \`seal --interval 1\` | $LAG | p99 <= 5 s |

Machine: $MACHINE
MD
log "wrote bench/results/integrity-$DATE.md"
