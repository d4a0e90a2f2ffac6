-- audit_trail: audit.maintain() (docs/storage.md): partitions ahead, the summary, retention.
-- Runs after archive.sql, last of the lifetime's files.

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
    PERFORM audit.require_maintenance();
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
