#!/usr/bin/env bash
# `make demo`: a project-local PostgreSQL cluster under .demo/ (port 5499 unless
# AUDIT_DEMO_PORT is set), the sample CRM of sql/demo/, activity by several users, a report
# in the terminal and a CSV export. Safe to run again: the demo database is recreated.
# `scripts/demo.sh stop` stops the cluster.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO="$ROOT/.demo"
DATA="$DEMO/data"
PORT="${AUDIT_DEMO_PORT:-5499}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
BINDIR="$("$PG_CONFIG" --bindir)"
DB=audit_demo
# Quiet NOTICEs (an existing grant on a second run, ...): the demo prints its own report.
export PGOPTIONS="-c client_min_messages=warning"

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() {
    [ -f "$DATA/postmaster.pid" ] && as_postgres "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

stop() {
    if running; then
        as_postgres "$BINDIR/pg_ctl" -D "$DATA" stop -m fast >/dev/null
        echo "demo cluster stopped"
    fi
}

start() {
    mkdir -p "$DEMO"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DEMO"; fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
        as_postgres "$BINDIR/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C >/dev/null
        cat >>"$DATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO'
CONF
        printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$DATA/pg_hba.conf"
    fi
    if ! running; then
        as_postgres "$BINDIR/pg_ctl" -D "$DATA" -l "$DEMO/server.log" -w start >/dev/null
    fi
    echo "demo cluster running: host=$DEMO port=$PORT (log: .demo/server.log)"
}

psql_demo() {
    "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$DEMO" -p "$PORT" -U postgres "$@"
}

case "${1:-run}" in
stop) stop; exit 0 ;;
run) ;;
*) echo "usage: $0 [run|stop]" >&2; exit 2 ;;
esac

start
psql_demo -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
# An auditor who may read the log (and nothing else): what a DBA would set up.
psql_demo -d postgres -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auditor') THEN
        CREATE ROLE auditor LOGIN;
    END IF;
END \$\$"
psql_demo -d "$DB" -f "$ROOT/sql/demo/schema.sql"
psql_demo -d "$DB" -c "GRANT audit_admin TO auditor"
psql_demo -d "$DB" -f "$ROOT/sql/demo/activity.sql"

export PGHOST="$DEMO" PGPORT="$PORT"
"$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -U auditor -d "$DB" -f "$ROOT/sql/demo/report.sql"

CSV="$ROOT/audit-report.csv"
echo "== Export =="
"$ROOT/target/release/audit-trail" export --db "host=$DEMO port=$PORT user=auditor dbname=$DB" \
    --since 1d --output "$CSV"
echo "   (ran: audit-trail export --db 'host=$DEMO port=$PORT user=auditor dbname=$DB' --since 1d --output audit-report.csv;"
echo "    the export itself is now recorded in audit.export_activity)"
