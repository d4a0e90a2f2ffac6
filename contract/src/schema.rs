//! What the audit schema must look like for every reader to read the same log
//! (docs/integrity.md, "What readers read"): the queries that describe it and find what may
//! not be there. `audit-trail verify` runs them with its own connection and compares the
//! description with the one the release shipped (a reference file per version and
//! PostgreSQL major, `sidecar/src/integrity/schema/`); the extension's `audit.schema_findings()`
//! (shown by `audit.integrity` and the dashboard) is [`FINDINGS`] word for word, which an
//! end-to-end test checks.
//!
//! Only catalogs and built-in functions, schema-qualified: no object of the audit schema or
//! of any other schema a database owner controls is run to describe it.

/// States of the audit schema that would let one reader see other rows than another, or
/// that no release ever makes: one row per finding, `(kind, object, detail)`. Empty when
/// the schema holds nothing but what the extension made and its maintenance adds
/// (partitions, their indexes and guards).
///
/// - `row_security`, `policy`: row-level security on any relation of the schema;
/// - `rule`: a rewrite rule other than a view's own;
/// - `view_option`: `security_invoker`, `security_barrier` or any option on a view;
/// - `owner`: a relation or function not owned by the extension's owner;
/// - `access_method`, `foreign_table`: a table stored by another access method, or a foreign
///   table (rows that could come from anywhere);
/// - `trigger`, `trigger_disabled`: a trigger that is not one of the extension's guards, or a
///   guard not enabled ALWAYS;
/// - `event_trigger_disabled`: one of the extension's event triggers switched off;
/// - `unexpected_object`: a relation or function in the schema that is neither the
///   extension's nor one its maintenance makes;
/// - `inheritance`: a table inheriting from one of the schema (its rows would show in every
///   read of the parent that does not say ONLY);
/// - `partition`: a partition of the log or its summaries outside the schema, or owned by
///   another role;
/// - `privileges`: a grant on a partition, or default privileges for the schema (the
///   extension's own objects' grants are in [`MEMBERS`]);
/// - `user_cast`: a cast a user defined from or to a type the log's columns and readers use
///   (PostgreSQL would take it for the built-in conversion, in every reader's query);
/// - `subscription`: a logical replication subscription writing into a relation of the
///   schema (its apply worker fires no statement trigger);
/// - `extension_missing`.
pub const FINDINGS: &str = "
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
ORDER BY 1, 2, 3";

/// Every object of the extension with what defines it, one row per object: its identity and
/// its description (columns, defaults, indexes, constraints, triggers and whether they are
/// enabled, options, row security, view and function bodies, privileges, owner, comments,
/// the tables pg_dump keeps). Roles are written by name, but the extension's owner (which
/// differs between installs) as `OWNER`. Equal descriptions mean the same schema, which is
/// how an upgraded install is held to a fresh one and verify holds a database to its release.
pub const MEMBERS: &str = "
WITH ext AS (
    SELECT e.oid, e.extowner, e.extconfig
      FROM pg_catalog.pg_extension AS e WHERE e.extname = 'audit_trail'
    UNION ALL
    -- A WAL capture install, as in FINDINGS.
    SELECT NULL::pg_catalog.oid, n.nspowner, NULL::pg_catalog.oid[] FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname OPERATOR(pg_catalog.=) 'audit'
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension AS e WHERE e.extname = 'audit_trail')
       AND pg_catalog.to_regclass('audit.capture_progress') IS NOT NULL
), ns AS (
    SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'audit'
), members AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend AS d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.refobjid = ext.oid AND d.deptype = 'e'
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid
      FROM pg_catalog.pg_class AS c, ext, ns
     WHERE ext.oid IS NULL AND c.relnamespace = ns.oid AND c.relkind NOT IN ('i', 'I')
       AND (NOT c.relispartition
            OR pg_catalog.pg_get_expr(c.relpartbound, c.oid) OPERATOR(pg_catalog.=) 'DEFAULT')
    UNION ALL
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid
      FROM pg_catalog.pg_proc AS p, ext, ns
     WHERE ext.oid IS NULL AND p.pronamespace = ns.oid
)
SELECT pg_catalog.pg_describe_object(m.classid, m.objid, 0) AS identity,
       pg_catalog.concat_ws(E'\\n', CASE m.classid
    WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN
        (SELECT pg_catalog.pg_get_functiondef(p.oid)
                OPERATOR(pg_catalog.||) ' owner ' OPERATOR(pg_catalog.||)
                CASE WHEN p.proowner = x.extowner THEN 'OWNER'
                     ELSE pg_catalog.pg_get_userbyid(p.proowner) END
                OPERATOR(pg_catalog.||) ' acl ' OPERATOR(pg_catalog.||) COALESCE((
                    SELECT pg_catalog.string_agg(
                               CASE a.grantee WHEN x.extowner THEN 'OWNER' WHEN 0 THEN 'PUBLIC'
                                    ELSE pg_catalog.pg_get_userbyid(a.grantee) END
                               OPERATOR(pg_catalog.||) '=' OPERATOR(pg_catalog.||) a.privilege_type,
                               ',' ORDER BY a.grantee::pg_catalog.regrole::text, a.privilege_type)
                      FROM pg_catalog.aclexplode(p.proacl) AS a
                     -- The one grant the docs ask of sites: EXECUTE on audit.track and
                     -- audit.untrack to the owners of tracked tables (they still must own
                     -- the table), which changes nothing of what readers read.
                     WHERE NOT (p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['track', 'untrack']::pg_catalog.name[])
                                AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
                                AND a.grantee NOT IN (0, x.extowner))), 'default')
           FROM pg_catalog.pg_proc AS p, ext AS x WHERE p.oid = m.objid)
    WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN
        (SELECT pg_catalog.concat_ws(' ',
                c.relkind::text,
                'owner', CASE WHEN c.relowner = x.extowner THEN 'OWNER'
                              ELSE pg_catalog.pg_get_userbyid(c.relowner) END,
                'acl', COALESCE((
                    SELECT pg_catalog.string_agg(
                               CASE a.grantee WHEN x.extowner THEN 'OWNER' WHEN 0 THEN 'PUBLIC'
                                    ELSE pg_catalog.pg_get_userbyid(a.grantee) END
                               OPERATOR(pg_catalog.||) '=' OPERATOR(pg_catalog.||) a.privilege_type,
                               ',' ORDER BY a.grantee::pg_catalog.regrole::text, a.privilege_type)
                      FROM pg_catalog.aclexplode(c.relacl) AS a), 'default'),
                'am', COALESCE((SELECT a.amname::text FROM pg_catalog.pg_am AS a
                                            WHERE a.oid = c.relam), '-'),
                'rls', c.relrowsecurity::text, c.relforcerowsecurity::text,
                'options', COALESCE(c.reloptions::text, '-'),
                'replident', c.relreplident::text,
                'partbound', COALESCE(pg_catalog.pg_get_expr(c.relpartbound, c.oid), '-'),
                'view', COALESCE(pg_catalog.pg_get_viewdef(c.oid), '-'),
                'columns', COALESCE((
                    SELECT pg_catalog.string_agg(
                               a.attname OPERATOR(pg_catalog.||) ' '
                               OPERATOR(pg_catalog.||) pg_catalog.format_type(a.atttypid, a.atttypmod)
                               OPERATOR(pg_catalog.||) CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                               OPERATOR(pg_catalog.||) COALESCE(' default '
                                   OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '')
                               OPERATOR(pg_catalog.||) COALESCE(' acl ' OPERATOR(pg_catalog.||) a.attacl::text, ''),
                               ', ' ORDER BY a.attnum)
                      FROM pg_catalog.pg_attribute AS a
                      LEFT JOIN pg_catalog.pg_attrdef AS ad
                        ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '-'),
                'indexes', COALESCE((
                    SELECT pg_catalog.string_agg(pg_catalog.pg_get_indexdef(i.indexrelid), '; '
                                                 ORDER BY pg_catalog.pg_get_indexdef(i.indexrelid))
                      FROM pg_catalog.pg_index AS i WHERE i.indrelid = c.oid), '-'),
                'constraints', COALESCE((
                    SELECT pg_catalog.string_agg(k.conname OPERATOR(pg_catalog.||) ' '
                                                 OPERATOR(pg_catalog.||) pg_catalog.pg_get_constraintdef(k.oid),
                                                 '; ' ORDER BY k.conname)
                      FROM pg_catalog.pg_constraint AS k WHERE k.conrelid = c.oid), '-'),
                'triggers', COALESCE((
                    SELECT pg_catalog.string_agg(pg_catalog.pg_get_triggerdef(t.oid)
                                                 OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) t.tgenabled::text,
                                                 '; ' ORDER BY t.tgname)
                      FROM pg_catalog.pg_trigger AS t
                     WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '-'),
                'rules', COALESCE((
                    SELECT pg_catalog.string_agg(w.rulename::text, ', ' ORDER BY w.rulename)
                      FROM pg_catalog.pg_rewrite AS w
                     WHERE w.ev_class = c.oid AND w.rulename OPERATOR(pg_catalog.<>) '_RETURN'), '-'),
                'policies', COALESCE((
                    SELECT pg_catalog.string_agg(pl.polname::text, ', ' ORDER BY pl.polname)
                      FROM pg_catalog.pg_policy AS pl WHERE pl.polrelid = c.oid), '-'),
                'sequence', COALESCE((
                    SELECT pg_catalog.concat_ws(' ', q.seqtypid::pg_catalog.regtype::text,
                                                q.seqstart, q.seqincrement, q.seqmax, q.seqmin,
                                                q.seqcache, q.seqcycle)
                      FROM pg_catalog.pg_sequence AS q WHERE q.seqrelid = c.oid), '-'),
                'config', (c.oid = ANY (x.extconfig))::text)
           FROM pg_catalog.pg_class AS c, ext AS x WHERE c.oid = m.objid)
    WHEN 'pg_catalog.pg_event_trigger'::pg_catalog.regclass THEN
        (SELECT pg_catalog.concat_ws(' ', e.evtevent::text, e.evtenabled::text,
                                     COALESCE(e.evttags::text, '-'),
                                     e.evtfoid::pg_catalog.regprocedure::text,
                                     CASE WHEN e.evtowner = x.extowner THEN 'OWNER'
                                          ELSE pg_catalog.pg_get_userbyid(e.evtowner) END)
           FROM pg_catalog.pg_event_trigger AS e, ext AS x WHERE e.oid = m.objid)
    WHEN 'pg_catalog.pg_namespace'::pg_catalog.regclass THEN
        (SELECT pg_catalog.concat_ws(' ',
                CASE WHEN n.nspowner = x.extowner THEN 'OWNER'
                     ELSE pg_catalog.pg_get_userbyid(n.nspowner) END,
                COALESCE((
                    SELECT pg_catalog.string_agg(
                               CASE a.grantee WHEN x.extowner THEN 'OWNER' WHEN 0 THEN 'PUBLIC'
                                    ELSE pg_catalog.pg_get_userbyid(a.grantee) END
                               OPERATOR(pg_catalog.||) '=' OPERATOR(pg_catalog.||) a.privilege_type,
                               ',' ORDER BY a.grantee::pg_catalog.regrole::text, a.privilege_type)
                      FROM pg_catalog.aclexplode(n.nspacl) AS a), 'default'))
           FROM pg_catalog.pg_namespace AS n, ext AS x WHERE n.oid = m.objid)
    END, 'comment ' OPERATOR(pg_catalog.||)
         pg_catalog.obj_description(m.objid, m.classid::pg_catalog.regclass::pg_catalog.name)) AS description
  FROM members AS m
 ORDER BY 1";

/// One line of a reference file: an object's identity and the SHA-256 of its description,
/// separated by a tab.
pub fn reference_line(identity: &str, description: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "{identity}\t{}",
        hex::encode(Sha256::digest(description.as_bytes()))
    )
}
