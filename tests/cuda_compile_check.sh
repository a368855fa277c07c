#!/usr/bin/env bash
# Compiles every CUDA source given for sm_90a (kernels as shared objects,
# programs with a main as executables), two at a time.  Needs nvcc, no GPU.
# A source that must not compile says so in its first 5 lines with the
# words "MUST NOT COMPILE".
set -u
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$NVCC" ] && ! command -v "$NVCC" >/dev/null; then
  # CI's machine has the CUDA toolkit: there a missing nvcc is a failure,
  # not a skip (EMILE_REQUIRE_NVCC=1 in .ci/run).
  if [ "${EMILE_REQUIRE_NVCC:-0}" = 1 ]; then
    echo "cuda-check: nvcc not found (EMILE_REQUIRE_NVCC=1: the CUDA sources must compile here)"
    exit 1
  fi
  echo "cuda-check: nvcc not found; skipping CUDA compilation"
  exit 0
fi
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fail=0; n=0
check() {
  local f=$1 o=$out/$(echo "$1" | tr '/' '_')
  local libs=""
  # CUBLAS_FLAGS (from make): cuBLAS's wheel where the toolkit has none
  grep -q 'cublas' "$f" && libs="${CUBLAS_FLAGS:-} -lcublas"
  if head -5 "$f" | grep -q 'MUST NOT COMPILE'; then
    if "$NVCC" -arch=sm_90a -std=c++17 -Iinclude -c "$f" -o "$o.o" >/dev/null 2>&1; then
      echo "FAIL (compiled but must not): $f"; return 1
    fi
    echo "ok (refused as expected): $f"; return 0
  fi
  if grep -qE '^\s*int\s+main\s*\(' "$f"; then
    cmd=("$NVCC" -arch=sm_90a -std=c++17 -O1 -Iinclude "$f" -o "$o" $libs)
  else
    cmd=("$NVCC" -arch=sm_90a -std=c++17 -O1 -Iinclude -shared -Xcompiler -fPIC -cudart shared "$f" -o "$o.so" $libs)
  fi
  if "${cmd[@]}" >"$o.log" 2>&1; then echo "ok: $f"; else echo "FAIL: $f"; sed -n 1,30p "$o.log"; return 1; fi
}
pids=()
for f in "$@"; do
  n=$((n+1))
  check "$f" & pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}" || fail=$((fail+1)); pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || fail=$((fail+1)); done
echo "cuda-check: $n sources, $fail failed"
[ "$fail" -eq 0 ]
