#!/usr/bin/env bash
# taste_ops.sh -- `emile taste` with every hot op swappable, on the cpu:
# each decode op's reference kernel in its slot (--kernel OP=FILE), all at
# once from a menu (--menu FILE, paths relative to it, a run id of the op's
# cook), the breakdown (--breakdown: table and JSON, per op, against each
# op's floor), and the bad inputs: an unknown op slot, a slot given twice, a
# run of another op, a malformed menu (exit 2, or 1 for a kernel that fails,
# naming the op).  The kernels run in the sandboxed engine child.
source "$(dirname "$0")/lib.bash"
it_setup taste_ops

OPS="decode_attention qkv_proj o_proj gate_up down_proj lm_head"
ARGS=()
for op in $OPS; do ARGS+=(--kernel "$op=kernels/$op/cpu/reference.c"); done

# ---- 1. every decode op swapped for its reference: the same tokens -------------
run "$EMILE" taste --random tiny --max-new 12 --json "${ARGS[@]}"
check_rc "taste with six op kernels exits 0" 0
J=$IT_TMP/all.json
cp "$OUT_F" "$J"
check_jq "every op swapped: the generations agree" "$J" '.agree == true and .runs[1].tokens == 12'
for op in $OPS; do
  check_jq "$op: labelled on the kernel side, builtin on the reference side" "$J" \
    ".runs[1].ops.$op == \"kernels/$op/cpu/reference.c\" and .runs[0].ops.$op == \"builtin\""
done
check_jq "the attention slot stays the engine's own" "$J" '.runs[1].attention == "builtin"'

run "$EMILE" taste --random tiny --max-new 4 --quiet --kernel lm_head=kernels/lm_head/cpu/reference.c
check_rc "the table with an op kernel exits 0" 0
check_contains "table: the op's row" "$OUT_F" "lm_head                builtin                      kernels/lm_head/cpu/reference.c"

# ---- 2. --breakdown ------------------------------------------------------------
run "$EMILE" taste --random tiny --max-new 6 --json --breakdown --kernel decode_attention=kernels/decode_attention/cpu/reference.c
check_rc "taste --breakdown exits 0" 0
B=$IT_TMP/bd.json
cp "$OUT_F" "$B"
check_jq "breakdown: a prefill of 32 tokens and 5 decode steps, both sides" "$B" \
  '[.runs[].breakdown.prefill.tokens] == [32, 32] and [.runs[].breakdown.decode.calls] == [5, 5]'
check_jq "breakdown: decode ops with times, shares and floors" "$B" \
  '.runs[1].breakdown.decode.ops | (.decode_attention.ms > 0) and (.lm_head.floor_ms > 0) and (.gate_up.of_floor > 0) and (.other.ms >= 0)'
check_jq "breakdown: the shares add up to the step" "$B" \
  '[.runs[1].breakdown.decode.ops[].share] | add | (. > 0.98 and . < 1.02)'
check_jq "breakdown: the prefill has the attention, the decode has not" "$B" \
  '(.runs[0].breakdown.prefill.ops.attention.ms > 0) and (.runs[0].breakdown.decode.ops.attention == null)'
run "$EMILE" taste --random tiny --max-new 4 --quiet --breakdown
check_rc "the breakdown table exits 0" 0
check_contains "table: the decode breakdown" "$OUT_F" "breakdown, reference: decode"
check_contains "table: a floor column" "$OUT_F" "of floor"

# ---- 3. --menu, with a run of the op ---------------------------------------------
TASK=$IT_TMP/o_proj.json
jq '.max_iters = 1 | .params.hidden = 128 | .params.q_dim = 128 | .reference = "'"$IT_ROOT"'/kernels/o_proj/cpu/reference.c"' \
  examples/qwen3_ops/o_proj_cpu.json >"$TASK"
run "$EMILE" cook "$TASK" --store "$STORE" --quiet
check_rc "cook an o_proj run" 0
mkdir -p "$IT_TMP/menu"
cp kernels/gate_up/cpu/reference.c "$IT_TMP/menu/gu.c"
cat >"$IT_TMP/menu/menu.json" <<JSON
{"gate_up": "gu.c", "o_proj": 1, "decode_attention": "$IT_ROOT/kernels/decode_attention/cpu/v1_parallel.c",
 "reference": {"lm_head": "$IT_ROOT/kernels/lm_head/cpu/reference.c"}}
JSON
run "$EMILE" taste --random tiny --max-new 8 --json --menu "$IT_TMP/menu/menu.json" --store "$STORE"
check_rc "taste --menu exits 0" 0
check_jq "menu: the run, the relative file and the absolute one" "$OUT_F" \
  '(.runs[1].ops.o_proj | startswith("run 1'"'"'s best")) and (.runs[1].ops.gate_up | endswith("menu/gu.c")) and (.runs[1].ops.decode_attention | endswith("v1_parallel.c"))'
check_jq "menu: the reference side's entry" "$OUT_F" '.runs[0].ops.lm_head | endswith("lm_head/cpu/reference.c")'
check_jq "menu: the generations agree" "$OUT_F" '.agree == true'

# ---- 4. bad input ---------------------------------------------------------------
run "$EMILE" taste --random tiny --kernel lm_head=a.c --kernel lm_head=b.c
check_rc "a slot given twice: exit 2" 2
check_contains "a slot given twice: named" "$ERR_F" "gives the lm_head slot twice"
echo '{"softmax": "x.c"}' >"$IT_TMP/bad.json"
run "$EMILE" taste --random tiny --menu "$IT_TMP/bad.json"
check_rc "an unknown op in a menu: exit 2" 2
check_contains "an unknown op: named with the known ones" "$ERR_F" 'unknown op slot "softmax" (attention, decode_attention'
echo '[1, 2]' >"$IT_TMP/bad2.json"
run "$EMILE" taste --random tiny --menu "$IT_TMP/bad2.json"
check_rc "a menu that is not an object: exit 2" 2
run "$EMILE" taste --random tiny --menu "$IT_TMP/none.json"
check_rc "a missing menu: exit 2" 2
check_contains "a missing menu: named" "$ERR_F" "none.json"
run "$EMILE" taste --random tiny --kernel qkv_proj=1 --store "$STORE" --max-new 2
check_rc "a run of another op in a slot: exit 1" 1
check_contains "a run of another op: named" "$ERR_F" "run 1 is an o_proj run: its kernels cannot go into the engine's qkv_proj slot"
run "$EMILE" taste --random tiny --max-new 3 --kernel o_proj=kernels/lm_head/cpu/reference.c
check_rc "a kernel that fails in its slot: exit 1" 1
check_contains "the failing op and layer named" "$ERR_F" "o_proj kernel kernels/lm_head/cpu/reference.c returned 1 in layer 0"

it_finish
