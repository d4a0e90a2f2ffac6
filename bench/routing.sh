#!/usr/bin/env bash
# `make bench-routing`: what the partitioned store (0.2.0) costs capture next to the single
# table of 0.1.0, with the same library, side by side in one cluster: the per-statement
# overhead that `make bench` ratios include, without pgbench's and the client's share of the
# noise. Three databases: no auditing, 0.1.0's schema (CREATE EXTENSION ... VERSION '0.1.0':
# one table, four indexes) and 0.2.0's (monthly partitions, four indexes each). In each, one
# session runs BENCH_STATEMENTS (20,000) single-row INSERTs, then as many single-row UPDATEs,
# each its own statement (so each opens the event store once), in a DO block; BENCH_ROUNDS (7)
# interleaved rounds; medians. Writes bench/results/routing-<date>.md.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

BENCH_STATEMENTS="${BENCH_STATEMENTS:-20000}"
BENCH_ROUNDS="${BENCH_ROUNDS:-7}"
DATE="$(date +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"

cluster_start
VARIANTS=(none v0_1_0 v0_2_0)
for db in "${VARIANTS[@]}"; do
    bpsql -d postgres -c "CREATE DATABASE $db"
    case "$db" in
        v0_1_0) bpsql -d "$db" -o /dev/null -c "CREATE EXTENSION audit_trail VERSION '0.1.0'" ;;
        v0_2_0) bpsql -d "$db" -o /dev/null -c "CREATE EXTENSION audit_trail" ;;
    esac
    bpsql -d "$db" -c "CREATE TABLE contacts (id bigserial PRIMARY KEY, name text, email text,
                                              phone text, updated_at timestamptz DEFAULT now())"
    if [ "$db" != none ]; then
        bpsql -d "$db" -o /dev/null -c "SELECT audit.track('contacts', 'contact')"
    fi
done

# Milliseconds a DO block of BENCH_STATEMENTS statements takes.
run() {
    local db="$1" statement="$2"
    "$BINDIR/psql" -X -q -d "$db" -c '\timing on' \
        -c "DO \$\$ BEGIN FOR i IN 1..$BENCH_STATEMENTS LOOP $statement END LOOP; END \$\$" |
        awk '/^Time:/ { print $2 }'
}

declare -A TIMES
for round in $(seq 1 "$BENCH_ROUNDS"); do
    for workload in insert update; do
        # Rotate the order of variants between rounds.
        for k in 0 1 2; do
            db="${VARIANTS[$(((k + round) % 3))]}"
            case "$workload" in
                insert) sql="INSERT INTO contacts (name, email, phone) VALUES ('n', 'e@x', '555');" ;;
                update) sql="UPDATE contacts SET email = 'u' || i WHERE id = 1 + i % 1000;" ;;
            esac
            ms="$(run "$db" "$sql")"
            TIMES[$workload,$db]+="$ms "
            log "round $round $workload $db: $ms ms"
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
{
    echo "# Capture per statement: one table (0.1.0) vs monthly partitions (0.2.0) ($DATE)"
    echo
    echo "Command: \`BENCH_STATEMENTS=$BENCH_STATEMENTS BENCH_ROUNDS=$BENCH_ROUNDS ./bench/routing.sh\` (make bench-routing)."
    echo "Machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}'); the same audit_trail library for both schemas."
    echo
    echo "Median milliseconds for $BENCH_STATEMENTS single-row statements in one session:"
    echo
    echo "| workload | no auditing | 0.1.0 schema | 0.2.0 schema | capture's cost per statement, 0.1.0 → 0.2.0 |"
    echo "|---|---|---|---|---|"
    for workload in insert update; do
        none="$(echo "${TIMES[$workload,none]}" | median)"
        v1="$(echo "${TIMES[$workload,v0_1_0]}" | median)"
        v2="$(echo "${TIMES[$workload,v0_2_0]}" | median)"
        awk -v w="$workload" -v n="$none" -v a="$v1" -v b="$v2" -v s="$BENCH_STATEMENTS" 'BEGIN {
            printf "| %s | %.0f | %.0f | %.0f | %.2f µs → %.2f µs (%+.0f%%) |\n", w, n, a, b,
                (a - n) * 1000 / s, (b - n) * 1000 / s, ((b - n) / (a - n) - 1) * 100 }'
    done
    echo
    echo "Every round: $(for k in "${!TIMES[@]}"; do printf '%s=[%s] ' "$k" "${TIMES[$k]% }"; done)"
} | tee "$RESULTS/routing-$DATE.md"
