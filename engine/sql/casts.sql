-- How a value of one type becomes another, for pairs of types.
--
-- $1 (oid[]): source types, $2 (oid[]): target types, paired by position. Returns one jsonb array
-- of {"source", "target", "context"} where context is
--   same        the same type (domains compare by their base type; typmods are not compared here)
--   implicit    a cast the server applies anywhere (int4 -> int8, varchar -> text)
--   assignment  a cast INSERT and UPDATE apply by themselves (int8 -> int4, numeric -> int4,
--               anything -> text through its output function)
--   explicit    only CAST(... AS ...) converts, and it may fail row by row (text -> integer)
--   none        no conversion exists (point -> integer)
-- deserialised by `dwr_engine::catalog::CastInfo`.
SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'source', p.s::pg_catalog.int8,
           'target', p.t::pg_catalog.int8,
           'context',
           CASE
             WHEN sb.oid OPERATOR(pg_catalog.=) tb.oid THEN 'same'
             WHEN c.castcontext OPERATOR(pg_catalog.=) 'i' THEN 'implicit'
             WHEN c.castcontext OPERATOR(pg_catalog.=) 'a' THEN 'assignment'
             WHEN c.castcontext OPERATOR(pg_catalog.=) 'e' THEN 'explicit'
             WHEN tb.typcategory OPERATOR(pg_catalog.=) 'S' THEN 'assignment'
             WHEN sb.typcategory OPERATOR(pg_catalog.=) 'S' THEN 'explicit'
             ELSE 'none'
           END) ORDER BY p.ord), '[]'::pg_catalog.jsonb)::pg_catalog.text
  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.oid[]), pg_catalog.unnest($2::pg_catalog.oid[]))
       WITH ORDINALITY AS p(s, t, ord)
  JOIN pg_catalog.pg_type st ON st.oid OPERATOR(pg_catalog.=) p.s
  JOIN pg_catalog.pg_type tt ON tt.oid OPERATOR(pg_catalog.=) p.t
  JOIN pg_catalog.pg_type sb
    ON sb.oid OPERATOR(pg_catalog.=) CASE WHEN st.typtype OPERATOR(pg_catalog.=) 'd' THEN st.typbasetype ELSE st.oid END
  JOIN pg_catalog.pg_type tb
    ON tb.oid OPERATOR(pg_catalog.=) CASE WHEN tt.typtype OPERATOR(pg_catalog.=) 'd' THEN tt.typbasetype ELSE tt.oid END
  LEFT JOIN pg_catalog.pg_cast c
    ON c.castsource OPERATOR(pg_catalog.=) sb.oid AND c.casttarget OPERATOR(pg_catalog.=) tb.oid
