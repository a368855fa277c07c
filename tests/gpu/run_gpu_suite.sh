#!/usr/bin/env bash
# The GPU suite (`make test-gpu`), run on a host with an NVIDIA GPU:
#  1. `emile devices cuda` measures the ceilings (cuBLAS GEMM, FMA, copy);
#  2. the naive CUDA reference passes its float64 check and profiles;
#  3. every adversarial CUDA kernel in tests/kernels/cuda/ gets the status
#     it must get (cheats rejected, faults contained), and after each fault
#     a well-behaved kernel still validates on a healthy device;
#  4. the best ladder kernel is profiled on the Qwen3-4B prefill task with
#     hardware counters, and the full report is printed;
#  5. `emile taste --device cuda` on the tiny shape with the reference
#     kernel (.cu, compiled by taste for the detected architecture) hot-swapped
#     into the engine's prefill slot, in the sandboxed engine children: the
#     generations agree, and decode ran as a CUDA graph;
#  6. the decode ops' kernels (issue 13): every reference and ladder rung
#     against torch fp32 at the Qwen3-4B shapes and ragged ones
#     (bench/op_ladders_cuda.py --check), three top rungs through the
#     worker (`emile profile` of examples/qwen3_ops at reduced sizes), the
#     engine's op slots (tests/gpu/engine_cuda_check --op: every decode op
#     swapped at once, decode through the graph, against the golden logits
#     and the engine's own), and `emile taste --device cuda` with every decode
#     op swapped and --breakdown.
#  7. Triton (task "lang": "triton"): a ladder rung compiled ahead of time
#     validates and profiles, with its launch captured (registers,
#     occupancy) and tensor-core instructions read from its cubin; a
#     bf16-compiled kernel on an f32 task returns an error, not garbage; a
#     kernel needing too much shared memory is a compile_error with
#     Triton's message; a short builtin cook in Triton at 1x1024 ends on a
#     valid Triton kernel, and its export holds best.py and build.sh.
# Prints one "ok"/"not ok" line per check and "N passed, N failed" last.
# GPU_SUITE_SKIP="triton pytorch" leaves out steps 7 and 8 (each runs alone,
# tests/gpu/triton_gpu_check.sh and pytorch_checks.sh): the whole suite can
# pass a device call's 10-minute limit, so a session splits it in two.
set -u
cd "$(dirname "$0")/../.."
E=${EMILE:-./build/emile}
OUT=${OUT:-/tmp}
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}
work=$(mktemp -d)
pass=0; fail=0
ok() { echo "ok - $1"; pass=$((pass+1)); }
bad() { echo "not ok - $1"; fail=$((fail+1)); }

small="$work/small.json"
cat > "$small" <<JSON
{"op":"attention","params":{"batch":1,"seq":512,"q_heads":8,"kv_heads":2,"head_dim":128,"causal":1},
 "dtype":"bf16","backend":"cuda","reference":"$PWD/kernels/attention/cuda/reference.cu","time_limit_s":20}
JSON
small32="$work/small32.json"
sed 's/"bf16"/"f32"/' "$small" > "$small32"

# 1. ceilings
if $E devices cuda --remeasure > "$work/devices.txt" 2>&1 && grep -q 'peak bf16' "$work/devices.txt"; then
  ok "devices: cuda ceilings measured"; cat "$work/devices.txt"
else bad "devices: cuda ceilings"; cat "$work/devices.txt"; fi

# 2. the reference
status_of() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r.get('status'))" "$1" 2>/dev/null; }
$E profile "$small" kernels/attention/cuda/reference.cu --json > "$work/ref.json" 2>"$work/ref.err"
if [ "$(status_of "$work/ref.json")" = valid ] && python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['oracle']['checked'] and r['oracle']['max_err'] < r['oracle']['tol']" "$work/ref.json"; then
  ok "reference.cu valid, float64 oracle check passed"
else bad "reference.cu: $(status_of "$work/ref.json") $(head -c 400 "$work/ref.err")"; fi

# 3. adversarial kernels: file -> acceptable statuses (| separated) and task
expect() {
  local f=$1 want=$2 task=${3:-$small}
  [ -f "$f" ] || { echo "skip - $f (absent)"; return; }
  timeout 300 $E profile "$task" "$f" --json > "$work/r.json" 2>"$work/r.err"
  local got; got=$(status_of "$work/r.json")
  local err; err=$(python3 -c "import json,sys; print((json.load(open(sys.argv[1])).get('error') or '')[:160])" "$work/r.json" 2>/dev/null)
  if echo "|$want|" | grep -q "|$got|"; then ok "$(basename "$f"): $got ($err)"; else bad "$(basename "$f"): got '$got' want $want ($err $(head -c 300 "$work/r.err"))"; fi
  # after every case the device must be healthy for the next candidate
  if [ "$(basename "$f")" != well_behaved.cu ] && [ -f tests/kernels/cuda/well_behaved.cu ]; then
    timeout 300 $E profile "$small" tests/kernels/cuda/well_behaved.cu --json > "$work/w.json" 2>/dev/null
    [ "$(status_of "$work/w.json")" = valid ] && ok "  healthy after $(basename "$f")" || bad "  device unhealthy after $(basename "$f")"
  fi
}
K=tests/kernels/cuda
expect $K/well_behaved.cu valid
expect $K/side_stream.cu "invalid|valid"
expect $K/persisting_l2.cu invalid
expect $K/tf32_reduced.cu invalid "$small32"
expect $K/illegal_address.cu "crashed|invalid"
expect $K/trap.cu "crashed|invalid"
expect $K/never_ends.cu timeout
expect $K/alloc_all_memory.cu "valid|invalid|crashed"
expect $K/skip_half_rows.cu invalid
expect $K/zeros.cu invalid
expect $K/cache_replay.cu invalid
expect $K/deferred.cu "invalid|crashed"
expect $K/host_sockets.cu "valid|crashed"
expect $K/does_not_compile.cu compile_error
# The trust boundary (docs/SECURITY.md): answers never in the candidate's
# memory, times the worker's clock cannot explain, work after the call,
# another context's memory.
expect_named() {  # file statuses needle
  expect "$1" "$2"
  local err; err=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('error') or '')" "$work/r.json" 2>/dev/null)
  if [ -n "$3" ]; then
    if echo "$err" | grep -q "$3"; then ok "  $(basename "$1") names the class ($3)"
    else bad "  $(basename "$1") does not name the class ($3): $err"; fi
  fi
}
expect_named $K/steals_answers.cu invalid "NaN/Inf or unwritten"
expect_named $K/forges_event_timing.cu invalid "faster than the harness saw from outside"
expect_named $K/lingers_after_return.cu "invalid|crashed" ""
expect_named $K/reads_other_context.cu "crashed|invalid" ""
expect_named $K/content_cache.cu invalid "fast only on inputs"
expect_named $K/forges_sync.cu invalid "went on after its run returned"

# The sandbox the reply reports on the GPU host: a pid namespace, seccomp,
# Landlock where the kernel has it; and how many descriptors the CUDA
# runner keeps open (RLIMIT_NOFILE is 512: src/worker/kernel_env.h).
$E profile "$small" $K/well_behaved.cu --json > "$work/sb.json" 2>/dev/null
python3 -c "
import json,sys; r=json.load(open(sys.argv[1])); print('sandbox:', json.dumps(r.get('sandbox')))
t=(r.get('report') or {}).get('trust'); print('trust:', json.dumps(t))" "$work/sb.json"
if python3 -c "
import json,sys; s=json.load(open(sys.argv[1]))['sandbox']
assert s['seccomp'] and s['pid_namespace'], s" "$work/sb.json"; then
  ok "cuda runner: seccomp and a pid namespace in effect"
else bad "cuda runner: the sandbox layers ($(head -c 300 "$work/sb.json"))"; fi

# side_stream: if it validated, its time must have been counted in full
if [ -f $K/side_stream.cu ]; then
  $E profile "$small" $K/side_stream.cu --json > "$work/ss.json" 2>/dev/null
  if [ "$(status_of "$work/ss.json")" != valid ] || python3 -c "
import json,sys; r=json.load(open(sys.argv[1]))['report']
assert r['escaped_runs']>0 or any(k.get('stream') for k in r['kernels']), r" "$work/ss.json"; then
    ok "side_stream: rejected or its escaped work counted"
  else bad "side_stream: validated with no escaped work counted"; fi
fi

# 4. the Qwen3-4B prefill task, best ladder kernel, with counters
best=${BEST_KERNEL:-kernels/attention/cuda/rung6_causal.cu}
$E profile examples/qwen3_4b_prefill_cuda.json "$best" --counters > "$work/best.txt" 2>&1
cat "$work/best.txt"; cp "$work/best.txt" "$OUT/profile_best_counters.txt" 2>/dev/null
grep -q 'diagnosis' "$work/best.txt" && ok "profile --counters on the Qwen3-4B task ($best)" || bad "profile --counters ($best)"
$E profile examples/qwen3_4b_prefill_cuda.json kernels/attention/cuda/reference.cu --counters > "$work/ref_full.txt" 2>&1
cat "$work/ref_full.txt"; cp "$work/ref_full.txt" "$OUT/profile_reference_counters.txt" 2>/dev/null
grep -q 'diagnosis' "$work/ref_full.txt" && ok "profile --counters of the reference" || bad "profile --counters of the reference"

# 5. the engine's GPU path through the CLI (build/libemile-engine-cuda.so,
#    carried with the binaries, or built by `make all` where nvcc is)
if [ -f build/libemile-engine-cuda.so ]; then
  timeout 600 $E taste --device cuda --random tiny --kernel kernels/attention/cuda/reference.cu \
    --max-new 8 --json > "$work/taste.json" 2>"$work/taste.err"
  cat "$work/taste.json"
  if python3 -c "
import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert r['device']=='cuda' and r['agree'] is True and [x['tokens'] for x in r['runs']]==[8,8], r" "$work/taste.json"; then
    ok "taste --device cuda: reference.cu in the slot agrees with the built-in attention"
  else bad "taste --device cuda: $(head -c 400 "$work/taste.json") $(head -c 600 "$work/taste.err")"; fi
  # the decode path and, when it is not the graph, the engine's reason; no
  # JSON at all means the tasting itself failed (its error is above)
  path=$(python3 -c "
import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(r['decode_path'], '(' + r.get('decode_path_note', 'no reason given') + ')')" \
    "$work/taste.json" 2>/dev/null)
  if [ "${path%% *}" = graph ]; then
    ok "taste --device cuda: decode ran as a CUDA graph"
  elif [ -z "$path" ]; then
    bad "taste --device cuda: decode path unknown: the tasting gave no result ($(tail -c 300 "$work/taste.err"))"
  else bad "taste --device cuda: decode did not run as a CUDA graph: $path"; fi
else bad "taste --device cuda: build/libemile-engine-cuda.so is not built (make all where nvcc is)"; fi

# 5b. the prefill ladder at other head dims and fp16 (issue 13): the worker
#     validates the mma.sync rung at head_dim 256 and 64 and the wgmma rung in fp16
dims() {   # dims D DTYPE KERNEL
  local t="$work/dims.json"
  sed "s/\"head_dim\":128/\"head_dim\":$1/; s/\"bf16\"/\"$2\"/" "$small" > "$t"
  timeout 300 $E profile "$t" "$3" --json > "$work/d.json" 2>"$work/d.err"
  [ "$(status_of "$work/d.json")" = valid ] && ok "prefill ladder: $(basename "$3") at head_dim $1, $2" \
    || bad "prefill ladder: $(basename "$3") at head_dim $1, $2: $(status_of "$work/d.json") $(python3 -c "import json,sys; print((json.load(open(sys.argv[1])).get('error') or '')[:300])" "$work/d.json" 2>/dev/null)"
}
dims 256 bf16 kernels/attention/cuda/rung6_causal.cu
dims 64 f16 kernels/attention/cuda/rung6_causal.cu
dims 128 f16 kernels/attention/cuda/rung7_wgmma.cu

# 6. the decode ops (issue 13): kernels built here unless carried
#    (bash bench/gpu_session.sh engine-build builds build/op-kernels)
OK_DIR=build/op-kernels
if python3 bench/op_ladders_cuda.py --check --lib-dir $OK_DIR --out "$work" > "$work/ops.txt" 2>&1; then
  ok "op kernels: every reference and rung matches torch fp32 (op_ladders_cuda.py --check)"
else bad "op kernels: $(grep -E 'FAILED|rror' "$work/ops.txt" | head -8 | tr '\n' '|')"; fi
cat "$work/ops.txt" | tail -60
prof_op() {   # prof_op OP KERNEL FLAGS...: the worker validates and profiles it
  local op=$1 k=$2; shift 2
  timeout 600 $E profile "examples/qwen3_ops/${op}_cuda.json" "$k" --json "$@" > "$work/op.json" 2>"$work/op.err"
  if [ "$(status_of "$work/op.json")" = valid ]; then
    ok "profile $op $(basename "$k"): valid ($(python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['report']; print(f\"{r['time_ms']['median']*1e3:.1f} us, {r['gbs']:.0f} GB/s\")" "$work/op.json" 2>/dev/null))"
  else bad "profile $op $(basename "$k"): $(status_of "$work/op.json") $(python3 -c "import json,sys; print((json.load(open(sys.argv[1])).get('error') or '')[:300])" "$work/op.json" 2>/dev/null) $(head -c 300 "$work/op.err")"; fi
}
prof_op decode_attention kernels/decode_attention/cuda/rung2_gqa.cu --seq 2048
prof_op decode_attention kernels/decode_attention/cuda/rung3_merge.cu --seq 2048
prof_op lm_head kernels/gemv/cuda/rung3_splitk.cu --param vocab=32768
prof_op qkv_proj kernels/gemv/cuda/rung3_splitk.cu
ECC=build/engine-gpu/engine_cuda_check
if [ -x $ECC ] && [ -f build/libemile-engine-cuda.so ]; then
  refs=(); rungs=()
  for op in decode_attention qkv_proj o_proj gate_up down_proj lm_head; do
    refs+=(--op "$op=$OK_DIR/${op}_reference.so")
    case $op in decode_attention) rungs+=(--op "$op=$OK_DIR/decode_attention_rung1_split.so") ;;
                *) rungs+=(--op "$op=$OK_DIR/gemv_rung3_splitk.so") ;; esac
  done
  for set in refs rungs; do
    eval "args=(\"\${$set[@]}\")"
    timeout 600 $ECC build/libemile-engine-cuda.so "${args[@]}" > "$work/ecc.txt" 2>&1
    if tail -1 "$work/ecc.txt" | grep -q ' 0 failed'; then
      ok "engine op slots ($set on tests/data/qwen3-tiny): decode through the graph matches"
    else bad "engine op slots ($set): $(grep -E 'FAIL' "$work/ecc.txt" | head -6 | tr '\n' '|')"; fi
    cat "$work/ecc.txt"
  done
  G4=${GOLDEN_4B:-build/engine-4b/qwen3-4b}
  if [ -f "$G4/golden.bin" ]; then
    top=(--op decode_attention=$OK_DIR/decode_attention_rung3_merge.so)
    for op in qkv_proj o_proj gate_up down_proj lm_head; do top+=(--op "$op=$OK_DIR/gemv_rung3_splitk.so"); done
    timeout 600 $ECC build/libemile-engine-cuda.so --golden "$G4" "${top[@]}" > "$work/ecc4.txt" 2>&1
    tail -1 "$work/ecc4.txt" | grep -q ' 0 failed' && ok "engine op slots, top rungs, Qwen3-4B golden" \
      || bad "engine op slots, top rungs, Qwen3-4B golden: $(grep FAIL "$work/ecc4.txt" | head -6 | tr '\n' '|')"
    cat "$work/ecc4.txt"
  else echo "skip - engine op slots on the 4B golden ($G4/golden.bin absent: bench/gpu_session.sh engine-golden makes it)"; fi
else bad "engine op slots: $ECC or the engine library is not built (bash bench/gpu_session.sh engine-build)"; fi
if [ -f build/libemile-engine-cuda.so ]; then
  menu=()
  for op in decode_attention qkv_proj o_proj gate_up down_proj lm_head; do menu+=(--kernel "$op=$OK_DIR/${op}_reference.so"); done
  timeout 600 $E taste --device cuda --random tiny "${menu[@]}" --max-new 8 --breakdown --json \
    > "$work/taste_ops.json" 2>"$work/taste_ops.err"
  if python3 -c "
import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
k=r['runs'][1]
assert r['decode_path']=='graph' and r['agree'] is True and k['tokens']==8, r
assert all(k['ops'][op].endswith('_reference.so') for op in ('decode_attention','lm_head')), k['ops']
d=k['breakdown']['decode']['ops']
assert d['decode_attention']['ms']>0 and d['lm_head']['ms']>0 and 'floor_ms' in d['gate_up'], d" "$work/taste_ops.json"; then
    ok "taste --device cuda: every decode op swapped, same tokens, graph, breakdown"
  else bad "taste --device cuda with op kernels: $(head -c 500 "$work/taste_ops.json") $(head -c 500 "$work/taste_ops.err")"; fi
fi

skipped() { case " ${GPU_SUITE_SKIP:-} " in *" $1 "*) echo "skip - $1 (GPU_SUITE_SKIP)"; return 0 ;; esac; return 1; }

# 7. Triton (tests/gpu/triton_gpu_check.sh, which also runs alone)
if ! skipped triton; then
E=$E OUT=$OUT bash tests/gpu/triton_gpu_check.sh > "$work/triton.txt" 2>&1
cat "$work/triton.txt"
tp=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$work/triton.txt" | tail -1)
tf=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$work/triton.txt" | tail -1)
if [ -n "$tp" ]; then pass=$((pass + tp)); fail=$((fail + tf)); else bad "triton: tests/gpu/triton_gpu_check.sh printed no count"; fi
fi

# 8. PyTorch problems on cuda: cooks, the export, taste --hf (tests/gpu/pytorch_checks.sh,
#    which also runs alone)
if ! skipped pytorch; then
E=$E OUT=$OUT bash tests/gpu/pytorch_checks.sh > "$work/pytorch.txt" 2>&1
cat "$work/pytorch.txt"
pp=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$work/pytorch.txt" | tail -1)
pf=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$work/pytorch.txt" | tail -1)
if [ -n "$pp" ]; then pass=$((pass + pp)); fail=$((fail + pf)); else bad "pytorch: tests/gpu/pytorch_checks.sh printed no count"; fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
