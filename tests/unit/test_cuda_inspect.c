/*
 * test_cuda_inspect.c -- static facts about built CUDA kernels read from
 * cuobjdump text (src/backend/cuda_inspect.c), on recorded samples:
 *
 *   tests/data/cuda/res_usage_sm90.txt, sass_sm90.txt
 *       written for this test in cuobjdump's format: three kernels, one
 *       with HMMA, HGMMA, LDSM, UTMALDG and UBLKCP, one with predicated
 *       HMMAs, one with none.
 *   tests/data/cuda/rung{3_mma,7_wgmma}_sm90a_{res_usage,sass}.txt
 *       real `cuobjdump -res-usage` / `-sass` output of
 *       kernels/attention/cuda/rung3_mma.cu and rung7_wgmma.cu built with
 *       nvcc -arch=sm_90a (CUDA 12, on an H200).  The SASS is trimmed to the
 *       first instructions of each function and every HMMA, HGMMA, LDSM,
 *       UTMALDG, UBLKCP and EXIT line, so its counts are those of the full
 *       listing.
 *
 * cuda_inspect() itself runs against a stand-in cuobjdump (a shell script
 * beside a fake nvcc named by EMILE_NVCC) that prints the samples.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "backend/cuda_inspect.h"
#include "emile_test.h"
#include "util/fs.h"

#define DATA "tests/data/cuda/"

static char *sample(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, DATA "%s", name);
    char *text = test_read_file(path);
    if (!text)
        fail_msg("cannot read %s (run the test from the repository root)", path);
    return text;
}

static const json_t *by_name(const json_t *arr, const char *name)
{
    size_t i;
    json_t *k;
    json_array_foreach(arr, i, k) if (strcmp(json_string_value(json_object_get(k, "name")), name) == 0) return k;
    fail_msg("no kernel %s", name);
    return NULL;
}

static long long ival(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is missing or not an integer", key);
    return (long long)json_integer_value(v);
}

static void check_res(const json_t *k, long long reg, long long stack, long long shared, long long local,
                      long long constant)
{
    assert_int_equal(ival(k, "registers"), reg);
    assert_int_equal(ival(k, "stack"), stack);
    assert_int_equal(ival(k, "shared"), shared);
    assert_int_equal(ival(k, "local"), local);
    assert_int_equal(ival(k, "constant"), constant);
}

static void check_tc(const json_t *sass, const char *fn, long long hmma, long long hgmma, long long ldsm,
                     long long tma)
{
    const json_t *k = json_object_get(sass, fn);
    if (!k)
        fail_msg("no SASS entry for %s", fn);
    if (ival(k, "hmma") != hmma || ival(k, "hgmma") != hgmma || ival(k, "ldmatrix") != ldsm ||
        ival(k, "tma") != tma)
        fail_msg("%s: hmma %lld hgmma %lld ldmatrix %lld tma %lld, expected %lld %lld %lld %lld", fn, ival(k, "hmma"),
                 ival(k, "hgmma"), ival(k, "ldmatrix"), ival(k, "tma"), hmma, hgmma, ldsm, tma);
}

/* ---- -res-usage ------------------------------------------------------------ */

static void test_res_usage_sample(void **state)
{
    (void)state;
    char *text = sample("res_usage_sm90.txt");
    json_t *arr = cuda_parse_res_usage(text);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 3);
    /* In the order of the listing. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "name")),
                        "_Z15rung7_wgmma_fwdPK13__nv_bfloat16S1_S1_PS_iiiiif");
    check_res(by_name(arr, "_Z15rung7_wgmma_fwdPK13__nv_bfloat16S1_S1_PS_iiiiif"), 168, 0, 0, 24, 912);
    check_res(by_name(arr, "_Z12softmax_rowsPfiif"), 32, 8, 4096, 0, 372);   /* CONSTANT[2] ignored */
    check_res(by_name(arr, "_Z10zero_fill4Pfl"), 8, 0, 0, 0, 368);
    json_decref(arr);
    free(text);
}

static void test_res_usage_real(void **state)
{
    (void)state;
    char *text = sample("rung7_wgmma_sm90a_res_usage.txt");
    json_t *arr = cuda_parse_res_usage(text);
    /* Two template instances (causal and not); the empty elf section of the
     * listing adds nothing. */
    assert_int_equal(json_array_size(arr), 2);
    check_res(by_name(arr, "_Z8flash_r7ILb0ELi2ELi2EEv14CUtensorMap_stS0_S0_8r7params"), 168, 0, 1024, 0, 1088);
    check_res(by_name(arr, "_Z8flash_r7ILb1ELi2ELi2EEv14CUtensorMap_stS0_S0_8r7params"), 168, 0, 1024, 0, 1088);
    json_decref(arr);
    free(text);

    text = sample("rung3_mma_sm90a_res_usage.txt");
    arr = cuda_parse_res_usage(text);
    assert_int_equal(json_array_size(arr), 4);
    check_res(by_name(arr, "_Z8flash_r3ILi64ELi64ELi4ELi1ELb0EEv7kparams"), 136, 0, 1024, 0, 680);
    check_res(by_name(arr, "_Z8flash_r3ILi64ELi64ELi4ELi1ELb1EEv7kparams"), 136, 0, 1024, 0, 680);
    check_res(by_name(arr, "_Z8flash_r3ILi128ELi64ELi4ELi1ELb0EEv7kparams"), 238, 0, 1024, 0, 680);
    check_res(by_name(arr, "_Z8flash_r3ILi128ELi64ELi4ELi1ELb1EEv7kparams"), 238, 0, 1024, 0, 680);
    json_decref(arr);
    free(text);
}

static void test_res_usage_edges(void **state)
{
    (void)state;
    json_t *arr = cuda_parse_res_usage("");
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    arr = cuda_parse_res_usage("Resource usage:\n Common:\n  GLOBAL:0\n");
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    /* A header at the very end, without a resource line. */
    arr = cuda_parse_res_usage(" Function _Z1kv:");
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    /* The last line without a newline; fields in another order; missing
     * fields read as 0. */
    arr = cuda_parse_res_usage(" Function _Z1kv:\n  SHARED:512 REG:40");
    assert_int_equal(json_array_size(arr), 1);
    check_res(json_array_get(arr, 0), 40, 0, 512, 0, 0);
    json_decref(arr);
    /* A spilling kernel (LOCAL and STACK). */
    arr = cuda_parse_res_usage(" Function _Z5spillv:\n  REG:255 STACK:1200 SHARED:0 LOCAL:1200 CONSTANT[0]:400\n");
    check_res(json_array_get(arr, 0), 255, 1200, 0, 1200, 400);
    json_decref(arr);
}

/* ---- -sass ---------------------------------------------------------------------- */

static void test_sass_sample(void **state)
{
    (void)state;
    char *text = sample("sass_sm90.txt");
    json_t *sass = cuda_parse_sass(text);
    assert_int_equal(json_object_size(sass), 3);
    /* One HMMA, three HGMMA, one LDSM, one UTMALDG + one UBLKCP. */
    check_tc(sass, "_Z15rung7_wgmma_fwdPK13__nv_bfloat16S1_S1_PS_iiiiif", 1, 3, 1, 2);
    /* Two predicated HMMAs (@P0, @!P1) and one LDSM.MT. */
    check_tc(sass, "_Z12softmax_rowsPfiif", 2, 0, 1, 0);
    check_tc(sass, "_Z10zero_fill4Pfl", 0, 0, 0, 0);
    json_decref(sass);
    free(text);
}

static void test_sass_real(void **state)
{
    (void)state;
    char *text = sample("rung3_mma_sm90a_sass.txt");
    json_t *sass = cuda_parse_sass(text);
    assert_int_equal(json_object_size(sass), 4);
    check_tc(sass, "_Z8flash_r3ILi64ELi64ELi4ELi1ELb0EEv7kparams", 64, 0, 36, 0);
    check_tc(sass, "_Z8flash_r3ILi64ELi64ELi4ELi1ELb1EEv7kparams", 64, 0, 36, 0);
    check_tc(sass, "_Z8flash_r3ILi128ELi64ELi4ELi1ELb0EEv7kparams", 128, 0, 72, 0);
    check_tc(sass, "_Z8flash_r3ILi128ELi64ELi4ELi1ELb1EEv7kparams", 128, 0, 72, 0);
    json_decref(sass);
    free(text);

    text = sample("rung7_wgmma_sm90a_sass.txt");
    sass = cuda_parse_sass(text);
    assert_int_equal(json_object_size(sass), 2);
    check_tc(sass, "_Z8flash_r7ILb0ELi2ELi2EEv14CUtensorMap_stS0_S0_8r7params", 0, 43, 0, 6);
    check_tc(sass, "_Z8flash_r7ILb1ELi2ELi2EEv14CUtensorMap_stS0_S0_8r7params", 0, 43, 0, 6);
    json_decref(sass);
    free(text);
}

static void test_sass_edges(void **state)
{
    (void)state;
    json_t *sass = cuda_parse_sass("");
    assert_int_equal(json_object_size(sass), 0);
    json_decref(sass);
    /* Instructions before any function are nobody's. */
    sass = cuda_parse_sass("        /*0000*/   HMMA.16816.F32 R0, R2, R4, R0 ;\n");
    assert_int_equal(json_object_size(sass), 0);
    json_decref(sass);
    /* The last line without a newline still counts; words that merely
     * contain the mnemonics do not (no leading blank). */
    sass = cuda_parse_sass("\t\tFunction : _Z1kv\n"
                           "        /*0000*/   MOV R0, XHMMA ;\n"
                           "        /*0010*/   HMMA.1688.F32.TF32 R0, R2, R4, R0 ;");
    check_tc(sass, "_Z1kv", 1, 0, 0, 0);
    json_decref(sass);
}

/* ---- cuda_inspect with a stand-in cuobjdump ------------------------------------ */

static void test_inspect_merges(void **state)
{
    (void)state;
    char dir[512], path[1024], res[1024], sass[1024];
    assert_int_equal(fs_mkdtemp("emile-test-cuobjdump-", dir, sizeof dir), 0);
    assert_non_null(realpath(DATA "res_usage_sm90.txt", res));
    assert_non_null(realpath(DATA "sass_sm90.txt", sass));
    char script[4096];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "# stand-in for cuobjdump: the recorded samples\n"
             "[ -f \"$2\" ] || { echo \"cuobjdump fatal: no file $2\" >&2; exit 1; }\n"
             "case \"$1\" in\n"
             "  -res-usage) cat '%s' ;;\n"
             "  -sass) cat '%s' ;;\n"
             "  *) echo \"unexpected $1\" >&2; exit 2 ;;\n"
             "esac\n",
             res, sass);
    snprintf(path, sizeof path, "%s/cuobjdump", dir);
    assert_int_equal(fs_write_file(path, script, strlen(script)), 0);
    assert_int_equal(chmod(path, 0755), 0);
    snprintf(path, sizeof path, "%s/nvcc", dir);
    setenv("EMILE_NVCC", path, 1);
    assert_string_equal(cuda_nvcc(), path);

    /* The .so must exist for the stand-in; any file will do. */
    char so[1024], err[512] = "";
    snprintf(so, sizeof so, "%s/kernel.so", dir);
    assert_int_equal(fs_write_file(so, "ELF", 3), 0);
    json_t *kernels = NULL;
    if (cuda_inspect(so, dir, 90, &kernels, err, sizeof err) != 0)
        fail_msg("cuda_inspect: %s", err);
    assert_int_equal(json_array_size(kernels), 3);
    const json_t *k = by_name(kernels, "_Z15rung7_wgmma_fwdPK13__nv_bfloat16S1_S1_PS_iiiiif");
    check_res(k, 168, 0, 0, 24, 912);
    assert_int_equal(ival(k, "hmma"), 1);
    assert_int_equal(ival(k, "hgmma"), 3);
    assert_int_equal(ival(k, "ldmatrix"), 1);
    assert_int_equal(ival(k, "tma"), 2);
    k = by_name(kernels, "_Z12softmax_rowsPfiif");
    assert_int_equal(ival(k, "registers"), 32);
    assert_int_equal(ival(k, "hmma"), 2);
    json_decref(kernels);

    /* cuobjdump failing: an error that names the tool. */
    snprintf(so, sizeof so, "%s/missing.so", dir);
    kernels = NULL;
    err[0] = 0;
    assert_int_equal(cuda_inspect(so, dir, 90, &kernels, err, sizeof err), -1);
    assert_null(kernels);
    assert_contains(err, "cuobjdump");
    assert_contains(err, "failed");
    assert_contains(err, "no file");

    unsetenv("EMILE_NVCC");
    fs_rm_rf(dir);
}

static void test_arch_flag(void **state)
{
    (void)state;
    char buf[32];
    cuda_arch_flag(90, buf, sizeof buf);
    assert_string_equal(buf, "-arch=sm_90a");      /* wgmma and TMA need the a-target */
    cuda_arch_flag(80, buf, sizeof buf);
    assert_string_equal(buf, "-arch=sm_80");
    cuda_arch_flag(89, buf, sizeof buf);
    assert_string_equal(buf, "-arch=sm_89");
    cuda_arch_flag(100, buf, sizeof buf);
    assert_string_equal(buf, "-arch=sm_100a");
    cuda_arch_flag(0, buf, sizeof buf);
    assert_string_equal(buf, "-arch=sm_90a");      /* unknown: Hopper */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_res_usage_sample),
        cmocka_unit_test(test_res_usage_real),
        cmocka_unit_test(test_res_usage_edges),
        cmocka_unit_test(test_sass_sample),
        cmocka_unit_test(test_sass_real),
        cmocka_unit_test(test_sass_edges),
        cmocka_unit_test(test_inspect_merges),
        cmocka_unit_test(test_arch_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
