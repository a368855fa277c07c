#!/usr/bin/env bash
# slurm_loopback.sh -- a cook whose workers are Slurm jobs, on a real Slurm
# cluster of two nodes started here on loopback: munged, slurmctld and two
# slurmd, as this test's own processes, with a generated slurm.conf and a
# munge key it makes (scripts/setup.sh installs slurm-wlm and munge).
# Checked:
#   1. the same cook on two local workers and on two srun jobs gives the
#      same iterations: the same candidates (labels, parameters: the first
#      batch is the agent's answer to the reference, which does not depend
#      on timing noise) with the same verdict on their outputs (the times,
#      and a verdict on a time, vary with the load of the machine);
#   2. a worker's job killed with scancel while it evaluates a candidate:
#      that evaluation fails, the candidate is tried again on another job,
#      a new job replaces the lost one, and the run ends done;
#   3. a node drained mid-run: jobs running there finish, the run goes on,
#      a worker lost then starts on the other node, and the run ends done;
# then everything is stopped (trap), as root and as an ordinary user.
source "$(dirname "$0")/lib.bash"
it_setup slurm_loopback

for need in munged slurmctld slurmd srun scancel scontrol sinfo squeue; do
  if ! command -v "$need" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$need" ]; then
    echo "not ok - $IT_NAME: '$need' is not installed (scripts/setup.sh installs slurm-wlm and munge)"
    exit 1
  fi
done
export PATH=$PATH:/usr/sbin

SL=$IT_TMP/slurm
source "$IT_ROOT/tests/support/slurm_loopback.bash"
slurm_cleanup() {
  local rc=$?
  slurm_loopback_stop "$SL"
  set +e
  (exit $rc)
  it_cleanup
}
trap slurm_cleanup EXIT

dump_logs() {
  local f
  for f in "$SL"/log/*.log; do echo "# --- $f"; tail -n 15 "$f" | sed 's/^/#   /'; done
}

USER_NAME=$(id -un)
if slurm_loopback_start "$SL" 2 2>"$IT_TMP/start.err"; then
  ok "a two-node Slurm cluster runs on loopback as $USER_NAME"
else
  not_ok "a two-node Slurm cluster runs on loopback as $USER_NAME" "$(head -c 600 "$IT_TMP/start.err" | tr '\n' '|')"
  dump_logs
  exit 1
fi
mkdir -p "$SL/jobs"
run srun --quiet -N1 -n1 -w n2 sh -c 'echo "$SLURMD_NODENAME $(id -un)"'
check_eq "srun runs a job on node n2 as $USER_NAME" "n2 $USER_NAME" "$(out)"

# A worker is a one-task job; it writes its job id and node where the test
# can find them ({i}: the worker's index in the pool).
SRUN_WORKER="srun --quiet --nodes=1 --ntasks=1 --cpus-per-task=1 --job-name=emile-worker \
sh -c 'echo \$SLURM_JOB_ID \$SLURMD_NODENAME >> $SL/jobs/worker-{i}; exec $EMILE worker'"
TASK=$IT_TMP/task.json
write_task "$TASK" 2 99 '"seed": 7'

# ---- 1. the same cook, locally and on Slurm ------------------------------------------
run "$EMILE" cook "$TASK" --workers 2 --confirm 0 --store "$IT_TMP/local.db"
check_rc "the local cook (2 workers) exits 0" 0
run "$EMILE" cook "$TASK" --workers 2 --confirm 0 --worker "$SRUN_WORKER" --store "$IT_TMP/slurm.db"
check_rc "the cook on 2 srun workers exits 0" 0
SLURM_OUT=$OUT_F
check_contains "the Slurm cook says it has 2 workers" "$SLURM_OUT" ", 2 workers"
check_eq "each srun worker ran as a Slurm job" "2" "$(cat "$SL"/jobs/worker-* 2>/dev/null | wc -l | tr -d ' ')"
SHAPE='[.iterations[] | {iter: .iter, label: .label, params: .params, validated: .validated}]'
run "$EMILE" show 1 --json --store "$IT_TMP/local.db"
cp "$OUT_F" "$IT_TMP/local.json"
run "$EMILE" show 1 --json --store "$IT_TMP/slurm.db"
cp "$OUT_F" "$IT_TMP/slurm.json"
check_same "Slurm's iterations equal the local run's (candidates, verdicts on their outputs)" \
  "$(jq -c "$SHAPE" "$IT_TMP/local.json")" "$(jq -c "$SHAPE" "$IT_TMP/slurm.json")"
check_jq "the Slurm run: 3 iterations, done, the reference valid, every output checked" "$IT_TMP/slurm.json" \
  '.status == "done" and (.iterations | length) == 3 and .iterations[0].status == "valid" and all(.iterations[]; .validated == true)'
check_jq "the Slurm run used both workers" "$IT_TMP/slurm.json" '([.iterations[].worker] | unique) == [1, 2]'

# Waits until the cook's NDJSON (file $1) shows iteration >= $2 being
# evaluated; prints its worker.  Empty after 120 s or when the cook ended.
evaluating_worker() {
  local f=$1 min=$2 pid=$3 w
  for _ in $(seq 1200); do
    w=$(jq -r "select(.event == \"progress\" and .phase == \"evaluate\" and .iter >= $min) | .worker" "$f" 2>/dev/null | tail -1)
    if [ -n "$w" ]; then echo "$w"; return; fi
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}
# The Slurm job of pool worker $1 (1-based) now: the last its file names.
job_of() { tail -n 1 "$SL/jobs/worker-$(($1 - 1))" 2>/dev/null | awk '{print $1}'; }
node_of() { tail -n 1 "$SL/jobs/worker-$(($1 - 1))" 2>/dev/null | awk '{print $2}'; }

# ---- 2. scancel a worker's job mid-evaluation ----------------------------------
rm -f "$SL"/jobs/worker-*
# Longer evaluations (seq 512), so that one is under way when its job goes.
write_task "$TASK" 4 99
jq '.params.seq = 512' "$TASK" >"$TASK.new" && mv "$TASK.new" "$TASK"
EV=$IT_TMP/cancel.ndjson
"$EMILE" cook "$TASK" --workers 2 --confirm 0 --worker "$SRUN_WORKER" --events --store "$IT_TMP/cancel.db" \
  >"$EV" 2>"$IT_TMP/cancel.err" &
COOK=$!
W=$(evaluating_worker "$EV" 1 $COOK)
JOB=
[ -n "$W" ] && JOB=$(job_of "$W")
if [ -n "$JOB" ]; then
  scancel "$JOB"
  ok "scancel the job ($JOB) of worker $W while it evaluates a candidate"
else
  not_ok "a worker's job to cancel while it evaluates" "events: $(tail -c 600 "$EV" | tr '\n' '|')"
fi
set +e
timeout 300 tail --pid=$COOK -f /dev/null
wait $COOK
CRC=$?
set -e
check_eq "the cook goes on after the scancel and exits 0" "0" "$CRC"
jq -s . "$EV" >"$IT_TMP/cancel.json" 2>/dev/null || echo '[]' >"$IT_TMP/cancel.json"
check_jq "the cancelled job's worker is reported lost" "$IT_TMP/cancel.json" \
  "any(.[]; .event == \"worker\" and .state == \"lost\" and .worker == ${W:-0})"
check_jq "a new job replaces it" "$IT_TMP/cancel.json" \
  "[.[] | select(.event == \"worker\" and .worker == ${W:-0}) | .state] | index(\"lost\") as \$l | \$l != null and (.[\$l:] | index(\"up\")) != null"
check_jq "the candidate it was evaluating failed there and was tried again on another job" "$IT_TMP/cancel.json" \
  "any(.[]; .event == \"iteration\" and (.iteration.lost | length) == 1 and .iteration.lost[0].worker == ${W:-0}
       and .iteration.worker != ${W:-0})"
check_jq "the run ends done with iterations 0..4" "$IT_TMP/cancel.json" \
  '.[-1].event == "done" and .[-1].status == "done" and ([.[] | select(.event == "iteration") | .iteration.iter] == [0, 1, 2, 3, 4])'

# ---- 3. drain a node mid-run ----------------------------------------------------------
rm -f "$SL"/jobs/worker-*
EV=$IT_TMP/drain.ndjson
"$EMILE" cook "$TASK" --workers 2 --confirm 0 --worker "$SRUN_WORKER" --events --store "$IT_TMP/drain.db" \
  >"$EV" 2>"$IT_TMP/drain.err" &
COOK=$!
W=$(evaluating_worker "$EV" 1 $COOK)
NODE=
[ -n "$W" ] && NODE=$(node_of "$W")
if [ -n "$NODE" ]; then
  scontrol update nodename="$NODE" state=drain reason=emile-test
  check "node $NODE is drained mid-run" bash -c "sinfo -h -n '$NODE' -o %t | grep -qE '^(drng|drain)'"
  # Its jobs run on; lose one so that its replacement must go elsewhere.
  scancel "$(job_of "$W")"
else
  not_ok "a node to drain while the cook runs" "events: $(tail -c 600 "$EV" | tr '\n' '|')"
fi
set +e
timeout 300 tail --pid=$COOK -f /dev/null
wait $COOK
CRC=$?
set -e
check_eq "the cook survives the drained node and exits 0" "0" "$CRC"
jq -s . "$EV" >"$IT_TMP/drain.json" 2>/dev/null || echo '[]' >"$IT_TMP/drain.json"
check_jq "the run ends done with iterations 0..4" "$IT_TMP/drain.json" \
  '.[-1].event == "done" and .[-1].status == "done" and ([.[] | select(.event == "iteration") | .iteration.iter] == [0, 1, 2, 3, 4])'
OTHER=n1
[ "$NODE" = n1 ] && OTHER=n2
check_eq "the lost worker's replacement ran on the other node" "$OTHER" "$(node_of "${W:-1}")"
[ -n "$NODE" ] && scontrol update nodename="$NODE" state=resume

# ---- stop -----------------------------------------------------------------------------
LEFT=$(squeue -h -o %i 2>/dev/null | wc -l | tr -d ' ')
check_eq "no job is left in the queue" "0" "$LEFT"
if [ "$IT_FAILS" -gt 0 ]; then dump_logs; fi
slurm_loopback_stop "$SL"
for d in slurmctld:"$SL"/slurmctld.pid slurmd-n1:"$SL"/slurmd-n1.pid slurmd-n2:"$SL"/slurmd-n2.pid \
         munged:"$SL"/munge/pid; do
  name=${d%%:*} f=${d#*:}
  if [ -s "$f" ] && slurm_loopback_alive "$(cat "$f")"; then not_ok "$name is stopped"; else ok "$name is stopped"; fi
done
it_finish
