#!/bin/sh
# fake_worker.sh -- a stand-in for `emile worker` in the tests of the cook
# and its pool: the protocol's "devices" and "evaluate" requests (one JSON
# object a line on stdin, one reply a line on stdout), answered by rules
# instead of by running a kernel.
#
# Environment:
#   FAKE_DEVICE  the device's name (default "fake device")
#   FAKE_DIR     a directory for its notes: "log" (one line per evaluate:
#                "ref", or "cand KEY" with KEY the first 8 hex digits of
#                the request's md5), "count-KEY" (evaluations of a kernel)
#   FAKE_MODE    how a kernel is judged when its source does not say:
#     noisy      (default) the reference 100 ms; another kernel 50 ms tagged
#                noisy_timing the first time it is seen, 10 ms after
#     firstbest  the reference 100 ms; another kernel 50 ms the first
#                time, 60 ms after (never tagged noisy)
#     flaky      the reference 100 ms; another kernel 50 ms the first time,
#                then invalid
#     heldback   the reference 100 ms; another kernel 50 ms the first time,
#                then its timing rejected once (outputs right: validation ok),
#                then 40 ms
#     heldback2  as heldback, but its timing rejected every time after
#     nocompile  the reference as noisy; another kernel does not compile
#                (the worker's words, "(see compile.log)", and a log)
#     dieonce    as noisy, but the first evaluation of a kernel other than
#                the reference kills this worker (FAKE_DIR/died-KEY marks it)
#     diealways  the reference as noisy; any other kernel kills this worker
#   FAKE_PROGRESS=1  write progress lines before each evaluate reply
#
# A kernel whose source begins with one of these words says what to do:
#   ok MS        valid, MS milliseconds
#   slow S MS    sleep S seconds first
#   die          exit 3 before answering
#   hang         never answer
#   garbage      answer with the right id and no "ok"
#   meet N       wait (up to 20 s) until N workers are in FAKE_DIR/meet at
#                once, then valid; invalid if they never were (proves that
#                N evaluations ran at the same time)
#   whoami       valid, with this worker's pid in the reply
# The reference is a kernel whose source begins with "ref".
dev=${FAKE_DEVICE:-fake device}
dir=${FAKE_DIR:-/tmp}
mode=${FAKE_MODE:-noisy}

valid() {   # id ms [noisy] [extra]
  diag='[]'
  [ "${3:-}" = noisy ] && diag='[{"tag":"noisy_timing","detail":"p10-p90 spread is 40% of the median"}]'
  pct=$(awk "BEGIN{print 100/$2}")
  printf '{"id":%s,"ok":true,"status":"valid","error":null,"compile":{"ok":true,"log":""},"report":{"time_ms":{"median":%s,"p10":%s,"p90":%s},"gflops":%s,"roofline_pct":%s,"diagnosis":%s}%s}\n' \
    "$1" "$2" "$2" "$2" "$pct" "$pct" "$diag" "${4:-}"
}
invalid() { printf '{"id":%s,"ok":true,"status":"invalid","error":"%s","compile":{"ok":true,"log":""},"report":null}\n' "$1" "$2"; }
rejected() { printf '{"id":%s,"ok":true,"status":"invalid","error":"a run on inputs the kernel had never seen took 5x the median","validation":{"ok":true},"compile":{"ok":true,"log":""},"report":null}\n' "$1"; }

while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case $line in
    *'"cmd":"devices"'*)
      printf '{"id":%s,"ok":true,"devices":[{"backend":"cpu","name":"%s","ceilings":{"peak_gflops":{"f32":100}}}],"unavailable":[]}\n' "$id" "$dev"
      continue ;;
    *'"cmd":"evaluate"'*) ;;
    *) printf '{"id":%s,"ok":false,"error":"unknown cmd"}\n' "$id"; continue ;;
  esac
  key=$(printf '%s' "$line" | sed 's/"id":[0-9]*//' | md5sum | cut -c1-8)
  src=$(printf '%s' "$line" | sed -n 's/.*"source":"\([a-z]*\) *\([0-9.]*\) *\([0-9.]*\)".*/\1 \2 \3/p')
  if [ "$FAKE_PROGRESS" = 1 ]; then
    printf '{"event":"progress","phase":"compile","detail":"kernel.c","elapsed_s":0.1}\n'
    printf '{"event":"progress","phase":"validate","detail":"set ragged","k":2,"n":3,"elapsed_s":0.2}\n'
  fi
  set -- $src
  case ${1:-} in
    ok) valid "$id" "$2"; continue ;;
    slow) sleep "$2"; valid "$id" "${3:-1}"; continue ;;
    die) exit 3 ;;
    hang) exec sleep 100000 ;;
    garbage) printf '{"id":%s,"bogus":true}\n' "$id"; continue ;;
    whoami) valid "$id" 1 "" ",\"pid\":$$"; continue ;;
    meet)
      mkdir -p "$dir/meet"; : >"$dir/meet/$$"; n=0
      while [ "$(ls "$dir/meet" | wc -l)" -lt "$2" ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
      if [ "$(ls "$dir/meet" | wc -l)" -ge "$2" ]; then valid "$id" 1; else invalid "$id" "met nobody"; fi
      sleep 0.5; rm -f "$dir/meet/$$"; continue ;;
  esac
  if [ "${1:-}" = ref ]; then
    echo ref >>"$dir/log"
    valid "$id" 100
    continue
  fi
  echo "cand $key" >>"$dir/log"
  n=$(cat "$dir/count-$key" 2>/dev/null || echo 0)
  echo $((n + 1)) >"$dir/count-$key"
  case $mode in
    diealways) exit 4 ;;
    dieonce) if [ ! -e "$dir/died-$key" ]; then : >"$dir/died-$key"; exit 4; fi ;;
  esac
  case $mode in
    firstbest) if [ "$n" -eq 0 ]; then valid "$id" 50; else valid "$id" 60; fi ;;
    flaky) if [ "$n" -eq 0 ]; then valid "$id" 50; else invalid "$id" "wrong on set ragged"; fi ;;
    nocompile) printf '{"id":%s,"ok":true,"status":"compile_error","error":"the kernel does not compile (see compile.log)","compile":{"ok":false,"log":"kernel.c:3:5: error: expected ; before } token\\n\\u001b[31mred\\u001b[0m"},"report":null}\n' "$id" ;;
    heldback) if [ "$n" -eq 0 ]; then valid "$id" 50; elif [ "$n" -eq 1 ]; then rejected "$id"; else valid "$id" 40; fi ;;
    heldback2) if [ "$n" -eq 0 ]; then valid "$id" 50; else rejected "$id"; fi ;;
    *) if [ "$n" -eq 0 ]; then valid "$id" 50 noisy; else valid "$id" 10; fi ;;
  esac
done
