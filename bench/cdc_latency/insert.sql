-- pgbench script of the CDC applier: a new row at the source (keys beyond production and staging)
\set id random(:prod * 3 + 1, :prod * 4)
INSERT INTO bench.customers VALUES (:id, 'cdc new', 'n@example.com', 'city', clock_timestamp())
ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name, updated_at = EXCLUDED.updated_at;
