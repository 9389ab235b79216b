-- pgbench script of the CDC applier (bench/cdc_latency.sh): one row's change, as DMS applies it
\set id random(1, :prod)
UPDATE bench.customers SET name = 'cdc ' || :id, updated_at = clock_timestamp() WHERE customer_id = :id;
