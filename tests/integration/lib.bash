# lib.bash -- shared helpers of the CLI integration scripts (sourced, not run:
# it does not end in .sh, so the runner does not pick it up).
#
# Each script: `source "$(dirname "$0")/lib.bash"`, then `it_setup NAME`,
# assertions through ok/not_ok/check_*, and `it_finish` at the end, which
# exits non-zero when any assertion failed.
#
# Environment:
#   EMILE_BIN   the CLI under test (default build/emile-san, the sanitized
#               build `make test` makes; build/emile when that is missing)
#   KEEP_TMP=1  keep the temporary directory (printed) for a post-mortem
#
# Needs: bash, jq, sqlite3, nm (binutils), setsid, timeout; reads /proc
# (no procps needed).
set -euo pipefail

IT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$IT_ROOT"

IT_FAILS=0
IT_PASSES=0
IT_NAME=${IT_NAME:-integration}

ok()     { IT_PASSES=$((IT_PASSES + 1)); echo "ok - $IT_NAME: $1"; }
not_ok() {
  IT_FAILS=$((IT_FAILS + 1))
  echo "not ok - $IT_NAME: $1"
  shift
  local l
  for l in "$@"; do printf '#   %s\n' "$l"; done
}

# it_setup NAME: fresh temporary HOME, XDG dirs and store directory.
it_setup() {
  IT_NAME=$1
  local need
  for need in jq sqlite3 nm setsid timeout; do
    if ! command -v "$need" >/dev/null 2>&1; then
      echo "not ok - $IT_NAME: '$need' is not installed (the integration tests need it)"
      exit 1
    fi
  done
  if [ -n "${EMILE_BIN:-}" ]; then
    EMILE=$EMILE_BIN
  elif [ -x build/emile-san ]; then
    EMILE=build/emile-san
  else
    EMILE=build/emile
  fi
  case $EMILE in /*) ;; *) EMILE=$IT_ROOT/$EMILE ;; esac
  if [ ! -x "$EMILE" ] || [ ! -x "$(dirname "$EMILE")/emile-runner" ]; then
    echo "not ok - $IT_NAME: $EMILE or its emile-runner is not built (make build/emile build/emile-runner)"
    exit 1
  fi
  IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/emile-it-$IT_NAME.XXXXXX")
  trap it_cleanup EXIT
  export HOME=$IT_TMP/home XDG_CACHE_HOME=$IT_TMP/cache XDG_DATA_HOME=$IT_TMP/data
  mkdir -p "$HOME" "$XDG_CACHE_HOME" "$XDG_DATA_HOME"
  unset EMILE_STORE
  # The sanitizer must not hide a leak behind a zero exit; leaks fail.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  STORE=$IT_TMP/runs.db
  echo "# $IT_NAME: $EMILE, tmp $IT_TMP"
}

it_cleanup() {
  local rc=$?
  if [ -n "${IT_BG_PGID:-}" ]; then kill -KILL -- "-$IT_BG_PGID" 2>/dev/null || true; fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "# kept $IT_TMP"; else rm -rf "$IT_TMP"; fi
  return $rc
}

it_finish() {
  echo "# $IT_NAME: $IT_PASSES passed, $IT_FAILS failed"
  [ "$IT_FAILS" -eq 0 ]
}

# run CMD...: runs it with stdout in $OUT_F, stderr in $ERR_F, status in RC
# (never trips set -e).  A hard 300 s limit so a hang fails instead of
# blocking CI.
OUT_F=/dev/null
ERR_F=/dev/null
RC=0
run() {
  OUT_F=$IT_TMP/out.$RANDOM$RANDOM
  ERR_F=$IT_TMP/err.$RANDOM$RANDOM
  set +e
  timeout -k 5 300 "$@" >"$OUT_F" 2>"$ERR_F"
  RC=$?
  set -e
}
out() { cat "$OUT_F"; }
err() { cat "$ERR_F"; }

# Context lines for a failure: the command's exit, and heads of its output.
ctx() {
  echo "exit $RC"
  echo "stdout: $(head -c 600 "$OUT_F" | tr '\n' '|')"
  echo "stderr: $(head -c 600 "$ERR_F" | tr '\n' '|')"
}

# check NAME CONDITION-COMMAND...: ok when the command succeeds.
check() {
  local name=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$name"; else not_ok "$name" "failed: $*"; fi
}

# check_eq NAME EXPECTED ACTUAL
check_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $2" "actual:   $3"; fi
}

# check_same NAME A B: A and B equal and not empty.
check_same() {
  if [ -n "$2" ] && [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $(printf %s "$2" | head -c 400)" "actual:   $(printf %s "$3" | head -c 400)"; fi
}

# check_rc NAME EXPECTED: the last run's exit status.
check_rc() {
  if [ "$RC" = "$2" ]; then ok "$1"; else
    local lines
    mapfile -t lines < <(ctx)
    not_ok "$1" "expected exit $2" "${lines[@]}"
  fi
}

# check_contains NAME FILE SUBSTRING (fixed string, case-sensitive)
check_contains() {
  if grep -qF -- "$3" "$2"; then ok "$1"; else not_ok "$1" "missing: '$3'" "in: $(head -c 800 "$2" | tr '\n' '|')"; fi
}
check_not_contains() {
  if ! grep -qF -- "$3" "$2"; then ok "$1"; else not_ok "$1" "unexpected: '$3'" "in: $(head -c 800 "$2" | tr '\n' '|')"; fi
}

# check_jq NAME FILE FILTER: ok when FILE holds exactly one JSON value and
# FILTER on it is true (an empty or unparsable file fails).
check_jq() {
  if jq -e -s "length == 1 and (.[0] | ($3))" "$2" >/dev/null 2>&1; then ok "$1"; else
    # A run's iterations, each with its status and error, past the 600
    # characters of the head (a cook's verdict is what a failure needs).
    local iters
    iters=$(jq -c '[.iterations[]? | {iter: .iter, label: .label, status: .status, error: ((.error // "") | .[0:400])}]' "$2" 2>/dev/null \
            | head -c 3000)
    [ "$iters" = "[]" ] && iters=
    not_ok "$1" "jq -e '$3' is false" "on: $(head -c 600 "$2" | tr '\n' ' ')" ${iters:+"iterations: $iters"}
  fi
}

# iter_nums FILE: the iteration numbers of the live iteration lines in
# FILE ("   3    4.46 ms ..." for a valid one, "   3  invalid  ..." for
# the others), comma-separated, in order.
iter_nums() { grep -oE '^ {0,4}[0-9]+ {2,}[^ ]' "$1" | awk '{print $1}' | paste -sd, - || true; }
# iter_count FILE: how many such lines.
iter_count() { grep -cE '^ {0,4}[0-9]+ {2,}[^ ]' "$1" || true; }

# nonempty_lines FILE: number of lines with something on them.
nonempty_lines() { grep -c . "$1" || true; }

# A small, fast attention task (about 10 s of cooking on two cores).
# write_task FILE [MAX_ITERS] [TARGET] [extra "key": value pairs]
write_task() {
  local f=$1 iters=${2:-3} target=${3:-99} extra=${4:-}
  cat >"$f" <<EOF
{
  "name": "integration small attention",
  "op": "attention",
  "params": {"batch": 1, "seq": 256, "q_heads": 4, "kv_heads": 2, "head_dim": 32, "causal": 1},
  "dtype": "f32",
  "backend": "cpu",
  "reference": "$IT_ROOT/kernels/attention/cpu/reference.c",
  "target": $target,
  "max_iters": $iters,
  "agent": "builtin",
  "time_limit_s": 60${extra:+,
  $extra}
}
EOF
}

# proc_stat PID: /proc/PID/stat after the command name, as words:
# state ppid pgrp session ...; empty when PID is gone.
proc_stat() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  echo "${st##*) }"
}
# pgid_of PID
pgid_of() { local w; read -r -a w <<<"$(proc_stat "$1")"; echo "${w[2]:-}"; }
# session_pids SID: the live (not zombie) processes of session SID.
session_pids() {
  local f st pid w
  for f in /proc/[0-9]*/stat; do
    st=$(cat "$f" 2>/dev/null) || continue
    pid=${st%% *}
    read -r -a w <<<"${st##*) }"
    if [ "${w[3]:-}" = "$1" ] && [ "${w[0]:-}" != Z ]; then echo "$pid"; fi
  done
}
# describe_pids PID...: one "pid: cmdline" a line.
describe_pids() {
  local p
  for p in "$@"; do echo "$p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | head -c 200)"; done
}

# A task too big for the machine must be refused before any work.  Should
# one reach the worker anyway, the worker maps arenas for it outside the
# candidate's limits and the OOM killer picks processes on the machine: so
# such cases run under a 6 GiB address-space limit (run_capped), with the
# plain build (the sanitized one cannot start under such a limit).
plain_bin() {
  if grep -qa __asan_init "$EMILE"; then echo "$(dirname "$EMILE")/emile"; else echo "$EMILE"; fi
}
run_capped() { run bash -c 'ulimit -v 6291456; exec "$@"' capped "$@"; }

# run count of a store (0 when the file does not exist).
store_runs() {
  if [ -f "$1" ]; then sqlite3 "$1" 'SELECT count(*) FROM runs' 2>/dev/null || echo "?"; else echo 0; fi
}
