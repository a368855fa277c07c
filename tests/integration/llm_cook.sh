#!/usr/bin/env bash
# llm_cook.sh -- end to end: `emile cook --agent anthropic|openai` on the cpu
# backend against the scripted loopback LLM server (tests/support/
# fake_llm_main.c with tests/support/llm_scripts/*_cook.json).  The scripted
# model proposes a kernel that fails validation, then one that passes; the
# server checks every request (path, headers, key, body shape, tool results
# tied to the right call ids) and exits non-zero if any check failed.
# Runs $EMILE (build/emile-san, see lib.bash) with a temporary HOME and XDG
# dirs; needs it, build/emile-runner and build/libemile-san.a (make test
# builds them first).
source "$(dirname "$0")/lib.bash"
it_setup llm_cook

if [ ! -e build/libemile-san.a ]; then
  echo "not ok - $IT_NAME: build/libemile-san.a is missing (make build/libemile-san.a)"
  exit 1
fi
FAKE=build/fake-llm
if [ ! -x "$FAKE" ] || [ tests/support/fake_llm_main.c -nt "$FAKE" ] || [ build/libemile-san.a -nt "$FAKE" ]; then
  # shellcheck disable=SC2046
  ${CC:-cc} -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -Isrc -Itests/support \
    -fsanitize=address,undefined -fno-omit-frame-pointer -DFAKE_LLM_MAIN \
    tests/support/fake_llm_main.c build/libemile-san.a -o "$FAKE" \
    $(pkg-config --libs jansson libmicrohttpd libcurl) -lpthread -lm
fi

# The fake server is stopped on any exit; then lib.bash's cleanup runs.
fake_pid=
llm_cleanup() {
  local rc=$?
  if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
  set +e          # it_cleanup reads the exit status from $?
  (exit $rc)
  it_cleanup
}
trap llm_cleanup EXIT

cook_against() {   # provider
  local prov=$1 dir="$IT_TMP/$1"
  mkdir -p "$dir"
  "$FAKE" "tests/support/llm_scripts/${prov}_cook.json" --port-file "$dir/port" \
    --timeout 240 >"$dir/fake.out" 2>"$dir/fake.err" &
  fake_pid=$!
  for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
  if [ ! -s "$dir/port" ]; then
    not_ok "$prov: the fake server starts" "stderr: $(head -c 800 "$dir/fake.err" | tr '\n' '|')"
    kill "$fake_pid" 2>/dev/null || true
    fake_pid=
    return 0
  fi
  local url
  url="http://127.0.0.1:$(cat "$dir/port")"
  if [ "$prov" = anthropic ]; then
    run env ANTHROPIC_API_KEY=sk-e2e-test "$EMILE" cook examples/cpu_attention.json --seq 128 \
      --agent anthropic --base-url "$url" --model claude-e2e --max-iters 3 \
      --confirm 0 --store "$dir/runs.db" --quiet
  else
    run env -u OPENAI_API_KEY "$EMILE" cook examples/cpu_attention.json --seq 128 \
      --agent openai --base-url "$url" --model local-e2e --max-iters 3 \
      --confirm 0 --store "$dir/runs.db" --quiet
  fi
  check_rc "$prov: emile cook exits 0" 0
  cat "$OUT_F" "$ERR_F" >"$dir/cook.out"
  kill -TERM "$fake_pid" 2>/dev/null || true
  local frc=0
  wait "$fake_pid" || frc=$?
  fake_pid=
  if [ $frc -eq 0 ]; then ok "$prov: the fake server's checks pass ($(head -1 "$dir/fake.err" 2>/dev/null || true))"
  else not_ok "$prov: the fake server's checks pass" "exit $frc" "stderr: $(head -c 1500 "$dir/fake.err" | tr '\n' '|')"; fi

  run "$EMILE" show 1 --store "$dir/runs.db"
  check_rc "$prov: show 1 exits 0" 0
  cp "$OUT_F" "$dir/show.out"
  local show
  show=$(head -c 1500 "$dir/show.out" | tr '\n' '|')
  if grep -Eq '^ +1 +invalid.*e2e-bad' "$dir/show.out"; then ok "$prov: iteration 1 is the rejected kernel"
  else not_ok "$prov: iteration 1 is the rejected kernel" "show: $show" "cook: $(head -c 1500 "$dir/cook.out" | tr '\n' '|')"; fi
  if grep -Eq '^ +2 +[0-9.]+ ms.*e2e-good' "$dir/show.out"; then ok "$prov: iteration 2 is the valid kernel"
  else not_ok "$prov: iteration 2 is the valid kernel" "show: $show" "cook: $(head -c 1500 "$dir/cook.out" | tr '\n' '|')"; fi
}

cook_against anthropic
cook_against openai
it_finish
