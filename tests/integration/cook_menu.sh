#!/usr/bin/env bash
# cook_menu.sh -- `emile cook` of several tasks on one pool: list values of
# shape flags (--seq 128,256) and a menu file ({"menu": [file, task]}),
# one run each, one table at the end; and the menus it refuses.  The
# workers are stand-ins (tests/support/fake_worker.sh: no kernel is
# compiled), so this is about the cook, not the kernels.
source "$(dirname "$0")/lib.bash"
it_setup cook_menu

printf 'ref 100' >"$IT_TMP/ref.c"
FAKE="FAKE_DIR='$IT_TMP' sh '$IT_ROOT/tests/support/fake_worker.sh'"

# ---- list values ---------------------------------------------------------------
run "$EMILE" cook --op attention --seq 128,256 --head-dim 32,64 --reference "$IT_TMP/ref.c" --max-iters 1 \
  --worker "$FAKE" --workers 2 --confirm 0 --store "$STORE"
check_rc "a menu from lists exits 0" 0
MENU_OUT=$OUT_F
for r in 1 2 3 4; do
  check_contains "the menu prints run $r's lines" "$MENU_OUT" "[run $r]"
done
check_contains "the menu ends with a table" "$MENU_OUT" "  run  status       best ms   roofline   speedup  iters  task"
check_eq "the table has one row per task" "4" "$(grep -cE '^ +[1-4]  done ' "$MENU_OUT" || true)"
run "$EMILE" runs --json --store "$STORE"
check_jq "four runs, all done, each of its own shape" "$OUT_F" \
  'length == 4 and all(.[]; .status == "done") and ([.[].task | "\(.params.seq)/\(.params.head_dim)"] | sort) == ["128/32","128/64","256/32","256/64"]'
check_jq "each run's name says its shape" "$OUT_F" \
  'all(.[]; .task as $t | ($t.name | contains("seq=\($t.params.seq)")) and ($t.name | contains("head_dim=\($t.params.head_dim)")))'

# ---- a menu file -------------------------------------------------------------------
cat >"$IT_TMP/one.json" <<JSON
{"name": "from a file", "op": "attention", "params": {"seq": 64, "q_heads": 4, "kv_heads": 2, "head_dim": 32},
 "reference": "ref.c", "max_iters": 1}
JSON
cat >"$IT_TMP/menu.json" <<JSON
{"menu": ["one.json",
          {"name": "inline", "op": "attention", "params": {"seq": 96, "q_heads": 4, "kv_heads": 2, "head_dim": 32},
           "reference": "ref.c", "max_iters": 1}]}
JSON
run "$EMILE" cook "$IT_TMP/menu.json" --worker "$FAKE" --confirm 0 --store "$IT_TMP/file.db"
check_rc "a menu file exits 0" 0
run "$EMILE" runs --json --store "$IT_TMP/file.db"
check_jq "a menu file: its two tasks, references found beside it" "$OUT_F" \
  'length == 2 and ([.[].task.name] | sort) == ["from a file", "inline"] and all(.[]; .status == "done" and .n_iters == 2)'
# Flags apply to every task of the menu.
run "$EMILE" cook "$IT_TMP/menu.json" --max-iters 2 --worker "$FAKE" --confirm 0 --store "$IT_TMP/file2.db"
run "$EMILE" runs --json --store "$IT_TMP/file2.db"
check_jq "a menu file with --max-iters 2: both tasks get it" "$OUT_F" 'length == 2 and all(.[]; .task.max_iters == 2 and .n_iters == 3)'

# ---- refused menus ------------------------------------------------------------------
run "$EMILE" cook --op attention --seq 128 --reference "$IT_TMP/ref.c" --backend cpu,cuda --store "$IT_TMP/no.db"
check_rc "a list of backends is not a menu: exit 2" 2
echo '{"menu": []}' >"$IT_TMP/empty.json"
run "$EMILE" cook "$IT_TMP/empty.json" --store "$IT_TMP/no.db"
check_rc "an empty menu: exit 2" 2
check_contains "an empty menu: said so" "$ERR_F" '"menu" must be a list of tasks'
run "$EMILE" cook --op attention --seq 1,2,3,4,5,6,7,8,9 --head-dim 1,2,3,4,5,6,7,8 --reference "$IT_TMP/ref.c" \
  --store "$IT_TMP/no.db"
check_rc "a menu of 72 tasks: exit 2" 2
check_contains "a menu of 72 tasks: said so" "$ERR_F" "more than 64 tasks"
check "refused menus create no store" test ! -e "$IT_TMP/no.db"

it_finish
