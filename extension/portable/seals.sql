-- audit_trail, portable install: the hash chain's functions in SQL (docs/integrity.md), the
-- encoding the contract crate defines (contract/src/chain.rs) computed with the built-in
-- sha256(). Events are read by the contract's own canonical query, filled in here by
-- scripts/portable_script.py, so the two cannot read an event differently; `audit-trail
-- verify` recomputes everything in Rust, and the tests seal in one and verify in the other.
--
-- One check the extension makes is beyond SQL: an Ed25519 signature. audit.add_seal here
-- checks that a seal is the next link of the chain over exactly the committed events after
-- the last one, and stores it; whether a registered key signed it is what `audit-trail
-- verify` checks (a seal it cannot verify is an integrity violation, exit 4).

-- The canonical values of the events `source` (audit.events or one of its partitions)
-- holds that `filter` (SQL over the canonical query's `e`) selects, in `ordering`: position
-- and the values in table order.
CREATE FUNCTION audit.canonical_rows(source regclass, filter text, ordering text,
                                     VARIADIC args text[] DEFAULT '{}')
    RETURNS TABLE (txid text, id bigint, v text[])
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT x.t, x.i, ARRAY[x.c1, x.c2, x.c3, x.c4, x.c5, x.c6, x.c7, x.c8, x.c9, x.c10, x.c11,
                               x.c12, x.c13, x.c14, x.c15, x.c16, x.c17, x.c18]
           FROM (%s %s %s) AS x(t, i, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14,
                                 c15, c16, c17, c18)',
        replace(@@contract-string:SELECT_CANONICAL@@, 'FROM audit.events AS e', 'FROM ' || source::text || ' AS e'),
        filter, ordering)
        USING args;
END
$$;

-- SHA-256 of one event's canonical encoding: version 1 (17 values) without an organization,
-- version 2 (all 18) with one.
CREATE FUNCTION audit.event_hash(v text[]) RETURNS bytea
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sha256(convert_to(CASE WHEN v[18] IS NULL THEN E'audit_trail event v1\n'
                                  ELSE E'audit_trail event v2\n' END, 'UTF8')
                  || coalesce((SELECT string_agg(CASE WHEN b IS NULL THEN '\x00'::bytea
                                                      ELSE '\x01'::bytea || int8send(octet_length(b)) || b END,
                                                 ''::bytea ORDER BY i)
                                 FROM unnest(CASE WHEN v[18] IS NULL THEN v[1:17] ELSE v END)
                                      WITH ORDINALITY AS u(x, i),
                                      -- Each value's bytes made once (a value may be 100 MB).
                                      LATERAL convert_to(u.x, 'UTF8') AS b), ''::bytea))
$$;

CREATE FUNCTION audit.add_seal(checkpoint text, key_id text, signature bytea, digests bytea)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    line   text[] := string_to_array(rtrim(checkpoint, E'\n'), E'\n');
    field  text[];
    seq    bigint;
    prev   record;
    head   bytea := '\x'::bytea;
    n      int := octet_length(digests) / 24;
    k      int := 0;
    ev     record;
    root   bytea := convert_to(E'audit_trail batch v1\n', 'UTF8');
    hash   bytea;
    watermark bigint := pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
    pos    text[];
    first_txid bigint;
    first_id   bigint;
BEGIN
    -- audit_trail checkpoint v1 / database / seq / last T I / events N TOTAL / batch / digests /
    -- prev / head / time: exactly, each line its field's name and a value.
    IF checkpoint IS NULL OR right(checkpoint, 1) <> E'\n' OR cardinality(line) <> 10
       OR line[1] <> 'audit_trail checkpoint v1'
       OR EXISTS (SELECT FROM unnest(ARRAY['database', 'seq', 'last', 'events', 'batch', 'digests',
                                           'prev', 'head', 'time']) WITH ORDINALITY AS f(name, i)
                   WHERE split_part(line[i + 1], ' ', 1) <> f.name)
       OR line[3] !~ '^seq [0-9]{1,18}$' OR line[4] !~ '^last [0-9]{1,19} [0-9]{1,18}$'
       OR line[5] !~ '^events [0-9]{1,18} [0-9]{1,18}$'
       OR EXISTS (SELECT FROM unnest(line[6:9]) AS h WHERE h !~ '^[a-z]+ [0-9a-f]{64}$') THEN
        RAISE EXCEPTION 'seal refused: the checkpoint is not a version 1 checkpoint body'
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF octet_length(signature) IS DISTINCT FROM 64 THEN
        RAISE EXCEPTION 'seal refused: the signature is not 64 bytes' USING ERRCODE = 'invalid_parameter_value';
    ELSIF n = 0 OR octet_length(digests) % 24 <> 0 THEN
        RAISE EXCEPTION 'seal refused: the digests are not whole 24-byte entries' USING ERRCODE = 'invalid_parameter_value';
    ELSIF substr(line[2], 10) <> current_database() THEN
        RAISE EXCEPTION 'seal refused: the checkpoint names database "%", this is "%"', substr(line[2], 10), current_database()
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF NOT EXISTS (SELECT FROM ONLY audit.seal_keys AS s WHERE s.key_id = add_seal.key_id) THEN
        RAISE EXCEPTION 'seal refused: key % is not registered (audit.register_seal_key)', key_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s.seq, s.last_txid::text::bigint AS txid, s.last_id AS id, s.total, s.head INTO prev
      FROM ONLY audit.seals AS s ORDER BY s.seq DESC LIMIT 1;
    seq := coalesce(prev.seq, 0) + 1;
    pos := string_to_array(substr(line[4], 6), ' ');
    IF split_part(line[3], ' ', 2)::bigint <> seq THEN
        RAISE EXCEPTION 'seal refused: seal % is not the next one: the next is %', split_part(line[3], ' ', 2), seq
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF decode(substr(line[8], 6), 'hex') <> coalesce(prev.head, '\x0000000000000000000000000000000000000000000000000000000000000000') THEN
        RAISE EXCEPTION 'seal refused: seal % does not chain to seal %''s head', seq, seq - 1
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF split_part(line[5], ' ', 2)::bigint <> n OR split_part(line[5], ' ', 3)::bigint <> coalesce(prev.total, 0) + n THEN
        RAISE EXCEPTION 'seal refused: seal % counts % events (% in all), its digests % (% in all)',
            seq, split_part(line[5], ' ', 2), split_part(line[5], ' ', 3), n, coalesce(prev.total, 0) + n
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF decode(substr(line[7], 9), 'hex') <> sha256(digests) THEN
        RAISE EXCEPTION 'seal refused: seal %''s digests are not the ones its checkpoint signs', seq
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF pos[1]::numeric >= watermark THEN
        RAISE EXCEPTION 'seal refused: seal % reaches txid %, where transactions may still commit (below % only)',
            seq, pos[1], watermark USING ERRCODE = 'invalid_parameter_value';
    END IF;
    first_txid := ('x' || encode(substr(digests, 1, 8), 'hex'))::bit(64)::bigint;
    first_id := ('x' || encode(substr(digests, 9, 8), 'hex'))::bit(64)::bigint;
    IF (first_txid, first_id) <= (coalesce(prev.txid, 0), coalesce(prev.id, 0))
       OR encode(substr(digests, (n - 1) * 24 + 1, 16), 'hex')
          <> lpad(to_hex(pos[1]::bigint), 16, '0') || lpad(to_hex(pos[2]::bigint), 16, '0') THEN
        RAISE EXCEPTION 'seal refused: seal % must cover the events after txid %, id % through txid %, id %',
            seq, coalesce(prev.txid, 0), coalesce(prev.id, 0), pos[1], pos[2]
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The events themselves, in chain order, each against its digest entry.
    FOR ev IN SELECT * FROM audit.canonical_rows('audit.events',
                  'WHERE (e.txid, e.id) > (pg_catalog.xid8in(pg_catalog.textout($1[1])), $1[2]::bigint)
                     AND (e.txid, e.id) <= (pg_catalog.xid8in(pg_catalog.textout($1[3])), $1[4]::bigint)',
                  'ORDER BY e.txid, e.id',
                  coalesce(prev.txid, 0)::text, coalesce(prev.id, 0)::text, pos[1], pos[2]) LOOP
        hash := audit.event_hash(ev.v);
        IF k >= n OR substr(digests, k * 24 + 1, 16) <> int8send(ev.txid::bigint) || int8send(ev.id) THEN
            RAISE EXCEPTION 'seal refused: seal % does not list event % (txid %, id %), which lies in its range',
                seq, ev.id, ev.txid, ev.id USING ERRCODE = 'invalid_parameter_value';
        ELSIF substr(digests, k * 24 + 17, 8) <> substr(hash, 1, 8) THEN
            RAISE EXCEPTION 'seal refused: seal % lists event % with another hash than it has', seq, ev.id
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        root := root || hash;
        k := k + 1;
    END LOOP;
    IF k <> n THEN
        RAISE EXCEPTION 'seal refused: seal % lists event %, which audit.events does not hold',
            seq, ('x' || encode(substr(digests, k * 24 + 9, 8), 'hex'))::bit(64)::bigint
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    root := sha256(root);
    head := sha256(convert_to(E'audit_trail chain v1\n', 'UTF8')
                   || coalesce(prev.head, '\x0000000000000000000000000000000000000000000000000000000000000000') || root);
    IF decode(substr(line[6], 7), 'hex') <> root OR decode(substr(line[9], 6), 'hex') <> head THEN
        RAISE EXCEPTION 'seal refused: seal %''s batch root or head is not what its events hash to', seq
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO audit.seals (seq, first_txid, first_id, last_txid, last_id, events, total, prev_head,
                             batch_root, head, digests, key_id, checkpoint, signature)
    VALUES (seq, first_txid::text::xid8, first_id, pos[1]::xid8, pos[2]::bigint, n,
            coalesce(prev.total, 0) + n,
            coalesce(prev.head, '\x0000000000000000000000000000000000000000000000000000000000000000'),
            root, head, digests, key_id, checkpoint, signature);
    RETURN seq;
END
$$;

CREATE FUNCTION audit.canonical_events(source regclass, entity text, action text,
                                       before timestamptz)
    RETURNS jsonb
    LANGUAGE plpgsql STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- (PL/pgSQL, not SQL: the helpers it calls are made after it.)
    RETURN (SELECT coalesce(jsonb_agg(to_jsonb(CASE WHEN c.v[18] IS NULL THEN c.v[1:17] ELSE c.v END)
                                      ORDER BY c.txid::numeric, c.id), '[]')
              FROM audit.canonical_rows(source,
                       'WHERE e.entity = $1[1] AND e.action = $1[2] AND e.occurred_at < $1[3]::timestamptz',
                       '', entity, action, before::text) AS c);
END
$$;

CREATE FUNCTION audit.events_digest(part regclass) RETURNS text
    LANGUAGE plpgsql STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT encode(sha256(convert_to(E'audit_trail archive v1\n', 'UTF8')
                                 || coalesce(string_agg(audit.event_hash(c.v), ''::bytea), ''::bytea)), 'hex')
              FROM audit.canonical_rows(part, '', 'ORDER BY e.occurred_at, e.id') AS c);
END
$$;

-- The services' turns (seal, archive, maintenance): a lock on a table of each that only the
-- install's owner may lock (LOCK TABLE needs more than SELECT), so, as with the extension's
-- lock, no reader can hold it to stop a service; held to the end of the transaction, and no
-- transaction id needed.
CREATE TABLE audit.service_lock_seal ();
CREATE TABLE audit.service_lock_archive ();
CREATE TABLE audit.service_lock_maintenance ();

CREATE FUNCTION audit.take_service_lock(service text, wait boolean DEFAULT false) RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF service IS NULL OR service NOT IN ('seal', 'archive', 'maintenance') THEN
        RAISE EXCEPTION 'unknown service "%": seal, archive or maintenance', service
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF wait THEN
        EXECUTE format('LOCK TABLE audit.%I IN EXCLUSIVE MODE', 'service_lock_' || service);
        RETURN true;
    END IF;
    EXECUTE format('LOCK TABLE audit.%I IN EXCLUSIVE MODE NOWAIT', 'service_lock_' || service);
    RETURN true;
EXCEPTION
    WHEN lock_not_available THEN
        RETURN false;
END
$$;

REVOKE ALL ON FUNCTION audit.canonical_rows(regclass, text, text, text[]), audit.event_hash(text[])
    FROM PUBLIC;
