-- audit_trail: events from the write-ahead log (docs/wal-capture.md). `audit-trail capture`
-- decodes committed changes of tracked tables and hands their rows over as the text the
-- server wrote; what an event holds is worked out here, from the table's tracking settings,
-- as the capture trigger works it out from the row itself: the same subject, the same
-- changed fields, the same row images. Values become JSON through each column's type
-- (`to_jsonb(value::type)`, what `to_jsonb(row)` does column by column), so numbers, arrays,
-- json and timestamps come out as the trigger writes them.

-- A type with its domains taken off (the innermost domain's typmod kept when it has one):
-- reading a value as its domain would run the domain's CHECK expressions, code of whoever
-- made the domain, as the capture role; the value was checked when it was written.
CREATE FUNCTION audit.wal_base_type(typ oid, typmod int, OUT base oid, OUT base_typmod int)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    base := typ;
    base_typmod := typmod;
    WHILE (SELECT t.typtype = 'd' FROM pg_type t WHERE t.oid = base) LOOP
        SELECT t.typbasetype, CASE WHEN t.typtypmod >= 0 THEN t.typtypmod ELSE base_typmod END
          INTO base, base_typmod
          FROM pg_type t WHERE t.oid = base;
    END LOOP;
END
$$;

-- The expression that turns text value `value` of column `column_name` of `target` into the
-- JSON of an event, as the trigger's to_jsonb(row) renders the column: JSON null for NULL,
-- "[redacted]" for a redacted column's value, else the value read as its type, domains taken
-- off (arrays of them too). A type of the database's own with a function cast to json (or
-- arrays of one) goes in as its text, as the trigger writes it: to_jsonb would call the cast,
-- code of the type's owner. Composite types, and ranges of a domain, whose reading would run
-- such code too, are refused: not captured from the WAL yet. NULL: no such column.
CREATE FUNCTION audit.wal_value_json(target regclass, column_name text, value text, redacted boolean)
    RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col   pg_attribute;
    b     record;
    elem  record;
    read  oid;
BEGIN
    SELECT * INTO col FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
    IF col.attrelid IS NULL THEN
        RETURN NULL;
    ELSIF redacted THEN
        RETURN format('CASE WHEN %1$s IS NULL THEN ''null''::jsonb ELSE ''"[redacted]"''::jsonb END', value);
    END IF;
    b := audit.wal_base_type(col.atttypid, col.atttypmod);
    -- An array: its elements' type, domains off; the array read as an array of that.
    elem := audit.wal_base_type(coalesce(nullif((SELECT t.typelem FROM pg_type t
                                                  WHERE t.oid = b.base AND t.typcategory = 'A'), 0), b.base), -1);
    read := CASE WHEN elem.base = b.base THEN b.base
                 ELSE (SELECT t.typarray FROM pg_type t WHERE t.oid = elem.base) END;
    IF EXISTS (SELECT FROM pg_type t WHERE t.oid = elem.base AND t.typtype = 'c')
       OR EXISTS (SELECT FROM pg_range r JOIN pg_type s ON s.oid = r.rngsubtype
                   WHERE (r.rngtypid = elem.base OR r.rngmultitypid = elem.base) AND s.typtype = 'd') THEN
        RAISE EXCEPTION 'column % of % has type %, which WAL capture does not read yet (a composite type, or a range of a domain)',
                        column_name, target, format_type(col.atttypid, col.atttypmod)
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF elem.base >= 16384 AND EXISTS (SELECT FROM pg_cast c
                                       WHERE c.castsource = elem.base AND c.casttarget = 'json'::regtype
                                         AND c.castmethod = 'f') THEN
        RETURN format('coalesce(to_jsonb(%1$s), ''null''::jsonb)', value);
    END IF;
    RETURN format('coalesce(to_jsonb((%1$s)::%2$s), ''null''::jsonb)', value, format_type(read, b.base_typmod));
END
$$;

-- A JSON array of strings and nulls as text[]; NULL for JSON null (a row that is not there).
CREATE FUNCTION audit.wal_text_array(a jsonb)
    RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN a IS NOT NULL AND a <> 'null'::jsonb
            THEN ARRAY(SELECT e FROM jsonb_array_elements_text(a) WITH ORDINALITY AS x(e, i) ORDER BY i) END;

-- Refuses rows that would make an event up: an action other than a row change, a row
-- missing where the action has one (or present where it has none), a row with another number
-- of values than `columns`, and `columns` without a column the table has (a publication's
-- column list, say) or without the columns named in `needed` (the subject's, the tenant's).
-- Generated columns are not in the logical stream before PostgreSQL 18: they may be absent.
CREATE FUNCTION audit.wal_check_rows(target regclass, action text, columns text[], rows jsonb,
                                     needed text[])
    RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text := (SELECT a.attname FROM pg_attribute a
                      WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attgenerated = '' AND a.attname <> ALL (columns)
                      UNION ALL
                     SELECT c FROM unnest(needed) AS c WHERE c IS NOT NULL AND c <> ALL (columns)
                      LIMIT 1);
BEGIN
    IF action NOT IN ('create', 'update', 'delete') THEN
        RAISE EXCEPTION 'a row change is a create, update or delete, not %', action
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF missing IS NOT NULL THEN
        RAISE EXCEPTION 'the values of % come without column % (a publication''s column list leaves it out?)', target, missing
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF jsonb_typeof(rows) <> 'array' OR EXISTS (
            SELECT FROM jsonb_array_elements(rows) AS x(v)
             WHERE jsonb_typeof(x.v) <> 'array' OR jsonb_array_length(x.v) <> 2
                OR (jsonb_typeof(x.v -> 0) = 'array') <> (action <> 'create')
                OR (jsonb_typeof(x.v -> 1) = 'array') <> (action <> 'delete')
                OR jsonb_typeof(x.v -> 0) = 'array' AND jsonb_array_length(x.v -> 0) <> cardinality(columns)
                OR jsonb_typeof(x.v -> 1) = 'array' AND jsonb_array_length(x.v -> 1) <> cardinality(columns)) THEN
        RAISE EXCEPTION 'the rows given for % of % are not [old values, new values] pairs of % values each, as a % has',
                        action, target, cardinality(columns), action
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- The rows of one tracked table that one statement of a committed transaction changed, as
-- events would hold them. `columns` names the values of each row, in the order the server
-- sent them; `rows` is a JSON array, one element a row: [old values, new values], each an
-- array of text (JSON null for NULL; the old row null for a create, the new one for a
-- delete). An update that changed only ignored columns gives no event, as with the trigger.
-- `ordinal` is the row's place in `rows`.
CREATE FUNCTION audit.wal_changes(target regclass, action text, columns text[], rows jsonb)
    RETURNS TABLE (
        ordinal        bigint,
        subject_id     text,
        changed_fields text[],
        old_data       jsonb,
        new_data       jsonb,
        tenant         text
    )
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked  audit.tracked_tables := audit.tracked_table_of(target);
    n        int := cardinality(columns);
    unknown  text := (SELECT c FROM unnest(columns) AS c
                       WHERE audit.wal_value_json(target, c, 'x', false) IS NULL LIMIT 1);
    -- Per column (1-based place i): its JSON in the old row and in the new one.
    old_json text;
    new_json text;
    position int[];
BEGIN
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'column % is not a column of % (the table changed since the change was decoded)', unknown, target
            USING ERRCODE = 'undefined_column';
    END IF;
    PERFORM audit.wal_check_rows(target, action, columns, rows,
                                 tracked.subject_columns || tracked.tenant_column);
    SELECT string_agg(audit.wal_value_json(target, c, format('t.o[%s]', i), c = ANY (tracked.redact_columns)), ', ' ORDER BY i),
           string_agg(audit.wal_value_json(target, c, format('t.n[%s]', i), c = ANY (tracked.redact_columns)), ', ' ORDER BY i)
      INTO old_json, new_json
      FROM unnest(columns) WITH ORDINALITY AS u(c, i);
    -- Where the subject and tenant columns are among the values.
    position := ARRAY(SELECT array_position(columns, s) FROM unnest(tracked.subject_columns) AS s);
    RETURN QUERY EXECUTE format(
        $q$
        -- Each row's values read once (MATERIALIZED, OFFSET 0): inlined, every use of a row's
        -- arrays below would read them again, several times per column.
        WITH r AS MATERIALIZED (
            SELECT t.ord, t.o, t.n,
                   ARRAY[%1$s]::jsonb[] AS oj, ARRAY[%2$s]::jsonb[] AS nj,
                   ARRAY(SELECT i FROM generate_series(1, %3$s) AS i
                          WHERE t.o[i] IS DISTINCT FROM t.n[i]) AS changed
              FROM (SELECT x.ord, audit.wal_text_array(x.v -> 0) AS o, audit.wal_text_array(x.v -> 1) AS n
                      FROM jsonb_array_elements($1) WITH ORDINALITY AS x(v, ord)
                    OFFSET 0) AS t
        )
        SELECT r.ord,
               CASE WHEN cardinality($3) = 1 THEN (coalesce(r.n, r.o))[$3[1]]
                    ELSE (SELECT jsonb_agg((CASE WHEN r.n IS NULL THEN r.oj ELSE r.nj END)[p] ORDER BY k)
                            FROM unnest($3) WITH ORDINALITY AS s(p, k))::text END,
               CASE WHEN $4 = 'update' THEN ARRAY(SELECT $2[i] FROM unnest(r.changed) AS i
                                                    WHERE $2[i] <> ALL ($5)) END,
               CASE $4 WHEN 'delete' THEN (SELECT jsonb_object_agg($2[i], r.oj[i]) FROM generate_series(1, %3$s) AS i)
                       WHEN 'update' THEN coalesce((SELECT jsonb_object_agg($2[i], r.oj[i]) FROM unnest(r.changed) AS i), '{}')
               END,
               CASE WHEN $4 <> 'delete' THEN (SELECT jsonb_object_agg($2[i], r.nj[i]) FROM generate_series(1, %3$s) AS i) END,
               coalesce(r.n[array_position($2, $6)], r.o[array_position($2, $6)])
          FROM r
         WHERE $4 <> 'update' OR EXISTS (SELECT FROM unnest(r.changed) AS i WHERE $2[i] <> ALL ($5))
         ORDER BY r.ord
        $q$,
        CASE WHEN action = 'create' THEN 'NULL::jsonb' ELSE old_json END,
        CASE WHEN action = 'delete' THEN 'NULL::jsonb' ELSE new_json END,
        n)
        USING rows, columns, position, action, tracked.ignore_columns, tracked.tenant_column;
END
$$;
COMMENT ON FUNCTION audit.wal_changes(regclass, text, text[], jsonb) IS
    'WAL capture: decoded rows of a tracked table as events would hold them (subject, changed fields, row images, organization).';
