#!/usr/bin/env bash
# Runs every test binary given; prints one line per binary and a closing
# "N passed, N failed" line (cmocka prints its own summaries above it).
set -u
pass=0; fail=0; failed=()
for t in "$@"; do
  echo "=== $t"
  if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$t"); fi
done
for t in "${failed[@]}"; do echo "FAILED: $t"; done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
