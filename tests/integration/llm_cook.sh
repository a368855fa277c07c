#!/usr/bin/env bash
# llm_cook.sh -- end to end: `emile cook --agent anthropic|openai` on the cpu
# backend against the scripted loopback LLM server (tests/support/
# fake_llm_main.c with tests/support/llm_scripts/*_cook.json).  The scripted
# model proposes a kernel that fails validation, then one that passes; the
# server checks every request (path, headers, key, body shape, tool results
# tied to the right call ids) and exits non-zero if any check failed.
# Needs build/emile, build/emile-runner and build/libemile-san.a (make test
# builds them first).
set -euo pipefail
cd "$(dirname "$0")/../.."
for f in build/emile build/emile-runner build/libemile-san.a; do
  [ -e "$f" ] || { echo "llm_cook.sh: $f is missing (run make all build/libemile-san.a)"; exit 1; }
done
FAKE=build/fake-llm
if [ ! -x "$FAKE" ] || [ tests/support/fake_llm_main.c -nt "$FAKE" ] || [ build/libemile-san.a -nt "$FAKE" ]; then
  # shellcheck disable=SC2046
  ${CC:-cc} -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -Isrc -Itests/support \
    -fsanitize=address,undefined -fno-omit-frame-pointer -DFAKE_LLM_MAIN \
    tests/support/fake_llm_main.c build/libemile-san.a -o "$FAKE" \
    $(pkg-config --libs jansson libmicrohttpd libcurl) -lpthread -lm
fi
T=$(mktemp -d)
fake_pid=
cleanup() { [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

cook_against() {   # provider
  local prov=$1 dir="$T/$1"
  mkdir -p "$dir"
  "$FAKE" "tests/support/llm_scripts/${prov}_cook.json" --port-file "$dir/port" \
    --timeout 240 >"$dir/fake.out" 2>"$dir/fake.err" &
  fake_pid=$!
  for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
  [ -s "$dir/port" ] || { echo "FAIL $prov: the fake server did not start"; cat "$dir/fake.err"; return 1; }
  local url="http://127.0.0.1:$(cat "$dir/port")" rc=0
  if [ "$prov" = anthropic ]; then
    ANTHROPIC_API_KEY=sk-e2e-test ./build/emile cook examples/cpu_attention.json --seq 128 \
      --agent anthropic --base-url "$url" --model claude-e2e --max-iters 3 \
      --store "$dir/runs.db" --quiet >"$dir/cook.out" 2>&1 || rc=$?
  else
    env -u OPENAI_API_KEY ./build/emile cook examples/cpu_attention.json --seq 128 \
      --agent openai --base-url "$url" --model local-e2e --max-iters 3 \
      --store "$dir/runs.db" --quiet >"$dir/cook.out" 2>&1 || rc=$?
  fi
  kill -TERM "$fake_pid" 2>/dev/null || true
  local frc=0
  wait "$fake_pid" || frc=$?
  fake_pid=
  ./build/emile show 1 --store "$dir/runs.db" >"$dir/show.out" 2>&1 || true
  local ok=1
  [ $rc -eq 0 ] || { echo "FAIL $prov: emile cook exited $rc"; ok=0; }
  [ $frc -eq 0 ] || { echo "FAIL $prov: the fake server's checks failed (exit $frc)"; ok=0; }
  grep -Eq '^ +1 +invalid.*e2e-bad' "$dir/show.out" || { echo "FAIL $prov: iteration 1 is not the rejected kernel"; ok=0; }
  grep -Eq '^ +2 +[0-9.]+ ms.*e2e-good' "$dir/show.out" || { echo "FAIL $prov: iteration 2 is not the valid kernel"; ok=0; }
  if [ $ok -eq 0 ]; then
    cat "$dir/cook.out" "$dir/fake.err" "$dir/show.out"
    return 1
  fi
  echo "ok $prov: $(head -1 "$dir/fake.err" 2>/dev/null || true)"
}

cook_against anthropic
cook_against openai
