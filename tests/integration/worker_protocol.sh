#!/usr/bin/env bash
# worker_protocol.sh -- `emile worker` spoken to directly (docs/PROTOCOL.md):
# one JSON request a line in, one reply a line out, each reply sent as soon
# as its request is answered (not at exit); hello says protocol 1; a
# malformed line or an unknown cmd gets {"ok":false,...} and the worker goes
# on; evaluate of a valid kernel is valid with a report; EOF ends it, exit 0;
# a request that asks gets progress events before its reply; compile errors
# name the source_name given; the reply's sandbox object names its layers;
# the runner exports no function of its own by name.
source "$(dirname "$0")/lib.bash"
it_setup worker_protocol

REPLY_TIMEOUT=${REPLY_TIMEOUT:-120}
TASKJ=$(jq -nc --rawfile ref kernels/attention/cpu/reference.c \
  '{op: "attention", params: {batch: 1, seq: 256, q_heads: 4, kv_heads: 2, head_dim: 32, causal: 1},
    dtype: "f32", backend: "cpu", reference_source: $ref, time_limit_s: 60}')
EVAL_GOOD=$(jq -nc --argjson t "$TASKJ" --rawfile k kernels/attention/cpu/v2_flash.c \
  '{cmd: "evaluate", id: 5, task: $t, kernel: {source: $k}}')
EVAL_BAD=$(jq -nc --argjson t "$TASKJ" \
  '{cmd: "evaluate", id: 6, task: $t, kernel: {source: "#include \"emile.h\"\nEMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a) { return undeclared_thing; }\n"}}')

# The worker as a coprocess: we write a line, then wait for its reply line
# while the worker's stdin is still open.
WERR=$IT_TMP/worker.err
coproc WORKER { exec "$EMILE" worker 2>"$WERR"; }
WPID=$WORKER_PID
exec {WIN}>&"${WORKER[1]}" {WOUT}<&"${WORKER[0]}"

N_REPLY=0
# ask NAME LINE: send LINE, read one reply into $IT_TMP/replyN.json (REPLY_F).
ask() {
  N_REPLY=$((N_REPLY + 1))
  REPLY_F=$IT_TMP/reply$N_REPLY.json
  printf '%s\n' "$2" >&"$WIN"
  local line=
  if IFS= read -r -t "$REPLY_TIMEOUT" -u "$WOUT" line; then
    printf '%s\n' "$line" >"$REPLY_F"
    ok "$1: a reply line arrives while stdin is open"
  else
    : >"$REPLY_F"
    not_ok "$1: a reply line arrives while stdin is open" "no reply in ${REPLY_TIMEOUT}s; worker stderr: $(head -c 300 "$WERR" | tr '\n' '|')"
  fi
}

ask "hello" '{"cmd": "hello", "id": 1}'
check_jq "hello: ok, protocol 1, the id echoed, backends include cpu, a host" "$REPLY_F" \
  '.ok == true and .protocol == 1 and .id == 1 and (.backends | index("cpu")) != null and (.host | type) == "string"'

ask "malformed line" 'this is {not json'
check_jq "malformed line: ok false, the error says it is not JSON" "$REPLY_F" \
  '.ok == false and (.error | contains("not a JSON object"))'

ask "a JSON array" '[1, 2, 3]'
check_jq "a JSON array: ok false, not an object" "$REPLY_F" '.ok == false and (.error | contains("not an object"))'

ask "hello after the malformed lines" '{"cmd": "hello", "id": 2}'
check_jq "the worker keeps answering after malformed lines" "$REPLY_F" '.ok == true and .protocol == 1 and .id == 2'

ask "unknown cmd" '{"cmd": "frobnicate", "id": "three"}'
check_jq "unknown cmd: ok false, the id echoed, names the commands" "$REPLY_F" \
  '.ok == false and .id == "three" and (.error | contains("unknown cmd")) and (.error | contains("evaluate"))'

ask "request without cmd" '{"id": 4}'
check_jq "request without cmd: ok false, says so" "$REPLY_F" '.ok == false and .id == 4 and (.error | contains("cmd"))'

ask "evaluate without a kernel" "$(jq -nc --argjson t "$TASKJ" '{cmd: "evaluate", id: 41, task: $t}')"
check_jq "evaluate without a kernel: ok false, names what is missing" "$REPLY_F" \
  '.ok == false and .id == 41 and (.error | contains("kernel"))'

ask "evaluate a valid kernel" "$EVAL_GOOD"
check_jq "evaluate v2_flash: ok, valid, id 5, no error" "$REPLY_F" '.ok == true and .status == "valid" and .id == 5 and .error == null'
check_jq "evaluate v2_flash: the report has a median time and a roofline share" "$REPLY_F" \
  '.report.time_ms.median > 0 and .report.gflops > 0 and .report.roofline_pct > 0 and (.report.diagnosis | type) == "array"'
check_jq "evaluate v2_flash: validation passed on >= 4 checks incl. a ragged one" "$REPLY_F" \
  '.validation.ok == true and (.validation.checks | length) >= 4 and any(.validation.checks[]; .params.seq % 32 != 0)'
check_jq "evaluate v2_flash: compiled, and ran sandboxed" "$REPLY_F" '.compile.ok == true and (.sandbox | type) == "object"'

ask "evaluate a kernel that does not compile" "$EVAL_BAD"
check_jq "evaluate a kernel that does not compile: ok true, status compile_error, the log" "$REPLY_F" \
  '.ok == true and .id == 6 and .status == "compile_error" and (.compile.ok == false) and (.compile.log | contains("undeclared_thing"))'

ask "devices" '{"cmd": "devices", "backend": "cpu", "id": 7}'
check_jq "devices: a cpu device with its ceilings" "$REPLY_F" \
  '.ok == true and .id == 7 and (.devices | length) == 1 and .devices[0].backend == "cpu" and .devices[0].ceilings.peak_gflops.f32 > 0'

# ---- EOF ends the worker with exit 0 --------------------------------------------
exec {WIN}>&-
eval "exec ${WORKER[1]}>&-" 2>/dev/null || true
rest=$(timeout 30 cat <&"$WOUT" || true)
check_eq "after EOF: no further output" "" "$rest"
set +e
deadline=$((SECONDS + 30))
while kill -0 "$WPID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
wait "$WPID" 2>/dev/null
WRC=$?
set -e
check_eq "EOF ends the worker with exit 0" "0" "$WRC"
check_eq "the worker wrote nothing on stderr" "" "$(head -c 300 "$WERR")"

# ---- a task too big for the machine: refused, not attempted ----------------------
# (run_capped and the plain build: see lib.bash)
BIGT=$(jq -c '.params.seq = 10000000 | .params.q_heads = 8 | .params.head_dim = 64' <<<"$TASKJ")
jq -nc --argjson t "$BIGT" --rawfile k kernels/attention/cpu/v2_flash.c \
  '{cmd: "evaluate", id: 9, task: $t, kernel: {source: $k}}' >"$IT_TMP/big.req"
echo '{"cmd": "hello", "id": 10}' >>"$IT_TMP/big.req"
run_capped "$(plain_bin)" worker <"$IT_TMP/big.req"
check_rc "worker, a task too big for memory: exit 0 at EOF" 0
head -n 1 "$OUT_F" >"$IT_TMP/big.reply"
check_jq "worker, a task too big for memory: not valid, the error names the task's memory need (not an arena)" \
  "$IT_TMP/big.reply" '.id == 9 and .status != "valid" and (.error | test("memory|bytes|too large"; "i")) and (.error | test("arena|reference"; "i") | not)'
check_eq "worker, a task too big for memory: it goes on answering" "10" "$(sed -n 2p "$OUT_F" | jq -r .id 2>/dev/null)"

# ---- progress events, a source name, the sandbox's layers ------------------------
# check_lines NAME FILE EXPR: EXPR true of all the output's lines (jq -s).
check_lines() {
  if jq -e -s "$3" "$2" >/dev/null 2>&1; then ok "$1"; else
    not_ok "$1" "jq -e -s '$3' is false" "on: $(head -c 600 "$2" | tr '\n' ' ')"
  fi
}
jq -nc --argjson t "$TASKJ" --rawfile k kernels/attention/cpu/v2_flash.c \
  '{cmd: "evaluate", id: 21, progress: true, task: $t, kernel: {source: $k}}' >"$IT_TMP/progress.req"
run "$EMILE" worker <"$IT_TMP/progress.req"
check_rc "worker, evaluate with progress: exit 0" 0
check_lines "worker, evaluate with progress: events first, each with the id, a phase, k, n, elapsed_s; the reply last" \
  "$OUT_F" 'length >= 5 and (.[:-1] | all(.event == "progress" and .id == 21 and (.phase | type) == "string"
   and (.k | type) == "number" and (.n | type) == "number" and .elapsed_s >= 0))
   and (.[-1] | .id == 21 and .status == "valid" and (has("event") | not))'
check_lines "worker, evaluate with progress: the phases in order (reference, compile, validate, time, held_back)" \
  "$OUT_F" '[.[:-1][].phase] as $p | ($p | index("compile")) < ($p | index("validate"))
   and ($p | index("validate")) < ($p | index("time")) and ($p | index("time")) < ($p | index("held_back"))
   and ($p | index("reference")) != null'
check_lines "worker, evaluate: the sandbox names its layers (pid namespace, its own /proc, seccomp)" \
  "$OUT_F" '.[-1].sandbox | .seccomp == true and .pid_namespace == true and .private_proc == true
   and (.layers | contains("pid")) and (.landlock_abi | type) == "number"'
jq -nc --argjson t "$TASKJ" \
  '{cmd: "evaluate", id: 22, task: $t, kernel: {source_name: "attn_v9.c",
    source: "#include \"emile.h\"\nint f(void) { return undeclared_thing; }\n"}}' >"$IT_TMP/name.req"
run "$EMILE" worker <"$IT_TMP/name.req"
check_jq "worker, a compile error: the log names attn_v9.c:2, not the sandbox's path" "$OUT_F" \
  '.status == "compile_error" and (.compile.log | contains("attn_v9.c:2")) and (.compile.log | contains("emile-w-") | not)
   and (.compile.command | contains("emile-w-") | not)'
exports=$(nm -D --defined-only "$(dirname "$EMILE")/emile-runner" | awk '$2 == "T" {print $3}' | sort | tr '\n' ' ')
check_eq "the runner exports only the CUDA launch entry points it interposes" \
  "__cudaLaunchKernel __cudaLaunchKernel_ptsz cudaLaunchKernel " "$exports"

# ---- the same conversation through a pipe, all at once ---------------------------
printf '%s\n' '{"cmd":"hello","id":1}' '' 'garbage' '{"cmd":"nope","id":3}' '{"cmd":"hello","id":4}' >"$IT_TMP/batch.req"
run "$EMILE" worker <"$IT_TMP/batch.req"
check_rc "worker < file: exit 0" 0
check_eq "worker < file: one reply a non-empty request line (blank lines skipped)" "4" "$(wc -l <"$OUT_F" | tr -d ' ')"
check_eq "worker < file: replies in order" '[1,null,3,4] [true,false,false,true]' \
  "$(jq -sc 'map(.id)' "$OUT_F") $(jq -sc 'map(.ok)' "$OUT_F")"

it_finish
