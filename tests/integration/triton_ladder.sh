#!/usr/bin/env bash
# The Triton attention ladder without a GPU (tests/triton/check_ladder.py):
# every rung compiles to a cubin for sm_90 through the harness's build step
# and matches fp32 attention under Triton's interpreter at small sizes.
set -u
cd "$(dirname "$0")/../.."
# The driver-API launch capture waiting to be hooked into the runner
# (src/runner/pending/): it must keep compiling, warnings as errors.
if ! ${CC:-cc} -std=c11 -Wall -Wextra -Wshadow -Werror -Iinclude -Isrc -D_GNU_SOURCE -fsyntax-only \
     src/runner/pending/launch_capture_driver.c; then
  echo "triton_ladder: src/runner/pending/launch_capture_driver.c does not compile"; exit 1
fi
py=build/venv/bin/python3
if [ ! -x "$py" ] || ! "$py" -c 'import triton, torch' 2>/dev/null; then
  echo "triton_ladder: skipped: build/venv has no triton and torch (scripts/setup.sh installs them)"
  exit 0
fi
exec "$py" -B tests/triton/check_ladder.py
