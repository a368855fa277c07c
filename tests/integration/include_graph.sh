#!/usr/bin/env bash
# include_graph.sh -- the map of the design, checked: each module of src/
# includes only the modules below it (DESIGN.md: "every module depends only
# on modules below it").  The table says which; a new module, or a new
# edge, must be added here on purpose.  In particular: cook does not reach
# up into cli or serve (they are its front ends), the engine is the model
# alone (neither the store nor the sandbox), and the worker knows nothing
# of the cook that drives it.
source "$(dirname "$0")/lib.bash"
IT_NAME=include_graph

# Lowest first: util, sandbox, backend (with its languages), task (which
# names a backend's language), then the rest.  The worker starts the runner
# and sizes its cache flush as the runner does (runner/cache_size.h); the
# server asks a worker to describe a pasted PyTorch problem, through the
# worker's client as the cook does.  The diagnosis asks a backend for its
# device class, and the server lists the backends for the page.
declare -A ALLOWED=(
  [util]=""
  [sandbox]="util"
  [backend]="sandbox util"
  [task]="backend util"
  [store]="util"
  [report]="backend util"
  [profile]="backend task util"
  [runner]="sandbox util"
  [engine]="backend util"
  [worker]="backend profile runner sandbox task util"
  [agent]="backend task util"
  [taste]="backend engine sandbox store util"
  [cook]="agent backend worker store task util"
  [serve]="backend cook report store task util worker"
  [cli]="agent backend cook report sandbox serve store task taste util worker"
)

# module -> module edges of src/, relative includes resolved to their file.
edges=$(
  find src -name '*.c' -o -name '*.h' -o -name '*.cu' | sort | while read -r f; do
    m=$(echo "$f" | cut -d/ -f2)
    # Directives only (a comment may quote an #include), absolute paths none.
    { grep -oE '^[[:space:]]*#[[:space:]]*include "[^"]*"' "$f" || true; } | sed 's/^.*include "//; s/"$//' |
      while read -r inc; do
      case $inc in
        /*) continue ;;
        ../*) target=$(realpath -m --relative-to=src "$(dirname "$f")/$inc") ;;
        */*) target=$inc ;;
        *) continue ;;
      esac
      d=${target%%/*}
      [ -d "src/$d" ] && [ "$d" != "$m" ] && echo "$m $d $f"
    done
  done | sort -u
)

modules=$(find src -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
for m in $modules; do
  if [ -z "${ALLOWED[$m]+set}" ]; then not_ok "src/$m is in the map (tests/integration/include_graph.sh)"; fi
done

bad=0
while read -r from to file; do
  [ -n "$from" ] || continue
  case " ${ALLOWED[$from]:-} " in
    *" $to "*) ;;
    *) not_ok "$from may not include $to ($file)"; bad=$((bad + 1)) ;;
  esac
done <<<"$edges"
[ $bad -eq 0 ] && ok "no module of src/ includes one above it ($(echo "$edges" | awk '{print $1 "->" $2}' | sort -u | wc -l) edges)"
for e in "cook cli" "cook serve" "engine store" "engine sandbox" "worker cook" "agent cook"; do
  set -- $e
  if grep -q "^$1 $2 " <<<"$edges"; then not_ok "no $1 -> $2"; else ok "no $1 -> $2"; fi
done
it_finish
