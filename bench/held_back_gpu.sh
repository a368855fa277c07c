#!/usr/bin/env bash
# held_back_gpu.sh -- the held-back check's figures on the GPU, for the
# kernels whose inputs cost the most to upload against their run time
# (the decode GEMVs: 8-31 MB of weights for a 0.05-0.3 ms kernel; lm_head
# at the full vocabulary, 778 MB, whose rung 2 an 8-worker cook rejected
# falsely at stop 22) and for the honest and forging kernels the bounds are
# set by (prefill rung 7 at 1x2048: rejected falsely once in a PyTorch cook).  Each is profiled
# once with `emile profile --json`; one line per kernel (status, the timed
# median, the held-back limit, each fresh set's exposed time, its upload
# beside the null runner's, and whether transfers were pinned), and the
# whole `trust` section of every reply in $OUT/held_back.json.
#   usage (on the GPU host): bash bench/held_back_gpu.sh [REPEATS [PATTERN]]
# PATTERN (grep -E on "task|kernel"): only the matching cases.
# It reports; the verdicts are asserted by tests/gpu/run_gpu_suite.sh.
set -u
cd "$(dirname "$0")/.."
E=${EMILE:-./build/emile}
OUT=${OUT:-/tmp/emile-out}; mkdir -p "$OUT"
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}
reps=${1:-1}
work=$(mktemp -d)
small="$work/small.json"
cat > "$small" <<JSON
{"op":"attention","params":{"batch":1,"seq":512,"q_heads":8,"kv_heads":2,"head_dim":128,"causal":1},
 "dtype":"bf16","backend":"cuda","reference":"$PWD/kernels/attention/cuda/reference.cu","time_limit_s":20}
JSON
G=kernels/gemv/cuda/rung3_splitk.cu
Q=examples/qwen3_ops
cases=(
  "$small|tests/kernels/cuda/well_behaved.cu|"
  "$small|tests/kernels/cuda/content_cache.cu|"
  "$small|tests/kernels/cuda/forges_sync.cu|"
  "$small|tests/kernels/cuda/forges_event_timing.cu|"
  "$Q/decode_attention_cuda.json|kernels/decode_attention/cuda/rung3_merge.cu|--seq 2048"
  "$Q/qkv_proj_cuda.json|$G|"
  "$Q/o_proj_cuda.json|$G|"
  "$Q/gate_up_cuda.json|$G|"
  "$Q/down_proj_cuda.json|$G|"
  "$Q/lm_head_cuda.json|$G|--param vocab=32768"
  "$Q/lm_head_cuda.json|kernels/gemv/cuda/rung2_vec.cu|"
  "examples/qwen3_4b_prefill_cuda.json|kernels/attention/cuda/rung7_wgmma.cu|--seq 2048"
  "examples/qwen3_4b_prefill_cuda.json|kernels/attention/cuda/rung7_wgmma.cu|--seq 1024"
  "examples/softmax.py|kernels/softmax/cuda/v1_rowblock.cu|--backend cuda --dtype bf16"
  "examples/rmsnorm.py|kernels/rmsnorm/cuda/v1_rowblock.cu|--backend cuda --dtype bf16"
  "examples/qwen3_4b_prefill_cuda.json|kernels/attention/triton/t2_causal.py|--seq 1024"
  "examples/qwen3_4b_prefill_cuda.json|kernels/attention/triton/t3_pipeline.py|--seq 1024"
)
echo "[" > "$OUT/held_back.json"; first=1
for ((r = 1; r <= reps; r++)); do
  for c in "${cases[@]}"; do
    IFS='|' read -r task kernel flags <<< "$c"
    [ -n "${2:-}" ] && ! grep -qE "$2" <<< "$task|$kernel" && continue
    # shellcheck disable=SC2086
    timeout 300 $E profile "$task" "$kernel" --json $flags > "$work/r.json" 2> "$work/r.err"
    python3 - "$work/r.json" "$kernel" "$task" "$OUT/held_back.json" "$first" <<'PY'
import json, os, sys
path, kernel, task, out, first = sys.argv[1:6]
try:
    r = json.load(open(path))
except Exception as ex:
    print(f"{os.path.basename(kernel):24s} no reply ({ex})"); sys.exit(0)
rep = r.get("report") or {}
trust = rep.get("trust") or r.get("trust") or {}
h = trust.get("held_back") or {}
ups = [p.get("upload", 0) for p in h.get("parts_ms", [])]
print(f"{os.path.basename(task):28s} {os.path.basename(kernel):24s} {r.get('status'):8s} "
      f"median {h.get('median_ms', 0):.3f} limit {h.get('limit_ms', 0):.3f} "
      f"sets {[round(t, 3) for t in h.get('times_ms', [])]} "
      f"upload {[round(u, 3) for u in ups]} null {h.get('null_upload_ms', 0):.3f} "
      f"transfers {h.get('transfers', '?')}  {(r.get('error') or '')[:140]}")
if trust.get("gap_with_snap_us") is not None:
    print(f"    snap: median {trust.get('snap_median_us', 0):.0f} us, null {trust.get('null_snap_us', 0):.0f}; "
          f"gap with snap {trust['gap_with_snap_us']:.0f} us, bound {trust.get('gap_with_snap_bound_us', 0):.0f}; "
          f"run gap {trust.get('outside_gap_us', 0):.0f}, bound {trust.get('outside_gap_bound_us', 0):.0f}")
if h.get("p90_ms") is not None:
    print(f"    masked: timed p90 {h['p90_ms']:.3f}; held runs (decoy run, reported, snap) "
          f"{[(round(p.get('decoy_run', 0), 3), round(p.get('run_reported', 0), 3), round(p.get('snap', 0), 3)) for p in h.get('parts_ms', [])]}")
if h.get("null_cycle_ms") is not None:
    runs = [(round(p.get("run", 0), 3), round(p.get("run_outside", 0), 3)) for p in h.get("parts_ms", [])]
    print(f"    null cycle {h['null_cycle_ms']:.3f} (its run {h.get('null_cycle_run_ms', 0):.3f}, back to back "
          f"{h.get('null_warm_run_ms', 0):.3f}); held runs (worker, round trip) {runs}")
    print(f"    null snap {h.get('null_snap_ms', 0):.3f} copy {h.get('null_copy_ms', 0):.3f}; held snap, copy "
          f"{[(round(p.get('snap', 0), 3), round(p.get('copy', 0), 3)) for p in h.get('parts_ms', [])]}")
with open(out, "a") as f:
    f.write(("" if first == "1" else ",\n") + json.dumps({"task": task, "kernel": kernel, "status": r.get("status"),
                                                         "error": r.get("error"), "trust": trust}))
PY
    first=0
  done
done
echo "]" >> "$OUT/held_back.json"
rm -rf "$work"
