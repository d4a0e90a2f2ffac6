-- audit_trail: what `audit-trail archive` records and checks (docs/archive.md), and when
-- retention may rely on an archive. Runs after partitions.sql.

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
