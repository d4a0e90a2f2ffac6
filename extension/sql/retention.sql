-- audit_trail: retention (docs/storage.md). Runs after stream.sql.
--
-- audit.events is partitioned by time (partitions.sql); audit.maintain() (maintenance.sql)
-- applies the policy here by dropping whole partitions, never those a legal hold covers, and
-- (by default) only once they are archived (archive.sql). Every change to the policy, every
-- hold and release, every archive and every drop is an audit_log event. The records
-- retention relies on and leaves behind are kept here: the archives, the notes of which
-- sealed events were dropped, and the purge events a later drop removed.

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
-- vouched for (docs/integrity.md): each as the values of its canonical encoding (17, or 18
-- with an organization), which `audit-trail verify` hashes and holds to the seal that listed it. Only the drops write it.
CREATE TABLE audit.carried_events (
    id         bigint      PRIMARY KEY,
    txid       xid8        NOT NULL,
    canonical  text[]      NOT NULL CHECK (pg_catalog.cardinality(canonical) IN (17, 18)),
    carried_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE audit.carried_events IS
    'Purge events that a later drop removed, in their canonical encoding, for verify.';

COMMENT ON TABLE audit.retention_gaps IS
    'Sealed events dropped by retention or audit.purge, per seal (one bit per event, NULL for all).';

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

-- Drops ---------------------------------------------------------------------------------------

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
    PERFORM audit.require_maintenance();
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

-- Events of `source` (audit.events or a partition) of one entity and action that occurred
-- before `before`, each as the values of its canonical encoding (docs/integrity.md), in
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
-- audit.carried_events (each once, as the values of its canonical encoding), and returns
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
