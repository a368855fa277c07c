#!/usr/bin/env bash
# triton_lang_cli.sh -- the task's kernel language through the CLI and the
# worker, on this machine's cpu backend (the cuda half runs in the GPU suite):
#   - "lang" and --lang reach the task; a language the backend does not
#     build is bad input (exit 2, the message names the backend's
#     languages), from the task file and from the flag;
#   - an evaluate request whose kernel names its own language
#     ("kernel": {"lang": ...}) is compiled in that language, not the
#     task's: the reference's iteration 0 of a Triton cook is CUDA C;
#   - emile export writes build.sh, which rebuilds the exported source.
source "$(dirname "$0")/lib.bash"
it_setup triton_lang_cli

task=$IT_TMP/task.json
jq '.max_iters = 0 | .reference = "'"$IT_ROOT"'/kernels/attention/cpu/reference.c"' examples/cpu_attention.json > "$task"

set +e
out=$("$EMILE" cook "$task" --lang triton --store "$IT_TMP/runs.db" 2>&1); rc=$?
set -e
if [ "$rc" -eq 2 ] && grep -q "language 'triton': the cpu backend builds c" <<<"$out"; then
  ok "--lang triton on the cpu backend: exit 2, names what cpu builds"
else not_ok "--lang triton on cpu" "rc=$rc out=$out"; fi
jq '.lang = "cobol"' "$task" > "$IT_TMP/cobol.json"
set +e
out=$("$EMILE" cook "$IT_TMP/cobol.json" --store "$IT_TMP/runs.db" 2>&1); rc=$?
set -e
if [ "$rc" -eq 2 ] && grep -q "unknown language 'cobol'" <<<"$out"; then
  ok "\"lang\": \"cobol\": exit 2, unknown language"
else not_ok "lang cobol" "rc=$rc out=$out"; fi
[ ! -e "$IT_TMP/runs.db" ] && ok "bad input wrote no store" || not_ok "bad input wrote no store" "$(ls "$IT_TMP")"

set +e
out=$("$EMILE" cook "$task" --lang c --store "$IT_TMP/runs.db" --quiet 2>&1); rc=$?
set -e
if [ "$rc" -eq 0 ] && [ "$(sqlite3 "$IT_TMP/runs.db" "select json_extract(task, '$.lang') from runs where id = 1" 2>/dev/null)" = c ]; then
  ok "--lang c: the stored task says lang c"
else not_ok "--lang c" "rc=$rc out=$out $(sqlite3 "$IT_TMP/runs.db" 'select task from runs' 2>&1 | head -c 300)"; fi

# `emile profile TASK.json KERNEL.py`: the .py is the kernel (not a
# PyTorch problem taking the task's place), and on cpu a Triton kernel is
# bad input naming what the backend builds, not C that fails to compile.
set +e
out=$("$EMILE" profile "$task" kernels/attention/triton/t4_tma.py 2>&1); rc=$?
set -e
if [ "$rc" -eq 2 ] && grep -q "t4_tma.py is triton: language 'triton': the cpu backend builds c" <<<"$out"; then
  ok "profile TASK.json KERNEL.py on cpu: exit 2, the kernel is Triton, cpu builds c"
else not_ok "profile TASK.json KERNEL.py" "rc=$rc out=$(head -c 400 <<<"$out")"; fi

# The worker: the kernel's own language beats the task's.
TASKJ=$(jq -nc --rawfile ref kernels/attention/cpu/reference.c \
  '{op: "attention", params: {batch: 1, seq: 64, q_heads: 2, kv_heads: 1, head_dim: 16, causal: 1},
    dtype: "f32", backend: "cpu", lang: "c", reference_source: $ref, time_limit_s: 60}')
req() { jq -nc --argjson t "$TASKJ" --rawfile k kernels/attention/cpu/v2_flash.c --arg lang "$1" \
  '{cmd: "evaluate", id: 1, task: $t, kernel: ({source: $k} + (if $lang == "" then {} else {lang: $lang} end)),
    options: {timing: false}}'; }
{ req ""; req c; req triton; } | timeout 300 "$EMILE" worker > "$IT_TMP/replies.jsonl" 2>"$IT_TMP/worker.err"
s1=$(sed -n 1p "$IT_TMP/replies.jsonl" | jq -r .status)
s2=$(sed -n 2p "$IT_TMP/replies.jsonl" | jq -r .status)
s3=$(sed -n 3p "$IT_TMP/replies.jsonl" | jq -r '.status + " " + .compile.log')
[ "$s1" = valid ] && ok "worker: no kernel.lang, the task's language (c): valid" || not_ok "worker default lang" "$s1"
[ "$s2" = valid ] && ok "worker: kernel.lang c: valid" || not_ok "worker kernel.lang c" "$s2"
if [ "$s3" = "compile_error language 'triton': the cpu backend builds c" ]; then
  ok "worker: kernel.lang triton on cpu: compile_error naming what cpu builds"
else not_ok "worker kernel.lang triton" "$s3"; fi

# export: build.sh rebuilds the best kernel from its directory
"$EMILE" export 1 "$IT_TMP/exp" --store "$IT_TMP/runs.db" > /dev/null 2>&1 || true
if [ -f "$IT_TMP/exp/build.sh" ] && grep -q ' best.c -o best.so' "$IT_TMP/exp/build.sh" && rm -f "$IT_TMP/exp/best.so" \
   && sh "$IT_TMP/exp/build.sh" && [ -f "$IT_TMP/exp/best.so" ]; then
  ok "export: build.sh rebuilds best.so"
else not_ok "export build.sh" "$(ls "$IT_TMP/exp" 2>&1 | tr '\n' ' ') $(cat "$IT_TMP/exp/build.sh" 2>&1)"; fi

it_finish
