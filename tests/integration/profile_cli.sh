#!/usr/bin/env bash
# profile_cli.sh -- `emile devices` (ceilings measured once, then cached)
# and `emile profile TASK KERNEL` (the profile_kernel tool on its own): the
# table, --json, and failing kernels exiting 1 with their status.
source "$(dirname "$0")/lib.bash"
it_setup profile_cli

TASK=examples/cpu_attention.json
GOOD=kernels/attention/cpu/v2_flash.c

# ---- devices: first measured, then cached ------------------------------------
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then HAVE_CUDA=1; else HAVE_CUDA=0; fi
run "$EMILE" devices
check_rc "devices: exit 0" 0
check "devices: the cpu ceilings are measured on the first call" grep -qE '^cpu: .+\(ceilings measured now\)$' "$OUT_F"
if grep -qE '^  peak f32 +[0-9]+\.[0-9] GFLOP/s$' "$OUT_F" && ! grep -qE '^  peak f32 +0\.0 ' "$OUT_F"; then ok "devices: a positive f32 peak"
else not_ok "devices: a positive f32 peak" "$(head -c 500 "$OUT_F" | tr '\n' '|')"; fi
if grep -qE '^  memory bandwidth +[0-9]+\.[0-9] GB/s$' "$OUT_F" && ! grep -qE '^  memory bandwidth +0\.0 ' "$OUT_F"; then ok "devices: a positive memory bandwidth"
else not_ok "devices: a positive memory bandwidth" "$(head -c 500 "$OUT_F" | tr '\n' '|')"; fi
if [ $HAVE_CUDA = 0 ]; then
  check "devices: says cuda is not available here, and why" grep -qE '^cuda: not available: .+' "$OUT_F"
else
  check "devices: lists the cuda device (libcuda is here)" grep -qE '^cuda: ' "$OUT_F"
fi
check_eq "devices: nothing on stderr" "" "$(head -c 300 "$ERR_F")"
check "devices: the ceilings are written to the cache" sh -c "ls '$XDG_CACHE_HOME'/emile/device-*.json"

run "$EMILE" devices
check_rc "devices again: exit 0" 0
check "devices again: the ceilings are cached" grep -qE '^cpu: .+\(ceilings cached\)$' "$OUT_F"

run "$EMILE" devices cpu --remeasure
check_rc "devices cpu --remeasure: exit 0" 0
check "devices cpu --remeasure: measured now" grep -qE '^cpu: .+\(ceilings measured now\)$' "$OUT_F"
check_not_contains "devices cpu: only the cpu backend" "$OUT_F" "cuda"

# a backend named but not here: a failure, with the reason on stderr
if [ $HAVE_CUDA = 0 ]; then
  run "$EMILE" devices cuda
  check_rc "devices cuda without a GPU: exit 1" 1
  check_contains "devices cuda without a GPU: the reason" "$ERR_F" \
    "emile: cuda is not available here: no NVIDIA driver"
  check_eq "devices cuda without a GPU: nothing on stdout" "" "$(head -c 300 "$OUT_F")"
  run "$EMILE" devices cuda --json
  check_rc "devices cuda --json without a GPU: exit 1" 1
  check_jq "devices cuda --json without a GPU: the reply says why" "$OUT_F" \
    '[.unavailable[] | select(.backend == "cuda")] | length == 1'
fi

run "$EMILE" devices --json
check_rc "devices --json: exit 0" 0
check_jq "devices --json after --remeasure: cpu device, cached, measured ceilings" "$OUT_F" \
  '.ok == true and ([.devices[] | select(.backend == "cpu")] | length) == 1
   and (.devices[] | select(.backend == "cpu") | .cached == true and .ceilings.measured == true
        and .ceilings.peak_gflops.f32 > 0 and .ceilings.bandwidth_gbs > 0 and .cores >= 1)'
if [ $HAVE_CUDA = 0 ]; then
  check_jq "devices --json: cuda unavailable with a reason" "$OUT_F" \
    '[.unavailable[] | select(.backend == "cuda") | .why | length > 0] == [true]'
fi
PEAK=$(jq '.devices[] | select(.backend == "cpu") | .ceilings.peak_gflops.f32' "$OUT_F")


# ---- profile a valid kernel: the table ---------------------------------------
run "$EMILE" profile "$TASK" "$GOOD"
check_rc "profile v2_flash: exit 0" 0
for want in "time          median " "throughput    " "GFLOP/s" "intensity     " "bound: " "roofline      " \
            "max error     " "diagnosis"; do
  check_contains "profile table has '$want'" "$OUT_F" "$want"
done
if grep -qE '^time +median [0-9.]+ (ms|us|s) ' "$OUT_F"; then ok "profile table: a median time"
else not_ok "profile table: a median time" "$(head -c 300 "$OUT_F" | tr '\n' '|')"; fi
if grep -qE '^roofline +[0-9.]+% of the [0-9.]+ GFLOP/s attainable' "$OUT_F"; then ok "profile table: the roofline share"
else not_ok "profile table: the roofline share" "$(grep roofline "$OUT_F" | head -2 | tr '\n' '|')"; fi
# v2_flash is single-threaded: the diagnosis says so, with its tag.
check "profile table: diagnosis lists single_threaded" grep -qE '^  single_threaded +.+' "$OUT_F"
check_eq "profile: nothing on stderr" "" "$(head -c 300 "$ERR_F")"

# ---- profile --json ------------------------------------------------------------
run "$EMILE" profile "$TASK" "$GOOD" --json
check_rc "profile --json: exit 0" 0
P=$IT_TMP/profile.json
cp "$OUT_F" "$P"
check_jq "profile --json: ok, status valid, no error" "$P" '.ok == true and .status == "valid" and .error == null'
check_jq "profile --json: report.time_ms.median > 0, min <= median <= max" "$P" \
  '.report.time_ms.median > 0 and .report.time_ms.min <= .report.time_ms.median and .report.time_ms.median <= .report.time_ms.max and .report.time_ms.reps >= 1'
check_jq "profile --json: >= 4 validation checks, all ok" "$P" \
  '.validation.ok == true and (.validation.checks | length) >= 4 and all(.validation.checks[]; .ok == true and .nan == 0 and .max_err <= .tol)'
check_jq "profile --json: a ragged set (seq not a multiple of 64, not the task's)" "$P" \
  'any(.validation.checks[]; .params.seq % 64 != 0 and .params.seq != 512)'
check_jq "profile --json: the task's own size is checked" "$P" \
  'any(.validation.checks[]; .params.seq == 512 and .params.q_heads == 8 and .params.kv_heads == 2 and .params.head_dim == 64)'
check_jq "profile --json: FLOP model of causal attention (B*Hq*S*S*D*2, causal ~ half)" "$P" \
  '.report.flops > 0 and .report.flops <= 4 * 8 * 512 * 512 * 64 and .report.flops >= 4 * 8 * 512 * 512 * 64 / 2 * 0.9'
check_jq "profile --json: gflops = flops / time" "$P" \
  '((.report.gflops - .report.flops / (.report.time_ms.median * 1e6)) | fabs) < 0.01 * .report.gflops'
check_jq "profile --json: roofline share in (0, 100], bound named" "$P" \
  '.report.roofline_pct > 0 and .report.roofline_pct <= 100 and (.report.bound == "compute" or .report.bound == "memory")'
check_jq "profile --json: the diagnosis tags are the documented cpu ones" "$P" \
  '(.report.diagnosis | length) > 0 and all(.report.diagnosis[]; .tag as $t | ["single_threaded","load_imbalance","scalar_code","compute_bound","memory_bound","near_roofline","noisy_timing"] | index($t) != null)'
check_jq "profile --json: the device's measured f32 peak is the one cached" "$P" \
  ".report.peak_gflops > 0 and ((.report.peak_gflops - $PEAK) | fabs) <= 1e-9 * $PEAK"
check_jq "profile --json: compiled, with the command" "$P" '.compile.ok == true and (.compile.command | length) > 0'

# ---- failing kernels: exit 1 and the status ------------------------------------
cat >"$IT_TMP/zeros.c" <<'EOF'
/* Writes zeros: must never pass validation. */
#include <string.h>
#include "emile.h"
EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *o = &args->tensors[args->n_tensors - 1];
    size_t n = 1;
    for (int d = 0; d < o->ndim; d++) n *= (size_t)o->shape[d];
    memset(o->data, 0, n * sizeof(float));
    return 0;
}
EOF
run "$EMILE" profile "$TASK" "$IT_TMP/zeros.c"
check_rc "profile of a kernel that writes zeros: exit 1" 1
check_eq "profile of a kernel that writes zeros: status invalid" "status: invalid" "$(head -n 1 "$OUT_F")"
check "profile of a kernel that writes zeros: an error line" grep -qE '^error: .+' "$OUT_F"
run "$EMILE" profile "$TASK" "$IT_TMP/zeros.c" --json
check_rc "profile --json of the zeros kernel: exit 1" 1
cp "$OUT_F" "$IT_TMP/zeros.json"
check_jq "profile --json of the zeros kernel: ok, status invalid, a failed check, no report" "$IT_TMP/zeros.json" \
  '.ok == true and .status == "invalid" and (.error | length) > 0 and .validation.ok == false
   and any(.validation.checks[]; .ok == false) and (.report == null)'

cat >"$IT_TMP/crash.c" <<'EOF'
#include "emile.h"
EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    volatile int *p = (volatile int *)(args ? 0 : 16);
    *p = 1;
    return 0;
}
EOF
run "$EMILE" profile "$TASK" "$IT_TMP/crash.c"
check_rc "profile of a kernel that segfaults: exit 1" 1
check_eq "profile of a kernel that segfaults: status crashed" "status: crashed" "$(head -n 1 "$OUT_F")"
check "profile of a kernel that segfaults: the error names the signal" grep -qiE '^error: .*(SIGSEGV|segmentation)' "$OUT_F"

printf '#include "emile.h"\nEMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args) { return nope; }\n' >"$IT_TMP/nocompile.c"
run "$EMILE" profile "$TASK" "$IT_TMP/nocompile.c"
check_rc "profile of a kernel that does not compile: exit 1" 1
check_eq "profile of a kernel that does not compile: status compile_error" "status: compile_error" "$(head -n 1 "$OUT_F")"
check_contains "profile of a kernel that does not compile: the compiler's output" "$OUT_F" "compiler output:"
check_contains "profile of a kernel that does not compile: names the identifier" "$OUT_F" "nope"

# profile wrote no run anywhere: it is the tool alone.
check "profile records no run (no default store)" test ! -e "$XDG_DATA_HOME/emile/runs.db"

it_finish
