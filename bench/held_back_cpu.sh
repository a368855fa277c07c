#!/usr/bin/env bash
# held_back_cpu.sh -- the held-back check's figures on the CPU at small
# sizes, where the runner's own work per command is most of a timed run:
# honest kernels (tests/kernels/cpu/well_behaved.c and the CPU attention
# ladder) and the content caches (tests/kernels/cpu/content_cache*.c), each
# profiled ROUNDS times at three small attention shapes with
# `emile profile --json`.  One JSON line per profile in $OUT/held_back_cpu.jsonl
# (status; the timed runs' median runner CPU, the null runner's CPU per run,
# each fresh set's runner CPU, the limit), then a table: per kernel class
# and shape, each fresh set's excess over the timed median, and over the
# median's share above the null runner.
#   usage: bash bench/held_back_cpu.sh [ROUNDS] [LOAD]
# LOAD: busy processes beside it (0): the check must hold on a loaded
# machine too.
set -u
cd "$(dirname "$0")/.."
E=${EMILE:-./build/emile}
OUT=${OUT:-/tmp/emile-out}; mkdir -p "$OUT"
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}
rounds=${1:-3} load=${2:-0}
work=$(mktemp -d)
pids=()
for i in $(seq 1 "$load"); do (while :; do :; done) & pids+=($!); done
trap 'kill ${pids[@]} 2>/dev/null; rm -rf "$work"' EXIT
shapes="64:2:1:16 128:4:2:32 256:8:2:64"
kernels="tests/kernels/cpu/well_behaved.c $(ls kernels/attention/cpu/v*.c) tests/kernels/cpu/content_cache.c tests/kernels/cpu/content_cache_2x.c"
jl=$OUT/held_back_cpu.jsonl; : > "$jl"
for r in $(seq 1 "$rounds"); do
  for sh in $shapes; do
    IFS=: read -r S Hq Hkv D <<< "$sh"
    task=$work/t_$S.json
    cat > "$task" <<JSON
{"op":"attention","params":{"batch":1,"seq":$S,"q_heads":$Hq,"kv_heads":$Hkv,"head_dim":$D,"causal":1},
 "dtype":"f32","backend":"cpu","reference":"$PWD/kernels/attention/cpu/reference.c","time_limit_s":20}
JSON
    for k in $kernels; do
      "$E" profile "$task" "$k" --json 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
r = d.get("report") or {}
h = (r.get("trust") or {}).get("held_back") or {}
print(json.dumps({"shape": sys.argv[1], "kernel": sys.argv[2].split("/")[-1], "load": int(sys.argv[3]),
                  "status": d.get("status"), "error": (d.get("error") or "")[:120],
                  "time_ms": (r.get("time_ms") or {}).get("median"), "median_cpu_ms": h.get("median_ms"),
                  "null_proc_cpu_ms": h.get("null_proc_cpu_ms"), "cpu_ms": h.get("cpu_ms"),
                  "limit_ms": h.get("limit_ms")}))' "S$S/Hq$Hq/D$D" "$k" "$load" >> "$jl"
    done
  done
done
python3 - "$jl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cls = lambda k: "cache" if k.startswith("content_cache") else "honest"
print("| class | kernel | shape | profiles | invalid | fresh - median (ms): min / max | fresh - median over (median - null) |")
print("|---|---|---|---:|---:|---|---|")
seen = {}
for r in rows:
    seen.setdefault((cls(r["kernel"]), r["kernel"], r["shape"]), []).append(r)
for (c, k, s), rs in sorted(seen.items()):
    ex, rel = [], []
    for r in rs:
        if r["cpu_ms"] and r["median_cpu_ms"] is not None:
            for x in r["cpu_ms"]:
                ex.append(x - r["median_cpu_ms"])
                base = r["median_cpu_ms"] - (r["null_proc_cpu_ms"] or 0)
                rel.append((x - r["median_cpu_ms"]) / base if base > 0 else float("nan"))
    inv = sum(r["status"] != "valid" for r in rs)
    f = lambda v: f"{min(v):+.3f} / {max(v):+.3f}" if v else "-"
    print(f"| {c} | {k} | {s} | {len(rs)} | {inv} | {f(ex)} | {f(rel)} |")
PY
