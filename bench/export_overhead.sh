#!/usr/bin/env bash
# export_overhead.sh -- what a call of an exported op costs beyond its kernel,
# on a tiny input (a 1x8 softmax: the kernel's own time is negligible), in one
# Python process: torch.softmax itself, the package's KernelOp call, the
# registered torch.ops.emile op, and ModelNew.  Cooks examples/softmax_cpu.json
# (one iteration, CPU backend), exports it, and times the tree's
# python/emile/torch_op.py; with REV, also REV's torch_op.py in the same
# package (KernelOp and torch.ops; ModelNew is the tree's generated file, so
# its row is the tree's only).  Medians of 2000 calls after 50.
#   usage: bash bench/export_overhead.sh [REV]     (REV e.g. 50afd2c)
set -euo pipefail
cd "$(dirname "$0")/.."
E=${EMILE:-./build/emile}
PY=${EMILE_PYTHON:-build/venv/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$E" cook examples/softmax_cpu.json --max-iters 1 --store "$tmp/runs.db" > "$tmp/cook.txt" 2>&1
"$E" export 1 "$tmp/export" --store "$tmp/runs.db" > /dev/null
cat > "$tmp/time.py" <<'P'
import importlib.util, sys, time
import torch
spec = importlib.util.spec_from_file_location("model_new", sys.argv[1] + "/model_new.py")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
torch.set_num_threads(1)
x = torch.randn(1, 8)
kernel = mod._emile_package.kernel
new = mod.ModelNew()
def med(fn, n=2000):
    for _ in range(50):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return sorted(ts)[n // 2] * 1e6
rows = [("torch.softmax", lambda: torch.softmax(x, 1)), ("KernelOp call", lambda: kernel(x)),
        ("torch.ops.emile.softmax", lambda: torch.ops.emile.softmax(x))]
if sys.argv[2] == "tree":
    rows.append(("ModelNew", lambda: new(x)))
for name, fn in rows:
    print(f"  {name:24s} {med(fn):7.1f} us")
P
echo "the tree ($(git rev-parse --short HEAD)):"
"$PY" "$tmp/time.py" "$tmp/export" tree
if [ -n "${1:-}" ]; then
  git show "$1:python/emile/torch_op.py" > "$tmp/export/emile_softmax/__init__.py"
  echo "torch_op.py at $1:"
  "$PY" "$tmp/time.py" "$tmp/export" rev
fi
