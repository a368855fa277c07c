#!/usr/bin/env bash
# backend_names.sh -- backends are truly pluggable (issue 12): outside
# src/backend and src/runner no code spells a backend's name ("cpu",
# "cuda", or any backend registered later) -- a caller asks backend_t,
# lang_t, the runner's device_t or the engine's engine_device_t instead, so
# that a new backend is one file and one registry line.  The names come
# from the registries themselves (each `const backend_t backend_X` and
# runner device's .name), so a new backend is guarded as soon as it is
# added.  Files that must name one are in backend_names.allow, each with its
# reason.  The scan is proved on a planted comparison first.
source "$(dirname "$0")/lib.bash"
IT_NAME=backend_names
ALLOW=tests/integration/backend_names.allow

# The backends' names: the .name of each backend_t definition in
# src/backend and of each runner device in src/runner/device_*.c.
names=$(
  {
    awk '/^const backend_t backend_[a-z0-9_]* = \{/ { want = 1 }
         want && /\.name = "/ { sub(/.*\.name = "/, ""); sub(/".*/, ""); print; want = 0 }' src/backend/*.c
    awk '/^static device_t [a-z0-9_]* = \{/ { want = 1 }
         want && /\.name = "/ { sub(/.*\.name = "/, ""); sub(/".*/, ""); print; want = 0 }' src/runner/device_*.c
  } | sort -u
)
if grep -qx cpu <<<"$names" && grep -qx cuda <<<"$names"; then
  ok "the registries name the backends: $(echo $names)"
else
  not_ok "the backends' names are read from src/backend and src/runner (got: $(echo $names))"
fi
alt=$(echo $names | tr ' ' '|')

# scan ROOT: every line under ROOT/src that spells a backend's name in
# quotes (C, CUDA, the page's HTML and JavaScript), outside src/backend,
# src/runner and the embedded copies of the page (scripts/embed_assets.sh,
# checked against their sources by test_serve_assets), as PATH:LINE:TEXT.
scan() {
  (cd "$1" && grep -rnE "[\"'](${alt})[\"']" src \
       --include='*.c' --include='*.h' --include='*.cu' --include='*.js' --include='*.html' \
     | grep -vE '^src/(backend|runner)/|^src/serve/assets_[a-z_]+\.c:' || true)
}

# The allow-list: PATH REASON, each with a reason.
declare -A reason=()
while read -r path why; do
  case $path in ''|'#'*) continue ;; esac
  if [ -z "$why" ]; then not_ok "$ALLOW: $path has no reason"; fi
  reason[$path]=$why
done <"$ALLOW"

# The scan finds a planted comparison (so it can fail) and passes the
# allowed files.
plant=$(mktemp -d)
trap 'rm -rf "$plant"' EXIT
mkdir -p "$plant/src/cook" "$plant/src/backend"
printf 'int gpu(const char *b) { return strcmp(b, "cuda") == 0; }\n' >"$plant/src/cook/x.c"
printf 'static const char *n = "cuda";\n' >"$plant/src/backend/y.c"
found=$(scan "$plant")
if [ "$(echo "$found" | cut -d: -f1)" = src/cook/x.c ]; then
  ok "a planted name comparison in src/cook is found, one in src/backend is not"
else
  not_ok "the scan finds a planted comparison" "got: $found"
fi

hits=$(scan .)
bad=$(echo "$hits" | while IFS=: read -r path line text; do
  [ -n "$path" ] || continue
  [ -n "${reason[$path]+set}" ] || echo "$path:$line:$text"
done)
if [ -z "$bad" ]; then
  ok "no backend name outside src/backend, src/runner and the allow-list ($(echo "$hits" | grep -c . || true) allowed lines)"
else
  mapfile -t lines <<<"$bad"
  not_ok "backend names compared outside src/backend and src/runner: ask backend_t, lang_t or device_t (or add the file to $ALLOW with a reason)" "${lines[@]}"
fi
for path in "${!reason[@]}"; do
  if ! grep -q "^$path:" <<<"$hits"; then
    not_ok "$ALLOW: $path names no backend any more: remove its entry"
  fi
done
it_finish
