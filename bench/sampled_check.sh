#!/usr/bin/env bash
# sampled_check.sh -- what a timed run's output check costs the worker, for
# one 16 MB bf16 output (8 M elements; prefill attention's o at 1x2048):
#   check on the arena   validate_output_sampled straight on a block pushed
#                        out of the caches (the timed runs' path since a8339d8);
#   copy                 the memcpy of the block the timed runs made before
#                        (still made by validation and the held-back sets);
#   check on the copy    the sampled check on that fresh copy.
# Built against build/libemile.a of the working tree (make all first) and,
# with REV, also against REV's (built in a temporary worktree), one after
# the other in the same run.  Three rounds each; the first pays page faults.
#   usage: bash bench/sampled_check.sh [REV]      (REV e.g. a8339d8)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/rev" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cat > "$tmp/check.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "emile.h"
#include "util/rng.h"
#include "worker/layout.h"
#include "worker/validate.h"
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}
int main(void)
{
    size_t n = (size_t)8 << 20, big_n = (size_t)64 << 20;
    slot_layout_t sl;
    memset(&sl, 0, sizeof sl);
    sl.n_tensors = 1;
    sl.is_out[0] = 1;
    sl.numel[0] = n;
    sl.dtype[0] = EMILE_DTYPE_BF16;
    sl.bytes[0] = n * 2;
    snprintf(sl.tname[0], sizeof sl.tname[0], "o");
    sl.off[0] = LAYOUT_GUARD;
    sl.end = n * 2 + 2 * LAYOUT_GUARD;
    uint8_t *block = calloc(1, sl.end), *copy = malloc(sl.end), *pristine = calloc(1, sl.end);
    uint8_t *expected = calloc(1, n * 2), *big = malloc(big_n);
    if (!block || !copy || !pristine || !expected || !big)
        return 1;
    for (size_t i = 0; i < n; i++) {     /* bf16 of small values, the same in both */
        uint16_t v = (uint16_t)(0x3c00 + ((uint32_t)(i * 2654435761u) >> 24));
        memcpy(expected + 2 * i, &v, 2);
        memcpy(block + LAYOUT_GUARD + 2 * i, &v, 2);
    }
    rng_t r;
    rng_seed(&r, 1);
    char msg[512];
    for (int round = 0; round < 3; round++) {
        memset(big, round, big_n);        /* the block out of the caches */
        double t0 = now();
        int a = validate_output_sampled(&sl, 0, block, expected, pristine, 0.01, &r, "timed", 0, msg, sizeof msg);
        double t1 = now();
        memset(big, round + 1, big_n);
        double t2 = now();
        memcpy(copy, block, sl.end);
        double t3 = now();
        int b = validate_output_sampled(&sl, 0, copy, expected, pristine, 0.01, &r, "timed", 0, msg, sizeof msg);
        double t4 = now();
        if (a || b) fprintf(stderr, "%s\n", msg);
        printf("  round %d: check on the arena %.3f ms; copy %.3f ms + check on the copy %.3f ms%s\n", round,
               (t1 - t0) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3, a || b ? " (a check failed!)" : "");
    }
    return 0;
}
C
libs="-ljansson -lsqlite3 -lcurl -lmicrohttpd -lpcre2-8 -lutf8proc -lcrypto -ldl -lm -lpthread"
run() {  # run TREE LABEL
  cc -O2 -std=c11 -D_GNU_SOURCE -I"$1/include" -I"$1/src" "$tmp/check.c" "$1/build/libemile.a" -o "$tmp/check" $libs
  echo "$2"; "$tmp/check"
}
if [ -n "${1:-}" ]; then
  git worktree add -q --detach "$tmp/rev" "$1"
  make -s -C "$tmp/rev" -j2 build/libemile.a > /dev/null
  run "$tmp/rev" "at $1:"
fi
test -f build/libemile.a || { echo "make all first" >&2; exit 2; }
run "$PWD" "the working tree ($(git rev-parse --short HEAD)$(git diff --quiet -- src || echo ', changed')):"
