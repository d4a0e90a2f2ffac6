-- audit_trail: the summary of the events the dashboard reads (docs/storage.md). Runs after
-- retention.sql; audit.maintain() (maintenance.sql) brings it up to date.

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

-- Which events belong to each organization: one row per summarized event that names one,
-- by (tenant, occurred_at, id), so that one organization's newest page is an index walk
-- (audit.search). Made by maintenance with the summary rather than as an index of
-- audit.events, which every captured event would pay for in its transaction. Keyed by the
-- event's hour like the other summaries, so a month's rows live and die with its events.
CREATE TABLE audit.tenant_events (
    hour        timestamptz NOT NULL,
    tenant      text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    id          bigint      NOT NULL
) PARTITION BY RANGE (hour);
CREATE TABLE audit.tenant_events_default PARTITION OF audit.tenant_events DEFAULT;

COMMENT ON TABLE audit.tenant_events IS
    'The events of each organization, for every event counted in audit.event_summary that names one.';
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
AS $$ SELECT ARRAY['event_summary', 'kind_hours', 'actor_days', 'tenant_events'] $$;

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
    ELSIF parent = 'tenant_events' THEN
        EXECUTE format('CREATE INDEX %I ON %s (tenant, occurred_at, id)',
                       name || '_tenant_occurred_at_id_idx', part);
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
CREATE TRIGGER tenant_events_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.tenant_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.tenant_events ENABLE ALWAYS TRIGGER tenant_events_maintained;
CREATE TRIGGER summary_state_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.summary_state
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.summary_state ENABLE ALWAYS TRIGGER summary_state_maintained;

SELECT pg_catalog.pg_extension_config_dump('audit.event_summary_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.kind_hours_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.actor_days_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.tenant_events_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.summary_state', '');

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
        ), tenants_inserted AS (
            INSERT INTO audit.tenant_events (hour, tenant, occurred_at, id)
            SELECT date_trunc('hour', e.occurred_at, 'UTC'), e.tenant, e.occurred_at, e.id
              FROM audit.events AS e
             WHERE e.txid >= low AND e.txid < high AND e.tenant IS NOT NULL
        )
        SELECT coalesce(sum(c.events), 0) INTO counted FROM counts AS c;
    END IF;
    INSERT INTO audit.summary_state AS st (watermark) VALUES (high)
    ON CONFLICT (singleton) DO UPDATE SET watermark = excluded.watermark, summarized_at = now();
    RETURN counted;
END
$$;

-- The default partitions, made with their tables, get their indexes and guards here.
SELECT audit.setup_summary_partition('audit.event_summary_default');
SELECT audit.setup_summary_partition('audit.kind_hours_default');
SELECT audit.setup_summary_partition('audit.actor_days_default');
SELECT audit.setup_summary_partition('audit.tenant_events_default');
