#!/usr/bin/env bash
# One device session: the GPU suite, then `emile cook` on the Qwen3-4B
# prefill task with the builtin agent at each bench shape.  Binaries are
# built on the CI-like machine and carried (build/emile, build/emile-runner,
# .devlib for the shared libraries Ubuntu lacks, made by bench/devlib.sh).
# Results land in $OUT.
#   usage: bash bench/gpu_session.sh [suite] [cook SHAPES...]
#          bash bench/gpu_session.sh engine-build        # here, where nvcc is: no GPU needed
#          bash bench/gpu_session.sh engine|engine-golden|engine-bench   # on the GPU host
#
# Engine (issue 7): `engine-build` makes what the engine modes run (make's
# build/emile and build/libemile-engine-cuda.so; build/engine-gpu/ with the
# attention kernels attn_reference.so and attn_<best rung>.so and
# tests/gpu/engine_cuda_check); on the GPU host the engine modes build only
# what is missing (nvcc is there; jansson's static library may not be, so
# carry build/engine-gpu).  The 4B checkpoint (~8 GB) goes to
# $ENGINE_WORK (default build/engine-4b, kept between calls while the
# machine stays warm; never under $OUT, which brings back 8 files at most):
#   engine-golden  scripts/golden_qwen3.py --shape qwen3-4b (random Qwen3-4B
#                  drawn on the GPU, saved, float32 golden logits), then
#                  engine_cuda_check: tests/data/qwen3-tiny with the reference
#                  kernel hot-swapped, the 4B checkpoint with the best kernel
#                  -> $OUT/engine_golden.txt, $OUT/golden_summary.json
#   engine-bench   bench/engine_cuda.py: engine (reference attention, best
#                  kernel) vs transformers (sdpa, eager), TTFT and decode
#                  tok/s at 512 and 2048 tokens -> $OUT/engine_cuda.{md,json}
#   engine         both (estimated 7-9 minutes, near a 10-minute call limit:
#                  prefer two calls, engine-golden then engine-bench, on the
#                  same warm machine, which keeps build/engine-4b)
#
# Issue 13 (every hot op cooked): `engine-build` also builds the decode ops'
# kernels (each op's reference and ladder rungs, bench/op_ladders_cuda.py
# --build-only) into build/op-kernels; on the GPU host:
#   ops-bench      bench/op_ladders_cuda.py: every op kernel checked against
#                  torch fp32 and timed at the Qwen3-4B decode shapes beside
#                  torch -> $OUT/op_ladders.{md,json,txt}; then engine-bench
#                  (the reference engine, every op cooked, the transformers
#                  peers sdpa and static cache + torch.compile, then each
#                  cooked op alone, with breakdowns; partial results written
#                  as it goes, stages past ENGINE_DEADLINE_S=400 skipped) ->
#                  $OUT/engine_cuda.{md,json,txt}.  8 files in $OUT.
# The device call (after `bash bench/gpu_session.sh engine-build` here):
#   run(command="bash bench/gpu_session.sh ops-bench",
#       carry=["build/emile", "build/emile-runner", "build/libemile-engine-cuda.so",
#              "build/engine-gpu", "build/op-kernels", ".devlib"], timeout_s=600)
# The device calls (after `bash bench/gpu_session.sh engine-build` here):
#   run(command="bash bench/gpu_session.sh engine-golden",
#       carry=["build/emile", "build/emile-runner", "build/libemile-engine-cuda.so",
#              "build/engine-gpu", ".devlib"], timeout_s=600)
#   run(command="bash bench/gpu_session.sh engine-bench", carry=[same], timeout_s=600)
# (engine-bench alone also works on a fresh machine: it draws the checkpoint
# itself, about a minute more.)
set -u
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=$PWD/.devlib:${LD_LIBRARY_PATH:-}
# .devlib comes from bench/devlib.sh: say at once if the host still lacks one
if [ -x build/emile ] && ldd build/emile | grep -q 'not found'; then
  echo "gpu_session: build/emile still lacks (add to bench/devlib.sh):"; ldd build/emile | grep 'not found'
fi
export PATH=/usr/local/cuda/bin:$PATH
OUT=${OUT:-/tmp/emile-out}; mkdir -p "$OUT"
what=${1:-all}; shift || true
ENGINE_WORK=${ENGINE_WORK:-build/engine-4b}
case $ENGINE_WORK in /*) ;; *) ENGINE_WORK=$PWD/$ENGINE_WORK ;; esac
# $OUT brings back at most 8 files: the engine modes keep the cache out of it
case $what in
  engine*|ops-bench) export XDG_CACHE_HOME=$ENGINE_WORK/cache PYTHONUNBUFFERED=1
           export EMILE_ENGINE_CUDA=${EMILE_ENGINE_CUDA:-$PWD/build/libemile-engine-cuda.so} ;;
  *) export XDG_CACHE_HOME=$OUT/cache ;;
esac

# --- the engine's binaries (issue 7) ----------------------------------------
EG=build/engine-gpu
ENGINE_SO=build/libemile-engine-cuda.so
# the best kernel: $BEST_SRC (default: the ladder's top rung, as
# bench/engine_cuda.py picks it) with $BEST_FLAGS (-D parameters)
BEST_FLAGS=${BEST_FLAGS:-}
ec() { python3 -c 'import os, sys; sys.path.insert(0, "bench"); sys.dont_write_bytecode = True
import engine_cuda as e; print(os.path.relpath(e.best_kernel()) if sys.argv[1] == "best" else e.so_name(*sys.argv[2:]))' "$@"; }
engine_vars() {
  BEST_SRC=${BEST_SRC:-$(ec best)}
  BEST_SO=$(ec so "$BEST_SRC" $EG "$BEST_FLAGS")
}
NVCC_KERNEL="nvcc -O3 -arch=sm_90a -std=c++17 -shared -Xcompiler -fPIC -cudart shared -Iinclude"
# engine_build all|missing: build (all) or build what is absent (missing)
engine_build() {
  engine_vars
  local only_missing=$([ "$1" = missing ] && echo 1)
  need() { [ -z "$only_missing" ] || [ ! -e "$1" ]; }
  mkdir -p $EG
  if need build/emile; then make build/emile build/emile-runner || return 1; fi
  if need $ENGINE_SO; then
    # make's rule adds cuBLAS's headers from build/deps where the toolkit has none
    touch src/engine/cuda/qwen3_cuda.cu && make $ENGINE_SO || return 1
  fi
  if need $EG/attn_reference.so; then
    $NVCC_KERNEL kernels/attention/cuda/reference.cu -o $EG/attn_reference.so || return 1
  fi
  if need "$BEST_SO"; then
    # shellcheck disable=SC2086
    $NVCC_KERNEL $BEST_FLAGS "$BEST_SRC" -o "$BEST_SO" || return 1
  fi
  if need build/op-kernels/gemv_rung3_splitk.so; then
    python3 bench/op_ladders_cuda.py --build-only --lib-dir build/op-kernels \
      $([ -z "$only_missing" ] && echo --rebuild) || return 1
  fi
  if need $EG/engine_cuda_check; then
    cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc tests/gpu/engine_cuda_check.c \
      src/engine/safetensors.c src/engine/qwen3_config.c -o $EG/engine_cuda_check \
      -Wl,-Bstatic -ljansson -Wl,-Bdynamic -ldl -lm || return 1
  fi
  ls -la build/emile $ENGINE_SO $EG build/op-kernels
}
case $what in
  engine-build) engine_build all; exit $? ;;
  engine|engine-golden|engine-bench|ops-bench)
    engine_build missing || { echo "engine: build failed (carry build/engine-gpu, see the header)"; exit 1; } ;;
esac

nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
./build/emile devices --json > "$OUT/devices.json" 2>&1; cat "$OUT/devices.json" | head -40
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
case $what in engine|engine-golden|engine-bench|ops-bench)
  # $OUT gets 7 files: gpu.txt, devices.json, engine_golden.txt,
  # golden_summary.json, engine_cuda.txt, engine_cuda.json, engine_cuda.md
  # (ops-bench: op_ladders.{txt,json,md} instead of the golden's)
  W=$ENGINE_WORK; mkdir -p "$W"
  rc=0
  if [ "$what" = ops-bench ]; then
    python3 bench/op_ladders_cuda.py --lib-dir build/op-kernels --out "$OUT" 2>&1 | tee "$OUT/op_ladders.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  fi
  if [ "$what" != engine-bench ] && [ "$what" != ops-bench ]; then
    (
      r=0
      python3 scripts/golden_qwen3.py --shape qwen3-4b --out "$W" || r=1
      echo "=== engine_cuda_check: tests/data/qwen3-tiny, reference kernel hot-swapped"
      $EG/engine_cuda_check $ENGINE_SO $EG/attn_reference.so || r=1
      echo "=== engine_cuda_check: the Qwen3-4B shape, $BEST_SO hot-swapped"
      $EG/engine_cuda_check $ENGINE_SO "$BEST_SO" --golden "$W/qwen3-4b" || r=1
      exit $r
    ) 2>&1 | tee "$OUT/engine_golden.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    cp "$W/qwen3-4b/golden_summary.json" "$OUT/" 2>/dev/null
  fi
  if [ "$what" != engine-golden ]; then
    cp -n $EG/attn_*.so build/op-kernels/ 2>/dev/null
    python3 bench/engine_cuda.py --workdir "$W/qwen3-4b" --out "$OUT" --devices-json "$OUT/devices.json" \
        --kernel "attention=$BEST_SRC" --kernel-dir build/op-kernels \
        --deadline-s "${ENGINE_DEADLINE_S:-400}" 2>&1 | tee "$OUT/engine_cuda.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  fi
  ls -la "$OUT"
  exit $rc
  ;;
esac
