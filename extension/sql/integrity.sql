-- audit_trail: tamper evidence (docs/integrity.md). Runs after api.sql.
--
-- The seals of the hash chain over committed events, and the public keys they name. The
-- private key never comes here: `audit-trail seal` signs outside the database, and
-- `audit-trail verify` trusts only the key file it is given, so a superuser who rewrites
-- these tables is caught, not trusted.

-- The product's services take turns through locks only they can take (0.2.0 used advisory
-- locks with fixed keys, which any role that can connect may hold: one with no grants
-- stopped sealing, archiving and maintenance). extension/src/service_lock.rs takes a lock on
-- the extension itself, one per service, which no SQL statement of a user can take; it is
-- held until the transaction ends, needs no transaction id (so it holds back no change
-- stream), and shows in pg_locks as an object lock on pg_extension. `wait`: wait for it (at
-- most lock_timeout); else return false at once when another session holds it.
CREATE FUNCTION audit.take_service_lock(service text, wait boolean DEFAULT false) RETURNS boolean
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_take_service_lock';

CREATE TABLE audit.seal_keys (
    key_id        text        PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    public_key    bytea       NOT NULL CHECK (length(public_key) = 32),
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text        NOT NULL DEFAULT session_user
);

COMMENT ON TABLE audit.seal_keys IS
    'Public keys of the sealers, for reference: verify trusts only the key file it is given.';

CREATE TABLE audit.seals (
    seq        bigint      PRIMARY KEY CHECK (seq > 0),
    first_txid xid8        NOT NULL,
    first_id   bigint      NOT NULL,
    last_txid  xid8        NOT NULL,
    last_id    bigint      NOT NULL,
    events     integer     NOT NULL CHECK (events > 0),
    total      bigint      NOT NULL CHECK (total >= events),
    prev_head  bytea       NOT NULL CHECK (length(prev_head) = 32),
    batch_root bytea       NOT NULL CHECK (length(batch_root) = 32),
    head       bytea       NOT NULL CHECK (length(head) = 32),
    -- txid, id and the first 8 bytes of each event's hash: 24 bytes an event.
    digests    bytea       NOT NULL CHECK (length(digests) = 24 * events),
    key_id     text        NOT NULL,
    checkpoint text        NOT NULL,
    signature  bytea       NOT NULL CHECK (length(signature) = 64),
    sealed_at  timestamptz NOT NULL DEFAULT now(),
    sealed_by  text        NOT NULL DEFAULT session_user
);

COMMENT ON TABLE audit.seals IS
    'Append-only hash chain over committed events: one signed seal per batch (docs/integrity.md).';

-- Append-only, like audit.events: a seal or key that could be changed would prove nothing
-- (verify would catch the change, but it should not be one UPDATE away).
CREATE FUNCTION audit.refuse_seal_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit.% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER seals_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.seals ENABLE ALWAYS TRIGGER seals_append_only;
CREATE TRIGGER seal_keys_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.seal_keys
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.seal_keys ENABLE ALWAYS TRIGGER seal_keys_append_only;

-- The one way a sealing key is registered, by a superuser (whoever registers a key decides
-- whose seals count: a role that could would seal with a key of its own, and every later
-- verify would report seals by a key the auditor does not hold); recorded as an
-- audit_log/seal_key event, which the alert rules see. Returns the key id.
CREATE FUNCTION audit.register_seal_key(public_key bytea) RETURNS text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id     text;
    stored bytea;
BEGIN
    IF public_key IS NULL OR length(public_key) <> 32 THEN
        RAISE EXCEPTION 'a sealing key is a 32-byte Ed25519 public key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    id := left(encode(sha256(public_key), 'hex'), 16);
    SELECT k.public_key INTO stored FROM audit.seal_keys AS k WHERE k.key_id = id;
    IF FOUND THEN
        IF stored <> public_key THEN
            RAISE EXCEPTION 'the database holds another public key under key id %', id
                USING ERRCODE = 'unique_violation';
        END IF;
        RETURN id;
    END IF;
    INSERT INTO audit.seal_keys (key_id, public_key) VALUES (id, public_key);
    PERFORM audit.record_ddl_event('audit_log', 'seal_key', NULL,
        jsonb_build_object('key_id', id, 'public_key', encode(public_key, 'hex')));
    RETURN id;
END
$$;

-- The one way a seal is stored: extension/src/seals.rs checks that it is the next link of
-- the chain, signed by a registered key, over exactly the committed events after the last
-- seal (recomputing their hashes), before it inserts the row. Returns the seal's number.
CREATE FUNCTION audit.add_seal(checkpoint text, key_id text, signature bytea, digests bytea)
    RETURNS bigint
    LANGUAGE c
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_add_seal';

SELECT pg_catalog.pg_extension_config_dump('audit.seal_keys', '');
SELECT pg_catalog.pg_extension_config_dump('audit.seals', '');

-- States of the audit schema that could make one reader see other rows than another (row
-- security, policies, rules, view options, triggers added or disabled, ...), for
-- audit.integrity and the dashboard. The query is contract/src/schema.rs' FINDINGS word for
-- word (a test checks it); `audit-trail verify` runs its own copy, not this function, which
-- whoever changed the schema could have changed too.
CREATE FUNCTION audit.schema_findings() RETURNS TABLE (kind text, object text, detail text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
WITH ext AS (
    SELECT e.oid, e.extowner FROM pg_catalog.pg_extension AS e WHERE e.extname = 'audit_trail'
    UNION ALL
    -- A WAL capture install (docs/wal-capture.md) is no extension: its owner owns the schema.
    SELECT NULL::pg_catalog.oid, n.nspowner FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname OPERATOR(pg_catalog.=) 'audit'
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension AS e WHERE e.extname = 'audit_trail')
       AND pg_catalog.to_regclass('audit.capture_progress') IS NOT NULL
), ns AS (
    SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'audit'
), member AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend AS d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.refobjid = ext.oid AND d.deptype = 'e'
    UNION ALL
    -- Nothing records a WAL capture install's objects: they are the schema's functions and
    -- relations, but for indexes and the partitions its maintenance adds (not the defaults).
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid
      FROM pg_catalog.pg_class AS c, ext, ns
     WHERE ext.oid IS NULL AND c.relnamespace = ns.oid AND c.relkind NOT IN ('i', 'I')
       AND (NOT c.relispartition
            OR pg_catalog.pg_get_expr(c.relpartbound, c.oid) OPERATOR(pg_catalog.=) 'DEFAULT')
    UNION ALL
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid
      FROM pg_catalog.pg_proc AS p, ext, ns
     WHERE ext.oid IS NULL AND p.pronamespace = ns.oid
), rel AS (
    SELECT c.oid, 'audit.' OPERATOR(pg_catalog.||) c.relname AS name, c.relkind, c.relowner,
           c.relrowsecurity, c.relforcerowsecurity, c.relam, c.reloptions, c.relispartition,
           EXISTS (SELECT FROM member AS m
                    WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND m.objid = c.oid) AS is_member
      FROM pg_catalog.pg_class AS c, ns
     WHERE c.relnamespace = ns.oid
), used AS (
    SELECT ARRAY['pg_catalog.text', 'pg_catalog.jsonb', 'pg_catalog.xid8', 'pg_catalog.int8',
                 'pg_catalog.int4', 'pg_catalog.numeric', 'pg_catalog.inet', 'pg_catalog._text',
                 'pg_catalog.timestamptz', 'pg_catalog.varbit', 'pg_catalog.name',
                 'pg_catalog.bytea', 'pg_catalog.bool', 'pg_catalog.cstring',
                 'pg_catalog.regclass']::pg_catalog.regtype[]::pg_catalog.oid[] AS types
), guard AS (
    SELECT p.oid FROM pg_catalog.pg_proc AS p, ns
     WHERE p.pronamespace = ns.oid
       AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['refuse_change', 'refuse_insert',
           'refuse_seal_change', 'refuse_summary_change', 'refuse_log_state_change']::pg_catalog.name[])
)
SELECT 'extension_missing', 'audit_trail', 'the extension is not installed'
 WHERE NOT EXISTS (SELECT FROM ext)
UNION ALL
SELECT 'row_security', r.name, 'row-level security is enabled on it'
  FROM rel AS r WHERE r.relrowsecurity OR r.relforcerowsecurity
UNION ALL
SELECT 'policy', r.name, 'policy ' OPERATOR(pg_catalog.||) p.polname
  FROM pg_catalog.pg_policy AS p JOIN rel AS r ON r.oid = p.polrelid
UNION ALL
SELECT 'rule', r.name, 'rule ' OPERATOR(pg_catalog.||) w.rulename
  FROM pg_catalog.pg_rewrite AS w JOIN rel AS r ON r.oid = w.ev_class
 WHERE NOT (w.rulename OPERATOR(pg_catalog.=) '_RETURN' AND r.relkind IN ('v', 'm'))
UNION ALL
SELECT 'view_option', r.name, 'options ' OPERATOR(pg_catalog.||) r.reloptions::text
  FROM rel AS r WHERE r.relkind IN ('v', 'm') AND r.reloptions IS NOT NULL
UNION ALL
SELECT 'owner', r.name, 'owned by ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_userbyid(r.relowner)
  FROM rel AS r, ext WHERE r.relowner OPERATOR(pg_catalog.<>) ext.extowner
UNION ALL
SELECT 'access_method', r.name, 'stored by access method ' OPERATOR(pg_catalog.||) a.amname
  FROM rel AS r JOIN pg_catalog.pg_am AS a ON a.oid = r.relam
 WHERE r.relkind = 'r' AND a.amname OPERATOR(pg_catalog.<>) 'heap'
UNION ALL
SELECT 'foreign_table', r.name, 'a foreign table' FROM rel AS r WHERE r.relkind = 'f'
UNION ALL
SELECT 'unexpected_object', r.name, 'not made by the extension or its maintenance'
  FROM rel AS r
 WHERE NOT r.is_member
   AND NOT (r.relkind = 'r' AND r.relispartition)
   AND NOT (r.relkind IN ('i', 'I') AND EXISTS (
           SELECT FROM pg_catalog.pg_index AS i JOIN rel AS t ON t.oid = i.indrelid
            WHERE i.indexrelid = r.oid AND (t.is_member OR t.relispartition)))
UNION ALL
SELECT 'trigger', r.name, 'trigger ' OPERATOR(pg_catalog.||) t.tgname
  FROM pg_catalog.pg_trigger AS t JOIN rel AS r ON r.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND t.tgfoid NOT IN (SELECT g.oid FROM guard AS g)
UNION ALL
SELECT 'trigger_disabled', r.name, 'trigger ' OPERATOR(pg_catalog.||) t.tgname
       OPERATOR(pg_catalog.||) ' is not enabled ALWAYS'
  FROM pg_catalog.pg_trigger AS t JOIN rel AS r ON r.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND t.tgfoid IN (SELECT g.oid FROM guard AS g)
   AND t.tgenabled OPERATOR(pg_catalog.<>) 'A'
UNION ALL
SELECT 'event_trigger_disabled', e.evtname::text, 'the event trigger is disabled'
  FROM pg_catalog.pg_event_trigger AS e JOIN member AS m
    ON m.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass AND m.objid = e.oid
 WHERE e.evtenabled = 'D'
UNION ALL
SELECT CASE WHEN m.objid IS NULL THEN 'unexpected_object' ELSE 'owner' END,
       'function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::text,
       CASE WHEN m.objid IS NULL THEN 'not made by the extension'
            ELSE 'owned by ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_userbyid(p.proowner) END
  FROM pg_catalog.pg_proc AS p JOIN ns ON p.pronamespace = ns.oid
  LEFT JOIN member AS m ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND m.objid = p.oid
  CROSS JOIN ext
 WHERE m.objid IS NULL OR p.proowner OPERATOR(pg_catalog.<>) ext.extowner
UNION ALL
SELECT 'inheritance', i.inhrelid::pg_catalog.regclass::text,
       'inherits from ' OPERATOR(pg_catalog.||) r.name
  FROM pg_catalog.pg_inherits AS i JOIN rel AS r ON r.oid = i.inhparent
  JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
 WHERE NOT c.relispartition
UNION ALL
SELECT 'partition', t.relid::pg_catalog.regclass::text,
       CASE WHEN c.relnamespace OPERATOR(pg_catalog.<>) ns.oid
            THEN 'a partition of ' OPERATOR(pg_catalog.||) root OPERATOR(pg_catalog.||)
                 ' outside the audit schema'
            ELSE 'a partition of ' OPERATOR(pg_catalog.||) root OPERATOR(pg_catalog.||)
                 ' owned by ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_userbyid(c.relowner) END
  FROM ns, ext,
       (VALUES ('audit.events'), ('audit.event_summary'), ('audit.kind_hours'),
               ('audit.actor_days')) AS p(root),
       LATERAL pg_catalog.pg_partition_tree(pg_catalog.to_regclass(p.root)) AS t
  JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
 WHERE t.level > 0
   AND (c.relnamespace OPERATOR(pg_catalog.<>) ns.oid
        OR c.relowner OPERATOR(pg_catalog.<>) ext.extowner)
UNION ALL
SELECT 'privileges', r.name, 'privileges granted on it: ' OPERATOR(pg_catalog.||) c.relacl::text
  FROM rel AS r JOIN pg_catalog.pg_class AS c ON c.oid = r.oid
 WHERE r.relispartition AND NOT r.is_member
   AND EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) AS a
                WHERE a.grantee OPERATOR(pg_catalog.<>) c.relowner)
UNION ALL
SELECT 'privileges', 'schema audit', 'default privileges for the schema''s new objects'
  FROM pg_catalog.pg_default_acl AS d, ns WHERE d.defaclnamespace = ns.oid
UNION ALL
SELECT 'user_cast', pg_catalog.format_type(k.castsource, NULL) OPERATOR(pg_catalog.||) ' AS '
       OPERATOR(pg_catalog.||) pg_catalog.format_type(k.casttarget, NULL),
       'a cast defined by a user, used in place of the built-in conversion'
  FROM pg_catalog.pg_cast AS k, used
 WHERE k.oid >= 16384
   AND (k.castsource OPERATOR(pg_catalog.=) ANY (used.types)
        OR k.casttarget OPERATOR(pg_catalog.=) ANY (used.types))
UNION ALL
SELECT 'subscription', s.srrelid::pg_catalog.regclass::text,
       'written by a logical replication subscription'
  FROM pg_catalog.pg_subscription_rel AS s JOIN pg_catalog.pg_class AS c ON c.oid = s.srrelid, ns
 WHERE c.relnamespace = ns.oid
ORDER BY 1, 2, 3
$$;

-- How far the log is sealed, for admins and the dashboard's status line.
CREATE VIEW audit.integrity AS
WITH last AS (
    SELECT seq, last_txid, last_id, total, key_id, sealed_at
      FROM audit.seals
     ORDER BY seq DESC
     LIMIT 1
), unsealed AS (
    SELECT pg_catalog.count(*) AS events, pg_catalog.min(e.occurred_at) AS oldest
      FROM audit.events AS e
     WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                     ('0'::xid8, 0::bigint))
)
SELECT (SELECT l.seq FROM last AS l)                   AS last_seal,
       (SELECT l.sealed_at FROM last AS l)             AS last_sealed_at,
       (SELECT l.last_id FROM last AS l)               AS sealed_through_id,
       (SELECT e.occurred_at
          FROM audit.events AS e, last AS l
         WHERE e.txid = l.last_txid AND e.id = l.last_id) AS sealed_through_time,
       coalesce((SELECT l.total FROM last AS l), 0)    AS sealed_events,
       u.events                                        AS unsealed_events,
       pg_catalog.now() - u.oldest                     AS oldest_unsealed_age,
       (SELECT l.key_id FROM last AS l)                AS active_key,
       -- The oldest unsealed event is older than audit.seal_stall_after (15 min by default;
       -- the setting reads as an interval whether or not the library is loaded).
       coalesce(pg_catalog.now() - u.oldest
                > coalesce(NULLIF(pg_catalog.current_setting('audit.seal_stall_after', true), '')::interval,
                           '15 minutes'), false) AS sealing_stalled,
       ARRAY(SELECT f.kind || ': ' || f.object || ': ' || f.detail
               FROM audit.schema_findings() AS f)     AS schema_findings
  FROM unsealed AS u;

COMMENT ON VIEW audit.integrity IS
    'Sealed through which event and time, events waiting to be sealed and whether sealing has stalled, the last seal and its key, and what in the audit schema no release made.';
