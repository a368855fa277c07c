#!/usr/bin/env bash
# cook_ops_cuda.sh -- the builtin agent cooks the six decode ops of a Qwen3-4B
# step on the GPU host (issue 13), in one menu sharing one pool of workers
# (examples/qwen3_ops/menu_decode_cuda.json), and exports each run.
#   usage (on the GPU host): bash bench/cook_ops_cuda.sh [ITERS [WORKERS]]
#   (defaults 8 and 8; COOK_S, default 300: the cook's time limit, after
#   which the runs keep their best so far)
# Writes $OUT/cook_ops.txt (the cook's output and its table) and
# $OUT/cooked_ops.tar.gz: best_kernels/<op>.cu (the run's best source, the
# template with the agent's #defines) and <op>.md (its report) for each op,
# which go into examples/best_kernels/ (bench/engine_cuda.py takes
# examples/best_kernels/<op>.cu as the op's cooked kernel).  With
# COOK_INSTALL=1 they are copied there at once, so an engine-bench run in
# the same call uses them.
set -u
cd "$(dirname "$0")/.."
E=${EMILE:-./build/emile}
OUT=${OUT:-/tmp/emile-out}; mkdir -p "$OUT"
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}
iters=${1:-8} workers=${2:-8}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
store=$work/runs.db
timeout "${COOK_S:-300}" "$E" cook examples/qwen3_ops/menu_decode_cuda.json --workers "$workers" \
  --max-iters "$iters" --store "$store" > "$OUT/cook_ops.txt" 2>&1
echo "cook exit $? (124: cut at COOK_S=${COOK_S:-300} s, each run keeps its best so far)" | tee -a "$OUT/cook_ops.txt"
grep -v '^      ' "$OUT/cook_ops.txt" | tail -12
"$E" runs --json --store "$store" > "$work/runs.json"
# "id op label" of each run whose best is not its reference; a user-defined
# op's "op" is its spec, whose name is the op's
python3 - "$work/runs.json" > "$work/ops.txt" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    op = r["task"]["op"]
    op = op.get("name") if isinstance(op, dict) else op
    if r.get("best_iter") and op:
        print(r["id"], op, r["best"]["label"].split()[0])
PY
mkdir -p "$work/pack/best_kernels"
while read -r id op rung; do
  if "$E" export "$id" "$work/export/$op" --store "$store" > /dev/null 2>&1 && [ -f "$work/export/$op/best.cu" ]; then
    cp "$work/export/$op/best.cu" "$work/pack/best_kernels/$op.cu"
    cp "$work/export/$op/report.md" "$work/pack/best_kernels/$op.md" 2>/dev/null
    echo "exported $op: run $id, best $rung"
  else
    echo "export of $op (run $id) failed"
  fi
done < "$work/ops.txt" | tee -a "$OUT/cook_ops.txt"
tar czf "$OUT/cooked_ops.tar.gz" -C "$work/pack" best_kernels
[ "${COOK_INSTALL:-0}" = 1 ] && cp "$work/pack/best_kernels/"*.cu examples/best_kernels/ 2>/dev/null
ls "$work/pack/best_kernels"
