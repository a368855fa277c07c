#!/usr/bin/env bash
# kill_resume.sh -- a cook SIGKILLed halfway loses nothing already recorded,
# and `emile resume` continues it to the end without repeating an iteration.
#
#   1. cook (max_iters 6) in its own session (setsid), in the background;
#   2. wait until the store holds >= 2 iterations; SIGKILL the whole group;
#   3. the store is intact (PRAGMA integrity_check), the recorded iterations
#      are complete and readable through `emile show`;
#   4. `emile resume RUN` starts at the next iteration, records only new
#      numbers, keeps the old iterations byte for byte, ends done with a best;
#   5. resume of a finished run adds nothing; --max-iters extends it by one.
source "$(dirname "$0")/lib.bash"
it_setup kill_resume

MAX=6
TASK=$IT_TMP/task.json
write_task "$TASK" $MAX 99

iters_in_store() {
  sqlite3 -cmd '.timeout 2000' "$STORE" 'SELECT count(*) FROM iterations WHERE run_id = 1' 2>/dev/null || echo 0
}

# ---- 1. start, wait for two iterations, SIGKILL the group ----------------
LOG=$IT_TMP/cook.log
setsid "$EMILE" cook "$TASK" --store "$STORE" >"$LOG" 2>&1 &
COOK_PID=$!
IT_BG_PGID=$COOK_PID           # it_cleanup kills it if we stop early
# setsid makes the cook a session and group leader (pgid == pid) once it runs.
PGID=
for _ in $(seq 50); do
  PGID=$(pgid_of "$COOK_PID")
  [ "$PGID" = "$COOK_PID" ] && break
  sleep 0.1
done
check_eq "the cook leads its own process group" "$COOK_PID" "$PGID"
# Never signal a group that is not the cook's own (it could be ours).
[ "$PGID" = "$COOK_PID" ] || PGID=

deadline=$((SECONDS + 120))
K=0
while [ $SECONDS -lt $deadline ]; do
  K=$(iters_in_store)
  [ "${K:-0}" -ge 2 ] && break
  if ! kill -0 "$COOK_PID" 2>/dev/null; then break; fi
  sleep 0.1
done
if kill -0 "$COOK_PID" 2>/dev/null; then ok "the cook is still running after $K iterations"
else not_ok "the cook is still running when 2 iterations are recorded" "log: $(head -c 600 "$LOG" | tr '\n' '|')"; fi
K_SEEN=$K
if [ -n "$PGID" ]; then kill -KILL -- "-$PGID" 2>/dev/null || true; else kill -KILL "$COOK_PID" 2>/dev/null || true; fi
set +e
{ wait "$COOK_PID"; } 2>/dev/null
KRC=$?
set -e
IT_BG_PGID=
check_eq "the cook died of SIGKILL" "137" "$KRC"
K=$(iters_in_store)
if [ "$K" -ge 2 ] && [ "$K" -le $MAX ]; then ok "killed with $K iterations recorded (2..$MAX)"
else not_ok "killed with 2..$MAX iterations recorded" "recorded: $K"; fi

# Nothing of the cook outlives it for long: the worker, compilers and
# runners (their own process groups, same session) go when their parent does.
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ] && [ -n "$(session_pids "$COOK_PID")" ]; do sleep 0.2; done
LEFT=$(session_pids "$COOK_PID" | tr '\n' ' ')
if [ -n "$LEFT" ]; then
  not_ok "no process of the killed cook's session survives 20 s" $(describe_pids $LEFT | tr ' ' '_')
  for p in $LEFT; do kill -KILL "$p" 2>/dev/null || true; done
else
  ok "no process of the killed cook's session survives 20 s"
fi

# ---- 2. what the store holds after the kill --------------------------------
check_eq "store: PRAGMA integrity_check is ok" "ok" "$(sqlite3 "$STORE" 'PRAGMA integrity_check')"
check_eq "store: the killed run is still marked running" "running" "$(sqlite3 "$STORE" 'SELECT status FROM runs WHERE id = 1')"
run "$EMILE" show 1 --json --store "$STORE"
check_rc "show 1 --json after the kill exits 0" 0
BEFORE=$IT_TMP/before.json
cp "$OUT_F" "$BEFORE"
check_jq "after the kill: show lists the $K recorded iterations, numbered 0..$((K - 1))" "$BEFORE" \
  "[.iterations[].iter] == [range(0; $K)]"
check_jq "after the kill: every recorded iteration is complete" "$BEFORE" \
  '(.iterations | length) > 0 and all(.iterations[]; (.source | length) > 0 and (.status | length) > 0 and (.reason | length) > 0
       and (if .status == "valid" then .time_ms > 0 and .report.time_ms.median > 0 else true end))'
check_jq "after the kill: the reference is valid and a best is recorded" "$BEFORE" \
  '.iterations[0].status == "valid" and (.best_iter | type) == "number"'
run "$EMILE" runs --json --store "$STORE"
check_jq "after the kill: runs --json lists run 1 as running with $K iterations" "$OUT_F" \
  "length == 1 and .[0].status == \"running\" and .[0].n_iters == $K"
KLINES=$(iter_count "$LOG")
if [ "$KLINES" -ge "$K_SEEN" ]; then ok "the killed cook had printed a line for each iteration recorded before the kill"
else not_ok "the killed cook had printed a line for each iteration recorded before the kill" "lines $KLINES, recorded $K_SEEN"; fi

# ---- 3. resume ---------------------------------------------------------------
run "$EMILE" resume 1 --store "$STORE"
check_rc "resume 1 exits 0" 0
RES_OUT=$OUT_F
check_contains "resume says where it starts" "$RES_OUT" "resuming run 1 at iteration $K; the budget goes to $MAX"
PRINTED=$(iter_nums "$RES_OUT")
run "$EMILE" show 1 --json --store "$STORE"
AFTER=$IT_TMP/after.json
cp "$OUT_F" "$AFTER"
NOTE=$(jq -r .note "$AFTER")
N=$(jq -r .n_iters "$AFTER")
check_jq "after resume: the run is done with a best" "$AFTER" '.status == "done" and (.best_iter | type) == "number"'
case $NOTE in
  "target reached"*) check_jq "after resume: target reached within the budget" "$AFTER" ".n_iters <= $((MAX + 1))" ;;
  *) check_eq "after resume: max_iters + 1 iterations" "$((MAX + 1))" "$N"
     check_eq "after resume: the note says the budget is spent" "the iteration budget is spent" "$NOTE" ;;
esac
check_jq "after resume: iterations 0..n-1, each number once" "$AFTER" '[.iterations[].iter] == [range(0; .iterations | length)]'
check_same "resume printed only the new iterations, in order" "$(seq -s, "$K" $((N - 1)))" "$PRINTED"
check_eq "store: no iteration number twice" "0" \
  "$(sqlite3 "$STORE" 'SELECT count(*) FROM (SELECT iter FROM iterations WHERE run_id = 1 GROUP BY iter HAVING count(*) > 1)')"
KEEP='{iter, created, source, status, time_ms, reason, "label": .label, report}'
check_same "the iterations recorded before the kill are unchanged" \
  "$(jq -c "[.iterations[] | $KEEP]" "$BEFORE")" "$(jq -c "[.iterations[:$K][] | $KEEP]" "$AFTER")"
check_jq "after resume: the best is the fastest valid iteration and beats the reference" "$AFTER" \
  '.best_iter as $b | ([.iterations[] | select(.status == "valid")] | min_by(.time_ms) | .iter) == $b
   and (.iterations[] | select(.iter == $b) | .speedup) > 1'
check_jq "after resume: the new iterations measure speedup against the same reference" "$AFTER" \
  ".iterations[0].time_ms as \$r | all(.iterations[$K:][] | select(.status == \"valid\"); ((.speedup - \$r / .time_ms) | fabs) < 1e-6 * .speedup)"
check_eq "store: PRAGMA integrity_check after resume is ok" "ok" "$(sqlite3 "$STORE" 'PRAGMA integrity_check')"

# ---- 4. resume a finished run; extend it --------------------------------------
run "$EMILE" resume 1 --store "$STORE"
check_rc "resume of a finished run exits 0" 0
check_eq "resume of a finished run adds no iteration" "$N" "$(iters_in_store)"
if [ "$N" -eq $((MAX + 1)) ]; then
  check_contains "resume of a spent run says so, with the way on" "$OUT_F" \
    "run 1 has no iteration left to cook: iterations 0..$MAX are recorded and its budget is $MAX (emile resume 1 --max-iters N goes on)"
  check_not_contains "resume of a spent run never says 'at iteration N of M' past M" "$OUT_F" "resuming run 1"
fi
check_eq "resume of a finished run leaves it done" "done" "$(sqlite3 "$STORE" 'SELECT status FROM runs WHERE id = 1')"
if [ "$N" -eq $((MAX + 1)) ]; then
  run "$EMILE" resume 1 --max-iters $((MAX + 1)) --store "$STORE"
  check_rc "resume --max-iters $((MAX + 1)) exits 0" 0
  check_eq "resume --max-iters $((MAX + 1)) adds exactly iteration $((MAX + 1))" "$(seq -s, 0 $((MAX + 1)))" \
    "$(sqlite3 "$STORE" 'SELECT group_concat(iter) FROM (SELECT iter FROM iterations WHERE run_id = 1 ORDER BY iter)')"
fi

it_finish
