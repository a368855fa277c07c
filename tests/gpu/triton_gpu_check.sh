#!/usr/bin/env bash
# The Triton language of the cuda backend on a GPU host (step 7 of
# tests/gpu/run_gpu_suite.sh; runs alone too):
#  - a ladder rung (kernels/attention/triton/t4_tma.py) compiled ahead of
#    time by python/emile/triton_aot.py validates and profiles; its launch
#    is captured (name, registers, occupancy) and its cubin read (HGMMA);
#  - the same bf16-compiled kernel on an f32 task is rejected, not run on
#    the wrong data;
#  - a kernel needing more shared memory than the device has is a
#    compile_error with Triton's message (tests/data/triton/bad_smem.py);
#  - a short builtin cook in Triton on the Qwen3-4B task at 1x1024 ends on
#    a Triton kernel, and its export holds best.py, build.sh, best.so.
# Prints one "ok"/"not ok" line per check and "N passed, N failed" last.
#   usage: bash tests/gpu/triton_gpu_check.sh   (E=emile binary, OUT=dir)
set -u
cd "$(dirname "$0")/../.."
E=${E:-./build/emile}
OUT=${OUT:-/tmp}
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}
work=$(mktemp -d)
chmod a+rx "$work"
pass=0; fail=0
ok() { echo "ok - $1"; pass=$((pass+1)); }
bad() { echo "not ok - $1"; fail=$((fail+1)); }
status_of() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r.get('status'))" "$1" 2>/dev/null; }
small="$work/small.json"
cat > "$small" <<JSON
{"op":"attention","params":{"batch":1,"seq":512,"q_heads":8,"kv_heads":2,"head_dim":128,"causal":1},
 "dtype":"bf16","backend":"cuda","reference":"$PWD/kernels/attention/cuda/reference.cu","time_limit_s":20}
JSON
small32="$work/small32.json"
sed 's/"bf16"/"f32"/' "$small" > "$small32"

T=kernels/attention/triton
timeout 600 $E profile "$small" $T/t4_tma.py --json > "$work/tri.json" 2>"$work/tri.err"
if python3 -c "
import json,sys; r=json.load(open(sys.argv[1])); assert r['status']=='valid', (r['status'], r.get('error'), r.get('compile',{}).get('log'))
ks=r['report']['kernels']; assert ks and ks[0]['name']=='attn_fwd' and ks[0]['registers']>0 and ks[0].get('occupancy',0)>0, ks
assert ks[0].get('hgmma',0)>0, ks
print('t4_tma: %.3f ms, %s' % (r['report']['time_ms']['median'], ks[0]))" "$work/tri.json"; then
  ok "triton: t4_tma.py compiled ahead of time, valid, launch captured, HGMMA in its cubin"
else bad "triton: t4_tma.py: $(head -c 600 "$work/tri.json") $(head -c 400 "$work/tri.err")"; fi
timeout 600 $E profile "$small32" $T/t4_tma.py --json > "$work/tri32.json" 2>/dev/null
got=$(status_of "$work/tri32.json")
if [ "$got" != valid ] && python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert 'returned' in (r.get('error') or '') or r['status']=='invalid', r" "$work/tri32.json"; then
  ok "triton: a bf16 kernel on an f32 task is rejected ($got)"
else bad "triton: bf16 kernel on an f32 task: $got $(head -c 300 "$work/tri32.json")"; fi
timeout 600 $E profile "$small" tests/data/triton/bad_smem.py --json > "$work/trismem.json" 2>/dev/null
if [ "$(status_of "$work/trismem.json")" = compile_error ] && grep -q 'out of resource: shared memory' "$work/trismem.json"; then
  ok "triton: too much shared memory is a compile_error with Triton's message"
else bad "triton: bad_smem.py: $(head -c 400 "$work/trismem.json")"; fi
timeout 900 $E cook examples/qwen3_4b_prefill_cuda.json --lang triton --seq 1024 --max-iters ${TRITON_COOK_ITERS:-4} \
  --store "$work/tri.db" > "$work/tricook.txt" 2>&1
cat "$work/tricook.txt"; cp "$work/tricook.txt" "$OUT/cook_triton_1x1024.txt" 2>/dev/null
if grep -q '^best: iteration [1-9]' "$work/tricook.txt" && $E export 1 "$work/tri-export" --store "$work/tri.db" >/dev/null 2>&1 \
   && [ -f "$work/tri-export/best.py" ] && [ -f "$work/tri-export/build.sh" ] && [ -f "$work/tri-export/best.so" ]; then
  ok "triton: builtin cook at 1x1024 ends on a Triton kernel; export has best.py, build.sh, best.so"
else bad "triton: cook/export ($(tail -c 300 "$work/tricook.txt"); $(ls "$work/tri-export" 2>&1 | tr '\n' ' '))"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
