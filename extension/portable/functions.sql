-- audit_trail, portable install: the functions the extension implements in C (and the few
-- SQL objects that depend on its triggers), in PL/pgSQL for a database where the extension
-- cannot be installed (docs/wal-capture.md). scripts/portable_script.py puts each definition
-- here in the place of the extension's own, so grants and comments that follow it apply.
-- Changes reach audit.events from the write-ahead log (`audit-trail capture`), not from
-- triggers; what the extension writes in the caller's transaction (tracking, application
-- events) is written here by audit.append_event.

-- Capture ------------------------------------------------------------------------------------

-- Not a trigger here: changes are read from the WAL.
CREATE FUNCTION audit.capture() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit.capture() is the extension''s capture trigger; this install captures from the WAL'
        USING ERRCODE = 'feature_not_supported';
END
$$;

-- Tracking a table: its settings, as the extension stores them; its rows in the publication
-- that `audit-trail capture` reads, and whole old rows in the WAL (REPLICA IDENTITY FULL), so
-- an update or a delete carries what the event shows. Runs as the install's owner (who must
-- be able to alter the table: owner of it, or a member of its owner); the caller must own the
-- table as well. Partitions are published through their root (publish_via_partition_root).
CREATE FUNCTION audit.track(
    target         regclass,
    entity         text,
    subject_column name   DEFAULT NULL,
    ignore_columns name[] DEFAULT '{}',
    redact_columns name[] DEFAULT '{}',
    tenant_column  name   DEFAULT NULL
) RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel       pg_class := (SELECT c FROM pg_class AS c WHERE c.oid = target);
    relation  text := (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class AS c
                         JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = target);
    columns   text[] := ARRAY(SELECT a.attname::text FROM pg_attribute AS a
                               WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
                               ORDER BY a.attnum);
    subject   text[];
    ignored   text[] := ARRAY(SELECT DISTINCT ON (c) c FROM unnest(ignore_columns::text[]) AS c);
    redacted  text[] := ARRAY(SELECT DISTINCT ON (c) c FROM unnest(redact_columns::text[]) AS c);
    previous  jsonb;
    missing   record;
BEGIN
    entity := btrim(entity);
    PERFORM audit.check_trackable(target, true);
    IF coalesce(entity, '') = '' THEN
        RAISE EXCEPTION 'entity must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF entity !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'entity must be a lowercase word: a letter, then letters, digits or _ (at most 63)'
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF entity = 'audit_log' THEN
        RAISE EXCEPTION 'entity "audit_log" is reserved for the audit log''s own events: track the table under another entity'
            USING ERRCODE = 'insufficient_privilege';
    ELSIF rel.relpersistence = 'u' THEN
        RAISE EXCEPTION '% is unlogged: its changes are not in the write-ahead log, so WAL capture cannot see them', relation
            USING ERRCODE = 'feature_not_supported';
    ELSIF rel.relispartition THEN
        RAISE EXCEPTION '% is a partition: track its partitioned table (its partitions are captured with it)', relation
            USING ERRCODE = 'feature_not_supported';
    ELSIF EXISTS (SELECT FROM pg_inherits AS i WHERE i.inhrelid = target OR i.inhparent = target)
          AND rel.relkind <> 'p' THEN
        RAISE EXCEPTION '% is in table inheritance: writes through another table would be captured under it', relation
            USING ERRCODE = 'feature_not_supported';
    END IF;
    SELECT x.parameter, x.c INTO missing
      FROM (SELECT 'subject_column' AS parameter, subject_column::text AS c
            UNION ALL SELECT 'tenant_column', tenant_column::text
            UNION ALL SELECT 'ignore_columns', unnest(ignored)
            UNION ALL SELECT 'redact_columns', unnest(redacted)) AS x
     WHERE x.c IS NOT NULL AND x.c <> ALL (columns)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'column "%" given in % does not exist in table %', missing.c, missing.parameter, relation
            USING ERRCODE = 'undefined_column';
    END IF;
    subject := CASE WHEN subject_column IS NOT NULL THEN ARRAY[subject_column::text]
                    ELSE ARRAY(SELECT a.attname::text
                                 FROM pg_index AS i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n),
                                      pg_attribute AS a
                                WHERE i.indrelid = target AND i.indisprimary
                                  AND a.attrelid = i.indrelid AND a.attnum = k.attnum
                                ORDER BY k.n) END;
    IF cardinality(subject) = 0 THEN
        RAISE EXCEPTION 'table % has no primary key: pass subject_column => ''<column>'' to audit.track', relation
            USING ERRCODE = 'invalid_object_definition';
    ELSIF tenant_column::text = ANY (redacted) THEN
        RAISE EXCEPTION 'column "%" of % cannot be both the tenant column and redacted: every event shows its organization',
                        tenant_column, relation USING ERRCODE = 'invalid_object_definition';
    ELSIF subject && redacted THEN
        RAISE EXCEPTION 'column "%" of % cannot be both the subject and redacted',
                        (SELECT s FROM unnest(subject) AS s WHERE s = ANY (redacted) LIMIT 1), relation
            USING ERRCODE = 'invalid_object_definition';
    END IF;
    previous := (SELECT jsonb_build_object('entity', t.entity, 'subject_columns', t.subject_columns,
                                           'ignore_columns', t.ignore_columns, 'redact_columns', t.redact_columns,
                                           'tenant_column', t.tenant_column)
                   FROM audit.tracked_tables AS t WHERE t.relid = target);
    INSERT INTO audit.tracked_tables AS t
           (relid, entity, subject_columns, ignore_columns, redact_columns, tracked_by, table_name,
            column_attnums, tenant_column)
    SELECT target, entity, subject, ignored, redacted, session_user, relation,
           coalesce((SELECT jsonb_object_agg(a.attname, a.attnum) FROM pg_attribute AS a
                      WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attname::text = ANY (subject || ignored || redacted || tenant_column::text)), '{}'),
           tenant_column
    ON CONFLICT (relid) DO UPDATE SET
           entity = excluded.entity, subject_columns = excluded.subject_columns,
           ignore_columns = excluded.ignore_columns, redact_columns = excluded.redact_columns,
           tracked_at = excluded.tracked_at, tracked_by = excluded.tracked_by,
           table_name = excluded.table_name, column_attnums = excluded.column_attnums,
           tenant_column = excluded.tenant_column;
    -- Every partition too: a partition's changes are decoded with its own replica identity.
    -- (One attached later needs it as well: an update without its old row stops capture.)
    PERFORM audit.set_replica_identity_full(t.relid)
       FROM (SELECT target AS relid UNION SELECT p.relid FROM pg_partition_tree(target) AS p) AS t
      WHERE (SELECT c.relkind FROM pg_class AS c WHERE c.oid = t.relid) IN ('r', 'p');
    IF NOT EXISTS (SELECT FROM pg_publication_rel AS p JOIN pg_publication AS b ON b.oid = p.prpubid
                    WHERE b.pubname = 'audit_trail' AND p.prrelid = target) THEN
        EXECUTE format('ALTER PUBLICATION audit_trail ADD TABLE %s', target);
    END IF;
    -- Tracking, and every change of its settings, is itself audited.
    PERFORM audit.append_event('audit_log', 'track', NULL, relation, jsonb_build_object(
        'table', relation, 'entity', entity, 'subject_columns', subject,
        'ignore_columns', ignored, 'redact_columns', redacted, 'tenant_column', tenant_column,
        'previous', previous, 'partitions', (SELECT count(*) FROM pg_inherits AS i WHERE i.inhparent = target),
        'privilege_fields_ignored', audit.privilege_fields_unwatched(columns, previous, entity, ignored),
        'privilege_fields_redacted', CASE WHEN entity = 'user' THEN to_jsonb(ARRAY(
            SELECT c FROM unnest(redacted) AS c
             WHERE c IN (@@contract:PRIVILEGE_FIELDS@@)
               AND NOT (coalesce(previous ->> 'entity', 'user') = 'user'
                        AND coalesce(previous -> 'redact_columns' ? c, false)))) ELSE '[]' END));
END
$$;

CREATE FUNCTION audit.set_replica_identity_full(target regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', target);
END
$$;

-- What the extension's track refuses, whoever asks: not a table, a temporary one, one of the
-- log's own; and, when `check_owner`, a table the caller does not own.
CREATE FUNCTION audit.check_trackable(target regclass, check_owner boolean) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel pg_class := (SELECT c FROM pg_class AS c WHERE c.oid = target);
BEGIN
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is % and cannot be tracked', target,
            CASE rel.relkind WHEN 'v' THEN 'a view' WHEN 'm' THEN 'a materialized view'
                             WHEN 'f' THEN 'a foreign table' WHEN 'S' THEN 'a sequence'
                             WHEN 'i' THEN 'an index' WHEN 'I' THEN 'an index'
                             WHEN 'c' THEN 'a composite type' ELSE 'not a table' END
            USING ERRCODE = 'wrong_object_type';
    ELSIF rel.relpersistence = 't' THEN
        RAISE EXCEPTION '% is a temporary table and cannot be tracked', target USING ERRCODE = 'feature_not_supported';
    ELSIF rel.relnamespace = 'audit'::regnamespace THEN
        RAISE EXCEPTION '% belongs to the audit schema and cannot be tracked', target USING ERRCODE = 'feature_not_supported';
    ELSIF check_owner AND NOT pg_has_role(session_user, rel.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to track or untrack it', target USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

-- The privilege columns a (re-)track stops showing (contract: privilege_fields_unwatched).
CREATE FUNCTION audit.privilege_fields_unwatched(columns text[], previous jsonb, entity text, ignored text[])
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(c ORDER BY n), '[]')
      FROM unnest(columns) WITH ORDINALITY AS u(c, n)
     WHERE c IN (@@contract:PRIVILEGE_FIELDS@@)
       AND coalesce(previous ->> 'entity', entity) = 'user'
       AND NOT coalesce(previous -> 'ignore_columns' ? c, false)
       AND NOT (entity = 'user' AND c = ANY (ignored))
$$;

CREATE FUNCTION audit.untrack(target regclass) RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audit.check_trackable(target, true);
    IF EXISTS (SELECT FROM pg_publication_rel AS p JOIN pg_publication AS b ON b.oid = p.prpubid
                WHERE b.pubname = 'audit_trail' AND p.prrelid = target) THEN
        EXECUTE format('ALTER PUBLICATION audit_trail DROP TABLE %s', target);
    END IF;
    DELETE FROM audit.tracked_tables AS t WHERE t.relid = target;
    IF NOT FOUND THEN
        RAISE NOTICE '% was not tracked', target;
        RETURN;
    END IF;
    -- Stopping capture is itself audited.
    PERFORM audit.append_event('audit_log', 'untrack', NULL, target::text, jsonb_build_object('table', target::text));
END
$$;

-- capturing: the table is in the publication and writes whole old rows to the WAL.
CREATE VIEW audit.tracked AS
SELECT s.relid           AS table_name,
       s.entity,
       s.subject_columns,
       s.ignore_columns,
       s.redact_columns,
       s.tenant_column,
       s.tracked_at,
       s.tracked_by,
       (EXISTS (SELECT FROM pg_catalog.pg_publication_tables AS p
                 WHERE p.pubname = 'audit_trail' AND format('%I.%I', p.schemaname, p.tablename)::regclass = s.relid)
        AND (SELECT c.relreplident = 'f' FROM pg_catalog.pg_class AS c WHERE c.oid = s.relid)) AS capturing
  FROM audit.tracked_tables AS s;

-- Attribution and application events --------------------------------------------------------

-- As the extension's: the settings for the rest of the transaction (SET LOCAL), and, for
-- `audit-trail capture`, a transactional message in the WAL before the changes it
-- attributes, with what only the writer's session knows. The message is signed with the
-- install's key (audit.wal_sign), which only the install's owner can read: anyone may emit a
-- logical message, so an unsigned one names nobody.
CREATE FUNCTION audit.set_actor(actor text, source text DEFAULT NULL, context jsonb DEFAULT NULL,
                                tenant text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_trigger_depth() > 0 THEN
        RAISE EXCEPTION 'audit.set_actor cannot be called from a trigger: only the writing transaction names who acts'
            USING ERRCODE = 'insufficient_privilege';
    ELSIF context IS NOT NULL AND jsonb_typeof(context) <> 'object' THEN
        RAISE EXCEPTION 'invalid audit.context: got %', left(context::text, 20)
            USING ERRCODE = 'invalid_text_representation';
    ELSIF context ?| ARRAY[@@contract:RESERVED_CONTEXT_KEYS@@] THEN
        RAISE EXCEPTION 'invalid audit.context: the key "%" is reserved: only capture records it',
            (SELECT k FROM jsonb_object_keys(context) AS k
              WHERE k IN (@@contract:RESERVED_CONTEXT_KEYS@@) LIMIT 1)
            USING ERRCODE = 'invalid_text_representation';
    ELSIF source = 'revert' THEN
        RAISE EXCEPTION 'source "revert" is reserved: only audit.revert records it'
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF octet_length(actor) > 2048 OR octet_length(source) > 2048 OR octet_length(tenant) > 2048 THEN
        RAISE EXCEPTION 'an actor, source or tenant is at most 2048 bytes long'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    PERFORM set_config('audit.actor', coalesce(actor, ''), true),
            set_config('audit.source', coalesce(source, ''), true),
            set_config('audit.context', coalesce(context::text, ''), true),
            set_config('audit.tenant', coalesce(tenant, ''), true);
    PERFORM pg_logical_emit_message(true, 'audit_trail', audit.wal_sign(jsonb_build_object(
        'actor', nullif(actor, ''), 'source', nullif(source, ''), 'context', context,
        'tenant', nullif(tenant, ''),
        'db_user', session_user,
        'authenticated', audit.login_role(),
        'client_addr', inet_client_addr(),
        'application_name', nullif(current_setting('application_name'), ''),
        'statement_time', statement_timestamp(),
        'xid', pg_current_xact_id())));
END
$$;

CREATE FUNCTION audit.log_event(
    entity     text,
    action     text,
    subject_id text  DEFAULT NULL,
    details    jsonb DEFAULT NULL
) RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    admin boolean := pg_has_role(session_user, 'audit_admin', 'USAGE');
    limit_bytes bigint := coalesce(nullif(current_setting('audit.max_event_bytes', true), '')::bigint, 65536);
BEGIN
    entity := btrim(coalesce(entity, ''));
    action := btrim(coalesce(action, ''));
    IF entity = '' THEN
        RAISE EXCEPTION 'entity must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF entity !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'entity must be a lowercase word: a letter, then letters, digits or _ (at most 63)'
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF action !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'action "%" must be a lowercase word: a letter, then letters, digits or _ (at most 63)', action
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF action IN (@@contract:CAPTURED_ACTIONS@@, @@contract:EXTENSION_ACTIONS@@)
          OR entity = 'audit_log' AND action IN (@@contract:AUDIT_LOG_RECORDED_ACTIONS@@) THEN
        RAISE EXCEPTION 'action "%" is reserved for events the audit log records itself', action
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF octet_length(subject_id) > 2048 THEN
        RAISE EXCEPTION 'subject id of % bytes is longer than the limit of 2048 bytes', octet_length(subject_id)
            USING ERRCODE = 'program_limit_exceeded', HINT = 'A subject id names one entity, as a key does.';
    ELSIF NOT admin AND entity = 'audit_log' THEN
        RAISE EXCEPTION 'only members of audit_admin may record audit_log events' USING ERRCODE = 'insufficient_privilege';
    ELSIF NOT admin AND coalesce(octet_length(subject_id), 0) + coalesce(pg_column_size(details), 0) > limit_bytes THEN
        RAISE EXCEPTION 'application event of % bytes is larger than audit.max_event_bytes (% bytes)',
            coalesce(octet_length(subject_id), 0) + coalesce(pg_column_size(details), 0), limit_bytes
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Record what the event is about, not the data itself; a superuser may raise the limit.';
    END IF;
    RETURN audit.append_event(entity, action, subject_id, NULL, details);
END
$$;

-- Append-only storage -------------------------------------------------------------------------

-- Refuses UPDATE, DELETE and TRUNCATE of the log, from everyone but retention (a transaction-
-- local mark only the install's owner's maintenance sets; the owner could drop the trigger
-- anyway: the seal chain is what proves the log unchanged).
CREATE FUNCTION audit.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND audit.maintenance_in_progress() THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Rows enter the log only through the install's own functions, which run as its owner and
-- mark the transaction while they write; and, as with the extension, by a restore into a log
-- that is not live yet.
CREATE FUNCTION audit.refuse_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    filled boolean;
BEGIN
    IF current_setting('audit.appending', true) = 'on'
       AND current_user = (SELECT c.relowner::regrole::name FROM pg_class AS c WHERE c.oid = 'audit.events'::regclass) THEN
        RETURN NULL;
    END IF;
    IF coalesce((SELECT s.live FROM audit.log_state AS s), true) THEN
        RAISE EXCEPTION 'the audit log is live: rows cannot be added to %.% by INSERT or COPY',
            TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Restore a backup of the audit log into a new database, where audit.events starts empty.';
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT FROM %I.%I)', TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO filled;
    IF filled THEN
        RAISE EXCEPTION '%.% already holds events: rows cannot be added to it by INSERT or COPY',
            TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Restore a backup of the audit log into a new database, where audit.events starts empty.';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION audit.capture_change_in_progress() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT false $$;

CREATE FUNCTION audit.maintenance_in_progress() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT current_setting('audit.maintaining', true) = 'on'
       AND current_user = (SELECT c.relowner::regrole::name FROM pg_class AS c WHERE c.oid = 'audit.events'::regclass)
$$;

-- DDL hooks: event triggers need a superuser, so this install has none. What they keep in
-- step with the extension (renamed and dropped columns and tables) is found by `audit-trail
-- capture` in the relation messages of the WAL instead.
-- pg_ddl_command is a type only C functions may take: these two helpers of the event
-- triggers cannot exist here, and nothing but those triggers' functions names them.
-- portable: leave out audit.ddl_attached_partition
-- portable: leave out audit.ddl_changes_table

CREATE FUNCTION audit.record_ddl_event(entity text, action text, table_name text, details jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN audit.append_event(entity, action, NULL, table_name, details);
END
$$;

CREATE FUNCTION audit.on_ddl_command_start() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
END
$$;


-- Not in this install yet (docs/wal-capture.md, "Status"): maintenance and retention, and undo
-- still run only in the extension. Each refuses by name rather than
-- doing less than its name says.

CREATE FUNCTION audit.maintain() RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit.maintain() is not available in a WAL capture install yet'
        USING ERRCODE = 'feature_not_supported';
END
$$;

CREATE FUNCTION audit.purge(older_than timestamptz) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit.purge() is not available in a WAL capture install yet'
        USING ERRCODE = 'feature_not_supported';
END
$$;

-- The search's page SQL, as the contract's planner writes it for a log maintenance has not
-- summarized (contract/src/search.rs, plain_page_sql): one walk of the (occurred_at, id)
-- index, filtering as it goes. This install has no maintenance yet, so no summary to plan
-- with. The SQL names the search's arguments by position ($1 since ... $13 except_actions),
-- never a value. A test compares it with the extension's planner for every shape.
CREATE FUNCTION audit.search_plan(
    since          boolean,
    until          boolean,
    actors         text[],
    entities       boolean,
    actions        boolean,
    except_actions boolean,
    sources        boolean,
    subject        boolean,
    table_name     boolean,
    tenant         boolean,
    direction      text,
    summarized     boolean
) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- The 1-based positions of the distinct names in actors.
    distinct_at int[] := ARRAY(SELECT i FROM generate_subscripts(actors, 1) AS i
                                WHERE NOT EXISTS (SELECT FROM generate_subscripts(actors, 1) AS j
                                                   WHERE j < i AND actors[j] IS NOT DISTINCT FROM actors[i])
                                ORDER BY i);
    clauses text[] := '{}';
    ord text := CASE direction WHEN 'after' THEN 'ASC' ELSE 'DESC' END;
BEGIN
    IF direction IS NOT NULL AND direction NOT IN ('newest', 'before', 'after') THEN
        RAISE EXCEPTION 'direction must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since THEN clauses := clauses || 'occurred_at >= $1'::text; END IF;
    IF until THEN clauses := clauses || 'occurred_at < $2'::text; END IF;
    IF cardinality(distinct_at) = 1 THEN
        clauses := clauses || format('actor = $3[%s]', distinct_at[1]);
    ELSIF cardinality(distinct_at) > 1 THEN
        clauses := clauses || 'actor = ANY ($3)'::text;
    END IF;
    IF entities THEN clauses := clauses || 'entity = ANY ($4)'::text; END IF;
    IF actions THEN clauses := clauses || 'action = ANY ($5)'::text; END IF;
    IF except_actions THEN clauses := clauses || 'action <> ALL ($13)'::text; END IF;
    IF table_name THEN clauses := clauses || 'table_name = $8'::text; END IF;
    IF sources THEN clauses := clauses || 'source = ANY ($6)'::text; END IF;
    IF subject THEN clauses := clauses || 'subject_id = $7'::text; END IF;
    IF tenant THEN clauses := clauses || 'tenant = $9'::text; END IF;
    IF direction = 'before' THEN
        clauses := clauses || '(occurred_at, id) < ($11, $12)'::text;
    ELSIF direction = 'after' THEN
        clauses := clauses || '(occurred_at, id) > ($11, $12)'::text;
    END IF;
    RETURN 'SELECT occurred_at, id FROM audit.events'
        || CASE WHEN cardinality(clauses) > 0 THEN ' WHERE ' || array_to_string(clauses, ' AND ') ELSE '' END
        || format(' ORDER BY occurred_at %s, id %s LIMIT $10', ord, ord);
END
$$;

CREATE FUNCTION audit.revert(event_id bigint, skip_redacted boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit.revert() is not available in a WAL capture install yet'
        USING ERRCODE = 'feature_not_supported';
END
$$;

CREATE FUNCTION audit.revert_transaction(txid xid8, skip_redacted boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit.revert_transaction() is not available in a WAL capture install yet'
        USING ERRCODE = 'feature_not_supported';
END
$$;
