#!/usr/bin/env bash
# taste_hf.sh -- the Tasting Room's PyTorch side on the cpu: transformers'
# tiny random Qwen3 with sdpa, then with a C kernel registered through
# AttentionInterface, the same table as the C engine's tasting (the same
# tokens, the kernel really called); a checkpoint directory (--hf DIR); the
# sandbox of each Python side (a kernel that writes a file is stopped with
# the call named, a kernel sees neither our secrets nor root); a missing
# Python said plainly.
source "$(dirname "$0")/lib.bash"
it_setup taste_hf

PY=${EMILE_PYTHON:-}
[ -n "$PY" ] || { [ -x "$IT_ROOT/build/venv/bin/python3" ] && PY=$IT_ROOT/build/venv/bin/python3; } || PY=python3
export PYTHONDONTWRITEBYTECODE=1

run env EMILE_PYTHON=/nonexistent/python3 "$EMILE" taste --hf-random tiny --kernel kernels/attention/cpu/reference.c
check_rc "no Python: exit 1" 1
check_contains "no Python: says what is missing" "$ERR_F" "'/nonexistent/python3' cannot be run"
run "$EMILE" taste --hf-random tiny
check_rc "--hf without --kernel: exit 2" 2
check_contains "--hf without --kernel: says so" "$ERR_F" "--hf needs --kernel"
run "$EMILE" taste --hf-random huge --kernel kernels/attention/cpu/reference.c
check_rc "an unknown shape: exit 2" 2
check_contains "an unknown shape: named" "$ERR_F" "unknown shape 'huge'"

if ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
  ok "skipped the rest: $PY has no torch or transformers (scripts/setup.sh makes build/venv)"
  it_finish
  exit $?
fi
export EMILE_PYTHON=$PY

run "$EMILE" taste --hf-random tiny --kernel kernels/attention/cpu/v1_blocked.c --max-new 12 --prompt-tokens 24
check_rc "tiny random Qwen3, a C kernel: exit 0" 0
check_contains "the table: the sdpa side" "$OUT_F" "sdpa (transformers)"
check_contains "the table: the kernel side" "$OUT_F" "kernels/attention/cpu/v1_blocked.c (transformers)"
check_contains "the table: TTFT" "$OUT_F" "TTFT (ms)"
check_contains "the table: the same tokens" "$OUT_F" "same tokens            yes, all 12 tokens"
check_contains "the table: the prompt" "$OUT_F" "prompt tokens          24"

run "$EMILE" taste --hf-random tiny --kernel kernels/attention/cpu/v3_simd.c --max-new 8 --json --seed 3
check_rc "--json: exit 0" 0
check_jq "--json: both sides, timed, agreeing" "$OUT_F" \
  '(.runs | length) == 2 and .runs[0].ttft_ms > 0 and .runs[1].ttft_ms > 0 and .runs[1].decode_tok_s > 0
   and .agree == true and (.runs[1].ids | length) == 8 and .runs[0].ids == .runs[1].ids'

# A checkpoint directory, as transformers writes one.
CK=$IT_TMP/ckpt
"$PY" - "$CK" 2>/dev/null <<'PYEOF'
import sys, torch, transformers
cfg = transformers.Qwen3Config(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                               intermediate_size=128, head_dim=16, vocab_size=512, max_position_embeddings=256,
                               tie_word_embeddings=True)
torch.manual_seed(5)
transformers.Qwen3ForCausalLM(cfg).save_pretrained(sys.argv[1])
PYEOF
[ -s "$CK/config.json" ] || not_ok "the test's checkpoint was written" "no $CK/config.json"
run "$EMILE" taste --hf "$CK" --kernel kernels/attention/cpu/reference.c --max-new 6 --json
check_rc "--hf DIR: exit 0" 0
check_jq "--hf DIR: both sides agree" "$OUT_F" '.agree == true and (.runs[0].ids | length) == 6'

# The sandbox of the Python sides.
rm -f /tmp/emile-taste-sandbox-escape
run "$EMILE" taste --hf-random tiny --kernel tests/data/engine/attn_writes_file.c --max-new 3
check_rc "a kernel that writes a file: exit 1" 1
check_contains "a kernel that writes a file: the call is named" "$ERR_F" "made a forbidden system call: openat (for writing)"
check "a kernel that writes a file: no file appears" test ! -e /tmp/emile-taste-sandbox-escape
run env EMILE_TEST_SECRET=sk-do-not-leak "$EMILE" taste --hf-random tiny --kernel tests/data/engine/attn_snoops.c --max-new 4
check_rc "a kernel that looks for secrets and root: exit 0 (it saw neither)" 0
check_contains "a kernel that looks for secrets and root: it ran, the tokens agree" "$OUT_F" "yes, all 4 tokens"

it_finish
