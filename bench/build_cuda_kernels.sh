#!/usr/bin/env bash
# build_cuda_kernels.sh -- build every CUDA attention kernel (and the sweep
# variants of the ladder rungs) into shared objects, in parallel, with the
# harness's own command line:
#   nvcc -O3 -arch=sm_90a -std=c++17 -shared -Xcompiler -fPIC -cudart shared -Iinclude
# Template parameters are passed as -D flags (the builtin agent prepends the
# same #define lines).  Output: $OUT_DIR/<file>[__<P1><v1>_<P2><v2>...].so and
# $OUT_DIR/<name>.log (ptxas resource report: registers, spills, smem).
#
# usage: bench/build_cuda_kernels.sh [OUT_DIR] [JOBS] [FILTER]
#   OUT_DIR  default build/attn_cuda
#   JOBS     parallel nvcc processes (default: nproc)
#   FILTER   build only variants whose name matches this grep -E pattern
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${1:-build/attn_cuda}
JOBS=${2:-$(nproc)}
FILTER=${3:-.}
NVCC=${NVCC:-nvcc}
SRC=kernels/attention/cuda
mkdir -p "$OUT_DIR"

# "file [NAME=value ...]"; the defaults of each file are built by listing it bare.
VARIANTS=(
  "reference"
  "rung1_tiled"
  "rung2_flash"
  "rung2_flash EMILE_BQ=32 EMILE_BK=64"
  "rung3_mma"
  "rung3_mma EMILE_NWARPS=4 EMILE_MT=2 EMILE_BK=32"
  "rung4_pipeline"
  "rung4_pipeline EMILE_NWARPS=4 EMILE_MT=1 EMILE_BK=64 EMILE_STAGES=3"
  "rung4_pipeline EMILE_NWARPS=4 EMILE_MT=2 EMILE_BK=32 EMILE_STAGES=2"
  "rung4_pipeline EMILE_NWARPS=8 EMILE_MT=1 EMILE_BK=64 EMILE_STAGES=2"
  "rung5_gqa"
  "rung5_gqa EMILE_NWARPS=4 EMILE_MT=2 EMILE_BK=32 EMILE_STAGES=2"
  "rung5_gqa EMILE_NWARPS=8 EMILE_MT=1 EMILE_BK=64 EMILE_STAGES=2"
  "rung6_causal"
  "rung6_causal EMILE_NWARPS=4 EMILE_MT=1 EMILE_BK=64 EMILE_STAGES=3"
  "rung6_causal EMILE_NWARPS=4 EMILE_MT=2 EMILE_BK=32 EMILE_STAGES=2"
  "rung6_causal EMILE_NWARPS=4 EMILE_MT=2 EMILE_BK=64 EMILE_STAGES=2"
  "rung6_causal EMILE_NWARPS=8 EMILE_MT=1 EMILE_BK=64 EMILE_STAGES=2"
  "rung6_causal EMILE_NWARPS=4 EMILE_MT=1 EMILE_BK=32 EMILE_STAGES=3"
  "rung7_wgmma"
  "rung7_wgmma EMILE_SCHED=1"
  "rung7_wgmma EMILE_PINGPONG=0"
)

build_one() {
  local spec="$1" file name defs
  read -r file rest <<<"$spec"
  name=$file
  defs=""
  for kv in $rest; do
    defs="$defs -D$kv"
    local k=${kv%%=*} v=${kv#*=}
    name="${name}__${k#EMILE_}${v}"
  done
  [ -f "$SRC/$file.cu" ] || { echo "skip $name (no $SRC/$file.cu)"; return 0; }
  local t0=$(date +%s)
  if $NVCC -O3 -arch=sm_90a -std=c++17 -shared -Xcompiler -fPIC -cudart shared -Iinclude \
       -Xptxas -v $defs "$SRC/$file.cu" -o "$OUT_DIR/$name.so" >"$OUT_DIR/$name.log" 2>&1; then
    local regs=$(grep -o 'Used [0-9]* registers' "$OUT_DIR/$name.log" | awk '{print $2}' | sort -n | tail -1)
    local spill=$(grep -o '[0-9]* bytes spill stores' "$OUT_DIR/$name.log" | awk '{s+=$1} END {print s+0}')
    echo "ok   $name  ($(( $(date +%s) - t0 )) s, max regs $regs, spill stores $spill)"
  else
    echo "FAIL $name"; grep -E 'error' "$OUT_DIR/$name.log" | head -5
    return 1
  fi
}
export -f build_one
export SRC OUT_DIR NVCC

printf '%s\n' "${VARIANTS[@]}" | grep -E -- "$FILTER" | xargs -P "$JOBS" -I{} bash -c 'build_one "$@"' _ {}
