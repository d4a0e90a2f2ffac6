-- audit_trail: the log's lifetime (docs/storage.md). Runs after integrity.sql.
--
-- audit.events is partitioned by time. audit.maintain() makes partitions ahead, moves rows
-- out of the default partition, and applies the retention policy by dropping whole
-- partitions, never those a legal hold covers, and (by default) only once they are
-- archived. Every change to the policy, every hold and release, every archive and every drop
-- is an audit_log event.

-- The policy. One row at most; none means the defaults (monthly partitions, three made
-- ahead, keep forever). No row is inserted here, so that a restore, which copies the row a
-- site set, never collides with one made by CREATE EXTENSION.
CREATE TABLE audit.storage_policy (
    singleton          boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    partition_interval interval    NOT NULL DEFAULT '1 month',
    premake            integer     NOT NULL DEFAULT 3 CHECK (premake BETWEEN 1 AND 120),
    keep               interval    CHECK (keep > '0'),
    archive_first      boolean     NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         text        NOT NULL DEFAULT session_user
);

COMMENT ON TABLE audit.storage_policy IS
    'Partition interval and retention of audit.events; set by audit.set_retention and audit.set_partition_interval.';

-- Legal holds: history kept, a released hold stays as a row.
CREATE TABLE audit.legal_holds (
    name        text        NOT NULL CHECK (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    reason      text        NOT NULL CHECK (reason <> ''),
    from_time   timestamptz NOT NULL,
    to_time     timestamptz NOT NULL,
    placed_at   timestamptz NOT NULL DEFAULT now(),
    placed_by   text        NOT NULL DEFAULT session_user,
    released_at timestamptz,
    released_by text,
    CHECK (to_time > from_time),
    -- Keys make a second copy of a row (a data-only restore over a log) fail loudly.
    UNIQUE (name, placed_at)
);
CREATE UNIQUE INDEX legal_holds_active_name ON audit.legal_holds (name) WHERE released_at IS NULL;

CREATE VIEW audit.holds AS
SELECT name, reason, from_time, to_time, placed_at, placed_by, released_at, released_by,
       released_at IS NULL AS active
  FROM audit.legal_holds;

COMMENT ON VIEW audit.holds IS
    'Legal holds: no event in an active hold''s time range is dropped, by retention or by audit.purge.';

-- Archives written by `audit-trail archive` (docs/archive.md): one row per archived partition.
CREATE TABLE audit.archives (
    partition   text        NOT NULL,
    from_time   timestamptz NOT NULL,
    to_time     timestamptz NOT NULL,
    rows        bigint      NOT NULL CHECK (rows >= 0),
    first_id    bigint,
    last_id     bigint,
    location    text        NOT NULL,
    manifest    jsonb       NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    archived_by text        NOT NULL DEFAULT session_user,
    -- The digest of the partition's events (audit.events_digest), which the archive command
    -- computed from the rows it wrote and the database from the partition, equal when the
    -- record was made. NULL for records made before 0.3.0, which retention does not rely on.
    events_sha256 text      CHECK (events_sha256 ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (partition, archived_at)
);

COMMENT ON TABLE audit.archives IS
    'Partitions of audit.events written to Parquet by audit-trail archive, with their manifests.';

-- Which sealed events retention dropped, so that `audit-trail verify` can tell them from
-- events deleted behind its back (docs/integrity.md): for a seal, `dropped` has one bit per
-- event of the seal in chain order, or is NULL when all of them went. The purge event that
-- dropped them carries the SHA-256 of its rows here, and is sealed in its turn.
CREATE TABLE audit.retention_gaps (
    seq      bigint      NOT NULL,
    source   text        NOT NULL,
    dropped  bit varying,
    reason   text        NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seq, source, noted_at)
);

-- Purge events a later drop removed, kept whole so that the notes they vouch for stay
-- vouched for (docs/integrity.md): each as the 17 values of its canonical encoding, which
-- `audit-trail verify` hashes and holds to the seal that listed it. Only the drops write it.
CREATE TABLE audit.carried_events (
    id         bigint      PRIMARY KEY,
    txid       xid8        NOT NULL,
    canonical  text[]      NOT NULL CHECK (pg_catalog.cardinality(canonical) = 17),
    carried_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE audit.carried_events IS
    'Purge events that a later drop removed, in their canonical encoding, for verify.';

COMMENT ON TABLE audit.retention_gaps IS
    'Sealed events dropped by retention or audit.purge, per seal (one bit per event, NULL for all).';

-- Which hours hold events of each actor, source, entity, action and table, and how many:
-- what the dashboard's filters and Overview read instead of scanning months of events, made
-- by audit.maintain() from the events committed since its last run (so capture pays
-- nothing for it). Every event with txid below audit.summary_state.watermark is counted
-- once; later ones (the tail) are read directly.
CREATE TABLE audit.event_summary (
    hour       timestamptz NOT NULL,
    actor      text        NOT NULL,
    source     text        NOT NULL,
    entity     text        NOT NULL,
    action     text        NOT NULL,
    table_name text,
    events     bigint      NOT NULL CHECK (events > 0)
) PARTITION BY RANGE (hour);
-- Partitioned as audit.events is, partition for partition (audit.create_events_partition), so
-- that retention drops a month's summary with its events, writing no WAL for its rows; its
-- indexes are each partition's own, for the reason audit.setup_events_partition gives.
CREATE TABLE audit.event_summary_default PARTITION OF audit.event_summary DEFAULT;

COMMENT ON TABLE audit.event_summary IS
    'Events per hour by actor, source, entity, action and table, for every event with txid below audit.summary_state.watermark.';

CREATE TABLE audit.summary_state (
    singleton     boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark     xid8        NOT NULL,
    summarized_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE audit.summary_state IS
    'Events with txid below watermark are counted in audit.event_summary; later ones are not yet.';

-- Rollups of the summary. audit.kind_hours: events per hour by everything but the actor
-- (source, entity, action, table): a few dozen rows an hour however busy the hour, so filters
-- without an actor and the Overview's categories read it in time bounded by the hours, not the
-- events. audit.actor_days: events per UTC day by actor (the Overview's busiest actors). Made
-- with the summary, partitioned alike.
CREATE TABLE audit.kind_hours (
    hour       timestamptz NOT NULL,
    source     text        NOT NULL,
    entity     text        NOT NULL,
    action     text        NOT NULL,
    table_name text,
    events     bigint      NOT NULL CHECK (events > 0)
) PARTITION BY RANGE (hour);
CREATE TABLE audit.kind_hours_default PARTITION OF audit.kind_hours DEFAULT;

CREATE TABLE audit.actor_days (
    day    timestamptz NOT NULL,
    actor  text        NOT NULL,
    events bigint      NOT NULL CHECK (events > 0)
) PARTITION BY RANGE (day);
CREATE TABLE audit.actor_days_default PARTITION OF audit.actor_days DEFAULT;

COMMENT ON TABLE audit.kind_hours IS
    'Events per UTC hour by source, entity, action and table, for every event counted in audit.event_summary.';
COMMENT ON TABLE audit.actor_days IS
    'Events per UTC day by actor, for every event counted in audit.event_summary.';

-- Only maintenance writes the summary (a changed summary would hide events from filters),
-- but for a restore, which loads each table while it is empty.
CREATE FUNCTION audit.refuse_summary_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    filled boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM %I.%I)', TG_TABLE_SCHEMA, TG_TABLE_NAME)
           INTO filled;
    END IF;
    IF NOT audit.maintenance_in_progress() AND (TG_OP <> 'INSERT' OR filled) THEN
        RAISE EXCEPTION 'audit.% is written only by audit.maintain()', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER event_summary_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.event_summary
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.event_summary ENABLE ALWAYS TRIGGER event_summary_maintained;

-- The summary tables, partitioned as audit.events, partition for partition.
CREATE FUNCTION audit.summary_tables() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY['event_summary', 'kind_hours', 'actor_days'] $$;

-- A summary partition's indexes and guard. A filter on actors reads audit.event_summary by
-- (actor, hour); a filter on anything else reads audit.kind_hours, by one index per filter
-- (the hour last, for newest-first reads). The hour alone serves the Overview's ranges.
CREATE FUNCTION audit.setup_summary_partition(part regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name   text := (SELECT c.relname FROM pg_class AS c WHERE c.oid = part);
    parent text := (SELECT p.relname FROM pg_inherits AS i JOIN pg_class AS p ON p.oid = i.inhparent
                     WHERE i.inhrelid = part);
BEGIN
    -- Not attached yet: the table's name says which summary it is.
    parent := coalesce(parent, (SELECT t FROM unnest(audit.summary_tables()) AS t
                                 WHERE name LIKE t || '\_%' ORDER BY length(t) DESC LIMIT 1));
    IF parent = 'event_summary' THEN
        EXECUTE format('CREATE INDEX %I ON %s (hour)', name || '_hour_idx', part);
        EXECUTE format('CREATE INDEX %I ON %s (actor, hour)', name || '_actor_hour_idx', part);
    ELSIF parent = 'kind_hours' THEN
        EXECUTE format('CREATE INDEX %I ON %s (hour)', name || '_hour_idx', part);
        EXECUTE format('CREATE INDEX %I ON %s (source, hour)', name || '_source_hour_idx', part);
        EXECUTE format('CREATE INDEX %I ON %s (entity, action, hour)', name || '_entity_action_hour_idx', part);
        EXECUTE format('CREATE INDEX %I ON %s (table_name, hour)', name || '_table_name_hour_idx', part);
    ELSE
        EXECUTE format('CREATE INDEX %I ON %s (day)', name || '_day_idx', part);
    END IF;
    EXECUTE format('CREATE TRIGGER event_summary_maintained
                    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER event_summary_maintained', part);
END
$$;

CREATE TRIGGER kind_hours_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.kind_hours
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.kind_hours ENABLE ALWAYS TRIGGER kind_hours_maintained;
CREATE TRIGGER actor_days_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.actor_days
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.actor_days ENABLE ALWAYS TRIGGER actor_days_maintained;
CREATE TRIGGER summary_state_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.summary_state
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.summary_state ENABLE ALWAYS TRIGGER summary_state_maintained;

CREATE TRIGGER archives_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.archives ENABLE ALWAYS TRIGGER archives_append_only;
CREATE TRIGGER retention_gaps_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.retention_gaps
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.retention_gaps ENABLE ALWAYS TRIGGER retention_gaps_append_only;
CREATE TRIGGER carried_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.carried_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.carried_events ENABLE ALWAYS TRIGGER carried_events_append_only;

SELECT pg_catalog.pg_extension_config_dump('audit.storage_policy', '');
SELECT pg_catalog.pg_extension_config_dump('audit.legal_holds', '');
SELECT pg_catalog.pg_extension_config_dump('audit.archives', '');
SELECT pg_catalog.pg_extension_config_dump('audit.retention_gaps', '');
SELECT pg_catalog.pg_extension_config_dump('audit.carried_events', '');
SELECT pg_catalog.pg_extension_config_dump('audit.event_summary_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.kind_hours_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.actor_days_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.summary_state', '');

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

-- Policy ------------------------------------------------------------------------------------

-- How long events are kept (NULL: forever, the default), and whether a partition must be
-- archived (audit.archives) before retention drops it. Superusers only (no grant).
CREATE FUNCTION audit.set_retention(keep interval, archive_first boolean DEFAULT true)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    before jsonb := (SELECT jsonb_build_object('keep', p.keep, 'archive_first', p.archive_first)
                       FROM audit.storage_policy AS p);
BEGIN
    IF keep IS NOT NULL AND keep < interval '1 day' THEN
        RAISE EXCEPTION 'retention of % is too short: keep at least one day of events', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF archive_first IS NULL THEN
        RAISE EXCEPTION 'archive_first must be true or false'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO audit.storage_policy AS p (keep, archive_first)
    VALUES (set_retention.keep, set_retention.archive_first)
    ON CONFLICT (singleton) DO UPDATE
       SET keep = excluded.keep, archive_first = excluded.archive_first,
           updated_at = now(), updated_by = session_user;
    PERFORM audit.record_ddl_event('audit_log', 'retention', NULL,
        jsonb_build_object('before', coalesce(before, '{"keep": null, "archive_first": true}'),
                           'after', jsonb_build_object('keep', keep,
                                                       'archive_first', archive_first)));
END
$$;

COMMENT ON FUNCTION audit.set_retention(interval, boolean) IS
    'Keep events this long (NULL: forever); with archive_first, drop a partition only once archived.';

-- The length of partitions made from now on (existing ones keep theirs). Superusers only.
CREATE FUNCTION audit.set_partition_interval(every interval) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    months int := extract(year FROM every)::int * 12 + extract(month FROM every)::int;
    days   int := extract(day FROM every)::int;
BEGIN
    IF every IS NULL
       OR extract(epoch FROM every - justify_days(date_trunc('day', every))) <> 0
       OR NOT ((months IN (1, 2, 3, 4, 6, 12) AND days = 0)
               OR (months = 0 AND days BETWEEN 1 AND 28 AND (days < 7 OR days % 7 = 0))) THEN
        RAISE EXCEPTION 'partition interval % is not supported', coalesce(every::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use whole months (1, 2, 3, 4, 6 or 12), whole weeks, or 1 to 6 days.';
    END IF;
    INSERT INTO audit.storage_policy AS p (partition_interval) VALUES (every)
    ON CONFLICT (singleton) DO UPDATE
       SET partition_interval = excluded.partition_interval,
           updated_at = now(), updated_by = session_user;
    PERFORM audit.record_ddl_event('audit_log', 'retention', NULL,
        jsonb_build_object('partition_interval', every));
END
$$;

-- Legal holds -------------------------------------------------------------------------------

-- Admins may place a hold (it only protects events); releasing one is for superusers.
CREATE FUNCTION audit.hold(name text, reason text, from_time timestamptz, to_time timestamptz)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.:-]{1,100}$' THEN
        RAISE EXCEPTION 'hold name % is not valid: use 1 to 100 letters, digits, and _ . : -',
            coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(reason, '') = '' THEN
        RAISE EXCEPTION 'a legal hold needs a reason' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(reason) > 4096 THEN
        RAISE EXCEPTION 'a legal hold''s reason is at most 4096 bytes (name the case; keep the file elsewhere)'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF from_time IS NULL OR to_time IS NULL OR to_time <= from_time THEN
        RAISE EXCEPTION 'a legal hold needs a time range with from_time before to_time'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM audit.legal_holds AS h
                WHERE h.name = hold.name AND h.released_at IS NULL) THEN
        RAISE EXCEPTION 'legal hold "%" is already active', name
            USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO audit.legal_holds (name, reason, from_time, to_time)
    VALUES (hold.name, hold.reason, hold.from_time, hold.to_time);
    PERFORM audit.record_ddl_event('audit_log', 'hold', NULL,
        jsonb_build_object('name', name, 'reason', reason,
                           'from', from_time, 'to', to_time));
END
$$;

COMMENT ON FUNCTION audit.hold(text, text, timestamptz, timestamptz) IS
    'Place a legal hold: nothing in [from_time, to_time) is dropped until it is released.';

CREATE FUNCTION audit.release(name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held audit.legal_holds;
BEGIN
    UPDATE audit.legal_holds AS h
       SET released_at = now(), released_by = session_user
     WHERE h.name = release.name AND h.released_at IS NULL
    RETURNING * INTO held;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active legal hold is named %', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM audit.record_ddl_event('audit_log', 'release', NULL,
        jsonb_build_object('name', held.name, 'reason', held.reason,
                           'from', held.from_time, 'to', held.to_time,
                           'placed_by', held.placed_by));
END
$$;

-- Maintenance -------------------------------------------------------------------------------

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
-- block ranges that can hold it, since ids grow with the table. The other filters (actor,
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

-- Notes which sealed events are about to be dropped: those of `source` (audit.events or
-- one of its partitions) before `before`. Refuses when some are not sealed yet, since a
-- dropped event that was never sealed would leave no trace in the chain. Returns the
-- SHA-256 of the rows it wrote (NULL when nothing is sealed: no chain to keep).
CREATE FUNCTION audit.note_retention_gaps(source regclass, before timestamptz, reason text)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sealed  record;
    lo      record;
    hi      record;
    digest  text;
BEGIN
    PERFORM audit.require_maintenance();
    SELECT s.seq, s.last_txid, s.last_id INTO sealed
      FROM audit.seals AS s ORDER BY s.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT e.txid, e.id FROM %s AS e WHERE e.occurred_at < $1
                     ORDER BY e.txid, e.id LIMIT 1', source) INTO lo USING before;
    IF lo.txid IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT e.txid, e.id FROM %s AS e WHERE e.occurred_at < $1
                     ORDER BY e.txid DESC, e.id DESC LIMIT 1', source) INTO hi USING before;
    IF (hi.txid, hi.id) > (sealed.last_txid, sealed.last_id) THEN
        RAISE EXCEPTION 'events of % before % are not all sealed yet', source, before
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run audit-trail seal first: retention keeps the hash chain verifiable.';
    END IF;
    EXECUTE format($q$
        WITH noted AS (
            INSERT INTO audit.retention_gaps (seq, source, dropped, reason)
            SELECT s.seq, $7,
                   CASE WHEN bool_and(d.hit) THEN NULL
                        ELSE string_agg(CASE WHEN d.hit THEN '1' ELSE '0' END, '' ORDER BY d.k)::varbit
                   END,
                   $3
              FROM audit.seals AS s
             CROSS JOIN LATERAL (
                   SELECT k, EXISTS (SELECT FROM %s AS e
                                      WHERE e.txid = r.txid AND e.id = r.id
                                        AND e.occurred_at < $4) AS hit
                     FROM generate_series(0, s.events - 1) AS k,
                          LATERAL (SELECT (('x' || encode(substring(s.digests FROM k * 24 + 1 FOR 8), 'hex'))::bit(64)::bigint)::text::xid8 AS txid,
                                          ('x' || encode(substring(s.digests FROM k * 24 + 9 FOR 8), 'hex'))::bit(64)::bigint AS id) AS r
                  ) AS d
             WHERE (s.last_txid, s.last_id) >= ($1::xid8, $2::bigint)
               AND (s.first_txid, s.first_id) <= ($5::xid8, $6::bigint)
             GROUP BY s.seq
            HAVING bool_or(d.hit)
            RETURNING seq, dropped
        )
        SELECT encode(sha256(convert_to(coalesce(string_agg(seq || ':' || coalesce(dropped::text, '*'), ',' ORDER BY seq), ''), 'UTF8')), 'hex')
          FROM noted
    $q$, source) INTO digest USING lo.txid, lo.id, reason, before, hi.txid, hi.id,
                                   source::text;
    RETURN digest;
END
$$;

-- Dropping a partition counts its events after locking it, and the count must see every
-- event committed before the lock: only a READ COMMITTED transaction takes its snapshot after
-- the lock (REPEATABLE READ and SERIALIZABLE took theirs at their first statement).
CREATE FUNCTION audit.require_read_committed() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'audit.maintain and audit.purge drop partitions only in a READ COMMITTED transaction, not %',
                        upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Run them outside an explicit transaction, or with BEGIN ISOLATION LEVEL READ COMMITTED.';
    END IF;
END
$$;

-- How many events a partition holds and its first and last id, for the purge event that
-- records its drop: one pass over the partition (its time index, once vacuumed).
CREATE FUNCTION audit.count_events_partition(part regclass) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    counted jsonb;
BEGIN
    EXECUTE format('SELECT pg_catalog.jsonb_build_object(''rows'', count(*), ''first_id'', min(id),
                                                         ''last_id'', max(id)) FROM %s', part)
       INTO counted;
    RETURN counted;
END
$$;

-- Drops one partition of audit.events and records it as an audit_log/purge event.
CREATE FUNCTION audit.drop_events_partition(part regclass, reason text, counted jsonb DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    info    record;
    stats   record;
    gaps      text;
    summary   text;
    companion text;
    bound     text;
    details   jsonb;
    carried   bigint[];
    archive   text;
BEGIN
    PERFORM audit.require_maintenance();
    SELECT * INTO info FROM audit.partitions AS p
     WHERE p.partition = (SELECT format('%I.%I', n.nspname, c.relname)
                            FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                           WHERE c.oid = part);
    IF NOT FOUND OR info.is_default THEN
        RAISE EXCEPTION '% is not a partition of audit.events that can be dropped', part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Counted by the caller under the same lock (retention), or now: from the count to the
    -- drop no event can land in the partition, so the purge event names every one dropped.
    PERFORM audit.require_read_committed();
    IF counted IS NULL THEN
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', part);
        counted := audit.count_events_partition(part);
    END IF;
    SELECT (counted ->> 'rows')::bigint AS rows, (counted ->> 'first_id')::bigint AS first_id,
           (counted ->> 'last_id')::bigint AS last_id
      INTO stats;
    gaps := audit.note_retention_gaps(part, 'infinity', reason);
    carried := audit.carry_purge_events(part, 'infinity');
    archive := (SELECT a.events_sha256 FROM audit.archives AS a
                 WHERE a.partition = info.partition AND a.events_sha256 IS NOT NULL
                   AND a.rows = stats.rows
                 ORDER BY a.archived_at DESC LIMIT 1);
    -- The month's summaries go with it (a summary partition of another range, made before a
    -- change of interval, is cleared row by row instead).
    bound := pg_get_expr((SELECT p.relpartbound FROM pg_class AS p WHERE p.oid = part), part);
    EXECUTE format('DROP TABLE %s', part);
    FOREACH companion IN ARRAY audit.summary_tables() LOOP
        summary := (SELECT format('%I.%I', n.nspname, c.relname)
                      FROM pg_inherits AS i
                      JOIN pg_class AS c ON c.oid = i.inhrelid
                      JOIN pg_namespace AS n ON n.oid = c.relnamespace
                     WHERE i.inhparent = format('audit.%I', companion)::regclass
                       AND pg_get_expr(c.relpartbound, c.oid) = bound);
        IF summary IS NOT NULL THEN
            EXECUTE format('DROP TABLE %s', summary);
        ELSE
            EXECUTE format('DELETE FROM audit.%I AS s WHERE s.%I >= $1 AND s.%I < $2', companion,
                           CASE companion WHEN 'actor_days' THEN 'day' ELSE 'hour' END,
                           CASE companion WHEN 'actor_days' THEN 'day' ELSE 'hour' END)
              USING info.from_time, info.to_time;
        END IF;
    END LOOP;
    details := jsonb_strip_nulls(jsonb_build_object(
        'partition', info.partition, 'from', info.from_time, 'to', info.to_time,
        'before', info.to_time, 'rows', stats.rows, 'first_id', stats.first_id,
        'last_id', stats.last_id, 'reason', reason, 'retention_gaps_sha256', gaps,
        'archived', archive IS NOT NULL, 'archive_events_sha256', archive))
        || CASE WHEN cardinality(carried) > 0
                THEN jsonb_build_object('carried_events', to_jsonb(carried)) ELSE '{}' END;
    PERFORM audit.record_ddl_event('audit_log', 'purge', NULL, details);
    RETURN details;
END
$$;

-- A value as the summary keys it. Capture bounds actors and sources (2 kB) so that they fit
-- an index entry (about 2.7 kB); a longer value from before that bound, or put in by SQL
-- while the log was empty, is cut short here rather than stopping maintenance (a filter on
-- its full value then finds no hour for it).
--
-- It is called five times per event summarized, so it must be inlined into the query: no
-- SET clause (a function with one is called through the GUC save and restore each time, five
-- times slower), and every name, operators too, qualified instead. It runs with the
-- caller's rights (maintenance's), so a caller's search_path only ever misleads itself.
CREATE FUNCTION audit.summary_key(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.octet_length(value) OPERATOR(pg_catalog.<=) 2048 THEN value
                ELSE pg_catalog.left(value, 512) END
$$;

-- Counts the events committed since the last run into audit.event_summary: those with a
-- txid from the old watermark up to the oldest transaction still running (so none can still
-- commit below it, and each event is counted exactly once). Returns the events counted.
CREATE FUNCTION audit.summarize_events() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    low        xid8 := coalesce((SELECT s.watermark FROM audit.summary_state AS s), '0');
    high       xid8 := pg_snapshot_xmin(pg_current_snapshot());
    counted    bigint := 0;
    first_hour timestamptz;
    last_hour  timestamptz;
BEGIN
    PERFORM audit.require_maintenance();
    IF high <= low THEN
        RETURN 0;
    END IF;
    -- The hours the new events fall in bound the summary rows compared with their counts, so
    -- that only the partitions of those hours are read: an hour's run reads this month's, not
    -- every month's. (Not a temporary table of the counts: maintenance runs as a
    -- security-restricted operation, which may not create one.) Of their hours, not of
    -- occurred_at itself: min(occurred_at) would be planned as a walk of the time index from
    -- the oldest event, filtering on txid, through the whole log (145 s at 100M events).
    SELECT min(n.hour), max(n.hour) INTO first_hour, last_hour
      FROM (SELECT date_trunc('hour', e.occurred_at, 'UTC') AS hour FROM audit.events AS e
             WHERE e.txid >= low AND e.txid < high) AS n;
    -- One row per (hour, actor, source, entity, action, table): added to where it exists,
    -- inserted where not. (No unique index to do it with ON CONFLICT: the summary's indexes
    -- are per partition; maintenance runs one at a time, under its lock. Both parts see the
    -- rows as they were before the statement.)
    IF first_hour IS NOT NULL THEN
        WITH counts AS (
            SELECT date_trunc('hour', e.occurred_at, 'UTC') AS hour,
                   audit.summary_key(e.actor) AS actor, audit.summary_key(e.source) AS source,
                   audit.summary_key(e.entity) AS entity, audit.summary_key(e.action) AS action,
                   audit.summary_key(e.table_name) AS table_name, count(*) AS events
              FROM audit.events AS e
             WHERE e.txid >= low AND e.txid < high
             GROUP BY 1, 2, 3, 4, 5, 6
        ), updated AS (
            UPDATE audit.event_summary AS s
               SET events = s.events + c.events
              FROM counts AS c
             WHERE s.hour >= first_hour AND s.hour <= last_hour
               AND s.hour = c.hour AND s.actor = c.actor AND s.source = c.source
               AND s.entity = c.entity AND s.action = c.action
               AND s.table_name IS NOT DISTINCT FROM c.table_name
        ), inserted AS (
            INSERT INTO audit.event_summary (hour, actor, source, entity, action, table_name, events)
            SELECT c.* FROM counts AS c
             WHERE NOT EXISTS (SELECT FROM audit.event_summary AS s
                                WHERE s.hour >= first_hour AND s.hour <= last_hour
                                  AND s.hour = c.hour AND s.actor = c.actor
                                  AND s.source = c.source AND s.entity = c.entity
                                  AND s.action = c.action
                                  AND s.table_name IS NOT DISTINCT FROM c.table_name)
        ), kinds AS (
            SELECT c.hour, c.source, c.entity, c.action, c.table_name,
                   sum(c.events)::bigint AS events
              FROM counts AS c GROUP BY 1, 2, 3, 4, 5
        ), kinds_updated AS (
            UPDATE audit.kind_hours AS s
               SET events = s.events + k.events
              FROM kinds AS k
             WHERE s.hour >= first_hour AND s.hour <= last_hour
               AND s.hour = k.hour AND s.source = k.source AND s.entity = k.entity
               AND s.action = k.action AND s.table_name IS NOT DISTINCT FROM k.table_name
        ), kinds_inserted AS (
            INSERT INTO audit.kind_hours (hour, source, entity, action, table_name, events)
            SELECT k.* FROM kinds AS k
             WHERE NOT EXISTS (SELECT FROM audit.kind_hours AS s
                                WHERE s.hour >= first_hour AND s.hour <= last_hour
                                  AND s.hour = k.hour AND s.source = k.source
                                  AND s.entity = k.entity AND s.action = k.action
                                  AND s.table_name IS NOT DISTINCT FROM k.table_name)
        ), actors AS (
            SELECT date_trunc('day', c.hour, 'UTC') AS day, c.actor, sum(c.events)::bigint AS events
              FROM counts AS c GROUP BY 1, 2
        ), actors_updated AS (
            UPDATE audit.actor_days AS s
               SET events = s.events + a.events
              FROM actors AS a
             WHERE s.day >= date_trunc('day', first_hour, 'UTC') AND s.day <= last_hour
               AND s.day = a.day AND s.actor = a.actor
        ), actors_inserted AS (
            INSERT INTO audit.actor_days (day, actor, events)
            SELECT a.* FROM actors AS a
             WHERE NOT EXISTS (SELECT FROM audit.actor_days AS s
                                WHERE s.day >= date_trunc('day', first_hour, 'UTC')
                                  AND s.day <= last_hour
                                  AND s.day = a.day AND s.actor = a.actor)
        )
        SELECT coalesce(sum(c.events), 0) INTO counted FROM counts AS c;
    END IF;
    INSERT INTO audit.summary_state AS st (watermark) VALUES (high)
    ON CONFLICT (singleton) DO UPDATE SET watermark = excluded.watermark, summarized_at = now();
    RETURN counted;
END
$$;

-- The partitions audit.maintain() makes: for rows waiting in the default partition, and
-- `premake` intervals ahead. Returns them.
CREATE FUNCTION audit.make_partitions_ahead(every interval, premake int) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    start   timestamptz;
    lo      timestamptz;
    hi      timestamptz;
    other   record;
    created jsonb := '[]';
BEGIN
    FOR start IN
        SELECT DISTINCT audit.partition_start(d.occurred_at, every) FROM audit.events_default AS d
        UNION
        SELECT audit.partition_start(now(), every) + every * g
          FROM generate_series(0, premake) AS g
        ORDER BY 1
    LOOP
        lo := start;
        hi := start + every;
        -- Fit between existing partitions (they may have another length, after a change of
        -- interval, or be the range an upgrade from 0.1.0 attached).
        FOR other IN
            SELECT p.from_time, p.to_time FROM audit.partitions AS p
             WHERE NOT p.is_default AND p.from_time < hi AND p.to_time > lo
             ORDER BY p.from_time
        LOOP
            IF other.from_time <= lo THEN
                lo := greatest(lo, other.to_time);
            ELSE
                hi := least(hi, other.from_time);
            END IF;
        END LOOP;
        CONTINUE WHEN lo >= hi;
        created := created || audit.create_events_partition(lo, hi);
    END LOOP;
    RETURN created;
END
$$;

-- Why retention with archive_first may not drop a partition now (NULL: it may): its archive
-- record must hold the rows counted under its lock, and the latest check of the archive's
-- files, made lately (audit.record_archive_check), must have found them intact.
CREATE FUNCTION audit.archive_unfit_for_drop(part text, archived boolean, counted jsonb)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM audit.archives AS a
                    WHERE a.partition = part AND a.events_sha256 IS NOT NULL
                      AND a.rows = (counted ->> 'rows')::bigint) THEN
        RETURN CASE WHEN archived THEN 'changed since it was archived' ELSE 'not archived yet' END;
    END IF;
    IF NOT coalesce((
           SELECT (e.details ->> 'intact')::boolean
                  AND e.details ->> 'events_sha256' =
                      (SELECT a.events_sha256 FROM audit.archives AS a
                        WHERE a.partition = part
                        ORDER BY a.archived_at DESC LIMIT 1)
             FROM audit.events AS e
            WHERE e.entity = 'audit_log' AND e.action = 'archive_check'
              AND e.table_name = part
              AND e.occurred_at >= now() - audit.archive_check_window()
            ORDER BY e.id DESC LIMIT 1), false) THEN
        RETURN 'its archive''s files were not found intact by a check in the last '
               || audit.archive_check_window() || ' (audit-trail archive checks them)';
    END IF;
    RETURN NULL;
END
$$;

-- Retention: drops the partitions that ended before now() - keep, unless held or (with
-- archive_first) not safely archived. Returns {dropped, kept}, each partition kept with why.
CREATE FUNCTION audit.apply_retention(keep interval, archive_first boolean) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part    record;
    counted jsonb;
    unfit   text;
    dropped jsonb := '[]';
    kept    jsonb := '[]';
BEGIN
    FOR part IN
        SELECT p.* FROM audit.partitions AS p
         WHERE NOT p.is_default AND p.to_time <= now() - keep
         ORDER BY p.from_time
    LOOP
        IF part.held THEN
            kept := kept || jsonb_build_object('partition', part.partition,
                'reason', 'held: ' || (SELECT string_agg(h.name, ', ' ORDER BY h.name)
                                         FROM audit.legal_holds AS h
                                        WHERE h.released_at IS NULL
                                          AND h.from_time < part.to_time
                                          AND h.to_time > part.from_time));
            CONTINUE;
        END IF;
        BEGIN
            -- No event can land in the partition from here to its drop (a transaction still
            -- writing into it makes this wait, then give up until the next run), so what is
            -- counted once is what the archive must hold and what is dropped.
            PERFORM audit.require_read_committed();
            EXECUTE format('LOCK TABLE %s IN SHARE MODE', part.partition);
            counted := audit.count_events_partition(part.partition::regclass);
            unfit := CASE WHEN archive_first
                          THEN audit.archive_unfit_for_drop(part.partition, part.archived, counted)
                     END;
            IF unfit IS NOT NULL THEN
                -- Raised, not skipped, so that the block's lock is released with it: a kept
                -- partition stays open to writes for the rest of the run.
                RAISE EXCEPTION USING ERRCODE = 'AT001', MESSAGE = unfit;
            END IF;
            dropped := dropped || audit.drop_events_partition(part.partition::regclass,
                                                              'retention', counted);
        EXCEPTION
            WHEN SQLSTATE 'AT001' OR lock_not_available OR object_not_in_prerequisite_state THEN
                kept := kept || jsonb_build_object('partition', part.partition, 'reason', SQLERRM);
        END;
    END LOOP;
    RETURN jsonb_build_object('dropped', dropped, 'kept', kept);
END
$$;

-- What audit.maintain() does, as the extension's owner: partitions ahead (and for rows
-- waiting in the default partition), then, unless create_only, the summary and retention.
CREATE FUNCTION audit.run_maintenance(create_only boolean) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    policy     record;
    created    jsonb;
    summarized bigint;
    retention  jsonb := '{"dropped": [], "kept": []}';
BEGIN
    PERFORM audit.require_maintenance();
    -- Never stall capture behind a lock for long, nor wait for one without a bound: a busy
    -- step is retried by the next run.
    PERFORM set_config('lock_timeout', '10s', true);
    -- One maintenance at a time (a second waits for the first, at most lock_timeout), through
    -- a lock only the extension's own functions can take.
    PERFORM audit.take_service_lock('maintenance', true);
    -- A hold placed while retention runs protects its range too: no hold can be placed or
    -- released until this run ends (audit.hold and audit.release write audit.legal_holds,
    -- which this lock excludes), and one committed before it is seen by the look below.
    IF NOT create_only THEN
        LOCK TABLE audit.legal_holds IN SHARE MODE;
    END IF;
    SELECT coalesce(p.partition_interval, '1 month') AS every, coalesce(p.premake, 3) AS premake,
           p.keep, coalesce(p.archive_first, true) AS archive_first
      INTO policy
      FROM (SELECT) AS one LEFT JOIN audit.storage_policy AS p ON true;

    created := audit.make_partitions_ahead(policy.every, policy.premake);
    IF NOT create_only THEN
        summarized := audit.summarize_events();
        IF policy.keep IS NOT NULL THEN
            retention := audit.apply_retention(policy.keep, policy.archive_first);
        END IF;
    END IF;

    RETURN jsonb_build_object(
        'created', created, 'dropped', retention -> 'dropped', 'kept', retention -> 'kept',
        'retention', CASE WHEN policy.keep IS NULL THEN 'keep forever'
                          ELSE policy.keep::text END,
        'default_partition_rows', (SELECT count(*) FROM audit.events_default),
        'summarized_events', summarized);
END
$$;

CREATE FUNCTION audit.maintain() RETURNS jsonb
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_maintain';

COMMENT ON FUNCTION audit.maintain() IS
    'Create partitions ahead, move rows out of the default partition, apply retention; returns what it did.';

-- Drops whole partitions that end at or before `before` (for audit.purge, which deletes the
-- rest of the range row by row). Returns the rows dropped.
CREATE FUNCTION audit.drop_partitions_before(before timestamptz) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part  record;
    total bigint := 0;
BEGIN
    PERFORM audit.require_maintenance();
    -- One at a time with maintenance: both lock partitions to count them, then to drop them.
    PERFORM set_config('lock_timeout', '10s', true);
    PERFORM audit.take_service_lock('maintenance', true);
    FOR part IN
        SELECT p.partition FROM audit.partitions AS p
         WHERE NOT p.is_default AND p.to_time <= before
         ORDER BY p.from_time
    LOOP
        total := total + (audit.drop_events_partition(part.partition::regclass, 'purge') ->> 'rows')::bigint;
    END LOOP;
    RETURN total;
END
$$;

-- For `audit-trail archive`, as a member of audit_service: records that a partition was
-- written to an archive, after checking that the archive holds exactly its events: as many,
-- and the same ones (events_sha256, the digest the archive command computed from the rows it
-- wrote, must be the partition's own, recomputed here). Retention relies on no other record;
-- each one is an audit_log/archive event, which the alert rules see, and `verify --archive`
-- holds the archive to the events the drop relied on it for.
CREATE FUNCTION audit.record_archive(partition text, rows bigint, location text, manifest jsonb,
                                     events_sha256 text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    info   record;
    stats  record;
    digest text;
BEGIN
    SELECT * INTO info FROM audit.partitions AS p WHERE p.partition = record_archive.partition;
    IF NOT FOUND OR info.is_default THEN
        RAISE EXCEPTION '% is not a partition of audit.events', coalesce(partition, 'NULL')
            USING ERRCODE = 'data_exception';
    END IF;
    IF coalesce(location, '') = '' OR manifest IS NULL THEN
        RAISE EXCEPTION 'an archive needs a location and a manifest'
            USING ERRCODE = 'data_exception';
    END IF;
    EXECUTE format('SELECT count(*) AS rows, min(id) AS first_id, max(id) AS last_id FROM %s',
                   info.partition) INTO stats;
    -- The errors say what differs, never the partition's count or digest: a caller who
    -- could read them back would not need to have written the archive.
    IF stats.rows IS DISTINCT FROM record_archive.rows THEN
        RAISE EXCEPTION 'the archive of % does not hold as many events as the partition',
            info.partition
            USING ERRCODE = 'data_exception';
    END IF;
    digest := audit.events_digest(info.partition::regclass);
    IF digest IS DISTINCT FROM events_sha256 THEN
        RAISE EXCEPTION 'the archive of % does not hold the partition''s events (their digests differ)',
            info.partition
            USING ERRCODE = 'data_exception';
    END IF;
    INSERT INTO audit.archives (partition, from_time, to_time, rows, first_id, last_id,
                                location, manifest, events_sha256)
    VALUES (info.partition, info.from_time, info.to_time, stats.rows, stats.first_id,
            stats.last_id, location, manifest, digest);
    PERFORM audit.record_ddl_event('audit_log', 'archive', NULL,
        jsonb_build_object('partition', info.partition, 'from', info.from_time,
                           'to', info.to_time, 'rows', stats.rows, 'location', location,
                           'events_sha256', digest,
                           'manifest_sha256', encode(sha256(convert_to(manifest::text, 'UTF8')), 'hex')));
END
$$;

-- How recently `audit-trail archive` must have found an archive's files intact for retention
-- to drop the partition it holds: files can be lost, overwritten or altered long after they
-- were recorded, and a drop is the moment the log starts relying on them alone.
-- audit.archives_to_check() lists archives due within the same window, so a daily archive
-- run checks each one before its drop.
CREATE FUNCTION audit.archive_check_window() RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT interval '7 days'
$$;

-- For `audit-trail archive`: the latest archive record of every archived partition that
-- retention may drop within audit.archive_check_window(), oldest first, whose files the run
-- checks (audit.record_archive_check).
CREATE FUNCTION audit.archives_to_check()
    RETURNS TABLE (partition text, location text, manifest jsonb, events_sha256 text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.partition, a.location, a.manifest, a.events_sha256
      FROM audit.partitions AS p
      JOIN audit.storage_policy AS s ON s.keep IS NOT NULL AND s.archive_first
      CROSS JOIN LATERAL (SELECT * FROM audit.archives AS a
                           WHERE a.partition = p.partition AND a.events_sha256 IS NOT NULL
                           ORDER BY a.archived_at DESC LIMIT 1) AS a
     WHERE p.archived AND NOT p.is_default
       AND p.to_time <= now() - s.keep + audit.archive_check_window()
     ORDER BY p.from_time
$$;

-- For `audit-trail archive`, as a member of audit_service: records what a check of the files
-- of a partition's latest archive found: intact (as its manifest, recorded with it, says)
-- when `problem` is NULL, else the problem (missing, altered, another database's). Each check
-- is an audit_log/archive_check event naming the partition as its table. Retention drops an
-- archived partition only when the latest check within audit.archive_check_window() found
-- its archive intact.
CREATE FUNCTION audit.record_archive_check(partition text, events_sha256 text, location text,
                                           problem text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    latest text;
BEGIN
    SELECT a.events_sha256 INTO latest
      FROM audit.archives AS a
     WHERE a.partition = record_archive_check.partition
       AND EXISTS (SELECT FROM audit.partitions AS p WHERE p.partition = a.partition)
     ORDER BY a.archived_at DESC LIMIT 1;
    IF latest IS NULL OR latest IS DISTINCT FROM events_sha256 THEN
        RAISE EXCEPTION 'no archive of % holding these events is recorded',
            coalesce(partition, 'NULL')
            USING ERRCODE = 'data_exception';
    END IF;
    IF coalesce(location, '') = '' THEN
        RAISE EXCEPTION 'a checked archive needs its location' USING ERRCODE = 'data_exception';
    END IF;
    IF octet_length(problem) > 4096 THEN
        problem := left(problem, 4096);
    END IF;
    PERFORM audit.record_ddl_event('audit_log', 'archive_check', partition,
        jsonb_strip_nulls(jsonb_build_object('partition', partition,
                                             'events_sha256', events_sha256,
                                             'location', location, 'intact', problem IS NULL,
                                             'problem', problem)));
END
$$;

-- The digest of a partition's events that an archive record is bound to (extension/src/seals.rs).
CREATE FUNCTION audit.events_digest(part regclass) RETURNS text
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_events_digest';

-- Events of `source` (audit.events or a partition) of one entity and action that occurred
-- before `before`, each as the 17 values of its canonical encoding (docs/integrity.md), in
-- chain order (extension/src/seals.rs): how a purge event that a later drop removes is
-- carried into that drop's own purge event, so that the records explaining every drop
-- outlive all later ones.
CREATE FUNCTION audit.canonical_events(source regclass, entity text, action text,
                                       before timestamptz)
    RETURNS jsonb
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_canonical_events';

-- Carries the purge events about to be dropped with `source` before `before` into
-- audit.carried_events (each once, as the 17 values of its canonical encoding), and returns
-- their ids, which the drop's own purge event names. Their copies are not nested in it: a
-- purge event is carried once, whatever the drops after.
CREATE FUNCTION audit.carry_purge_events(source regclass, before timestamptz) RETURNS bigint[]
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH carried AS (
        INSERT INTO audit.carried_events (id, txid, canonical)
        SELECT (c.value ->> 0)::bigint, pg_catalog.xid8in(pg_catalog.textout(c.value ->> 2)),
               ARRAY(SELECT v FROM jsonb_array_elements_text(c.value) WITH ORDINALITY AS a(v, k)
                      ORDER BY k)
          FROM jsonb_array_elements(audit.canonical_events(source, 'audit_log', 'purge', before)) AS c
        RETURNING id
    )
    SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM carried;
$$;

-- The default partitions, made with their tables, get their indexes and guards here.
SELECT audit.setup_events_partition('audit.events_default');
SELECT audit.setup_summary_partition('audit.event_summary_default');
SELECT audit.setup_summary_partition('audit.kind_hours_default');
SELECT audit.setup_summary_partition('audit.actor_days_default');
