/*
 * test_triton_lang.c -- kernel languages (src/backend/lang.h) and the
 * Triton language's compile step (python/emile/triton_aot.py), run as the
 * worker runs it: the argv of lang_triton.compile_argv, in the compile
 * sandbox (sandbox_run, the worker's compile limits, as nobody when root).
 *
 *   - the registry: names and tags, which backend builds which language,
 *     a language from a file's extension, the task's "lang" field;
 *   - the builtin agent's renderers: #define lines for C-like languages,
 *     module-level assignments rewritten for Python ones;
 *   - the LLM agent on a Triton task is told the language, its rules and a
 *     complete Triton example; its tools ask for Triton sources; a kernel
 *     fenced as ```python in prose is taken like a C one;
 *   - the builtin agent on a cuda task in Triton climbs
 *     kernels/attention/triton by the diagnosis tags, with the task's head
 *     dim and dtype in every candidate, and skips rungs the device lacks;
 *   - the compile step on recorded cases (tests/data/triton/NAME.py, the lines
 *     each log must hold in *.expected): a valid kernel builds a .so with a
 *     wrapper that passes fp32 as float; a file that does not parse, a
 *     declaration that disagrees with the kernel's signature, more shared
 *     memory than sm_90 has, a Triton front-end error, host code, an
 *     autotuner, a kernel that reaches Python's builtins each fail with the
 *     compiler's own message naming kernel.py, and a compile that hangs is
 *     killed at the wall limit.  No log names the build directory or quotes
 *     another file.
 * The compile cases need Python with Triton (build/venv) and nvcc; where
 * either is missing they are skipped, saying so.
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
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/llm/llm.h"
#include "backend/backend.h"
#include "backend/lang.h"
#include "sandbox/sandbox.h"
#include "task/task.h"
#include "util/fs.h"
#include "util/paths.h"
#include "worker/compile.h"

/* ---- the registry --------------------------------------------------------------- */

static void test_registry(void **state)
{
    (void)state;
    const lang_t *t = lang_find("triton");
    assert_non_null(t);
    assert_ptr_equal(lang_find("py"), t);
    assert_string_equal(t->src_ext, ".py");
    assert_string_equal(t->ladder_dir, "triton");
    assert_string_equal(lang_find("cu")->name, "cuda");
    assert_null(lang_find("fortran"));
    char why[256] = "";
    assert_ptr_equal(lang_for("cuda", "triton", why, sizeof why), t);
    assert_string_equal(lang_for("cuda", NULL, why, sizeof why)->name, "cuda");
    assert_string_equal(lang_for("cuda", "", why, sizeof why)->name, "cuda");
    assert_string_equal(lang_for("cpu", NULL, why, sizeof why)->name, "c");
    assert_null(lang_for("cpu", "triton", why, sizeof why));
    assert_non_null(strstr(why, "the cpu backend builds c"));
    assert_null(lang_for("cuda", "fortran", why, sizeof why));
    assert_non_null(strstr(why, "unknown language 'fortran'"));
    assert_non_null(strstr(why, "cuda, triton"));
    assert_null(lang_for("tpu", NULL, why, sizeof why));
    assert_non_null(strstr(why, "unknown backend 'tpu' (cpu, cuda)"));
    assert_ptr_equal(lang_for_path("cuda", "dir.x/k.py"), t);
    assert_string_equal(lang_for_path("cuda", "k.cu")->name, "cuda");
    assert_null(lang_for_path("cpu", "k.py"));
    assert_null(lang_for_path("cuda", "kernel"));
    /* Every backend's languages exist and its first is its default. */
    for (const backend_t *const *b = backend_all(); *b; b++) {
        assert_non_null((*b)->langs);
        for (int i = 0; (*b)->langs[i]; i++)
            assert_non_null(lang_find((*b)->langs[i]));
        assert_string_equal(lang_find((*b)->langs[0])->src_ext, (*b)->src_ext);
    }
}

static void test_task_lang(void **state)
{
    (void)state;
    char err[512];
    const char *base = "{\"op\": \"attention\", \"params\": {\"batch\": 1, \"seq\": 64, \"q_heads\": 4, "
                       "\"kv_heads\": 2, \"head_dim\": 64, \"causal\": 1}, \"dtype\": \"bf16\", "
                       "\"reference_source\": \"x\", \"backend\": \"%s\"%s}";
    struct { const char *backend, *extra, *lang, *error; } cases[] = {
        {"cuda", ", \"lang\": \"triton\"", "triton", NULL},
        {"cuda", "", "cuda", NULL},
        {"cpu", "", "c", NULL},
        {"cpu", ", \"lang\": \"triton\"", NULL, "language 'triton': the cpu backend builds c"},
        {"cuda", ", \"lang\": 3", NULL, "\"lang\" must be a string"},
        {"cuda", ", \"lang\": \"cobol\"", NULL, "unknown language 'cobol'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, base, cases[i].backend, cases[i].extra);
        json_t *j = json_loads(text, 0, NULL);
        assert_non_null(j);
        task_t t;
        task_init(&t);
        err[0] = 0;
        int rc = task_from_json(&t, j, NULL, err, sizeof err);
        if (rc == 0)
            rc = task_finalize(&t, err, sizeof err);
        if (cases[i].error) {
            assert_int_not_equal(rc, 0);
            if (!strstr(err, cases[i].error))
                fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].error);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(t.lang, cases[i].lang);
            json_t *back = task_to_json(&t);
            assert_string_equal(json_string_value(json_object_get(back, "lang")), cases[i].lang);
            json_decref(back);
        }
        task_free(&t);
        json_decref(j);
    }
    /* --lang, as the CLI sets it */
    task_t t;
    task_init(&t);
    assert_int_equal(task_set(&t, "backend", "cuda", err, sizeof err), 0);
    assert_int_equal(task_set(&t, "lang", "triton", err, sizeof err), 0);
    assert_string_equal(t.lang, "triton");
    task_free(&t);
}

/* ---- rendering templates ------------------------------------------------------------ */

static void test_render(void **state)
{
    (void)state;
    const lang_t *py = lang_find("triton"), *cu = lang_find("cuda");
    const char *tpl = "\"\"\"doc\"\"\"\nBLOCK_M = 64  # rows\nBLOCK_MN = 1\nNUM_WARPS: int = 4\n"
                      "DTYPE = \"bf16\"\nx = BLOCK_M == 64\n";
    json_t *p = json_pack("{sisiss}", "BLOCK_M", 128, "NUM_WARPS", 8, "DTYPE", "f\"16");
    char err[512] = "";
    char *out = py->render(tpl, p, "t.py", err, sizeof err);
    assert_non_null(out);
    assert_string_equal(out, "# Generated by emile's builtin agent from t.py.\n\"\"\"doc\"\"\"\nBLOCK_M = 128\n"
                             "BLOCK_MN = 1\nNUM_WARPS = 8\nDTYPE = \"f\\\"16\"\nx = BLOCK_M == 64\n");
    free(out);
    /* A parameter the template does not assign is an error, not a no-op. */
    json_t *q = json_pack("{si}", "BLOCK_K", 32);
    assert_null(py->render(tpl, q, "t.py", err, sizeof err));
    assert_non_null(strstr(err, "assigns no module-level BLOCK_K"));
    json_decref(q);
    out = cu->render("int x;\n", p, "t.cu", err, sizeof err);
    assert_non_null(out);
    assert_non_null(strstr(out, "#define BLOCK_M 128\n"));
    assert_non_null(strstr(out, "#define NUM_WARPS 8\n"));
    assert_non_null(strstr(out, "int x;\n"));
    free(out);
    json_decref(p);
    char *argv[] = {"python3", "-B", "a b.py", "it's", "--x=1", "", NULL};
    char line[256];
    lang_argv_line(argv, line, sizeof line);
    assert_string_equal(line, "python3 -B 'a b.py' 'it'\\''s' --x=1 ''");
}

/* ---- the builtin agent on the Triton ladder ----------------------------------------- */

static json_t *iteration(int iter, const char *rung, const char *tags, double ms)
{
    json_t *p = json_object();
    if (rung)
        json_object_set_new(p, "rung", json_string(rung));
    json_t *diag = json_array();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", tags);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(diag, json_pack("{s:s, s:s}", "tag", t, "detail", "d"));
    return json_pack("{s:i, s:s, s:s, s:o, s:s, s:f, s:{s:f, s:f, s:o}}", "iter", iter, "label",
                     rung ? rung : "reference", "reason", "", "params", p, "status", "valid", "time_ms", ms,
                     "report", "gflops", 1000.0 / ms, "roofline_pct", 10.0 / ms, "diagnosis", diag);
}

/* The rung the builtin proposes after this history on a device of this
 * compute capability (source and reason returned through out/why). */
static char *propose_rung(json_t *history, int cc, char **source, char **why)
{
    char err[512];
    json_t *j = json_loads("{\"op\": \"attention\", \"backend\": \"cuda\", \"lang\": \"triton\", "
                           "\"dtype\": \"bf16\", \"reference_source\": \"x\", \"params\": {\"batch\": 1, "
                           "\"seq\": 1024, \"q_heads\": 32, \"kv_heads\": 8, \"head_dim\": 128, \"causal\": 1}}",
                           0, NULL);
    task_t t;
    task_init(&t);
    assert_int_equal(task_from_json(&t, j, NULL, err, sizeof err), 0);
    assert_int_equal(task_finalize(&t, err, sizeof err), 0);
    json_t *tj = task_to_json(&t), *dev = json_pack("{s:s, s:i}", "backend", "cuda", "compute_capability", cc);
    const agent_ops_t *ops = agent_find("builtin");
    agent_t *a = NULL;
    if (ops->create(NULL, &t, &a, err, sizeof err) != 0)
        fail_msg("create: %s", err);
    agent_context_t ctx = {.task = &t, .task_json = tj, .device = dev, .history = history,
                           .next_iter = (int)json_array_size(history)};
    agent_proposal_t p;
    assert_int_equal(ops->propose(a, &ctx, &p, err, sizeof err), AGENT_OK);
    char *rung = strdup(json_string_value(json_object_get(p.params, "rung")));
    *source = strdup(p.source);
    *why = strdup(p.reason);
    agent_proposal_free(&p);
    ops->destroy(a);
    json_decref(tj);
    json_decref(dev);
    json_decref(j);
    task_free(&t);
    return rung;
}

static void test_builtin_climbs_triton(void **state)
{
    (void)state;
    char *src, *why;
    json_t *h = json_array();
    json_array_append_new(h, iteration(0, NULL, "no_tensor_cores,memory_bound_below_bandwidth", 100.0));
    char *rung = propose_rung(h, 90, &src, &why);
    assert_string_equal(rung, "t1_flash");
    assert_true(strncmp(src, "# Generated by emile's builtin agent from ", 42) == 0);
    assert_non_null(strstr(src, "t1_flash.py"));
    assert_non_null(strstr(src, "\nHEAD_DIM = 128\n"));
    assert_non_null(strstr(src, "\nDTYPE = \"bf16\"\n"));
    assert_non_null(strstr(src, "\nBLOCK_M = 128\n"));
    assert_non_null(strstr(src, "emile_launch = {"));
    assert_non_null(strstr(why, "no_tensor_cores"));
    free(rung), free(src), free(why);
    /* t1 is best and latency bound: t3 (pipelining) addresses it, t2 not. */
    json_t *it = iteration(1, "t1_flash", "latency_bound", 5.0);
    json_t *p = json_object_get(it, "params");
    json_object_set_new(p, "BLOCK_M", json_integer(128));
    json_object_set_new(p, "BLOCK_N", json_integer(64));
    json_object_set_new(p, "NUM_WARPS", json_integer(8));
    json_object_set_new(p, "NUM_STAGES", json_integer(2));
    json_array_append_new(h, it);
    rung = propose_rung(h, 90, &src, &why);
    assert_string_equal(rung, "t3_pipeline");
    assert_non_null(strstr(why, "latency_bound"));
    free(rung), free(src), free(why);
    /* A tail effect on an sm_80 device: t4 and t5 need sm_90, so the agent
     * tunes t3 the way the manifest says helps a tail (smaller BLOCK_M). */
    json_t *it3 = iteration(2, "t3_pipeline", "tail_effect", 2.0);
    json_object_update(json_object_get(it3, "params"), p);
    json_object_set_new(json_object_get(it3, "params"), "rung", json_string("t3_pipeline"));
    json_object_set_new(json_object_get(it3, "params"), "NUM_STAGES", json_integer(3));
    json_array_append_new(h, it3);
    rung = propose_rung(h, 80, &src, &why);
    assert_string_equal(rung, "t3_pipeline");
    assert_non_null(strstr(why, "BLOCK_M 128 -> 64, because tail_effect"));
    assert_non_null(strstr(src, "\nBLOCK_M = 64\n"));
    free(rung), free(src), free(why);
    rung = propose_rung(h, 90, &src, &why);
    assert_string_equal(rung, "t4_tma");
    free(rung), free(src), free(why);
    json_decref(h);
}

/* ---- the LLM agent's words ----------------------------------------------------------- */

static void test_llm_text(void **state)
{
    (void)state;
    char err[512];
    json_t *j = json_loads("{\"op\": \"attention\", \"backend\": \"cuda\", \"lang\": \"triton\", "
                           "\"dtype\": \"bf16\", \"reference_source\": \"__global__ void k() {}\", "
                           "\"reference_lang\": \"cu\", \"params\": {\"seq\": 256, \"head_dim\": 64}}", 0, NULL);
    task_t t;
    task_init(&t);
    assert_int_equal(task_from_json(&t, j, NULL, err, sizeof err), 0);
    assert_int_equal(task_finalize(&t, err, sizeof err), 0);
    json_t *hist = json_array();
    agent_context_t ctx = {.task = &t, .history = hist};
    char *sys = llm_system_prompt(&ctx);
    assert_non_null(strstr(sys, "write a Triton kernel"));
    assert_non_null(strstr(sys, "Language Triton: Triton (Python), compiled ahead of time"));
    assert_non_null(strstr(sys, "Backend cuda (kernels run on an NVIDIA GPU)"));
    assert_non_null(strstr(sys, "```python\nimport triton\n"));
    assert_non_null(strstr(sys, "emile_launch = {"));
    assert_null(strstr(sys, "write a CUDA C++ kernel"));
    free(sys);
    char *task = llm_task_prompt(&ctx);
    assert_non_null(strstr(task, "language Triton."));
    assert_non_null(strstr(task, "```cuda\n__global__ void k() {}"));
    assert_non_null(strstr(task, "The reference is CUDA C++; write your kernels in Triton."));
    free(task);
    json_t *defs = llm_tool_defs(&ctx);
    char *text = json_dumps(defs, 0);
    assert_non_null(strstr(text, "the complete Triton source file of the kernel (its @triton.jit kernel(s) and the "
                                 "emile_launch declaration"));
    free(text);
    json_decref(defs);
    /* The same agent on a cuda task in CUDA C++, for contrast. */
    snprintf(t.lang, sizeof t.lang, "cuda");
    sys = llm_system_prompt(&ctx);
    assert_non_null(strstr(sys, "write a CUDA C++ kernel"));
    assert_non_null(strstr(sys, "```cuda\n#include \"emile.h\""));
    free(sys);
    char *k = llm_fence_extract("Here:\n```python\nimport triton\nemile_launch = {}\n```\nand a snippet\n"
                                "```python\nx = 1\n```\n");
    assert_non_null(k);
    assert_string_equal(k, "import triton\nemile_launch = {}\n");
    free(k);
    assert_null(llm_fence_extract("```rust\nfn emile_launch() {}\n```\n"));
    json_decref(hist);
    json_decref(j);
    task_free(&t);
}

/* ---- the compile step ------------------------------------------------------------------ */

static int have_toolchain(char *why, size_t n)
{
    const lang_t *t = lang_find("triton");
    char *argv[64], buf[8192];
    assert_int_equal(t->compile_argv("k.py", "k.so", "inc", argv, 64, buf, sizeof buf), 0);
    char cmd[2048];
    const char *site = "";
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], "--site") == 0 && argv[i + 1])
            site = argv[i + 1];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import sys; sys.path.insert(0, \"%s\"); import triton' >/dev/null 2>&1",
             argv[0], site);
    if (system(cmd) != 0) {
        snprintf(why, n, "no Python with Triton (%s): run scripts/setup.sh", argv[0]);
        return 0;
    }
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], "--nvcc") == 0 && argv[i + 1]) {
            snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", argv[i + 1]);
            if (system(cmd) != 0) {
                snprintf(why, n, "no nvcc (%s)", argv[i + 1]);
                return 0;
            }
        }
    return 1;
}

/* Compile tests/data/triton/<name>.py as kernel.py in a fresh directory,
 * with the worker's compile limits.  Returns the log; *ok, *timed_out. */
static char *compile_case(const char *name, double wall_s, int *ok, int *timed_out, char *dir, size_t dn)
{
    char rel[256], src[1024], dst[1200], so[1200], inc[1024];
    snprintf(rel, sizeof rel, "tests/data/triton/%s.py", name);
    emile_root_file(rel, src, sizeof src);
    emile_root_file("include", inc, sizeof inc);
    snprintf(dir, dn, "/tmp/emile-triton-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    long uid = sandbox_untrusted_uid();
    if (uid >= 0)
        assert_int_equal(chown(dir, (uid_t)uid, (gid_t)uid), 0);
    snprintf(dst, sizeof dst, "%s/kernel.py", dir);
    snprintf(so, sizeof so, "%s/kernel.so", dir);
    assert_int_equal(fs_copy_file(src, dst), 0);
    char *argv[64], buf[8192];
    assert_int_equal(lang_find("triton")->compile_argv(dst, so, inc, argv, 64, buf, sizeof buf), 0);
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.wall_s = wall_s;
    l.cpu_s = wall_s * 2 + 10;
    l.mem_bytes = (size_t)8 << 30;
    l.fsize_bytes = (size_t)512 << 20;
    l.nproc = 0;
    l.drop_uid = uid;
    int st = 0;
    char *log = NULL, err[512];
    assert_int_equal(sandbox_run(dir, argv, &l, &st, timed_out, &log, NULL, err, sizeof err), 0);
    *ok = !*timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0 && fs_exists(so);
    return log ? log : strdup("");
}

/* Every non-empty line of <name>.expected occurs in log. */
static void expect_lines(const char *name, const char *log)
{
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/data/triton/%s.expected", name);
    emile_root_file(rel, path, sizeof path);
    char *want = fs_read_file(path, 1 << 16, NULL);
    assert_non_null(want);
    char *save = NULL, *missing = NULL;
    for (char *line = strtok_r(want, "\n", &save); line && !missing; line = strtok_r(NULL, "\n", &save))
        if (*line && !strstr(log, line))
            missing = strdup(line);
    free(want);
    if (missing) {
        print_error("%s: the log lacks the recorded line\n  %s\nlog:\n%s\n", name, missing, log);
        free(missing);
        fail();
    }
}

static void test_compile_cases(void **state)
{
    (void)state;
    char why[256];
    if (!have_toolchain(why, sizeof why)) {
        print_message("skipped: %s\n", why);
        skip();
    }
    static const char *const bad[] = {"bad_syntax", "bad_signature", "bad_smem", "bad_compile", "bad_host_code",
                                      "bad_autotune", "bad_escape"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int ok, to;
        char dir[64];
        char *log = compile_case(bad[i], 120, &ok, &to, dir, sizeof dir);
        if (ok || to) {
            print_error("%s: expected a compile error, got ok=%d timed_out=%d:\n%s\n", bad[i], ok, to, log);
            free(log);
            fail();
        }
        expect_lines(bad[i], log);
        char so[128];
        snprintf(so, sizeof so, "%s/kernel.so", dir);
        assert_false(fs_exists(so));
        assert_null(strstr(log, dir));            /* names kernel.py, not the build directory */
        assert_null(strstr(log, "Traceback"));    /* a message, not a Python crash */
        assert_null(strstr(log, "root:x:0:0"));   /* no other file quoted */
        free(log);
        fs_rm_rf(dir);
    }
}

static void test_compile_hang(void **state)
{
    (void)state;
    char why[256];
    if (!have_toolchain(why, sizeof why)) {
        print_message("skipped: %s\n", why);
        skip();
    }
    int ok, to;
    char dir[64];
    char *log = compile_case("bad_hang", 4, &ok, &to, dir, sizeof dir);
    assert_false(ok);
    assert_true(to);
    char desc[256];
    sandbox_describe_status(0, to, 4, desc, sizeof desc);
    assert_non_null(strstr(desc, "timed out after 4 s"));
    free(log);
    fs_rm_rf(dir);
}

static void test_compile_good(void **state)
{
    (void)state;
    char why[256];
    if (!have_toolchain(why, sizeof why)) {
        print_message("skipped: %s\n", why);
        skip();
    }
    int ok, to;
    char dir[64];
    char *log = compile_case("good_axpy", 120, &ok, &to, dir, sizeof dir);
    if (!ok) {
        print_error("good_axpy did not build:\n%s\n", log);
        free(log);
        fail();
    }
    expect_lines("good_axpy", log);
    char path[256];
    /* The wrapper: the cubin embedded, the fp32 argument a float (never a
     * double), the kernel loaded through the runtime's library API. */
    snprintf(path, sizeof path, "%s/kernel_wrapper.c", dir);
    char *c = fs_read_file(path, 1 << 22, NULL);
    assert_non_null(c);
    assert_non_null(strstr(c, "float arg4 = (float)arg4_d;"));
    assert_non_null(strstr(c, "int32_t arg3 = (int32_t)arg3_d;"));
    assert_non_null(strstr(c, "cudaLibraryLoadData"));
    assert_non_null(strstr(c, "void *params[] = {&arg0, &arg1, &arg2, &arg3, &arg4, &tk_scratch, &tk_pscratch};"));
    assert_non_null(strstr(c, "if ((uintptr_t)t_x->data % 16)"));
    assert_non_null(strstr(c, "if (t_x->dtype != 0)"));
    free(c);
    struct stat sb;
    snprintf(path, sizeof path, "%s/kernel.cubin", dir);
    assert_int_equal(stat(path, &sb), 0);
    off_t cubin = sb.st_size;
    snprintf(path, sizeof path, "%s/kernel.so", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > cubin);
    char *so = fs_read_file(path, 1 << 24, NULL);
    assert_non_null(so);
    assert_non_null(memmem(so, (size_t)sb.st_size, "emile_kernel", 12));
    free(so);
    free(log);
    fs_rm_rf(dir);
}

/* The worker's build, with its Landlock view of the file system, when the
 * interpreter is a bare "python3" found on PATH in a venv outside the
 * system trees (the GPU host's is /opt/torch/.venv/bin/python3, a link to
 * /usr/bin/python3.12, its packages in the venv): the sandbox has its own
 * $PATH, so the interpreter must be passed by its path, and the venv must
 * be in the view, or the system's Python runs without the venv's packages.
 * Here a venv of /usr/bin/python3 whose "triton" only says where it was
 * found. */
static void test_compile_python_on_path(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        print_message("skipped: no /usr/bin/python3 to make a venv of\n");
        skip();
    }
    char venv[64], path[1400], cmd[2048];
    snprintf(venv, sizeof venv, "/tmp/emile-venv-XXXXXX");
    assert_non_null(mkdtemp(venv));
    snprintf(cmd, sizeof cmd,
             "cd '%s' && chmod 755 . && mkdir -p bin lib/site && ln -s /usr/bin/python3 bin/python3 && "
             "v=$(/usr/bin/python3 -c 'import sys; print(\"%%d.%%d\" %% sys.version_info[:2])') && "
             "mkdir -p lib/python$v/site-packages/triton && printf 'home = /usr/bin\\ninclude-system-site-packages = "
             "false\\nversion = '$v'\\n' > pyvenv.cfg && "
             "echo 'raise SystemExit(\"the venv triton, found\")' > lib/python$v/site-packages/triton/__init__.py && "
             "chmod -R a+rX .", venv);
    assert_int_equal(system(cmd), 0);
    char *old_path = getenv("PATH") ? strdup(getenv("PATH")) : strdup("/usr/bin:/bin");
    char *old_py = getenv("EMILE_PYTHON") ? strdup(getenv("EMILE_PYTHON")) : NULL;
    snprintf(path, sizeof path, "%s/bin:%s", venv, old_path);
    setenv("PATH", path, 1);
    setenv("EMILE_PYTHON", "python3", 1);
    long uid = sandbox_untrusted_uid();
    char dir[64], src[1024], inc[1024], dst[1200], so[1200];
    snprintf(dir, sizeof dir, "/tmp/emile-triton-path-XXXXXX");
    assert_non_null(mkdtemp(dir));
    emile_root_file("tests/data/triton/good_axpy.py", src, sizeof src);
    emile_root_file("include/emile.h", inc, sizeof inc);
    snprintf(dst, sizeof dst, "%s/emile.h", dir);
    assert_int_equal(fs_copy_file(inc, dst), 0);
    if (uid >= 0) {
        assert_int_equal(chown(dir, (uid_t)uid, (gid_t)uid), 0);
        assert_int_equal(chown(dst, (uid_t)uid, (gid_t)uid), 0);
    }
    char *source = fs_read_file(src, 1 << 20, NULL);
    assert_non_null(source);
    task_t t;
    task_init(&t);
    t.compile_limit_s = 60;
    json_t *compile = json_object();
    compile_kernel(NULL, backend_find("cuda"), &t, uid, dir, source, "triton", "good_axpy.py", compile, so, sizeof so);
    setenv("PATH", old_path, 1);
    if (old_py)
        setenv("EMILE_PYTHON", old_py, 1);
    else
        unsetenv("EMILE_PYTHON");
    free(old_path);
    free(old_py);
    const char *log = json_string_value(json_object_get(compile, "log"));
    const char *command = json_string_value(json_object_get(compile, "command"));
    if (!log || !strstr(log, "the venv triton, found"))
        print_error("the build did not reach the venv's triton: %s (command %s)\n", log ? log : "(no log)",
                    command ? command : "");
    assert_non_null(log);
    assert_non_null(strstr(log, "the venv triton, found"));
    /* the interpreter is named by its path in the venv, not "python3" */
    snprintf(path, sizeof path, "%s/bin/python3 -B", venv);
    assert_non_null(command);
    assert_non_null(strstr(command, path));
    free(source);
    json_decref(compile);
    task_free(&t);
    fs_rm_rf(dir);
    fs_rm_rf(venv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_compile_python_on_path),
        cmocka_unit_test(test_task_lang),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_builtin_climbs_triton),
        cmocka_unit_test(test_llm_text),
        cmocka_unit_test(test_compile_good),
        cmocka_unit_test(test_compile_cases),
        cmocka_unit_test(test_compile_hang),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
