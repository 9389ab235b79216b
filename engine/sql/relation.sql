-- Everything dms_window_reload needs to know about one relation, read in one query.
--
-- $1 (oid): the relation. Returns one jsonb document (or no row when the oid is not a relation),
-- deserialised by `dwr_engine::catalog::Relation`. Every function, operator and type is
-- schema-qualified, and type names come from format_type(), which quotes and qualifies them the way
-- the server would parse them back; the caller pins search_path to pg_catalog, pg_temp so that a
-- type outside pg_catalog comes out schema-qualified.
SELECT pg_catalog.jsonb_build_object(
    'oid', c.oid::pg_catalog.int8,
    'schema', n.nspname::pg_catalog.text,
    'name', c.relname::pg_catalog.text,
    'relkind', c.relkind::pg_catalog.text,
    'persistence', c.relpersistence::pg_catalog.text,
    'owner', pg_catalog.pg_get_userbyid(c.relowner)::pg_catalog.text,
    'owner_oid', c.relowner::pg_catalog.int8,
    'columns', COALESCE((
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'name', a.attname::pg_catalog.text,
                   'num', a.attnum::pg_catalog.int4,
                   'type_oid', a.atttypid::pg_catalog.int8,
                   'type_name', pg_catalog.format_type(a.atttypid, a.atttypmod),
                   'base_type_name', pg_catalog.format_type(a.atttypid, NULL),
                   'typmod', a.atttypmod,
                   'collation', a.attcollation::pg_catalog.int8,
                   'type_category', bt.typcategory::pg_catalog.text,
                   'not_null', a.attnotnull,
                   'has_default', a.atthasdef,
                   'generated', a.attgenerated::pg_catalog.text,
                   'identity', a.attidentity::pg_catalog.text,
                   -- schema of the default btree operator class's "<" for the column's type (or
                   -- its domain's base type); NULL when the type has no ordering (json, point)
                   'ordering_schema', (
                       SELECT opn.nspname::pg_catalog.text
                         FROM pg_catalog.pg_opclass oc
                         JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) oc.opcmethod
                         JOIN pg_catalog.pg_amop ao
                           ON ao.amopfamily OPERATOR(pg_catalog.=) oc.opcfamily
                          AND ao.amoplefttype OPERATOR(pg_catalog.=) oc.opcintype
                          AND ao.amoprighttype OPERATOR(pg_catalog.=) oc.opcintype
                          AND ao.amopstrategy OPERATOR(pg_catalog.=) 1
                         JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) ao.amopopr
                         JOIN pg_catalog.pg_namespace opn ON opn.oid OPERATOR(pg_catalog.=) o.oprnamespace
                        WHERE am.amname OPERATOR(pg_catalog.=) 'btree'
                          AND oc.opcdefault
                          AND (oc.opcintype OPERATOR(pg_catalog.=) bt.oid
                               OR (bt.typtype OPERATOR(pg_catalog.=) 'e'
                                   AND oc.opcintype OPERATOR(pg_catalog.=) 'pg_catalog.anyenum'::pg_catalog.regtype)
                               OR (bt.typcategory OPERATOR(pg_catalog.=) 'A'
                                   AND oc.opcintype OPERATOR(pg_catalog.=) 'pg_catalog.anyarray'::pg_catalog.regtype)
                               OR (bt.oid OPERATOR(pg_catalog.=) 'pg_catalog.varchar'::pg_catalog.regtype
                                   AND oc.opcintype OPERATOR(pg_catalog.=) 'pg_catalog.text'::pg_catalog.regtype))
                        ORDER BY (oc.opcintype OPERATOR(pg_catalog.=) bt.oid) DESC
                        LIMIT 1)
               ) ORDER BY a.attnum)
          FROM pg_catalog.pg_attribute a
          JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
          JOIN pg_catalog.pg_type bt
            ON bt.oid OPERATOR(pg_catalog.=) CASE WHEN t.typtype OPERATOR(pg_catalog.=) 'd'
                                                  THEN t.typbasetype ELSE t.oid END
         WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
           AND a.attnum OPERATOR(pg_catalog.>) 0
           AND NOT a.attisdropped), '[]'::pg_catalog.jsonb),
    'primary_key', (
        SELECT pg_catalog.jsonb_build_object(
                   'name', con.conname::pg_catalog.text,
                   'columns', (SELECT pg_catalog.jsonb_agg(a.attname::pg_catalog.text ORDER BY k.ord)
                                 FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                                 JOIN pg_catalog.pg_attribute a
                                   ON a.attrelid OPERATOR(pg_catalog.=) c.oid
                                  AND a.attnum OPERATOR(pg_catalog.=) k.attnum),
                   -- schema of the "=" of each key column's operator class in the key's index
                   'equality_schemas', (
                       SELECT pg_catalog.jsonb_agg(opn.nspname::pg_catalog.text ORDER BY k.ord)
                         FROM pg_catalog.unnest(ix.indclass::pg_catalog.oid[]) WITH ORDINALITY AS k(opc, ord)
                         JOIN pg_catalog.pg_opclass oc ON oc.oid OPERATOR(pg_catalog.=) k.opc
                         JOIN pg_catalog.pg_amop ao
                           ON ao.amopfamily OPERATOR(pg_catalog.=) oc.opcfamily
                          AND ao.amoplefttype OPERATOR(pg_catalog.=) oc.opcintype
                          AND ao.amoprighttype OPERATOR(pg_catalog.=) oc.opcintype
                          AND ao.amopstrategy OPERATOR(pg_catalog.=) 3
                         JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) ao.amopopr
                         JOIN pg_catalog.pg_namespace opn ON opn.oid OPERATOR(pg_catalog.=) o.oprnamespace))
          FROM pg_catalog.pg_constraint con
          JOIN pg_catalog.pg_index ix ON ix.indexrelid OPERATOR(pg_catalog.=) con.conindid
         WHERE con.conrelid OPERATOR(pg_catalog.=) c.oid
           AND con.contype OPERATOR(pg_catalog.=) 'p')
)::pg_catalog.text
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.oid OPERATOR(pg_catalog.=) $1
