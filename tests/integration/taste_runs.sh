#!/usr/bin/env bash
# taste_runs.sh -- `emile taste` with kernels named by run id: a tiny CPU
# attention run is cooked into a temporary store, then tasted on the tiny
# random model (--kernel RUN: its best iteration; --reference RUN: its
# task's reference), agreeing with the built-in attention and labelled as
# "run N's best (iteration I)"; --prompt-ids; and every bad input -- an
# unknown run, a run without a valid kernel, a run of the other device, no
# store, a compiler that is missing or fails, the GPU engine library or the
# driver missing -- gets a clear message and exit 1 (2 for a bad command
# line).
source "$(dirname "$0")/lib.bash"
it_setup taste_runs

TASK=$IT_TMP/task.json
write_task "$TASK" 1 99
run "$EMILE" cook "$TASK" --store "$STORE" --quiet
check_rc "cook a tiny cpu run" 0
run "$EMILE" show 1 --json --store "$STORE"
SHOW=$IT_TMP/show.json
cp "$OUT_F" "$SHOW"
BEST=$(jq -r '.best_iter' "$SHOW")
check "run 1 has a best iteration" test "$BEST" -ge 0

# ---- 1. --kernel RUN --------------------------------------------------------
run "$EMILE" taste --random tiny --kernel 1 --store "$STORE" --max-new 4 --json
check_rc "taste --kernel 1 exits 0" 0
J=$IT_TMP/taste1.json
cp "$OUT_F" "$J"
check_jq "taste --kernel 1: the generations agree" "$J" '.agree == true and .first_divergence == -1'
check_jq "taste --kernel 1: label of the run's best" "$J" \
  ".runs[1].role == \"kernel\" and .runs[1].attention == \"run 1's best (iteration $BEST)\""
check_jq "taste --kernel 1: the reference side is the built-in" "$J" \
  '.runs[0].role == "reference" and .runs[0].attention == "builtin"'
check_jq "taste --kernel 1: 4 tokens each, prompt of 32" "$J" \
  '.prompt_tokens == 32 and .runs[0].tokens == 4 and .runs[1].tokens == 4'
check_jq "taste --kernel 1: timings and the cpu device" "$J" \
  '.runs[1].ttft_ms > 0 and .runs[1].decode_tok_s > 0 and .device == "cpu" and .decode_path == "cpu"'

# ---- 2. --reference RUN, the table -----------------------------------------
run "$EMILE" taste --random tiny --reference 1 --kernel 1 --store "$STORE" --max-new 4 --quiet
check_rc "taste --reference 1 --kernel 1 exits 0" 0
check_contains "table: the run's reference" "$OUT_F" "run 1's reference"
check_contains "table: the run's best" "$OUT_F" "run 1's best (iteration $BEST)"
check_contains "table: same tokens" "$OUT_F" "same tokens            yes, all 4 tokens"

# the default store is the one the other commands use
run env EMILE_STORE="$STORE" "$EMILE" taste --random tiny --kernel 1 --max-new 2 --json
check_rc "taste finds the run in the default store (EMILE_STORE)" 0
check_jq "default store: same label" "$OUT_F" ".runs[1].attention == \"run 1's best (iteration $BEST)\""

# ---- 3. --prompt-ids -------------------------------------------------------
IDS=$IT_TMP/ids.txt
printf '1 2 3\n 400 5\t6 7\n' >"$IDS"
run "$EMILE" taste --random tiny --prompt-ids "$IDS" --kernel 1 --store "$STORE" --max-new 3 --json
check_rc "taste --prompt-ids exits 0" 0
check_jq "--prompt-ids: 7 prompt tokens, agree" "$OUT_F" '.prompt_tokens == 7 and .agree == true'
printf '1 2 512\n' >"$IDS"
run "$EMILE" taste --random tiny --prompt-ids "$IDS" --max-new 3
check_rc "--prompt-ids with an id outside the vocabulary: exit 2 (bad input)" 2
check_contains "--prompt-ids: the id and the vocabulary named" "$ERR_F" "id 3, 512, is outside the model's vocabulary (0..511)"

# ---- 4. bad runs -----------------------------------------------------------
# fail NAME RC SUBSTRING CMD...: exit RC, the message on stderr, nothing on stdout
fail() {
  local name=$1 rc=$2 msg=$3
  shift 3
  run "$@"
  check_rc "$name: exit $rc" "$rc"
  check_contains "$name: message" "$ERR_F" "$msg"
  check_eq "$name: nothing on stdout" "" "$(head -c 300 "$OUT_F")"
}
fail "unknown run" 1 "emile taste: no run 9" \
  "$EMILE" taste --random tiny --kernel 9 --store "$STORE" --max-new 2
fail "unknown reference run" 1 "no run 7" \
  "$EMILE" taste --random tiny --reference 7 --kernel 1 --store "$STORE" --max-new 2
fail "no store" 1 "no run store at $IT_TMP/none.db" \
  "$EMILE" taste --random tiny --kernel 1 --store "$IT_TMP/none.db" --max-new 2
fail "a C run on the cuda device" 1 "run 1's kernels are C; --device cuda takes CUDA C++ kernels" \
  "$EMILE" taste --device cuda --random tiny --kernel 1 --store "$STORE" --max-new 2

# a run whose reference does not compile: recorded, failed, no valid kernel
BROKEN=$IT_TMP/broken.c
echo 'this is not C' >"$BROKEN"
write_task "$IT_TMP/broken.json" 1 99
jq --arg r "$BROKEN" '.reference = $r' "$IT_TMP/broken.json" >"$IT_TMP/broken2.json"
run "$EMILE" cook "$IT_TMP/broken2.json" --store "$STORE" --quiet
check_eq "a run with a broken reference is recorded" "2" "$(store_runs "$STORE")"
fail "a run without a valid kernel" 1 "run 2 has no valid kernel" \
  "$EMILE" taste --random tiny --kernel 2 --store "$STORE" --max-new 2
fail "a run's reference that does not compile" 1 "failed (exit status" \
  "$EMILE" taste --random tiny --reference 2 --store "$STORE" --max-new 2

fail "--device gpu" 2 "--device is one of cpu, cuda, not 'gpu'" "$EMILE" taste --device gpu
# bad input, seen before any work: exit 2
fail "an unknown shape" 2 "unknown shape 'huge' (qwen3-4b, qwen3-0.6b, tiny)" \
  "$EMILE" taste --random huge --max-new 2
fail "a kernel file that is not there" 2 "$IT_TMP/none.c: no such kernel file" \
  "$EMILE" taste --random tiny --kernel "$IT_TMP/none.c" --max-new 2
fail "a CUDA kernel file on the cpu" 2 "is a CUDA C++ kernel; --device cpu takes C kernels" \
  "$EMILE" taste --random tiny --kernel kernels/attention/cuda/reference.cu --max-new 2
fail "--prompt and --prompt-ids" 2 "give one of them" \
  "$EMILE" taste --prompt hi --prompt-ids "$IDS"

# ---- 5. the cuda device's error paths (no GPU needed) ----------------------
fail "cuda: a missing compiler" 1 "cannot run /nonexistent/nvcc" \
  env EMILE_NVCC=/nonexistent/nvcc "$EMILE" taste --device cuda --random tiny \
  --kernel kernels/attention/cuda/reference.cu --max-new 2
fail "cuda: the engine library missing" 1 "EMILE_ENGINE_CUDA=/nonexistent/libemile-engine-cuda.so: no such file" \
  env EMILE_ENGINE_CUDA=/nonexistent/libemile-engine-cuda.so "$EMILE" taste --device cuda \
  --random tiny --max-new 2
NVCC_BIN=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [ -x "$NVCC_BIN" ]; then
  BAD_CU=$IT_TMP/bad.cu
  printf '__global__ void k( {\n' >"$BAD_CU"
  fail "cuda: nvcc rejects the kernel" 1 "failed (exit status" \
    "$EMILE" taste --device cuda --random tiny --kernel "$BAD_CU" --max-new 2
  check_contains "cuda: nvcc's own error is shown" "$ERR_F" "bad.cu(1)"
else
  echo "# skip: no nvcc here, the nvcc-failure case is not run"
fi
# ---- 6. a .cu kernel on the cuda device, sandboxed (no GPU needed) ---------
# The GPU suite's invocation: `taste --device cuda --kernel X.cu`.  Building
# the compile command asks the driver for the compute capability; the
# driver's cuInit starts threads, and the tasting forks its engine children
# (it refuses to with threads).  Here a fake driver whose cuInit starts a
# thread and logs its pid (tests/data/engine/fake_libcuda.c), a fake nvcc
# that logs its arguments and builds the .cu as C, and the fake engine of
# test_taste_cuda: the tasting must succeed, with the architecture the
# driver reported, and the driver must never be initialised in the tasting
# process itself.
FAKE=$IT_TMP/fakecuda
mkdir -p "$FAKE"
cc -std=c11 -shared -fPIC -pthread -Wl,-soname,libcuda.so.1 tests/data/engine/fake_libcuda.c \
  -o "$FAKE/libcuda.so.1"
cc -std=c11 -shared -fPIC -Iinclude -Isrc tests/data/engine/fake_qwen3_cuda.c \
  -o "$FAKE/libfake-engine.so"
cp tests/data/engine/attn_online.c "$FAKE/online.cu"
{
  echo '#!/bin/sh'
  echo '# fake nvcc: log the arguments, build the .cu as C into the -o file'
  echo "echo \"\$*\" >>'$FAKE/nvcc.log'"
  echo 'src=; out=; inc=; prev='
  echo 'for a in "$@"; do'
  echo '  case $a in *.cu) src=$a ;; -I*) inc=$a ;; esac'
  echo '  [ "$prev" = -o ] && out=$a'
  echo '  prev=$a'
  echo 'done'
  echo "exec '$(command -v cc)' -std=c11 -shared -fPIC \"\$inc\" -x c \"\$src\" -o \"\$out\" -lm"
} >"$FAKE/nvcc"
chmod 755 "$FAKE" "$FAKE/nvcc"
run bash -c 'echo $$ >"$0"; exec "$@"' "$FAKE/taste.pid" env LD_LIBRARY_PATH="$FAKE" \
  EMILE_NVCC="$FAKE/nvcc" EMILE_ENGINE_CUDA="$FAKE/libfake-engine.so" \
  FAKE_CUDA_INIT_LOG="$FAKE/init.log" "$EMILE" taste --device cuda --random tiny \
  --kernel "$FAKE/online.cu" --max-new 4 --json
check_rc "cuda, a .cu kernel, sandboxed: exit 0" 0
check_not_contains "cuda, a .cu kernel: no refusal to fork" "$ERR_F" "the tasting's sandbox forks"
check_jq "cuda, a .cu kernel: both sides ran and agree" "$OUT_F" \
  '.device == "cuda" and .agree == true and ([.runs[].tokens] == [4, 4])'
check_contains "cuda, a .cu kernel: nvcc got the driver's architecture" "$FAKE/nvcc.log" \
  "-arch=sm_89"
check "cuda, a .cu kernel: the driver was initialised (in a child)" test -s "$FAKE/init.log"
if grep -qx "$(cat "$FAKE/taste.pid")" "$FAKE/init.log"; then
  not_ok "cuda, a .cu kernel: the driver is never initialised in the tasting process" \
    "pid $(cat "$FAKE/taste.pid") in $(tr '\n' ' ' <"$FAKE/init.log")"
else ok "cuda, a .cu kernel: the driver is never initialised in the tasting process"; fi

LIB=$(dirname "$EMILE")/libemile-engine-cuda.so
if [ -f "$LIB" ] && [ ! -e /dev/nvidiactl ] && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  fail "cuda: no driver" 1 "--device cuda: no NVIDIA driver" \
    "$EMILE" taste --device cuda --random tiny --max-new 2
else
  echo "# skip: the no-driver case needs $LIB built and a machine without a driver"
fi

it_finish
