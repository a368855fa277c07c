#!/usr/bin/env bash
# device_lock_pool.sh -- two local workers cooking on one CPU never time at
# once: every window in which a worker held the device exclusively (the
# timed, held-back and re-measure runs; EMILE_DEVICE_LOCK_TRACE records
# them) overlaps no window of the other worker, shared ones (compiles,
# validation, the reference's runs) included; both workers timed; the cook
# is whole.  The cook's events show a worker's wait as a "wait" phase when
# one happened.
source "$(dirname "$0")/lib.bash"
it_setup device_lock_pool

export EMILE_DEVICE_LOCK_DIR=$IT_TMP/locks EMILE_DEVICE_LOCK_TRACE=$IT_TMP/trace.ndjson
unset EMILE_DEVICE_LOCK
TRACE=$EMILE_DEVICE_LOCK_TRACE
# check_all NAME FILE FILTER: FILTER true of FILE's JSON lines, slurped.
check_all() {
  if jq -e -s "$3" "$2" >/dev/null 2>&1; then ok "$1"; else
    not_ok "$1" "jq -e -s '$3' is false" "on: $(head -c 600 "$2" | tr '\n' ' ')"
  fi
}

run "$EMILE" cook examples/cpu_attention.json --seq 256 --max-iters 5 --target 100 --confirm 0 --workers 2 \
  --events --store "$STORE"
check_rc "a cook on two workers exits 0" 0
EV=$OUT_F
check_all "the cook recorded the reference and 5 candidates" "$EV" \
  '[.[] | select(.event == "iteration")] | length == 6'
check_eq "both workers evaluated" 2 \
  "$(jq -r 'select(.event == "progress" and .worker != null) | .worker' "$EV" | sort -u | wc -l | tr -d ' ')"

check "the trace of the device's windows exists" test -s "$TRACE"
check_all "every window names its mode, holder and span" "$TRACE" \
  'length > 0 and all(.[]; (.mode == "exclusive" or .mode == "shared") and .pid > 0 and .t1 >= .t0
                       and (.key | startswith("host:")) and .locked == true)'
n_timed=$(jq -s '[.[] | select(.mode == "exclusive")] | length' "$TRACE")
check "six timed windows at least (the reference and each candidate), got $n_timed" test "$n_timed" -ge 6
check_eq "both workers' processes timed" 2 \
  "$(jq -s '[.[] | select(.mode == "exclusive") | .pid] | unique | length' "$TRACE")"
overlaps=$(jq -s '. as $w | [ $w[] | select(.mode == "exclusive") as $x
                    | $w[] | select(.pid != $x.pid and .t0 < $x.t1 and .t1 > $x.t0)
                    | {timed: $x.what, other: .what, pid: .pid} ]' "$TRACE")
check_eq "no window of one worker overlaps another's timed window" "[]" "$(jq -c . <<<"$overlaps")"
n_shared=$(jq -s '[.[] | select(.mode == "shared")] | length' "$TRACE")
check "compiles, validation and the reference's runs held the device shared ($n_shared windows)" test "$n_shared" -ge 12
# A wait, when there was one, is shown with who held the device.
check_all "a wait, where there was one, names the device's holder" "$EV" \
  'all(.[] | select(.event == "progress" and .phase == "wait"); .detail | startswith("waiting for the device ("))'

it_finish
