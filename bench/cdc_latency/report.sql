-- bench/cdc_latency.sh: the applier's per-transaction log (pgbench -l, latency measured from each
-- transaction's scheduled start, so waiting behind a held row counts) against the window in which
-- each variant ran; p50, p99 and the worst stall of the applier while it ran.
\set ON_ERROR_STOP 1
SELECT w.variant,
       round(extract(epoch FROM w.finished - w.started)::numeric, 2) AS merge_seconds,
       count(l.*) AS cdc_changes_meanwhile,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY l.latency_us) / 1000)::numeric, 1) AS p50_ms,
       round((percentile_cont(0.99) WITHIN GROUP (ORDER BY l.latency_us) / 1000)::numeric, 1) AS p99_ms,
       round((max(l.latency_us) / 1000)::numeric, 1) AS worst_ms
  FROM bench_cdc.windows w
  LEFT JOIN bench_cdc.log l ON l.ended BETWEEN w.started AND w.finished + interval '2 seconds'
                           AND l.variant = w.variant
 GROUP BY w.ord, w.variant, w.started, w.finished
 ORDER BY w.ord;
