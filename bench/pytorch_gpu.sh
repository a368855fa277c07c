#!/usr/bin/env bash
# The PyTorch side's figures on a GPU host (docs/BENCHMARKS.md, "PyTorch"):
#  1. the Tasting Room at Qwen3-4B's shape with random weights, bf16: the C
#     engine (reference attention vs KERNEL) and transformers (sdpa vs
#     KERNEL through AttentionInterface), at prompts of 512 and 2048 tokens,
#     in the same run: TTFT, decode tok/s, same tokens;
#  2. the exported op of a cooked attention run beside PyTorch's reference
#     (tests/python/check_export.py --time), when a run store and run are
#     given.
#   usage: bash bench/pytorch_gpu.sh [KERNEL]   (default: the ladder's rung6_causal.cu;
#          a run id with STORE=PATH: that run's best kernel, as `taste --kernel RUN`)
#          EXPORT_DIR=DIR bash bench/pytorch_gpu.sh   also times DIR's exported op
# Needs build/emile, build/libemile-confine.so, build/libemile-engine-cuda.so and
# python3 with torch and transformers.  Writes $OUT/pytorch_taste.{md,json}.
set -u
cd "$(dirname "$0")/.."
E=${EMILE:-./build/emile}
OUT=${OUT:-/tmp/emile-out}; mkdir -p "$OUT"
export EMILE_PYTHON=${EMILE_PYTHON:-python3} PYTHONDONTWRITEBYTECODE=1
export EMILE_ENGINE_CUDA=${EMILE_ENGINE_CUDA:-$PWD/build/libemile-engine-cuda.so}
KERNEL=${1:-kernels/attention/cuda/rung6_causal.cu}
MAX_NEW=${MAX_NEW:-64}
TASTE_TIMEOUT=${TASTE_TIMEOUT:-900}
store=(); [ -n "${STORE:-}" ] && store=(--store "$STORE")
rows=$OUT/pytorch_taste.jsonl
: > "$rows"
for n in 512 2048; do
  for side in engine transformers; do
    if [ $side = engine ]; then
      args=(taste --device cuda --random qwen3-4b --kernel "$KERNEL" --prompt-tokens $n --max-new $MAX_NEW --json "${store[@]}")
    else
      args=(taste --device cuda --hf-random qwen3-4b --kernel "$KERNEL" --prompt-tokens $n --max-new $MAX_NEW --json "${store[@]}")
    fi
    t0=$(date +%s)
    if timeout -k 5 $TASTE_TIMEOUT $E "${args[@]}" > "$OUT/taste_$side.$n.json" 2> "$OUT/taste_$side.$n.err"; then
      python3 -c "
import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
r['harness']=sys.argv[2]; r['prompt']=int(sys.argv[3]); print(json.dumps(r))" \
        "$OUT/taste_$side.$n.json" $side $n >> "$rows"
    else
      echo "{\"harness\":\"$side\",\"prompt\":$n,\"error\":$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()[-400:]))' "$OUT/taste_$side.$n.err")}" >> "$rows"
    fi
    echo "$side $n: $(( $(date +%s) - t0 )) s"
  done
done
python3 - "$rows" "$KERNEL" > "$OUT/pytorch_taste.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"Qwen3-4B shape, random weights, bf16, greedy; kernel {sys.argv[2]}\n")
print("| harness | prompt | attention | TTFT ms | decode tok/s | same tokens |")
print("|---|---:|---|---:|---:|---|")
for r in rows:
    if "error" in r:
        print(f"| {r['harness']} | {r['prompt']} | error: {r['error'][-120:]!r} | | | |")
        continue
    for run in r["runs"]:
        print(f"| {r['harness']} | {r['prompt']} | {run['attention']} | {run['ttft_ms']:.2f} | "
              f"{run['decode_tok_s']:.1f} | {'yes' if r.get('agree') else 'no (first divergence %s)' % r.get('first_divergence')} |")
print(f"\ndevice: {next((r.get('device_name') for r in rows if 'device_name' in r), '?')}")
PY
cat "$OUT/pytorch_taste.md"
if [ -n "${EXPORT_DIR:-}" ]; then
  python3 tests/python/check_export.py "$EXPORT_DIR" --device cuda --dtype bf16 --tolerance 0.0625 --time \
    | tee "$OUT/pytorch_export_time.txt"
fi
