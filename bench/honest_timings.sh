#!/usr/bin/env bash
# honest_timings.sh -- the CPU ladder's timings before and after a change to
# the harness, measured the same way on the same machine, interleaved:
# round r runs every kernel of kernels/attention/cpu/ once under each of the
# two builds (the order alternating with r), with `emile profile TASK KERNEL
# --json`; the table gives each kernel's median over the rounds of the
# profile's median time, and the change.
#
# usage: bash bench/honest_timings.sh BEFORE_EMILE AFTER_EMILE [ROUNDS] [TASK]
#   BEFORE_EMILE, AFTER_EMILE: the two `emile` binaries (each finds its own
#   runner and kernels beside it); ROUNDS: 5; TASK: examples/cpu_attention.json
#   KERNELS (environment): the kernels to time, a glob; default
#   kernels/attention/cpu/v*.c (on a GPU: KERNELS='kernels/attention/cuda/v*.cu'
#   with TASK examples/qwen3_4b_prefill_cuda.json).  Python reads the
#   replies (no jq on the GPU hosts).
# Prints a markdown table (for docs/BENCHMARKS.md) and the raw numbers as
# JSON on the last line.
set -u
cd "$(dirname "$0")/.."
before=$1 after=$2 rounds=${3:-5} task=${4:-examples/cpu_attention.json}
kernels=$(ls ${KERNELS:-kernels/attention/cpu/v*.c})
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}
raw=$(mktemp)
for r in $(seq 1 "$rounds"); do
  for k in $kernels; do
    if [ $((r % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
    for which in $order; do
      bin=$before; [ "$which" = after ] && bin=$after
      t=$("$bin" profile "$task" "$k" --json 2>/dev/null | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
if r.get("status") == "valid":
    print(r["report"]["time_ms"]["median"])')
      echo "$which $(basename "$k") ${t:-null}" >> "$raw"
    done
  done
done
python3 - "$raw" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    which, k, t = line.split()
    rows.setdefault(k, {"before": [], "after": []})[which].append(None if t == "null" else float(t))
print("| kernel | before: median of medians (ms) | after (ms) | change | runs (valid before / after) |")
print("|---|---|---|---|---|")
for k in sorted(rows):
    b = [x for x in rows[k]["before"] if x is not None]
    a = [x for x in rows[k]["after"] if x is not None]
    mb = statistics.median(b) if b else float("nan")
    ma = statistics.median(a) if a else float("nan")
    print(f"| {k} | {mb:.3f} | {ma:.3f} | {100 * (ma - mb) / mb:+.1f}% | {len(b)}/{len(rows[k]['before'])} / {len(a)}/{len(rows[k]['after'])} |")
print(json.dumps(rows))
PY
rm -f "$raw"
