#!/usr/bin/env bash
# Writes extension/sql/audit_trail--0.1.0--0.2.0.sql: the hand-written steps for the store
# and settings (scripts/upgrade/0.1.0--0.2.0.sql), then 0.2.0's definitions from
# extension/sql/, made CREATE OR REPLACE where 0.1.0 had the object. Run only while 0.2.0
# is the version being made; once released, the script it wrote is frozen.
set -euo pipefail
cd "$(dirname "$0")/.."
out=extension/sql/audit_trail--0.1.0--0.2.0.sql
{
    cat scripts/upgrade/0.1.0--0.2.0.sql
    for f in api integrity lifetime report privileges; do
        echo
        echo "-- ---- extension/sql/$f.sql of 0.2.0 ----"
        sed -E 's/^CREATE FUNCTION /CREATE OR REPLACE FUNCTION /; s/^CREATE VIEW /CREATE OR REPLACE VIEW /' "extension/sql/$f.sql"
    done
    echo
    echo "-- The 0.1.0 table, now a partition, gets the guards every partition has."
    echo "SELECT audit.guard_events_partition('audit.events_0_1_0');"
} > "$out"
echo "wrote $out"
