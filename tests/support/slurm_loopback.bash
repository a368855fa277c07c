# slurm_loopback.bash -- a Slurm cluster of N nodes on this host, on
# loopback, run by whoever sources this (root or an ordinary user: the
# user is SlurmUser and SlurmdUser): munged with a key made here,
# slurmctld, one slurmd per node (n1..nN, CPUs from nproc each), a
# generated slurm.conf.  Sourced by tests/integration/slurm_loopback.sh
# and bench/throughput.sh; needs slurm-wlm and munge (scripts/setup.sh).
#
#   slurm_loopback_start DIR [NODES]   start it; exports SLURM_CONF; 0 or 1
#                                      (the daemons' logs are in DIR/log)
#   slurm_loopback_stop DIR            stop every daemon it started
#   slurm_loopback_alive PID           the process runs (a zombie does not)

export PATH=$PATH:/usr/sbin

slurm_loopback_alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

slurm_loopback_stop() {
  local dir=$1 f pid
  SLURM_CONF=$dir/slurm.conf scontrol shutdown >/dev/null 2>&1 || true
  [ -s "$dir/munge/pid" ] && kill -TERM "$(cat "$dir/munge/pid")" 2>/dev/null
  for f in "$dir"/slurmctld.pid "$dir"/slurmd-*.pid "$dir"/munge/pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    for _ in $(seq 50); do slurm_loopback_alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

slurm_loopback_start() {
  local dir=$1 nodes=${2:-2} user host cpus attempt p i names
  user=$(id -un)
  host=$(hostname)
  cpus=$(nproc)
  mkdir -p "$dir"/{state,spool,log,munge}
  chmod 700 "$dir/munge"
  export SLURM_CONF=$dir/slurm.conf
  dd if=/dev/urandom of="$dir/munge/key" bs=1024 count=1 2>/dev/null
  chmod 400 "$dir/munge/key"
  if ! munged --key-file="$dir/munge/key" --socket="$dir/munge/sock" --pid-file="$dir/munge/pid" \
       --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" --force; then
    echo "munged does not start as $user" >&2
    return 1
  fi
  names=$(seq -s, -f 'n%g' 1 "$nodes")
  for attempt in 1 2 3; do
    p=$((20000 + RANDOM % 30000))
    {
      echo "ClusterName=emiletest"
      echo "SlurmctldHost=$host(127.0.0.1)"
      echo "SlurmUser=$user"
      echo "SlurmdUser=$user"
      echo "SlurmctldPort=$p"
      echo "AuthType=auth/munge"
      echo "CredType=cred/munge"
      echo "AuthInfo=socket=$dir/munge/sock"
      echo "StateSaveLocation=$dir/state"
      echo "SlurmdSpoolDir=$dir/spool/%n"
      echo "SlurmctldPidFile=$dir/slurmctld.pid"
      echo "SlurmdPidFile=$dir/slurmd-%n.pid"
      echo "SlurmctldLogFile=$dir/log/slurmctld.log"
      echo "SlurmdLogFile=$dir/log/slurmd-%n.log"
      echo "ProctrackType=proctrack/pgid"
      echo "TaskPlugin=task/none"
      echo "SelectType=select/cons_tres"
      echo "SelectTypeParameters=CR_CPU"
      echo "ReturnToService=2"
      echo "MpiDefault=none"
      echo "SwitchType=switch/none"
      echo "JobCompType=jobcomp/none"
      echo "AccountingStorageType=accounting_storage/none"
      echo "PlugStackConfig=/dev/null"
      echo "SlurmdTimeout=30"
      echo "KillWait=5"
      for i in $(seq 1 "$nodes"); do
        echo "NodeName=n$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$((p + i)) CPUs=$cpus State=UNKNOWN"
      done
      echo "PartitionName=emile Nodes=$names Default=YES MaxTime=INFINITE State=UP"
    } >"$SLURM_CONF"
    slurmctld -f "$SLURM_CONF" 2>>"$dir/log/start.err" || continue
    local okd=1
    for i in $(seq 1 "$nodes"); do
      slurmd -f "$SLURM_CONF" -N "n$i" 2>>"$dir/log/start.err" || okd=0
    done
    if [ $okd = 1 ]; then
      for _ in $(seq 100); do
        [ "$(sinfo -h -N -o '%t' 2>/dev/null | grep -c idle)" -eq "$nodes" ] && return 0
        sleep 0.2
      done
    fi
    SLURM_CONF=$SLURM_CONF scontrol shutdown >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurmctld and slurmd did not come up: $(tail -c 400 "$dir/log/start.err" 2>/dev/null)" >&2
  return 1
}
