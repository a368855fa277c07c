#!/usr/bin/env bash
# throughput.sh -- candidates validated and timed per minute by a cook on
# 1..N workers, and what sharing a device does to their timing figures.
#
# For each worker count it cooks the same task from a fresh store with the
# builtin agent (--confirm 0: one evaluation per candidate, so counts
# compare), time-stamps the cook's NDJSON events as they arrive, and prints:
#   candidates  evaluated after the reference (valid ones in brackets)
#   wall_s      from the reference's iteration to the end of the run
#   per_min     candidates per minute of that wall time
#   scaling     per_min over the 1-worker per_min
#   time_vs_1   the median, over the candidates both runs evaluated (same
#               label), of time_ms here / time_ms on 1 worker: 1.00 means
#               the same figures as one at a time
#   waits       how often a worker waited for the device (the device lock:
#               timing is exclusive per device, src/worker/device_turn.h)
# and, on stderr, why the candidates that were not valid were not (each
# status and message once, with its count) and the seconds a candidate
# spent in each worker phase (compile, draw, reference, validate, time,
# held_back, wait, counters), from the progress events.
#
# Each cook starts with an empty compile cache of its own (so a cook on 2
# workers does not reuse the 1-worker cook's builds); --no-cache turns the
# cache off (EMILE_COMPILE_CACHE=off), --no-lock the device lock
# (EMILE_DEVICE_LOCK=off: the figures before the lock was wired in).
#
#   usage: bash bench/throughput.sh [--task FILE] [--max-workers N | --workers "1 4 8"]
#            [--candidates K] [--backend cpu|cuda] [--slurm] [--no-cache]
#            [--no-lock] [--out FILE]
#     --backend cuda  without --task: examples/qwen3_4b_prefill_cuda.json
#     --slurm   workers are srun jobs on a loopback Slurm cluster of two
#               nodes started for the run (tests/support/slurm_loopback.bash)
#     --out     also write the table as JSON lines
# On a GPU host (workers share the GPUs: worker i takes GPU i mod G):
#   bash bench/throughput.sh --backend cuda --max-workers 4 --candidates 16
set -euo pipefail
cd "$(dirname "$0")/.."

task=
max_workers=4
counts=
candidates=8
backend=
slurm=0
out=
cache=1
lock=1
while [ $# -gt 0 ]; do
  case $1 in
    --task) task=$2; shift 2 ;;
    --max-workers) max_workers=$2; shift 2 ;;
    --workers) counts=$2; shift 2 ;;
    --candidates) candidates=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --slurm) slurm=1; shift ;;
    --no-cache) cache=0; shift ;;
    --no-lock) lock=0; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "throughput.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $backend in
  ''|cpu) task=${task:-examples/cpu_attention.json} ;;
  cuda) task=${task:-examples/qwen3_4b_prefill_cuda.json} ;;
  *) echo "throughput.sh: --backend is cpu or cuda, not $backend" >&2; exit 2 ;;
esac
[ -f "$task" ] || { echo "throughput.sh: no task file $task" >&2; exit 2; }
counts=${counts:-$(seq -s ' ' 1 "$max_workers")}
counts=$(tr ' ' '\n' <<< "$counts" | grep . | sort -n -u | tr '\n' ' ')   # 1, the baseline, first
case $max_workers$candidates${counts// /} in *[!0-9]*) echo "throughput.sh: --max-workers, --workers and --candidates are numbers" >&2; exit 2 ;; esac
case " $counts " in *" 1 "*) ;; *) echo "throughput.sh: --workers must include 1 (the baseline)" >&2; exit 2 ;; esac
emile=$PWD/build/emile
[ -x "$emile" ] || { echo "throughput.sh: build first (make)" >&2; exit 2; }
command -v jq >/dev/null || { echo "throughput.sh: needs jq" >&2; exit 2; }

tmp=$(mktemp -d)
cleanup() {
  if [ $slurm = 1 ]; then slurm_loopback_stop "$tmp/slurm"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

template=()
if [ $slurm = 1 ]; then
  source tests/support/slurm_loopback.bash
  slurm_loopback_start "$tmp/slurm" 2 || { echo "throughput.sh: no Slurm cluster" >&2; exit 1; }
  template=(--worker "srun --quiet --nodes=1 --ntasks=1 --cpus-per-task=1 $emile worker")
fi
extra=()
[ -n "$backend" ] && extra+=(--backend "$backend")

[ $lock = 0 ] && export EMILE_DEVICE_LOCK=off
[ $cache = 0 ] && export EMILE_COMPILE_CACHE=off

echo "device host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,pci.bus_id --format=csv,noheader | sed 's/^/gpu: /' || true
fi
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "task: $task${backend:+ (--backend $backend)}, $candidates candidates a cook, workers: ${template[*]:-local}"
echo "device lock: $([ $lock = 1 ] && echo on || echo off); compile cache: $([ $cache = 1 ] && echo 'on, empty at each cook' || echo off)"
printf '%7s  %10s  %7s  %8s  %7s  %9s  %5s\n' workers candidates wall_s per_min scaling time_vs_1 waits

base_rate=
for n in $counts; do
  ev=$tmp/events-$n.ndjson
  # Each event stamped with the monotonic-enough wall clock as it arrives.
  [ $cache = 1 ] && export EMILE_COMPILE_CACHE=$tmp/kernels-$n
  "$emile" cook "$task" --max-iters "$candidates" --target 100 --confirm 0 --workers "$n" \
    "${template[@]}" "${extra[@]}" --events --store "$tmp/runs-$n.db" 2>"$tmp/err-$n" |
    while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done >"$ev" || true
  t0=$(awk '$0 ~ /"event":"iteration"/ && $0 ~ /"iter":0[,}]/ {print $1; exit}' "$ev")
  t1=$(awk '$0 ~ /"event":"done"/ {print $1}' "$ev" | tail -1)
  if [ -z "$t0" ] || [ -z "$t1" ]; then
    echo "throughput.sh: the cook on $n workers did not finish: $(tail -c 300 "$tmp/err-$n")" >&2
    [ "$n" = 1 ] && exit 1      # no baseline: nothing below would mean anything
    continue
  fi
  if [ "$n" = 1 ]; then
    dev=$(cut -d' ' -f2- "$ev" | jq -r 'select(.event == "run") | .device // empty' 2>/dev/null | head -1)
    [ -n "$dev" ] && echo "device: $dev"
  fi
  waits=$(cut -d' ' -f2- "$ev" | jq -c 'select(.event == "progress" and .phase == "wait")' 2>/dev/null | wc -l | tr -d ' ')
  cut -d' ' -f2- "$ev" | jq -c 'select(.event == "iteration" and .iteration.iter > 0) | .iteration
                               | {label: .label, status: .status, time_ms: .time_ms}' >"$tmp/its-$n.json"
  # Why the others were not valid, each reason once with its count.
  cut -d' ' -f2- "$ev" | jq -r 'select(.event == "iteration" and .iteration.iter > 0) | .iteration
                               | select(.status != "valid") | "\(.status): \((.error // "") | .[0:150])"' |
    sort | uniq -c | sed "s/^/  [$n workers] /" >&2
  cands=$(wc -l <"$tmp/its-$n.json" | tr -d ' ')
  valid=$(jq -s '[.[] | select(.status == "valid")] | length' "$tmp/its-$n.json")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}')
  rate=$(awk -v c="$cands" -v w="$wall" 'BEGIN{printf "%.2f", (w > 0 ? 60 * c / w : 0)}')
  [ -z "$base_rate" ] && base_rate=$rate
  scaling=$(awk -v r="$rate" -v b="$base_rate" 'BEGIN{printf "%.2fx", (b > 0 ? r / b : 0)}')
  ratio=$(jq -s --slurpfile one "$tmp/its-1.json" '
      [ .[] | select(.status == "valid") as $it
        | ($one[] | select(.label == $it.label and .status == "valid") | $it.time_ms / .time_ms) ]
      | sort | if length == 0 then "-" else (.[length / 2 | floor] * 100 | round / 100 | tostring) end' \
      "$tmp/its-$n.json" | tr -d '"')
  printf '%7d  %4d (%3d)  %7s  %8s  %7s  %9s  %5s\n' "$n" "$cands" "$valid" "$wall" "$rate" "$scaling" "$ratio" "$waits"
  # Where a candidate's time goes: each worker phase's seconds (from one
  # progress event to the next of the same candidate, on the worker's
  # clock), summed over the candidates and divided by their number.  The
  # last phase runs to the iteration's elapsed_s, the cook's clock since
  # its batch started: it also holds the reply's way back to the cook.
  cut -d' ' -f2- "$ev" | jq -s -r --argjson c "$cands" '
      [ (.[] | select(.event == "progress" and (.iter // 0) > 0 and .elapsed_s != null
               and (.phase | IN("compile", "draw", "reference", "validate", "time", "held_back", "wait", "counters")))),
        (.[] | select(.event == "iteration" and .iteration.iter > 0)
         | {iter: .iteration.iter, phase: "end", elapsed_s: .iteration.elapsed_s}) ]
      | group_by(.iter) | map(sort_by(.elapsed_s) | [range(0; length - 1) as $i
          | {phase: .[$i].phase, s: (.[$i + 1].elapsed_s - .[$i].elapsed_s)}]) | add // []
      | group_by(.phase) | map("\(.[0].phase) \(((map(.s) | add) / ([$c, 1] | max)) * 100 | round / 100)s")
      | "  [\($n) workers] seconds a candidate: " + join(", ")' --argjson n "$n" >&2 2>/dev/null || true
  if [ -n "$out" ]; then
    jq -nc --argjson n "$n" --argjson c "$cands" --argjson v "$valid" --argjson w "$wall" --argjson r "$rate" \
      --arg ratio "$ratio" --argjson waits "$waits" --argjson lock "$lock" --argjson cache "$cache" \
      '{workers: $n, candidates: $c, valid: $v, wall_s: $w, per_min: $r, time_vs_1: $ratio, waits: $waits,
        device_lock: ($lock == 1), compile_cache: ($cache == 1)}' >>"$out"
  fi
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
