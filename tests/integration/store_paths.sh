#!/usr/bin/env bash
# store_paths.sh -- where the run store is, and which commands may create it.
#
#   * A folder named by EMILE_STORE (or --store) is never created: a missing
#     one is an error naming the variable and the path, for every command
#     (exit 2, bad input, before any work).
#   * Only `cook` creates a store file (in an existing folder, or the
#     default's folder, which it creates).
#   * The read commands (show, export, resume) never create anything: no
#     store is "no run store at PATH yet", exit 1; a missing folder is
#     bad input, exit 2.  `runs` on no store says
#     "no runs yet" (or [] with --json), exit 0, and creates nothing.
source "$(dirname "$0")/lib.bash"
it_setup store_paths

REF=$IT_ROOT/kernels/attention/cpu/reference.c
# The reference only (iteration 0): a few seconds.
SMALL=(--op attention --batch 1 --seq 256 --q-heads 4 --kv-heads 2 --head-dim 32 --max-iters 0
  --reference "$REF")
DEFAULT_DIR=$XDG_DATA_HOME/emile
DEFAULT_STORE=$DEFAULT_DIR/runs.db

absent() { check "$1" test ! -e "$2"; }

# fails NAME RC SUBSTRING CMD...: exit RC, one line on stderr, "emile: ..."
# holding SUBSTRING, nothing on stdout.
fails() {
  local name=$1 rc=$2 msg=$3
  shift 3
  run "$@"
  check_rc "$name: exit $rc" "$rc"
  case $(head -n 1 "$ERR_F") in
    "emile: "*"$msg"*) ok "$name: message names the problem" ;;
    *) not_ok "$name: message names the problem" "want 'emile: ...$msg...'" "stderr: $(head -c 500 "$ERR_F" | tr '\n' '|')" ;;
  esac
  check_eq "$name: one line on stderr" "1" "$(wc -l <"$ERR_F" | tr -d ' ')"
  check_eq "$name: nothing on stdout" "" "$(head -c 300 "$OUT_F")"
}

# ---- EMILE_STORE naming a folder that does not exist (a typo) --------------
mkdir -p "$IT_TMP/d"
TYPO=$IT_TMP/d/nope/sub/x.db
for cmd in runs "runs --json" "show 1" "export 1 $IT_TMP/exp_typo" "resume 1"; do
  # shellcheck disable=SC2086
  fails "EMILE_STORE in a missing folder, $cmd" 2 "EMILE_STORE" env EMILE_STORE="$TYPO" "$EMILE" $cmd
  check_contains "EMILE_STORE in a missing folder, $cmd: names the path" "$ERR_F" "$TYPO"
  absent "EMILE_STORE in a missing folder, $cmd: the folder is not created" "$IT_TMP/d/nope"
done
absent "EMILE_STORE in a missing folder, export: no export folder" "$IT_TMP/exp_typo"
fails "EMILE_STORE in a missing folder, cook" 2 "EMILE_STORE" env EMILE_STORE="$TYPO" "$EMILE" cook "${SMALL[@]}"
check_contains "EMILE_STORE in a missing folder, cook: names the path" "$ERR_F" "$TYPO"
absent "EMILE_STORE in a missing folder, cook: the folder is not created" "$IT_TMP/d/nope"
absent "EMILE_STORE in a missing folder: the default store is untouched" "$DEFAULT_DIR"

# ---- EMILE_STORE naming a file not there yet, in an existing folder -----------
ENVSTORE=$IT_TMP/d/env.db
run env EMILE_STORE="$ENVSTORE" "$EMILE" runs
check_rc "EMILE_STORE, no file yet, runs: exit 0" 0
check_contains "EMILE_STORE, no file yet, runs: says there are none" "$OUT_F" "no runs yet"
absent "EMILE_STORE, no file yet, runs: creates nothing" "$ENVSTORE"
fails "EMILE_STORE, no file yet, show 1" 1 "no run store at $ENVSTORE yet" env EMILE_STORE="$ENVSTORE" "$EMILE" show 1
check_contains "EMILE_STORE, no file yet, show 1: names the variable" "$ERR_F" "EMILE_STORE"
absent "EMILE_STORE, no file yet, show 1: creates nothing" "$ENVSTORE"
run env EMILE_STORE="$ENVSTORE" "$EMILE" cook "${SMALL[@]}" --quiet
check_rc "EMILE_STORE, no file yet, cook: exit 0" 0
check_eq "EMILE_STORE, no file yet, cook: creates the store file with the run" "1" "$(store_runs "$ENVSTORE")"
run env EMILE_STORE="$ENVSTORE" "$EMILE" show 1 --json
check_rc "EMILE_STORE: show 1 reads the cooked run" 0
check_jq "EMILE_STORE: show 1 is the run just cooked" "$OUT_F" '.id == 1 and .status == "done"'
absent "EMILE_STORE: the default store is untouched" "$DEFAULT_DIR"

# ---- the default store, not there yet -------------------------------------------
run "$EMILE" runs
check_rc "no default store, runs: exit 0" 0
check_contains "no default store, runs: says there are none" "$OUT_F" "no runs yet"
run "$EMILE" runs --json
check_rc "no default store, runs --json: exit 0" 0
check_jq "no default store, runs --json: an empty list" "$OUT_F" '. == []'
absent "no default store, runs: creates nothing (not even the folder)" "$DEFAULT_DIR"
fails "no default store, show 1" 1 \
  "no run store at $DEFAULT_STORE yet (cook something first, or --store PATH)" "$EMILE" show 1
fails "no default store, show 1 --json" 1 "no run store at $DEFAULT_STORE yet" "$EMILE" show 1 --json
fails "no default store, export 1 DIR" 1 "no run store at $DEFAULT_STORE yet" "$EMILE" export 1 "$IT_TMP/exp1"
absent "no default store, export 1 DIR: no export folder" "$IT_TMP/exp1"
fails "no default store, resume 1" 1 "no run store at $DEFAULT_STORE yet" "$EMILE" resume 1
absent "no default store, read commands: create nothing (not even the folder)" "$DEFAULT_DIR"
run "$EMILE" cook "${SMALL[@]}" --quiet
check_rc "no default store, cook: exit 0" 0
check_eq "no default store, cook: creates the folder and the store with the run" "1" "$(store_runs "$DEFAULT_STORE")"
run "$EMILE" show 1
check_rc "default store: show 1 reads the cooked run" 0

# ---- --store PATH ------------------------------------------------------------------
fails "--store, no file yet, show 1" 1 "no run store at $IT_TMP/missing.db yet" \
  "$EMILE" show 1 --store "$IT_TMP/missing.db"
absent "--store, no file yet, show 1: creates nothing" "$IT_TMP/missing.db"
fails "--store, no file yet, resume 1" 1 "no run store at $IT_TMP/missing.db yet" \
  "$EMILE" resume 1 --store "$IT_TMP/missing.db"
absent "--store, no file yet, resume 1: creates nothing" "$IT_TMP/missing.db"
run "$EMILE" runs --store "$IT_TMP/missing.db"
check_rc "--store, no file yet, runs: exit 0" 0
check_contains "--store, no file yet, runs: says there are none" "$OUT_F" "no runs yet"
absent "--store, no file yet, runs: creates nothing" "$IT_TMP/missing.db"
# A --store whose folder is missing is bad input (a typo): exit 2 before any
# work, for every command that takes --store, and nothing is created.
NODIR_MSG="--store $IT_TMP/nodir/x.db: the folder $IT_TMP/nodir does not exist"
for cmd in runs "show 1" "export 1 $IT_TMP/exp_nodir" "resume 1" "cook ${SMALL[*]}"; do
  # shellcheck disable=SC2086
  fails "--store in a missing folder, ${cmd%% *}" 2 "$NODIR_MSG" \
    "$EMILE" $cmd --store "$IT_TMP/nodir/x.db"
  absent "--store in a missing folder, ${cmd%% *}: the folder is not created" "$IT_TMP/nodir"
done
absent "--store in a missing folder, export: no export folder" "$IT_TMP/exp_nodir"
for cmd in "taste --random tiny --kernel 1 --max-new 2" "serve --host 127.0.0.1 --port 0"; do
  # shellcheck disable=SC2086
  run "$EMILE" $cmd --store "$IT_TMP/nodir/x.db"
  check_rc "--store in a missing folder, ${cmd%% *}: exit 2" 2
  check_contains "--store in a missing folder, ${cmd%% *}: names the folder" "$ERR_F" \
    "emile ${cmd%% *}: $NODIR_MSG"
  absent "--store in a missing folder, ${cmd%% *}: the folder is not created" "$IT_TMP/nodir"
done
# --store naming a folder rather than the file in it
mkdir -p "$IT_TMP/afolder"
fails "--store naming a folder, runs" 2 "$IT_TMP/afolder is a folder; a store is a file in it" \
  "$EMILE" runs --store "$IT_TMP/afolder"
fails "--store naming a folder, cook" 2 "$IT_TMP/afolder is a folder" \
  "$EMILE" cook "${SMALL[@]}" --store "$IT_TMP/afolder"
check_eq "--store naming a folder: nothing is written in it" "" "$(ls -A "$IT_TMP/afolder")"

# serve opens the store at start: a mistyped EMILE_STORE stops it with the
# variable and path named, and no folder appears.
run env EMILE_STORE="$TYPO" "$EMILE" serve --host 127.0.0.1 --port 0
check_rc "EMILE_STORE in a missing folder, serve: exit 1" 1
check_contains "EMILE_STORE in a missing folder, serve: names the variable and path" "$ERR_F" \
  "emile serve: EMILE_STORE=$TYPO: its directory does not exist"
absent "EMILE_STORE in a missing folder, serve: the folder is not created" "$(dirname "$TYPO")"

it_finish
