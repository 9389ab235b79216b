-- pgbench script of the CDC applier: a delete at the source
\set id random(1, :prod)
DELETE FROM bench.customers WHERE customer_id = :id;
