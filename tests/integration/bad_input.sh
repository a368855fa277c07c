#!/usr/bin/env bash
# bad_input.sh -- every kind of bad input gets one clear message on stderr
# naming the problem, a non-zero exit (2 for a bad command line or task, 1
# for a failure at run time), and nothing half-written: no store file, no
# run.  The two exceptions are references that reach the worker (one that
# does not compile, one that is wrong): they are recorded as a failed run
# whose note says why, and nothing else.
source "$(dirname "$0")/lib.bash"
it_setup bad_input

REF=$IT_ROOT/kernels/attention/cpu/reference.c
SMALL=(--op attention --batch 1 --seq 256 --q-heads 4 --kv-heads 2 --head-dim 32 --max-iters 1)
DEFAULT_STORE=$XDG_DATA_HOME/emile/runs.db
n=0
CS=
next_store() { n=$((n + 1)); CS=$IT_TMP/case$n.db; }

# reject NAME RC SUBSTRING CMD...: exit RC, stderr's first line is
# "emile: ..." and holds SUBSTRING, stderr is that one line, stdout is
# empty, and neither the case's store ($CS) nor the default store has a run.
reject() {
  local name=$1 rc=$2 msg=$3
  shift 3
  run "$@"
  check_rc "$name: exit $rc" "$rc"
  local first
  first=$(head -n 1 "$ERR_F")
  case $first in
    "emile: "*"$msg"*) ok "$name: message names the problem" ;;
    *) not_ok "$name: message names the problem" "want 'emile: ...$msg...'" "stderr: $(head -c 500 "$ERR_F" | tr '\n' '|')" ;;
  esac
  check_eq "$name: one line on stderr" "1" "$(wc -l <"$ERR_F" | tr -d ' ')"
  check_eq "$name: nothing on stdout" "" "$(head -c 300 "$OUT_F")"
  no_run "$name"
}
no_run() {
  check_eq "$1: no run recorded in its store" "0" "$(store_runs "$CS")"
  check_eq "$1: the default store is untouched" "absent" "$([ -e "$DEFAULT_STORE" ] && echo present || echo absent)"
}

# ---- task files --------------------------------------------------------------
printf '{\n  "op": "attention",\n  "params": {"seq": 256,}\n}\n' >"$IT_TMP/malformed.json"
next_store
reject "malformed task JSON" 2 "is not valid JSON: line 3 column" "$EMILE" cook "$IT_TMP/malformed.json" --store "$CS"
check_contains "malformed task JSON: the message names the file" "$ERR_F" "$IT_TMP/malformed.json"
check "malformed task JSON: no store file is created" test ! -e "$CS"

next_store
reject "task file that does not exist" 2 "cannot read task file $IT_TMP/none.json" "$EMILE" cook "$IT_TMP/none.json" --store "$CS"

echo "{\"params\": {\"seq\": 256}, \"reference\": \"$REF\"}" >"$IT_TMP/noop.json"
# A directory where the task file goes: named as such (not "no op given").
next_store
reject "cook DIR" 2 "$IT_TMP is a directory, not a task file" "$EMILE" cook "$IT_TMP" --store "$CS"
check "cook DIR: no store file is created" test ! -e "$CS"
next_store
reject "cook DIR with flags" 2 "$IT_ROOT/examples is a directory, not a task file" \
  "$EMILE" cook "$IT_ROOT/examples" "${SMALL[@]}" --reference "$REF" --store "$CS"

# --param NAME=N: any parameter of the op, by name.
next_store
reject "--param of no parameter" 2 "op attention has no parameter 'vocab'" \
  "$EMILE" cook "${SMALL[@]}" --reference "$REF" --param vocab=8 --store "$CS"
next_store
reject "--param without =" 2 "--param wants NAME=NUMBER" "$EMILE" cook "${SMALL[@]}" --reference "$REF" --param seq --store "$CS"
next_store
reject "--param of a word" 2 "--seq needs a number (got 'long')" \
  "$EMILE" cook "${SMALL[@]}" --reference "$REF" --param seq=long --store "$CS"
# ... and a good one takes: the run's task has the value.
next_store
run "$EMILE" cook "${SMALL[@]}" --reference "$REF" --param seq=64 --max-iters 0 --quiet --store "$CS"
check_rc "--param seq=64: exit 0" 0
run "$EMILE" show 1 --json --store "$CS"
check_eq "--param seq=64: the task's seq" "64" "$(jq -r '.task.params.seq' "$OUT_F")"

# The pool's flags.
for bad in "--workers 0:--workers needs an integer between 1 and 64 (got '0')" \
           "--workers many:--workers needs an integer between 1 and 64 (got 'many')" \
           "--confirm 11:--confirm needs an integer between 0 and 10 (got '11')" \
           "--worker-timeout 0:--worker-timeout needs a number of seconds above 0 (got '0')" \
           "--worker :--worker needs a command"; do
  flag=${bad%%:*} msg=${bad#*:}
  next_store
  # shellcheck disable=SC2086
  reject "cook $flag" 2 "$msg" "$EMILE" cook "${SMALL[@]}" --reference "$REF" ${flag%% *} "${flag#* }" --store "$CS"
done

# An LLM agent without its API key: refused before a run is created or the
# reference is profiled (no worker is started: --worker names one that
# would leave a mark).
for prov in anthropic:ANTHROPIC_API_KEY openai:OPENAI_API_KEY; do
  agent=${prov%%:*} var=${prov#*:}
  next_store
  reject "--agent $agent without $var" 2 "$var is not set" \
    env -u "$var" "$EMILE" cook "${SMALL[@]}" --reference "$REF" --agent "$agent" \
    --worker "touch '$IT_TMP/worker-started'; exec '$EMILE' worker" --store "$CS"
  check "--agent $agent without $var: no store file is created" test ! -e "$CS"
  check "--agent $agent without $var: no worker was started" test ! -e "$IT_TMP/worker-started"
done

next_store
reject "task without op" 2 'task has no "op"' "$EMILE" cook "$IT_TMP/noop.json" --store "$CS"

echo '{"op": "attention", "params": {"seq": 256}}' >"$IT_TMP/noref.json"
next_store
reject "task without reference" 2 "no reference kernel given" "$EMILE" cook "$IT_TMP/noref.json" --store "$CS"

next_store
reject "flags without op" 2 "--seq given before the op is known" "$EMILE" cook --seq 256 --reference "$REF" --store "$CS"

next_store
reject "flags without reference" 2 "no reference kernel given" "$EMILE" cook "${SMALL[@]}" --store "$CS"

echo "{\"op\": \"softmaxx\", \"params\": {\"seq\": 256}, \"reference\": \"$REF\"}" >"$IT_TMP/unknown_op.json"
next_store
reject "unknown op in a task file" 2 "unknown op 'softmaxx'" "$EMILE" cook "$IT_TMP/unknown_op.json" --store "$CS"
next_store
reject "unknown op as a flag" 2 "unknown op 'softmaxx'" "$EMILE" cook --op softmaxx --reference "$REF" --store "$CS"

echo '{"op": "attention", "params": {"seq": 256}, "reference": "nothere.c"}' >"$IT_TMP/missing_ref.json"
next_store
reject "reference file missing (task file, relative path)" 2 "cannot read reference $IT_TMP/nothere.c" \
  "$EMILE" cook "$IT_TMP/missing_ref.json" --store "$CS"
next_store
reject "reference file missing (flag)" 2 "cannot read reference $IT_TMP/nothere.c: No such file" \
  "$EMILE" cook "${SMALL[@]}" --reference "$IT_TMP/nothere.c" --store "$CS"

echo "{\"op\": \"attention\", \"params\": {\"seq\": 256, \"heads\": 3}, \"reference\": \"$REF\"}" >"$IT_TMP/badparam.json"
next_store
reject "unknown parameter" 2 "has no parameter" "$EMILE" cook "$IT_TMP/badparam.json" --store "$CS"

# ---- impossible parameters ---------------------------------------------------
next_store
reject "Hq not a multiple of Hkv" 2 "q_heads (6) must be a multiple of kv_heads (4)" \
  "$EMILE" cook "${SMALL[@]}" --q-heads 6 --kv-heads 4 --reference "$REF" --store "$CS"
next_store
reject "zero seq" 2 "(seq) = 0: must be a positive integer" \
  "$EMILE" cook "${SMALL[@]}" --seq 0 --reference "$REF" --store "$CS"
next_store
reject "zero head_dim" 2 "(head_dim) = 0: must be a positive integer" \
  "$EMILE" cook "${SMALL[@]}" --head-dim 0 --reference "$REF" --store "$CS"
next_store
reject "zero kv_heads" 2 "(kv_heads) = 0: must be a positive integer" \
  "$EMILE" cook "${SMALL[@]}" --kv-heads 0 --reference "$REF" --store "$CS"
next_store
reject "negative batch" 2 "(batch) = -1: must be a positive integer" \
  "$EMILE" cook "${SMALL[@]}" --batch -1 --reference "$REF" --store "$CS"
next_store
reject "non-numeric size" 2 "--seq needs a number (got 'lots')" \
  "$EMILE" cook "${SMALL[@]}" --seq lots --reference "$REF" --store "$CS"

# seq 10000000 at the example's heads: q and o take 20.5 GB each, 51.2 GB in
# all, before the harness's copies.  cook and profile must both refuse it up
# front (run_capped: see lib.bash).
BIG_BIN=$(plain_bin)
BIG=(--op attention --seq 10000000 --q-heads 8 --kv-heads 2 --head-dim 64 --reference "$REF" --max-iters 1)
# too_big NAME: the last run refused the task for its size.
too_big() {
  check_rc "$1: exit 2" 2
  # The task's sizes are the problem, not the reference nor an arena.
  if head -n 1 "$ERR_F" | grep -viE 'reference|arena' | grep -qiE '^emile: .*(memory|bytes|too large)'; then ok "$1: message names the problem"
  else not_ok "$1: message names the problem (memory)" "stderr: $(head -c 400 "$ERR_F" | tr '\n' '|')"; fi
  check_eq "$1: one line on stderr" "1" "$(wc -l <"$ERR_F" | tr -d ' ')"
}
if [ -x "$BIG_BIN" ]; then
  next_store
  run_capped "$BIG_BIN" cook "${BIG[@]}" --store "$CS"
  too_big "cook, sizes that overflow memory (seq 10000000)"
  no_run "cook, sizes that overflow memory"
  printf '{"op": "attention", "params": {"batch": 1, "seq": 10000000, "q_heads": 8, "kv_heads": 2, "head_dim": 64},\n "reference": "%s"}\n' \
    "$REF" >"$IT_TMP/big.json"
  run_capped "$BIG_BIN" profile "$IT_TMP/big.json" kernels/attention/cpu/v2_flash.c
  too_big "profile, sizes that overflow memory (seq 10000000)"
  check_eq "profile, sizes that overflow memory: nothing on stdout" "" "$(head -c 300 "$OUT_F")"
else
  not_ok "sizes that overflow memory: $BIG_BIN is not built"
fi

# ---- the store -----------------------------------------------------------------
CS=/nonexistent/dir/x.db
reject "missing store directory" 2 "--store /nonexistent/dir/x.db: the folder /nonexistent/dir does not exist" \
  "$EMILE" cook "${SMALL[@]}" --reference "$REF" --store /nonexistent/dir/x.db
check "missing store directory: the directory is not created" test ! -e /nonexistent/dir

# ---- the command line ------------------------------------------------------------
next_store
run "$EMILE" frobnicate --store "$CS"
check_rc "unknown command: exit 2" 2
check_eq "unknown command: first line names it" "emile: unknown command 'frobnicate'" "$(head -n 1 "$ERR_F")"
check_contains "unknown command: usage follows" "$ERR_F" "usage: emile COMMAND"
check_eq "unknown command: nothing on stdout" "" "$(head -c 300 "$OUT_F")"
no_run "unknown command"

for c in cook profile show export; do
  run "$EMILE" $c --help
  check_rc "$c --help: exit 0" 0
  check_contains "$c --help: the usage on stdout" "$OUT_F" "usage: emile COMMAND"
done

next_store
reject "unknown option" 2 "unknown option '--frob'" "$EMILE" cook "${SMALL[@]}" --reference "$REF" --frob 3 --store "$CS"
next_store
reject "option without its value" 2 "--store needs a value" "$EMILE" runs --store

# show / resume / export on an empty store (`runs` does not make one; an
# empty file is an empty store)
next_store
run "$EMILE" runs --store "$CS"
check_rc "runs on a new store: exit 0" 0
check_contains "runs on a new store: says there are none" "$OUT_F" "no runs yet"
check "runs on a new store: no store file is created" test ! -e "$CS"
: >"$CS"
reject "show 999 on an empty store" 1 "no run 999" "$EMILE" show 999 --store "$CS"
reject "show 999 --json on an empty store" 1 "no run 999" "$EMILE" show 999 --json --store "$CS"
reject "show without a run number" 2 "give a run number" "$EMILE" show --store "$CS"
reject "show with a run that is not a number" 2 "give a run number" "$EMILE" show first --store "$CS"
reject "resume 999" 1 "no run 999" "$EMILE" resume 999 --store "$CS"
reject "resume without a run number" 2 "usage: emile resume RUN" "$EMILE" resume --store "$CS"
reject "export RUN with no DIR" 2 "usage: emile export RUN DIR" "$EMILE" export 1 --store "$CS"
reject "export 999 DIR" 1 "no run 999" "$EMILE" export 999 "$IT_TMP/exp999" --store "$CS"
check "export 999 DIR: no directory is created" test ! -e "$IT_TMP/exp999"

# A worker command that dies is named as the worker's failure, with its
# status, not as the backend's.
next_store
reject "a worker command that exits at once" 1 "the worker (exit 4) exited with status 4" \
  "$EMILE" cook "${SMALL[@]}" --reference "$REF" --worker "exit 4" --store "$CS"
check "a worker command that exits at once: the backend is not blamed" \
  bash -c "! grep -q 'is not available' '$ERR_F'"

next_store
reject "profile with a kernel file that does not exist" 2 "cannot read kernel $IT_TMP/nokernel.c" \
  "$EMILE" profile examples/cpu_attention.json "$IT_TMP/nokernel.c" --store "$CS"
reject "profile without a kernel" 2 "usage: emile profile TASK.json KERNEL" \
  "$EMILE" profile examples/cpu_attention.json
reject "profile with a malformed task" 2 "is not valid JSON: line 3 column" \
  "$EMILE" profile "$IT_TMP/malformed.json" kernels/attention/cpu/v2_flash.c

# ---- references that reach the worker: a failed run, said so -----------------
cat >"$IT_TMP/nocompile.c" <<'EOF'
#include "emile.h"
EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args) { return this_is_not_declared; }
EOF
next_store
run "$EMILE" cook "${SMALL[@]}" --reference "$IT_TMP/nocompile.c" --store "$CS"
check_rc "reference that does not compile: exit 1" 1
case $(head -n 1 "$ERR_F") in
  "emile: "*"does not compile"*) ok "reference that does not compile: message says so" ;;
  *) not_ok "reference that does not compile: message says so" "stderr: $(head -c 400 "$ERR_F" | tr '\n' '|')" ;;
esac
check_contains "reference that does not compile: the compiler's words follow" "$ERR_F" "this_is_not_declared"
run "$EMILE" show 1 --json --store "$CS"
SHOWC=$IT_TMP/show_nocompile.json
cp "$OUT_F" "$SHOWC"
check_jq "reference that does not compile: one run, failed, no best" "$SHOWC" \
  '.status == "failed" and .best_iter == null and (.note | contains("does not compile"))'
check_jq "reference that does not compile: only iteration 0, not valid" "$SHOWC" \
  '[.iterations[].iter] == [0] and .iterations[0].status != "valid"'
check_eq "reference that does not compile: exactly one run" "1" "$(store_runs "$CS")"

# The reference with the scale forgotten: scores = q.k instead of q.k/sqrt(D).
sed 's/scores\[i \* S + j\] = scale \* dot;/scores[i * S + j] = dot; \/* forgot the scale *\//' "$REF" >"$IT_TMP/wrongref.c"
if cmp -s "$REF" "$IT_TMP/wrongref.c"; then
  not_ok "wrong reference: the scale line to remove was not found in $REF"
fi
next_store
run "$EMILE" cook "${SMALL[@]}" --reference "$IT_TMP/wrongref.c" --store "$CS"
check_rc "reference that is wrong: exit 1" 1
case $(head -n 1 "$ERR_F") in
  "emile: "*"reference is itself wrong"*"float64"*) ok "reference that is wrong: message says it is wrong vs float64" ;;
  *) not_ok "reference that is wrong: message says it is wrong vs float64" "stderr: $(head -c 400 "$ERR_F" | tr '\n' '|')" ;;
esac
check_eq "reference that is wrong: one line on stderr" "1" "$(wc -l <"$ERR_F" | tr -d ' ')"
run "$EMILE" runs --json --store "$CS"
check_jq "reference that is wrong: one run, marked failed, no best" "$OUT_F" \
  'length == 1 and .[0].status == "failed" and .[0].best_iter == null and .[0].n_iters == 1'
check_jq "reference that is wrong: the run's note says the reference is wrong vs float64" "$OUT_F" \
  '.[0].note | contains("reference is itself wrong") and contains("float64")'
run "$EMILE" show 1 --json --store "$CS"
check_jq "reference that is wrong: iteration 0 recorded, not valid, with the error" "$OUT_F" \
  '[.iterations[].iter] == [0] and .iterations[0].status != "valid" and (.iterations[0].error | contains("float64"))'
run "$EMILE" resume 1 --store "$CS"
check_rc "resume of the run with the wrong reference: exit 1" 1
check_contains "resume of the run with the wrong reference: says there is no valid kernel" "$ERR_F" "no valid kernel"
check_eq "resume of the run with the wrong reference: no iteration added, still failed" "1 failed" \
  "$(sqlite3 "$CS" "SELECT (SELECT count(*) FROM iterations WHERE run_id = 1) || ' ' || status FROM runs WHERE id = 1")"
run "$EMILE" export 1 "$IT_TMP/exp_wrong" --store "$CS"
check_rc "export of a run without a valid kernel: exit 1" 1
check_contains "export of a run without a valid kernel: says so" "$ERR_F" "run 1 has no valid kernel to export"
check "export of a run without a valid kernel: no directory is created" test ! -e "$IT_TMP/exp_wrong"

# ---- a store that refuses writes: the run says why, nothing leaks ----------------
# SQLite triggers stand in for a full disk or a broken file: the store opens,
# and the one write they guard fails with their words.
store_with() { : >"$CS"; run "$EMILE" runs --store "$CS"; sqlite3 "$CS" "$1"; }
# one_emile_line NAME: stderr is exactly one "emile: ..." line (a leak report
# from the sanitizer, or a blank "emile: ", would break it).
one_emile_line() {
  check_eq "$1: one line on stderr" "1" "$(wc -l <"$ERR_F" | tr -d ' ')"
  check "$1: no blank 'emile: ' line" bash -c "! grep -qx 'emile: *' '$ERR_F'"
}

next_store
store_with "CREATE TRIGGER t BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'no room for runs'); END;"
run "$EMILE" cook "${SMALL[@]}" --reference "$REF" --store "$CS"
check_rc "store refuses the new run: exit 1" 1
check_contains "store refuses the new run: the store's words" "$ERR_F" "no room for runs"
one_emile_line "store refuses the new run"
check_eq "store refuses the new run: no run" "0" "$(store_runs "$CS")"

next_store
store_with "CREATE TRIGGER t BEFORE INSERT ON iterations BEGIN SELECT RAISE(ABORT, 'no room for iterations'); END;"
run "$EMILE" cook "${SMALL[@]}" --reference "$REF" --store "$CS"
check_rc "store refuses iteration 0: exit 1" 1
check_contains "store refuses iteration 0: says it cannot record iteration 0" "$ERR_F" "cannot record iteration 0"
check_contains "store refuses iteration 0: the store's words" "$ERR_F" "no room for iterations"
check_not_contains "store refuses iteration 0: not blamed on the reference" "$ERR_F" "reference is not usable"
one_emile_line "store refuses iteration 0"
check_eq "store refuses iteration 0: the run is failed, the note says why" "failed 1" \
  "$(sqlite3 "$CS" "SELECT status || ' ' || (note LIKE '%cannot record iteration 0%no room for iterations%') FROM runs WHERE id = 1")"

next_store
REFUSED=$CS
store_with "CREATE TRIGGER t BEFORE INSERT ON iterations WHEN NEW.iter >= 1 BEGIN SELECT RAISE(ABORT, 'no room for iterations'); END;"
run "$EMILE" cook "${SMALL[@]}" --reference "$REF" --store "$CS"
check_rc "store refuses iteration 1: exit 1" 1
check_contains "store refuses iteration 1: says it cannot record iteration 1" "$ERR_F" "emile: cannot record iteration 1"
check_contains "store refuses iteration 1: the store's words" "$ERR_F" "no room for iterations"
one_emile_line "store refuses iteration 1"
run "$EMILE" show 1 --json --store "$CS"
check_jq "store refuses iteration 1: the run is failed, the note says why, iteration 0 is kept" "$OUT_F" \
  '.status == "failed" and (.note | contains("cannot record iteration 1") and contains("no room for iterations"))
   and [.iterations[].iter] == [0] and .best_iter == 0'
run "$EMILE" show 1 --store "$CS"
check_contains "store refuses iteration 1: show prints the note" "$OUT_F" "cannot record iteration 1"

# export: a file it cannot write is named (here emile.h, where a folder is).
mkdir -p "$IT_TMP/exp_blocked/emile.h"
run "$EMILE" export 1 "$IT_TMP/exp_blocked" --store "$REFUSED"
check_rc "export that cannot copy emile.h: exit 1" 1
check_contains "export that cannot copy emile.h: names the file" "$ERR_F" "$IT_TMP/exp_blocked/emile.h"
case $(head -n 1 "$ERR_F") in
  "emile: cannot copy "*) ok "export that cannot copy emile.h: says it cannot copy it" ;;
  *) not_ok "export that cannot copy emile.h: says it cannot copy it" "stderr: $(head -c 400 "$ERR_F" | tr '\n' '|')" ;;
esac
check "export that cannot copy emile.h: the source is exported" test -s "$IT_TMP/exp_blocked/best.c"

# resume of a run whose iterations cannot be read: said, nothing leaks.
sqlite3 "$REFUSED" "UPDATE iterations SET params = '{broken' WHERE run_id = 1 AND iter = 0"
run "$EMILE" resume 1 --store "$REFUSED"
check_rc "resume with a corrupt iteration: exit 1" 1
check_contains "resume with a corrupt iteration: says the stored JSON is corrupt" "$ERR_F" "corrupt"
one_emile_line "resume with a corrupt iteration"

it_finish
