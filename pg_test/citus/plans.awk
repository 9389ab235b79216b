# pg_test/run-all: reads the auto_explain plans (NOTICEs) that pg_test/citus/pushdown.sql logs for
# a merge, and fails unless every statement writing production, staging or the merge's work
# tables is a Citus Adaptive plan with per-shard tasks (no "pull to coordinator", no repartition).
# At least 6 such writes: classify, record the attempts of inserts and updates, insert, update,
# statuses (the statements that defer rows a write did not take run only when there are some).
function flush() {
    if (inblk && q ~ /^Query Text: (INSERT|UPDATE|DELETE)/ && q ~ /(_dwr_work_|_dwr_attempts_|"pd"\."t"|"pd_staging"\."t")/ && q !~ /dwr\.row_changes/) {
        n++
        if (plan ~ /Citus Adaptive/ && plan ~ /Task Count: [0-9]/ && plan !~ /pull to coordinator/ && plan !~ /repartition/) ok++
        else print "not on the shards: " substr(q, 1, 160)
    }
    inblk = 0
}
/NOTICE:  duration: .* plan:/ { flush(); inblk = 1; q = ""; plan = ""; next }
/NOTICE:/ { flush(); next }
inblk && /^Query Text:/ { q = $0; next }
inblk { plan = plan "\n" $0 }
END { flush(); printf "planned writes of the merge: %d, each a Citus Adaptive plan with per-shard tasks: %d\n", n, ok; exit (n >= 6 && ok == n) ? 0 : 1 }
