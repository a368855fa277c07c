#!/usr/bin/env bash
# Runs every test given (cmocka binaries, then integration scripts); prints
# one block per test and a closing "N passed, N failed" line.
set -u
pass=0; fail=0; failed=()
for t in "$@"; do
  echo "=== $t"
  start=$(date +%s)
  if [ "${t##*.}" = "sh" ]; then bash "$t"; else "$t"; fi
  rc=$?
  echo "--- $t: exit $rc in $(( $(date +%s) - start )) s"
  if [ $rc -eq 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$t"); fi
done
for t in "${failed[@]}"; do echo "FAILED: $t"; done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
