#!/usr/bin/env bash
# draw_rate.sh -- how fast the worker draws input elements: the loop of
# oracle_draw_inputs (one xoshiro output, a sum of four 16-bit uniforms,
# num_set to bf16) over 25 M elements, built against src/worker/numeric.c
# of the working tree and of REV (default 01f0287, before the rounding on
# the bits), one after the other in the same run.
#   usage: bash bench/draw_rate.sh [REV]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-01f0287}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/draw.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "emile.h"
#include "util/rng.h"
#include "worker/numeric.h"
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}
int main(int argc, char **argv)
{
    size_t n = (size_t)25 << 20;
    uint16_t *b = malloc(n * 2);
    rng_t r;
    rng_seed(&r, 1);
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        uint64_t x = rng_next(&r);
        double u = (double)(x & 0xffff) + (double)((x >> 16) & 0xffff) + (double)((x >> 32) & 0xffff) +
                   (double)(x >> 48);
        num_set(b, EMILE_DTYPE_BF16, i, (u - 131070.0) / 37837.2);
    }
    double dt = now() - t0;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += num_get(b, EMILE_DTYPE_BF16, i);
    printf("%-12s %.3f s for %zu bf16 elements: %.1f ns an element (checksum %.6g)\n", argc > 1 ? argv[1] : "",
           dt, n, dt / (double)n * 1e9, sum);
    free(b);
    return 0;
}
C
git show "$rev:src/worker/numeric.c" > "$tmp/numeric_rev.c"
for which in "$rev" tree; do
  src=src/worker/numeric.c; [ "$which" = tree ] || src=$tmp/numeric_rev.c
  cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Isrc/worker "$tmp/draw.c" src/util/rng.c "$src" -lm -o "$tmp/draw-$which"
done
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
"$tmp/draw-$rev" "$rev"
"$tmp/draw-tree" "working tree"
