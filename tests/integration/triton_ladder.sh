#!/usr/bin/env bash
# The Triton attention ladder without a GPU (tests/triton/check_ladder.py):
# every rung compiles to a cubin for sm_90 through the harness's build step
# and matches fp32 attention under Triton's interpreter at small sizes.
set -u
cd "$(dirname "$0")/../.."
py=build/venv/bin/python3
if [ ! -x "$py" ] || ! "$py" -c 'import triton, torch' 2>/dev/null; then
  echo "triton_ladder: skipped: build/venv has no triton and torch (scripts/setup.sh installs them)"
  exit 0
fi
exec "$py" -B tests/triton/check_ladder.py
