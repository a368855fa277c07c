#!/usr/bin/env bash
# cook_e2e.sh -- `emile cook` end to end on a small CPU attention task:
# the live lines and summary, the run in the store (`runs --json`, `show
# --json`), `export` (best.c, a loadable best.so, report.md/json,
# roofline.svg), the same cook through flags only, and `--events` NDJSON.
source "$(dirname "$0")/lib.bash"
it_setup cook_e2e

MAX=3
TASK=$IT_TMP/task.json
write_task "$TASK" $MAX 99

# ---- 1. cook from a task file -------------------------------------------
run "$EMILE" cook "$TASK" --store "$STORE"
check_rc "cook TASK exits 0" 0
COOK_OUT=$OUT_F
check_contains "cook prints the run header" "$COOK_OUT" "run 1: attention"
check_contains "cook prints the iteration table header" "$COOK_OUT" "iter"
check_contains "cook prints a summary line with the best" "$COOK_OUT" "best: iteration "
check_contains "cook names the run and store at the end" "$COOK_OUT" "run 1 in $STORE"
check_eq "cook writes nothing on stderr" "" "$(cat "$ERR_F")"
# Not a terminal: no live line, no escape sequence (as make and cargo).
if grep -q $'\033' "$COOK_OUT"; then not_ok "cook into a pipe draws no live line" "$(grep -c $'\033' "$COOK_OUT") lines with ESC"
else ok "cook into a pipe draws no live line"; fi

run "$EMILE" runs --json --store "$STORE"
check_rc "runs --json exits 0" 0
RUNS=$IT_TMP/runs.json
cp "$OUT_F" "$RUNS"
check_jq "runs --json: exactly one run" "$RUNS" 'length == 1'
check_jq "runs --json: run 1 is done" "$RUNS" '.[0].id == 1 and .[0].status == "done"'
NOTE=$(jq -r '.[0].note' "$RUNS")
N=$(jq -r '.[0].n_iters' "$RUNS")
case $NOTE in
  "target reached"*)
    if [ "$N" -ge 1 ] && [ "$N" -le $((MAX + 1)) ]; then ok "target reached within the budget ($N iterations)"
    else not_ok "target reached within the budget" "n_iters $N, max_iters $MAX"; fi
    check_jq "target reached: the best's roofline share >= target" "$RUNS" '.[0].best.roofline_pct >= 99'
    ;;
  "the iteration budget is spent")
    check_eq "budget spent: n_iters == max_iters + 1" "$((MAX + 1))" "$N"
    ;;
  *) not_ok "run note is one of the documented endings" "note: $NOTE" ;;
esac
# The summary line tells the same ending as the stored note.
check_contains "cook summary repeats the note" "$COOK_OUT" "done: $NOTE"

# One live line per iteration: "<iter> <time> ms ..." lines.
LINES=$(iter_count "$COOK_OUT")
check_eq "cook prints one line per iteration" "$N" "$LINES"

run "$EMILE" show 1 --json --store "$STORE"
check_rc "show 1 --json exits 0" 0
SHOW=$IT_TMP/show.json
cp "$OUT_F" "$SHOW"
check_jq "show: as many iterations as n_iters" "$SHOW" "(.iterations | length) == $N and .n_iters == $N"
check_jq "show: iterations numbered 0..n-1 in order" "$SHOW" '[.iterations[].iter] == [range(0; .iterations | length)]'
check_jq "show: iteration 0 is the reference and valid" "$SHOW" \
  '.iterations[0].label == "reference" and .iterations[0].status == "valid" and .iterations[0].time_ms > 0'
check_jq "show: the reference's source is the task's reference" "$SHOW" \
  '.iterations[0].source == .task.reference_source'
check_jq "show: every iteration has a non-empty reason" "$SHOW" '(.iterations | length) > 0 and all(.iterations[]; (.reason | type) == "string" and (.reason | length) > 0)'
check_jq "show: every iteration after 0 has a label and params with a rung" "$SHOW" \
  '(.iterations | length) > 1 and all(.iterations[1:][]; (.label | length) > 0 and (.params.rung | type) == "string")'
check_jq "show: the best is a valid iteration with the least time" "$SHOW" \
  '.best_iter as $b | [.iterations[] | select(.status == "valid")] as $v
   | ($v | map(select(.iter == $b)) | length) == 1
   and ($v | min_by(.time_ms) | .iter) == $b'
check_jq "show: the best is faster than the reference (speedup > 1)" "$SHOW" \
  '.best_iter as $b | (.iterations[] | select(.iter == $b) | .speedup) > 1'
check_jq "show: speedups are reference time / time" "$SHOW" \
  '.iterations[0].time_ms as $r | $r > 0 and all(.iterations[] | select(.status == "valid"); ((.speedup - $r / .time_ms) | fabs) < 1e-6 * .speedup)'
check_jq "show: valid iterations carry a report with a diagnosis" "$SHOW" \
  '(.iterations | length) > 0 and all(.iterations[] | select(.status == "valid"); .report.time_ms.median > 0 and (.report.diagnosis | type) == "array")'
check_jq "show: the task is the one given" "$SHOW" \
  '(.task.params | del(.scale)) == {"batch":1,"seq":256,"q_heads":4,"kv_heads":2,"head_dim":32,"causal":1}
   and ((.task.params.scale - (1 / (32 | sqrt))) | fabs) < 1e-12 and .task.max_iters == 3 and .task.target == 99'
# show agrees with runs
for k in status best_iter n_iters note backend agent; do
  check_same "show and runs agree on $k" "$(jq -c ".[0].$k" "$RUNS")" "$(jq -c ".$k" "$SHOW")"
done
check_same "runs' best.time_ms is the best iteration's" \
  "$(jq -c '.best_iter as $b | .iterations[] | select(.iter == $b) | .time_ms' "$SHOW")" "$(jq -c '.[0].best.time_ms' "$RUNS")"
# and the store file itself
check_eq "store: iterations in SQLite" "$N" "$(sqlite3 "$STORE" 'SELECT count(*) FROM iterations WHERE run_id = 1')"
check_eq "store: run status in SQLite" "done" "$(sqlite3 "$STORE" 'SELECT status FROM runs WHERE id = 1')"

# The text form of show: one line per iteration too.
run "$EMILE" show 1 --store "$STORE"
check_rc "show 1 exits 0" 0
check_contains "show prints the status and note" "$OUT_F" "run 1  done  $NOTE"
check_eq "show prints one line per iteration" "$N" "$(iter_count "$OUT_F")"

# ---- 2. export -----------------------------------------------------------
EXP=$IT_TMP/export
run "$EMILE" export 1 "$EXP" --store "$STORE"
check_rc "export 1 DIR exits 0" 0
for f in best.c best.so report.md report.json roofline.svg; do
  check "export writes $f" test -s "$EXP/$f"
done
BEST=$(jq -r '.best_iter' "$SHOW")
if [ -f "$EXP/best.c" ]; then
  check_same "best.c is the best iteration's source" \
    "$(jq -j ".iterations[] | select(.iter == $BEST) | .source" "$SHOW" | md5sum)" "$(md5sum <"$EXP/best.c")"
fi
if nm -D --defined-only "$EXP/best.so" 2>/dev/null | grep -qE ' T emile_kernel$'; then ok "best.so exports emile_kernel"
else not_ok "best.so exports emile_kernel" "$(nm -D "$EXP/best.so" 2>&1 | head -5 | tr '\n' '|')"; fi
check "best.so is a shared object" sh -c "file '$EXP/best.so' 2>/dev/null | grep -q 'shared object' || head -c 4 '$EXP/best.so' | grep -q ELF"
check_contains "report.md has the iterations table" "$EXP/report.md" "| iter | label | status | time ms (median) |"
check_contains "report.md marks the best row" "$EXP/report.md" "| **$BEST** (best) |"
check_eq "report.md has one table row per iteration" "$N" "$(grep -cE '^\| (\*\*)?[0-9]+' "$EXP/report.md" || true)"
check_contains "report.md links the roofline plot" "$EXP/report.md" "roofline.svg"
check_jq "report.json parses and has the run's iterations" "$EXP/report.json" "(.iterations | length) == $N and .id == 1 and .best_iter == $BEST"
VALID=$(jq '[.iterations[] | select(.status == "valid")] | length' "$SHOW")
check_same "roofline.svg: one <circle per valid iteration" "$VALID" "$(grep -o '<circle' "$EXP/roofline.svg" | wc -l | tr -d ' ')"
check_same "roofline.svg: the circles are the valid iterations (0 among them)" \
  "$(jq -r '[.iterations[] | select(.status == "valid") | .iter] | sort | if .[0] == 0 then map(tostring) | join(",") else "no reference" end' "$SHOW")" \
  "$(grep -o '<circle[^>]*data-iter="[0-9]*"' "$EXP/roofline.svg" | sed 's/.*data-iter="//; s/"//' | sort -n | paste -sd, -)"
check_contains "roofline.svg marks the best" "$EXP/roofline.svg" "class=\"point best\" data-iter=\"$BEST\""
check "roofline.svg is a closed svg document" sh -c "head -c 300 '$EXP/roofline.svg' | grep -q '<svg' && grep -q '</svg>' '$EXP/roofline.svg'"

# ---- 3. the same cook through flags only -----------------------------------
# (--confirm 0 here and below: re-measures are section 1's and the unit
# tests' business; these sections are about flags, terminals and events.)
run "$EMILE" cook --op attention --batch 1 --seq 256 --q-heads 4 --kv-heads 2 --head-dim 32 --causal \
  --dtype f32 --reference kernels/attention/cpu/reference.c --max-iters 2 --target 99 --confirm 0 --store "$STORE"
check_rc "cook through flags exits 0" 0
check_contains "cook through flags starts run 2" "$OUT_F" "run 2: attention"
# A task from flags alone has no name: it is named by its op and shape,
# never printed as an empty name.
FLAGS_NAME="attention batch=1 seq=256 q_heads=4 kv_heads=2 head_dim=32 causal=1 f32"
check_contains "cook through flags names the task by its shape" "$OUT_F" "run 2: $FLAGS_NAME on "
check_not_contains "cook through flags prints no empty name" "$OUT_F" "attention  on"
run "$EMILE" show 2 --json --store "$STORE"
SHOW2=$IT_TMP/show2.json
cp "$OUT_F" "$SHOW2"
check_jq "flags: run 2 is done" "$SHOW2" '.status == "done"'
check_jq "flags: the stored task has that name" "$SHOW2" ".task.name == \"$FLAGS_NAME\""
check_jq "flags: the task has the flags' values" "$SHOW2" \
  '.task.op == "attention" and (.task.params | del(.scale)) == {"batch":1,"seq":256,"q_heads":4,"kv_heads":2,"head_dim":32,"causal":1}
   and .task.dtype == "f32" and .task.max_iters == 2 and .task.target == 99 and .task.backend == "cpu" and .task.agent == "builtin"'
check_jq "flags: 3 iterations (max_iters 2 + the reference) unless the target was reached" "$SHOW2" \
  'if (.note | startswith("target reached")) then .n_iters <= 3 else .n_iters == 3 and .note == "the iteration budget is spent" end'
check_jq "flags: reference valid, best faster" "$SHOW2" \
  '.iterations[0].status == "valid" and .best_iter as $b | (.iterations[] | select(.iter == $b) | .speedup) > 1'
check_jq "flags: the reference source is kernels/attention/cpu/reference.c" "$SHOW2" \
  ".task.reference_source == $(jq -Rs . kernels/attention/cpu/reference.c)"

# ---- 3b. on a terminal: a live line of the phase in flight ------------------
if command -v script >/dev/null 2>&1; then
  printf -v COOK_CMD '%q ' "$EMILE" cook "$TASK" --max-iters 1 --confirm 0 --store "$IT_TMP/tty.db"
  run script -qfec "$COOK_CMD" /dev/null
  check_rc "cook on a terminal exits 0" 0
  TTY_OUT=$OUT_F
  check_contains "on a terminal: the live line is redrawn in place" "$TTY_OUT" $'\r\033[K'
  check "on a terminal: the live line names the reference's phase and its elapsed seconds" \
    grep -qaE $'\033\\[K  iter 0 reference: compile[^\r]* [0-9]+s' "$TTY_OUT"
  check "on a terminal: the live line names the candidate being evaluated" \
    grep -qaE $'\033\\[K  iter 1 evaluate: [^\r]* [0-9]+s' "$TTY_OUT"
  check_eq "on a terminal: still one iteration line each (0 and 1)" "0,1" \
    "$(tr '\r' '\n' <"$TTY_OUT" | sed 's/^\x1b\[K//' | grep -aoE '^ {0,4}[0-9]+ {2,}[^ ]' | awk '{print $1}' | paste -sd, -)"
else
  not_ok "on a terminal: script(1) from util-linux is not installed"
fi

# ---- 4. --events: NDJSON on stdout -----------------------------------------
run "$EMILE" cook "$TASK" --max-iters 1 --confirm 0 --events --store "$STORE"
check_rc "cook --events exits 0" 0
EV=$OUT_F
if jq -e . "$EV" >/dev/null 2>&1 && [ "$(nonempty_lines "$EV")" -eq "$(jq -c . "$EV" | wc -l)" ]; then
  ok "--events: every stdout line is one JSON object"
else
  not_ok "--events: every stdout line is one JSON object" "$(head -c 400 "$EV" | tr '\n' '|')"
fi
EVS=$IT_TMP/events.json
jq -s . "$EV" >"$EVS" 2>/dev/null || echo '[]' >"$EVS"
check_jq "--events: a run event before any iteration, the last a done event" "$EVS" \
  '([.[].event] | index("run")) as $r | $r != null and ([.[].event] | index("iteration")) > $r and .[-1].event == "done"'
check_jq "--events: one iteration event per iteration (0 and 1)" "$EVS" \
  '[.[] | select(.event == "iteration") | .iteration.iter] == [0, 1]'
check_jq "--events: run, progress, worker, iteration and done events only; one run, one done" "$EVS" \
  'length > 0 and all(.[]; .event == "run" or .event == "progress" or .event == "worker" or .event == "iteration" or .event == "done")
   and ([.[] | select(.event == "run")] | length) == 1 and ([.[] | select(.event == "done")] | length) == 1'
check_jq "--events: every event from the run event on names run 3" "$EVS" \
  '([.[].event] | index("run")) as $r | length > $r and all(.[$r:][]; .run == 3)'
check_jq "--events: progress events name their phase, with the elapsed time" "$EVS" \
  'any(.[]; .event == "progress") and all(.[] | select(.event == "progress"); (.phase | type) == "string" and (.elapsed_s | type) == "number")'
check_jq "--events: the phases say the worker is asked, the reference runs, the agent proposes, a candidate is evaluated" "$EVS" \
  '[.[] | select(.event == "progress") | .phase] as $p | ($p | index("device")) != null and ($p | index("reference")) != null
   and ($p | index("propose")) != null and ($p | index("evaluate")) != null'
check_jq "--events: the candidate's evaluate phase names iteration 1 and its worker" "$EVS" \
  'any(.[]; .event == "progress" and .phase == "evaluate" and .iter == 1 and .worker == 1)'
check_jq "--events: done says done and the best" "$EVS" '.[-1].status == "done" and (.[-1].best_iter | type) == "number" and .[-1].best_iter >= 0'
check_jq "--events: iteration events carry status and reason" "$EVS" \
  'any(.[]; .event == "iteration") and all(.[] | select(.event == "iteration"); (.iteration.status | length) > 0 and (.iteration.reason | length) > 0)'
run "$EMILE" show 3 --json --store "$STORE"
cp "$OUT_F" "$IT_TMP/show3.json"
check_same "--events: done's best_iter is the stored best" "$(jq '.[-1].best_iter' "$EVS")" "$(jq '.best_iter' "$IT_TMP/show3.json")"
check_jq "--events: the run in the store has the 2 iterations" "$IT_TMP/show3.json" '.n_iters == 2 and .task.max_iters == 1'

# ---- 5. a compile error keeps its log with the iteration -------------------
# The worker's "(see compile.log)" names a file it deletes as it answers;
# the log comes back in the reply and stays with the iteration.  (A
# stand-in worker that compiles nothing, tests/support/fake_worker.sh.)
NC=$IT_TMP/nocompile
mkdir -p "$NC"
printf 'ref 100' >"$NC/ref.c"
run "$EMILE" cook --op attention --seq 128 --reference "$NC/ref.c" --max-iters 1 \
  --worker "FAKE_DIR='$NC' FAKE_MODE=nocompile sh '$IT_ROOT/tests/support/fake_worker.sh'" --store "$NC/runs.db"
check_rc "a cook whose candidate does not compile exits 0" 0
check_contains "the cook says where the compiler's log is" "$OUT_F" "the compiler's log: emile show 1 --iter 1"
check_not_contains "the cook names no deleted file" "$OUT_F" "see compile.log"
run "$EMILE" show 1 --iter 1 --store "$NC/runs.db"
check_rc "show 1 --iter 1 exits 0" 0
check_contains "show --iter prints the compiler's log" "$OUT_F" "kernel.c:3:5: error: expected ; before } token"
check_not_contains "show --iter passes no escape byte of the log to the terminal" "$OUT_F" $'\033'
check_contains "show --iter shows the stored error" "$OUT_F" "error: the kernel does not compile (the compiler's log: emile show 1 --iter 1)"
run "$EMILE" show 1 --iter 1 --json --store "$NC/runs.db"
check_jq "show --iter --json is the iteration" "$OUT_F" '.iter == 1 and .status == "compile_error" and (.compile_log | contains("expected ;"))'
run "$EMILE" show 1 --iter 7 --store "$NC/runs.db"
check_rc "show --iter of an iteration the run lacks exits 1" 1
check_contains "show --iter of an iteration the run lacks says so" "$ERR_F" "run 1 has no iteration 7 (it has 0..1)"

run "$EMILE" runs --json --store "$STORE"
check_jq "runs --json: three runs, newest first, all done" "$OUT_F" '[.[].id] == [3, 2, 1] and all(.[]; .status == "done")'

it_finish
