#!/usr/bin/env bash
# pytorch_problems.sh -- PyTorch problem files (KernelBench's convention) as
# tasks, on the cpu: the three examples cook (their ladders apply through
# emile_op), a user-defined op is validated against the PyTorch oracle on
# ragged and small sets, export writes a torch.library package and
# model_new.py that a fresh Python process uses (tests/python/check_export.py:
# matches the reference, torch.compile traces it), and every bad problem is
# refused before a run exists (exit 2, the file and line named, no store).
# A machine without Python or torch still runs C tasks; a .py task there
# says what is missing (exit 2).
source "$(dirname "$0")/lib.bash"
it_setup pytorch_problems

PY=${EMILE_PYTHON:-}
[ -n "$PY" ] || { [ -x "$IT_ROOT/build/venv/bin/python3" ] && PY=$IT_ROOT/build/venv/bin/python3; } || PY=python3
D=$IT_ROOT/tests/data/pytorch
EX=$IT_ROOT/examples
export PYTHONDONTWRITEBYTECODE=1

# ---- without Python or torch: C tasks run, .py tasks say what is missing ----
CS=$IT_TMP/nopy.db
run env EMILE_PYTHON=/nonexistent/python3 "$EMILE" cook "$D/fused_rows.py" --store "$CS"
check_rc "no Python: exit 2" 2
check_contains "no Python: names the interpreter and the fix" "$ERR_F" "'/nonexistent/python3' cannot be run"
check_contains "no Python: says EMILE_PYTHON" "$ERR_F" "set EMILE_PYTHON"
check "no Python: no store is created" test ! -e "$CS"
NOTORCH=
for p in /usr/bin/python3 /usr/local/bin/python3; do
  if [ -x "$p" ] && ! "$p" -c 'import torch' 2>/dev/null; then NOTORCH=$p; break; fi
done
if [ -n "$NOTORCH" ]; then
  run env EMILE_PYTHON="$NOTORCH" "$EMILE" cook "$D/fused_rows.py" --store "$CS"
  check_rc "Python without torch: exit 2" 2
  check_contains "Python without torch: says torch is missing" "$ERR_F" "has none (No module named 'torch')"
else
  ok "Python without torch: skipped (every python3 here has torch)"
fi
run env EMILE_PYTHON=/nonexistent/python3 "$EMILE" profile "$IT_ROOT/examples/rmsnorm_cpu.json" \
  "$IT_ROOT/kernels/rmsnorm/cpu/v1_parallel.c" --rows 256 --json
check_rc "no Python: a C task still profiles" 0
check_jq "no Python: the C task's kernel is valid" "$OUT_F" '.status == "valid"'

if ! "$PY" -c 'import torch' 2>/dev/null; then
  ok "skipped the rest: $PY has no torch (scripts/setup.sh makes build/venv)"
  it_finish
  exit $?
fi
export EMILE_PYTHON=$PY

# ---- bad problems: exit 2 before any run, file and line named ------------------
# bad NAME SUBSTRING FILE [ARGS...]
bad() {
  local name=$1 msg=$2 file=$3
  shift 3
  CS=$IT_TMP/bad-$RANDOM.db
  run "$EMILE" cook "$file" --max-iters 0 --store "$CS" "$@"
  check_rc "$name: exit 2" 2
  check_contains "$name: says why" "$ERR_F" "$msg"
  check_eq "$name: one line on stderr" 1 "$(wc -l <"$ERR_F" | tr -d ' ')"
  check_eq "$name: nothing on stdout" "" "$(head -c 200 "$OUT_F")"
  check "$name: no store, no run" test ! -e "$CS"
}
bad "no class Model" "no_model.py: no class Model (KernelBench's convention" "$D/no_model.py"
bad "syntax error" "syntax_error.py:6: syntax error" "$D/syntax_error.py"
bad "get_inputs raises" "inputs_raise.py:15: get_inputs() raised ValueError: cannot draw (64, 64)" "$D/inputs_raise.py"
bad "get_inputs returns a non-tensor" "get_inputs() returned a str at position 1: every input must be a torch.Tensor or a number" \
  "$D/inputs_not_tensors.py"
bad "get_inputs changes shape between calls" "get_inputs() returned different shapes or dtypes on two calls" \
  "$D/inputs_change_shape.py"
bad "non-deterministic forward" "Model.forward is not deterministic: two calls on the same inputs differ" \
  "$D/nondeterministic.py"
check_contains "non-deterministic forward: says it cannot be an oracle" "$ERR_F" "this reference cannot be an oracle"
cat >"$IT_TMP/memory.json" <<EOF
{"reference": "$D/too_much_memory.py", "memory_limit_mb": 256}
EOF
bad "more memory than the limit" "too_much_memory.py:14: get_inputs() ran out of memory" "$IT_TMP/memory.json"
check_contains "more memory than the limit: names the limit" "$ERR_F" "memory_limit_mb = 256 MB"
bad "emile_op that does not fit" "op attention takes 4 tensors (inputs, then outputs); the problem has 2" \
  "$D/op_mismatch.py"
bad "reference that is not the op it names" "the PyTorch reference is not op softmax: its output y differs from the float64 evaluation" \
  "$D/wrong_op.py"
bad "--const of no constant" "no module-level constant 'nope'" "$D/fused_rows.py" --const nope=3
bad "sizes as task params" "a PyTorch problem's sizes are its module-level constants" "$D/fused_rows.py" --rows 4

# ---- a user-defined op: tensors in the ABI's order, ragged and small sets --------
run "$EMILE" profile "$D/fused_rows.py" "$D/fused_rows.c" --json
check_rc "user-defined op: a right kernel is valid (exit 0)" 0
check_jq "user-defined op: the kernel validated on the task, ragged and small sets" "$OUT_F" \
  '.status == "valid" and ([.validation.checks[] | select(.output == "out0") | .params.rows] | .[0:3]) == [2000, 1747, 97]'
check_jq "user-defined op: both outputs checked" "$OUT_F" '[.validation.checks[].output] | unique == ["out0", "out1"]'
run "$EMILE" profile "$D/fused_rows.py" "$D/fused_rows_nobias.c" --json
check_rc "user-defined op: a kernel that ignores the (constant-initialised) bias: exit 1" 1
check_jq "user-defined op: ...is invalid, out0 named" "$OUT_F" '.status == "invalid" and (.error | contains("out0 off by"))'

# ---- a problem that names no op is matched by its shapes, verified in float64 ----
run "$EMILE" profile "$D/kernelbench_softmax.py" "$IT_ROOT/kernels/softmax/cpu/v1_parallel.c" --json
check_rc "a KernelBench softmax (no emile_op): the softmax ladder's kernel is valid" 0
check_jq "a KernelBench softmax: matched to the builtin softmax, checked in float64" "$OUT_F" \
  '.status == "valid" and .oracle.checked == true and .oracle.max_err < .oracle.tol'
run "$EMILE" profile "$D/fused_rows.py" "$D/fused_rows.c" --json
check_jq "a problem no builtin op fits stays user-defined (no float64 check)" "$OUT_F" \
  '.status == "valid" and .oracle.checked == false'

# ---- the kernel is given what the forward read (issue 11: a red-team of KernelBench problems) ----
run "$EMILE" profile "$D/inplace_affine.py" "$D/inplace_affine.c" --json
check_jq "a forward that changes its input in place: the right kernel passes validation" "$OUT_F" '.validation.ok == true'
run "$EMILE" profile "$D/inplace_affine.py" "$D/inplace_copy.c" --json
check_jq "...and a copy of its input, which matched the input the forward left, is invalid" "$OUT_F" \
  '.status == "invalid" and (.error | contains("out off by"))'
run "$EMILE" profile "$D/sqrt_scale.py" "$D/sqrt_scale.c" --json
check_jq "a parameter set to ones under a square root: redrawn keeping its sign, the kernel passes validation" \
  "$OUT_F" '.validation.ok == true'
bad "a forward that returns a number" "returned a tuple whose element 1 is a float" "$D/returns_float.py"
run "$EMILE" profile "$D/nonpersistent_mask.py" "$D/nonpersistent_mask.c" --json
check_jq "a buffer state_dict leaves out (persistent=False) reaches the kernel, after the state" "$OUT_F" \
  '.validation.ok == true'

# ---- 0-d tensors (a loss, num_batches_tracked): [1] to the kernel, 0-d in the export ----
# The op has no builtin ladder: a root whose kernels/ adds tests/data/pytorch/ladders/bn_mse.
ROOT2=$IT_TMP/root
mkdir -p "$ROOT2/kernels"
for f in "$IT_ROOT"/*; do [ "$(basename "$f")" = kernels ] || ln -s "$f" "$ROOT2/"; done
for f in "$IT_ROOT"/kernels/*; do ln -s "$f" "$ROOT2/kernels/"; done
ln -s "$D/ladders/bn_mse" "$ROOT2/kernels/bn_mse"
ln -s "$D/ladders/scalar_mul" "$ROOT2/kernels/scalar_mul"
BS=$IT_TMP/bn_mse.db
run env EMILE_ROOT="$ROOT2" "$EMILE" cook "$D/bn_mse.py" --max-iters 1 --confirm 0 --target 99 --store "$BS"
check_rc "bn_mse.py (a 0-d loss, a 0-d buffer) cooks (exit 0)" 0
run "$EMILE" show 1 --json --store "$BS"
check_jq "bn_mse.py: the loss and num_batches_tracked are scalar tensors of shape [1]; the rung is valid" "$OUT_F" \
  '([.task.op.tensors[] | select(.scalar == true) | .name] | sort) == ["bn_num_batches_tracked", "out"]
   and ([.task.op.tensors[] | select(.scalar == true) | .shape] | unique) == [["1"]]
   and .iterations[1].status == "valid"'
EXP2=$IT_TMP/export_bn_mse
run "$EMILE" export 1 "$EXP2" --store "$BS"
check_rc "bn_mse.py: export exits 0" 0
check_jq "bn_mse.py: op.json marks the scalars" "$EXP2/emile_bn_mse/op.json" \
  '[.tensors[] | select(.scalar == true) | .name] | sort == ["bn_num_batches_tracked", "out"]'
run env TORCHINDUCTOR_CACHE_DIR="$IT_TMP/inductor" "$PY" "$IT_ROOT/tests/python/check_export.py" "$EXP2"
check_rc "bn_mse.py: ModelNew takes the 0-d buffer and returns a 0-d loss (tests/python/check_export.py)" 0
check_contains "bn_mse.py: ModelNew matches Model" "$OUT_F" "ok - ModelNew matches Model within the tolerance"

# ---- a number among get_inputs() (KernelBench level 1, problem 5: A * s) ----
SS=$IT_TMP/scalar_mul.db
run env EMILE_ROOT="$ROOT2" "$EMILE" cook "$D/scalar_mul.py" --max-iters 1 --confirm 0 --target 99 --store "$SS"
check_rc "scalar_mul.py (get_inputs gives a number) cooks (exit 0)" 0
run "$EMILE" show 1 --json --store "$SS"
check_jq "scalar_mul.py: s is a scalar f32 tensor of shape [1]; the rung is valid" "$OUT_F" \
  '([.task.op.tensors[] | select(.name == "s") | [.scalar, .shape]] == [[true, ["1"]]])
   and .iterations[1].status == "valid"'
EXP3=$IT_TMP/export_scalar_mul
run "$EMILE" export 1 "$EXP3" --store "$SS"
check_rc "scalar_mul.py: export exits 0" 0
run env TORCHINDUCTOR_CACHE_DIR="$IT_TMP/inductor" "$PY" "$IT_ROOT/tests/python/check_export.py" "$EXP3"
check_rc "scalar_mul.py: ModelNew takes the number as get_inputs() gives it (tests/python/check_export.py)" 0
check_contains "scalar_mul.py: ModelNew matches Model" "$OUT_F" "ok - ModelNew matches Model within the tolerance"

# ---- an op without a builtin ladder: the reference is measured, then the agent says why it stops ----
NS=$IT_TMP/noisy.db
run "$EMILE" cook "$D/noisy_user_op.py" --max-iters 3 --store "$NS"
check_rc "no ladder for the op: the cook still runs the reference (exit 0)" 0
check_contains "no ladder: the builtin agent says why it stops" "$OUT_F" "no ladder for op noisy_user_op on cpu"
check_contains "no ladder: ...and what would go on" "$OUT_F" "--agent anthropic or --agent openai"
check_contains "no ladder: the floors are quoted, the reference at 1.00x its own eager time" "$OUT_F" "vs PyTorch: 1.00x eager ("
run "$EMILE" show 1 --json --store "$NS"
check_jq "no ladder: iteration 0 is valid with its eager floor, and nothing else was proposed" "$OUT_F" \
  '.iterations[0].status == "valid" and .iterations[0].report.floors.eager_ms > 0 and (.iterations | length) == 1'
# A noisy reference is measured again: each re-measure a new measurement
# (it was the first one, cached, three times over).
check_jq "a noisy PyTorch reference's re-measures are new measurements, not the first again" "$OUT_F" \
  '.iterations[0].remeasure.why == "noisy_timing" and (.iterations[0].remeasure.samples_ms | length) >= 2
   and (.iterations[0].remeasure.samples_ms | unique | length) > 1'
check_jq "...and its eager floor is its re-measured time" "$OUT_F" \
  '.iterations[0].report.floors.eager_ms == .iterations[0].time_ms'

# ---- the examples cook (CPU sizes) -------------------------------------------------
STORE=$IT_TMP/runs.db
# --target 99: the loop must propose, whatever share of this machine's
# measured roofline the reference already reaches (a busy machine measures
# low ceilings).
run "$EMILE" cook "$EX/softmax_cpu.json" --target 99 --store "$STORE"
check_rc "softmax.py cooks (exit 0)" 0
check_contains "softmax.py: the builtin softmax op" "$OUT_F" "run 1: softmax"
check_contains "softmax.py: the best is quoted against eager and torch.compile" "$OUT_F" "x eager ("
check "softmax.py: ...both floors on one line" grep -qE '^vs PyTorch: [0-9.]+x eager \([0-9.]+ ms\)(, [0-9.]+x torch.compile|; no torch.compile floor)' "$OUT_F"
run "$EMILE" show 1 --json --store "$STORE"
SHOW=$IT_TMP/show1.json
cp "$OUT_F" "$SHOW"
check_jq "softmax.py: the task is the builtin op, the reference the problem" "$SHOW" \
  '.task.op == "softmax" and .task.reference_lang == "py" and .task.vary == null and .task.params.rows == 512
   and .task.params.cols == 4096 and .task.constants == {"batch_size": 512, "dim": 4096}'
check_jq "softmax.py: iteration 0 is the PyTorch reference with both floors" "$SHOW" \
  '.iterations[0].status == "valid" and .iterations[0].report.floors.eager_ms > 0
   and (.iterations[0].report.floors.compile_ms > 0 or (.iterations[0].report.floors.compile_error | type) == "string")'
check_jq "softmax.py: a ladder kernel is valid against the PyTorch oracle" "$SHOW" \
  '[.iterations[1:][] | select(.status == "valid" and (.label | startswith("v1_parallel")))] | length >= 1'

EXP=$IT_TMP/export
run "$EMILE" export 1 "$EXP" --store "$STORE"
check_rc "softmax.py: export exits 0" 0
for f in best.c best.so model_new.py emile_softmax/__init__.py emile_softmax/op.json emile_softmax/kernel.so; do
  check "export writes $f" test -s "$EXP/$f"
done
check_contains "export: says how to use it from PyTorch" "$OUT_F" "registers torch.ops.emile.softmax"
run "$PY" "$IT_ROOT/tests/python/check_export.py" "$EXP"
check_rc "export: a fresh Python process uses it (tests/python/check_export.py)" 0
check_contains "export: ModelNew matches Model" "$OUT_F" "ok - ModelNew matches Model within the tolerance"
check_contains "export: torch.compile traces the op" "$OUT_F" "ok - torch.compile(ModelNew, fullgraph=True) traces the op"
check_contains "export: a wrong dtype is refused" "$OUT_F" "ok - a float64 input is refused"

# issue 15: export RUN FILE said "exported run 1 ... to:" before failing.
touch "$IT_TMP/a_file"
run "$EMILE" export 1 "$IT_TMP/a_file" --store "$STORE"
check_rc "export RUN FILE: exit 2" 2
check_contains "export RUN FILE: says it is not a directory" "$ERR_F" "a_file exists and is not a directory"
check_eq "export RUN FILE: nothing on stdout" "" "$(head -c 200 "$OUT_F")"

sed "s#\"rmsnorm.py\"#\"$EX/rmsnorm.py\"#; s#\"max_iters\": 2#\"max_iters\": 1, \"compile_floor\": false#" \
  "$EX/rmsnorm_py_cpu.json" >"$IT_TMP/rmsnorm.json"
run "$EMILE" cook "$IT_TMP/rmsnorm.json" --target 99 --store "$STORE"
check_rc "rmsnorm.py cooks (exit 0)" 0
run "$EMILE" show 2 --json --store "$STORE"
check_jq "rmsnorm.py: the builtin rmsnorm op, eps from the constructor, the weight a tensor" "$OUT_F" \
  '.task.op == "rmsnorm" and .task.params.eps == 1e-06 and .task.params.cols == 2560 and .task.vary == null
   and .iterations[0].report.floors.eager_ms > 0 and .iterations[0].report.floors.compile_ms == null'
check_jq "rmsnorm.py: the rmsnorm ladder's kernel is valid" "$OUT_F" \
  '.iterations[1].status == "valid" and (.iterations[1].label | startswith("v1_parallel"))'

sed "s#\"qwen3_attention.py\"#\"$EX/qwen3_attention.py\"#; s#\"max_iters\": 4#\"max_iters\": 1, \"compile_floor\": false#; s#\"seq_len\": 256#\"seq_len\": 128#" \
  "$EX/qwen3_attention_cpu.json" >"$IT_TMP/attention.json"
run "$EMILE" cook "$IT_TMP/attention.json" --target 99 --store "$STORE"
check_rc "qwen3_attention.py cooks (exit 0)" 0
run "$EMILE" show 3 --json --store "$STORE"
check_jq "qwen3_attention.py: the builtin attention op, its parameters from the shapes" "$OUT_F" \
  '.task.op == "attention" and .task.params.q_heads == 32 and .task.params.kv_heads == 8 and .task.params.head_dim == 128
   and .task.params.seq == 128 and .task.params.causal == 1 and .task.vary == ["seq"]'
check_jq "qwen3_attention.py: the attention ladder's first proposal is valid" "$OUT_F" \
  '.iterations[1].status == "valid" and (.iterations[1].label | test("^v[0-9]+_"))'
run "$EMILE" profile "$IT_TMP/attention.json" "$IT_ROOT/kernels/attention/cpu/v1_blocked.c" --json
check_jq "qwen3_attention.py: the PyTorch reference passed the float64 check of the op" "$OUT_F" \
  '.status == "valid" and .oracle.checked == true and .oracle.max_err < .oracle.tol'

it_finish
