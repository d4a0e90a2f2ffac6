-- audit_trail: the partitions of audit.events (docs/storage.md). Runs after summary.sql,
-- whose tables are partitioned alike, partition for partition.

-- The partitions of audit.events, oldest first. Bounds are read back from the catalog's own
-- text (which round-trips under any DateStyle); a partition attached by an upgrade from
-- 0.1.0 starts at -infinity.
CREATE VIEW audit.partitions AS
WITH p AS (
    SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS partition,
           pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound, c.reltuples
      FROM pg_catalog.pg_inherits AS i
      JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE i.inhparent = 'audit.events'::regclass
), b AS (
    SELECT p.*, p.bound = 'DEFAULT' AS is_default,
           CASE WHEN p.bound <> 'DEFAULT'
                THEN coalesce(pg_catalog.substring(p.bound, $r$FROM \('([^']*)'\)$r$)::timestamptz,
                              '-infinity') END AS from_time,
           CASE WHEN p.bound <> 'DEFAULT'
                THEN coalesce(pg_catalog.substring(p.bound, $r$TO \('([^']*)'\)$r$)::timestamptz,
                              'infinity') END AS to_time
      FROM p
)
SELECT b.partition, b.from_time, b.to_time, b.is_default,
       coalesce(b.to_time <= pg_catalog.now(), false) AS closed,
       greatest(b.reltuples, 0)::bigint AS rows_estimate,
       pg_catalog.pg_total_relation_size(b.oid) AS bytes,
       EXISTS (SELECT FROM audit.archives AS a
                WHERE a.partition = b.partition AND a.events_sha256 IS NOT NULL) AS archived,
       EXISTS (SELECT FROM audit.legal_holds AS h
                WHERE h.released_at IS NULL
                  AND (b.is_default OR (h.from_time < b.to_time AND h.to_time > b.from_time)))
           AS held
  FROM b
 ORDER BY b.is_default, b.from_time;

COMMENT ON VIEW audit.partitions IS
    'Partitions of audit.events: time range, size, whether archived and whether a legal hold covers them.';

-- The start of the partition that holds time t, for partitions `every` long: whole months
-- (1, 2, 3, 4, 6 or 12) counted from January, whole weeks from Monday, or whole days, in UTC.
CREATE FUNCTION audit.partition_start(t timestamptz, every interval) RETURNS timestamptz
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    months int := extract(year FROM every)::int * 12 + extract(month FROM every)::int;
    days   int := extract(day FROM every)::int;
    utc    timestamp := t AT TIME ZONE 'UTC';
    m      int;
    d      bigint;
BEGIN
    IF months > 0 THEN
        m := extract(year FROM utc)::int * 12 + extract(month FROM utc)::int - 1;
        m := m - m % months;
        RETURN make_timestamptz(m / 12, m % 12 + 1, 1, 0, 0, 0, 'UTC');
    END IF;
    d := floor(extract(epoch FROM date_trunc('day', utc)) / 86400)::bigint;
    -- Day 0 (1970-01-01) was a Thursday: weeks start 3 days earlier, on Monday.
    d := CASE WHEN days % 7 = 0 THEN d - (d + 3) % days ELSE d - d % days END;
    RETURN to_timestamp(d * 86400);
END
$$;

-- Raises unless called from the extension's own maintenance.
CREATE FUNCTION audit.require_maintenance() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT audit.maintenance_in_progress() THEN
        RAISE EXCEPTION 'partitions of audit.events are managed by audit.maintain()'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

-- Makes the partition [from_time, to_time), moving into it any rows the default partition
-- holds for that range (the move happens before the attach, which would otherwise fail).
CREATE FUNCTION audit.create_events_partition(from_time timestamptz, to_time timestamptz)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name      text := 'events_' || to_char(from_time AT TIME ZONE 'UTC', 'YYYYMMDD');
    summary   text;
    companion text;
    key       text;
    moved     bigint := 0;
BEGIN
    PERFORM audit.require_maintenance();
    IF to_regclass(format('audit.%I', name)) IS NOT NULL THEN
        name := name || to_char(from_time AT TIME ZONE 'UTC', '"_"HH24MISS');
    END IF;
    EXECUTE format('CREATE TABLE audit.%I (LIKE audit.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)', name);
    IF EXISTS (SELECT FROM audit.events_default AS d
                WHERE d.occurred_at >= from_time AND d.occurred_at < to_time) THEN
        EXECUTE format('INSERT INTO audit.%I SELECT * FROM audit.events_default AS d
                         WHERE d.occurred_at >= $1 AND d.occurred_at < $2', name)
          USING from_time, to_time;
        GET DIAGNOSTICS moved = ROW_COUNT;
        DELETE FROM audit.events_default AS d
         WHERE d.occurred_at >= from_time AND d.occurred_at < to_time;
    END IF;
    PERFORM audit.setup_events_partition(format('audit.%I', name)::regclass);
    EXECUTE format('ALTER TABLE audit.events ATTACH PARTITION audit.%I FOR VALUES FROM (%L) TO (%L)',
                   name, from_time, to_time);
    -- Its summaries, alike (audit.event_summary_YYYYMMDD for audit.events_YYYYMMDD, ...).
    FOREACH companion IN ARRAY audit.summary_tables() LOOP
        key := CASE companion WHEN 'actor_days' THEN 'day' ELSE 'hour' END;
        summary := companion || '_' || substr(name, length('events_') + 1);
        EXECUTE format('CREATE TABLE audit.%I (LIKE audit.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       summary, companion);
        EXECUTE format('WITH moved AS (DELETE FROM audit.%I AS d WHERE d.%I >= $1 AND d.%I < $2 RETURNING d.*)
                        INSERT INTO audit.%I SELECT * FROM moved',
                       companion || '_default', key, key, summary)
          USING from_time, to_time;
        PERFORM audit.setup_summary_partition(format('audit.%I', summary)::regclass);
        EXECUTE format('ALTER TABLE audit.%I ATTACH PARTITION audit.%I FOR VALUES FROM (%L) TO (%L)',
                       companion, summary, from_time, to_time);
    END LOOP;
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'partition', 'audit.' || name, 'from', from_time, 'to', to_time,
        'moved_from_default', nullif(moved, 0)));
END
$$;

-- Readies a partition of audit.events: its indexes, its guards, its replica identity.
--
-- Indexes earn their place: each btree is one more write per captured change, the largest
-- part of capture's cost after the event row itself (see bench/results). So:
-- (occurred_at, id) serves time ranges and the report's newest-first order with keyset
-- pagination; (entity, subject_id) serves "the whole history of contact 42"; (txid, id) is
-- the change stream's order. There is no primary-key index: ids are unique by construction
-- (one sequence, and rows are never updated), and a BRIN index finds an id among the few
-- block ranges that can hold it, since ids grow with the table. One organization's events
-- are found through audit.tenant_events, which maintenance makes (summary.sql): an index on
-- tenant here cost capture a tenth of its throughput. The other filters (actor,
-- action, source, table) find their hours in audit.event_summary and audit.kind_hours, made
-- by maintenance at no cost to capture: an index on actor alone cost capture about a tenth of its time.
--
-- The indexes are the partition's own, not partitions of indexes on audit.events: the
-- parent is made by CREATE EXTENSION, so indexes on it would exist before a restore attaches
-- the partitions pg_dump saved, be built on each as it is attached, and collide with the
-- partition's own indexes that pg_dump creates next.
--
-- Statement triggers fire only for the table a statement names, so each partition refuses
-- changes and SQL inserts itself.
CREATE FUNCTION audit.setup_events_partition(part regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text := (SELECT c.relname FROM pg_class AS c WHERE c.oid = part);
BEGIN
    EXECUTE format('CREATE INDEX %I ON %s (occurred_at, id)', name || '_occurred_at_id_idx', part);
    EXECUTE format('CREATE INDEX %I ON %s (entity, subject_id)', name || '_entity_subject_id_idx', part);
    EXECUTE format('CREATE INDEX %I ON %s (txid, id)', name || '_txid_id_idx', part);
    EXECUTE format('CREATE INDEX %I ON %s USING brin (id)', name || '_id_idx', part);
    -- A table's truncates (rare), for a row's history: without it they are found among the
    -- entity's subject-less events (its exports, say), a scan of up to all of them.
    EXECUTE format('CREATE INDEX %I ON %s (table_name, occurred_at, id) WHERE action = %L',
                   name || '_truncates_idx', part, 'truncate');
    PERFORM audit.guard_events_partition(part);
END
$$;

CREATE FUNCTION audit.guard_events_partition(part regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', part);
    EXECUTE format('CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER events_append_only', part);
    EXECUTE format('CREATE TRIGGER events_no_sql_insert BEFORE INSERT ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_insert()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER events_no_sql_insert', part);
END
$$;

-- The default partition, made with its table, gets its indexes and guards here.
-- The default partitions, made with their tables, get their indexes and guards here.
SELECT audit.setup_events_partition('audit.events_default');
