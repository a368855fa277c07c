#!/usr/bin/env bash
# One device session: the GPU suite, then `emile cook` on the Qwen3-4B
# prefill task with the builtin agent at each bench shape.  Binaries are
# built on the CI-like machine and carried (build/emile, build/emile-runner,
# .devlib for the shared libraries Ubuntu lacks).  Results land in $OUT.
#   usage: bash bench/gpu_session.sh [suite] [cook SHAPES...]
set -u
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=$PWD/.devlib:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
OUT=${OUT:-/tmp/emile-out}; mkdir -p "$OUT"
export XDG_CACHE_HOME=$OUT/cache
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
./build/emile devices --json > "$OUT/devices.json" 2>&1; cat "$OUT/devices.json" | head -40
what=${1:-all}; shift || true
if [ "$what" = suite ] || [ "$what" = all ]; then
  OUT=$OUT bash tests/gpu/run_gpu_suite.sh 2>&1 | tee "$OUT/gpu_suite.txt"
fi
if [ "$what" = cook ] || [ "$what" = all ]; then
  shapes=${*:-"1x4096"}
  for s in $shapes; do
    b=${s%x*}; n=${s#*x}
    ./build/emile cook examples/qwen3_4b_prefill_cuda.json --batch "$b" --seq "$n" --store "$OUT/runs.db" \
        --max-iters ${MAX_ITERS:-10} --target ${TARGET:-90} 2>&1 | tee "$OUT/cook_${s}.txt" | grep -v '^      why' 
  done
  ./build/emile runs --store "$OUT/runs.db" | tee "$OUT/runs.txt"
fi
