#!/usr/bin/env bash
# The README's main job, measured: the bundled CPU attention task cooked by
# the builtin agent on this machine, with a fresh store and fresh ceilings.
# Prints the machine, the cook's live output and a summary table.
#   usage: bash bench/cpu_cook.sh [TASK]
set -eu
cd "$(dirname "$0")/.."
task=${1:-examples/cpu_attention.json}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME=$tmp/cache
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
./build/emile cook "$task" --store "$tmp/runs.db" | grep -v '^      why'
python3 bench/cook_table.py "$tmp/runs.db"
