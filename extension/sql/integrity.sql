-- audit_trail: tamper evidence (docs/integrity.md). Runs after api.sql.
--
-- The seals of the hash chain over committed events, and the public keys they name. The
-- private key never comes here: `audit-trail seal` signs outside the database, and
-- `audit-trail verify` trusts only the key file it is given, so a superuser who rewrites
-- these tables is caught, not trusted.

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

-- The one way a sealing key is registered: recorded as an audit_log/seal_key event, which
-- the alert rules see (a reader who could register a key could seal with it, and every later
-- verify would report seals by a key the auditor does not hold). Returns the key id.
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
       (SELECT l.key_id FROM last AS l)                AS active_key
  FROM unsealed AS u;

COMMENT ON VIEW audit.integrity IS
    'Sealed through which event and time, events waiting to be sealed, the last seal and its key.';
