#!/usr/bin/env bash
# Browser tests of the web UI: starts `build/emile serve` on a free loopback
# port with a temporary store, drives the Kitchen and the Tasting Room in
# Debian's headless Chromium (Playwright for Python, from build/venv), and
# leaves screenshots in build/screenshots/.  Needs build/emile (make),
# chromium (apt-get install chromium; $CHROMIUM names another) and
# build/venv with python/requirements.txt (scripts/setup.sh).  Playwright's
# own browser download is never used.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  echo "browser tests: $chromium_bin not found (apt-get install chromium)" >&2
  exit 1
fi
python=build/venv/bin/python3
if ! "$python" -c 'import playwright.sync_api' 2>/dev/null; then
  echo "browser tests: $python has no playwright (bash scripts/setup.sh installs it)" >&2
  exit 1
fi
[ -x build/emile ] || make -j"$(nproc)" build/emile build/emile-runner

tmp="$(mktemp -d /tmp/emile-browser-XXXXXX)"
server=""
server2=""
stop_server() {
  local pid="$1"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}
cleanup() {
  stop_server "$server"
  stop_server "$server2"
  rm -rf "$tmp"
}
trap cleanup EXIT

# The servers, the cooks and tastings they spawn, and the browser get a
# private HOME and XDG dirs: nothing is read from or written to the user's
# (the ceilings cache, a default store, a browser profile).
export HOME="$tmp/home" XDG_CACHE_HOME="$tmp/cache" XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/config"
mkdir -p "$HOME" "$XDG_CACHE_HOME" "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"
unset EMILE_STORE

# Port 0: the server picks a free port and prints its address.
# A tasting that hangs is stopped by the server well inside the test's wait.
build/emile serve --host 127.0.0.1 --port 0 --store "$tmp/runs.db" --examples "$root/examples" \
  --taste-timeout 200 >"$tmp/serve.out" 2>"$tmp/serve.err" &
server=$!
url=""
for _ in $(seq 1 100); do
  url="$(sed -n 's/.*the Kitchen is open at \(http:\/\/127\.0\.0\.1:[0-9]*\/\).*/\1/p' "$tmp/serve.out")"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "browser tests: the server did not start" >&2
  cat "$tmp/serve.out" "$tmp/serve.err" >&2
  exit 1
fi
echo "browser tests: server at $url (store $tmp/runs.db)"

# A second server that needs a token (as any non-loopback one does).
token="browser-test-$$-token"
build/emile serve --host 127.0.0.1 --port 0 --token "$token" --store "$tmp/runs2.db" \
  >"$tmp/serve2.out" 2>"$tmp/serve2.err" &
server2=$!
url2=""
for _ in $(seq 1 100); do
  url2="$(sed -n 's/.*the Kitchen is open at \(http:\/\/127\.0\.0\.1:[0-9]*\/\).*/\1/p' "$tmp/serve2.out")"
  [ -n "$url2" ] && break
  kill -0 "$server2" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url2" ]; then
  echo "browser tests: the second (token) server did not start" >&2
  cat "$tmp/serve2.out" "$tmp/serve2.err" >&2
  exit 1
fi
echo "browser tests: token server at $url2 (store $tmp/runs2.db)"

mkdir -p build/screenshots
status=0
EMILE_URL="$url" EMILE_TOKEN_URL="$url2" EMILE_TOKEN="$token" \
  SCREENSHOT_DIR="$root/build/screenshots" CHROMIUM="$chromium_bin" \
  "$python" -u "$here/run_tests.py" --failures "$tmp/failures.txt" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log (last 60 lines)"
  tail -60 "$tmp/serve.err"
  # Last, so that a log cut to its tail still shows why each test failed.
  echo "--- failed tests and their messages"
  if [ -s "$tmp/failures.txt" ]; then head -120 "$tmp/failures.txt"; else echo "(the test runner itself failed: exit $status)"; fi
fi
echo "browser tests: screenshots in build/screenshots/"
exit "$status"
