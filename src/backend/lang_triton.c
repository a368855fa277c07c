/* lang_triton.c -- Triton kernels for the cuda backend, compiled ahead of
 * time into the same emile_kernel entry point as CUDA C++ (docs/TRITON.md).
 *
 * A candidate is one .py file: @triton.jit kernel(s), constants and an
 * `emile_launch` declaration (arguments as expressions of the op's
 * parameters and tensors, grid, constexprs, num_warps, num_stages).  Its
 * build step, python/emile/triton_aot.py, runs in the compile sandbox as
 * nvcc does: it checks the file (no module-level code of the candidate
 * runs), compiles the kernel with triton.compile for the device's
 * architecture (no GPU needed), checks its shared memory against the
 * device's, and builds a generated C wrapper embedding the cubin with nvcc
 * against the shared CUDA runtime.  The runner then loads and times it
 * exactly like a CUDA C++ kernel: no Python in the timed path. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cuda_inspect.h"
#include "backend/lang.h"
#include "util/fs.h"
#include "util/paths.h"

/* Whether every directory above path and path itself are executable by
 * others: the compile sandbox runs as nobody when we are root. */
static int world_runnable(const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return 0;
    struct stat st;
    for (char *slash = strchr(real + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        int ok = stat(real, &st) == 0 && (st.st_mode & S_IXOTH);
        *slash = '/';
        if (!ok)
            return 0;
    }
    return stat(real, &st) == 0 && (st.st_mode & S_IXOTH);
}

/* The interpreter that runs the build step, and the site-packages to add
 * (site[0] == 0: none): $EMILE_PYTHON; else build/venv's (scripts/setup.sh)
 * when the sandbox's user can run it, else the system's python of the
 * venv's version with the venv's packages (a venv made from a Python under
 * /root, e.g. pyenv's, is not runnable by nobody); else python3 on PATH
 * (the GPU host's, which holds Triton). */
static const char *triton_python_choice(char *buf, size_t n, char *site, size_t sn)
{
    site[0] = 0;
    const char *p = getenv("EMILE_PYTHON");
    if (p && *p)
        return p;
    char cfg[PATH_MAX], line[512], ver[32] = "";
    emile_root_file("build/venv/bin/python3", buf, n);
    emile_root_file("build/venv/pyvenv.cfg", cfg, sizeof cfg);
    FILE *f = fopen(cfg, "r");
    if (!f)
        return "python3";
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "version = %31[0-9.]", ver) == 1 || sscanf(line, "version_info = %31[0-9.]", ver) == 1)
            break;
    fclose(f);
    if (access(buf, X_OK) != 0)
        return "python3";
    if (geteuid() != 0 || world_runnable(buf))
        return buf;
    int major = 0, minor = 0;
    char sys_py[64];
    if (sscanf(ver, "%d.%d", &major, &minor) != 2)
        return buf;
    snprintf(sys_py, sizeof sys_py, "/usr/bin/python%d.%d", major, minor);
    if (!world_runnable(sys_py))
        return buf;
    char rel[96];
    snprintf(rel, sizeof rel, "build/venv/lib/python%d.%d/site-packages", major, minor);
    emile_root_file(rel, site, sn);
    snprintf(buf, n, "%s", sys_py);
    return buf;
}

/* The interpreter as a path: the sandbox runs it with its own $PATH, and
 * sees the file system only where the compiler's own tree is (compile.c:
 * a venv's folder, from the path as given). */
static const char *triton_python(char *buf, size_t n, char *site, size_t sn)
{
    const char *p = triton_python_choice(buf, n, site, sn);
    char found[PATH_MAX];
    if (!strchr(p, '/') && fs_which(p, found, sizeof found) == 0) {
        snprintf(buf, n, "%s", found);
        return buf;
    }
    return p;
}

static int triton_compile_argv(const char *src, const char *out, const char *include_dir, char **argv, int max,
                               char *buf, size_t bufn)
{
    char py[PATH_MAX], site[PATH_MAX], script[PATH_MAX], arch[16], smem[32];
    emile_root_file("python/emile/triton_aot.py", script, sizeof script);
    int cc = cuda_cc();
    snprintf(arch, sizeof arch, "%d", cc > 0 ? cc : 90);
    snprintf(smem, sizeof smem, "%d", cuda_smem_optin());
    const char *python = triton_python(py, sizeof py, site, sizeof site);
    const char *args[] = {python, "-B", script, src, "-o", out, "-I", include_dir, "--arch", arch,
                          "--smem-limit", smem, "--nvcc", cuda_nvcc(), site[0] ? "--site" : NULL, site};
    int k = 0;
    for (size_t i = 0; i < sizeof args / sizeof args[0] && args[i]; i++)
        if (backend_argv_add(argv, &k, max, &buf, &bufn, args[i]) != 0)
            return -1;
    return 0;
}

static const char *const triton_fences[] = {"py", "python3", "triton", NULL};
static const char *const triton_side[] = {".cubin", NULL};

const lang_t lang_triton = {
    .name = "triton",
    .tag = "py",
    .src_ext = ".py",
    .title = "Triton",
    .fence = "python",
    .fence_aliases = triton_fences,
    .entry_marker = "emile_launch",
    .source_words = "its @triton.jit kernel(s) and the emile_launch declaration; the harness generates "
                    "emile_kernel from it",
    .ladder_dir = "triton",
    .side_exts = triton_side,
    .compile_argv = triton_compile_argv,
    .prompt_text =
        "Triton (Python), compiled ahead of time for the device into the same emile_kernel entry point as a "
        "CUDA kernel: no Python, JIT or autotuner runs when the kernel is timed. The source is one .py file "
        "holding only imports of triton and math, @triton.jit functions, module-level constants (literals, "
        "arithmetic on them, tl.constexpr(value)) and `emile_launch`, a dict literal that says how the entry "
        "point launches ONE kernel:\n"
        "  \"kernel\": the @triton.jit function to launch;\n"
        "  \"args\": every parameter that is not tl.constexpr, in the kernel's order, as (name, type, "
        "expression); types are \"*bf16\", \"*fp16\", \"*fp32\" (pointers: the expression names a tensor of "
        "the op, whose dtype must match), \"i32\", \"i64\", \"fp32\" (a C float, 4 bytes), \"fp64\"; append "
        "\":16\" to promise 16-byte alignment (pointers) or divisibility by 16 (integers), checked on every "
        "call;\n"
        "  \"constexprs\": a value for every tl.constexpr parameter without a default (numbers);\n"
        "  \"grid\": 1 to 3 expressions; \"num_warps\", \"num_stages\": integers;\n"
        "  \"assume\": optional expressions that must hold (e.g. \"head_dim == 128\"); the kernel returns "
        "an error otherwise.\n"
        "Expressions are strings in Python syntax over the op's parameters (by name), t.shape[i], "
        "t.stride[i] (in elements) and t.ndim of a tensor t, the constexprs, numbers, + - * / // % **, "
        "comparisons, and/or/not, `a if c else b`, cdiv(a, b), min, max, abs. No @triton.autotune and no "
        "host code: tune by changing the constants. Shared memory beyond the device's limit and a launch "
        "that disagrees with the kernel's signature are compile errors with Triton's own message. "
        "Triton 3.6; tl.dot on bf16/fp16 uses the tensor cores (wgmma on Hopper); software pipelining "
        "comes from num_stages (or tl.range(..., num_stages=N)).",
    .example =
        "import triton\n"
        "import triton.language as tl\n"
        "\n"
        "BLOCK = 1024\n"
        "\n"
        "\n"
        "@triton.jit\n"
        "def scale(X, Y, n, cols, xs0, xs1, ys0, ys1, alpha, BLOCK: tl.constexpr):\n"
        "    \"\"\"y = alpha * x over a rows x cols tensor (any strides).\"\"\"\n"
        "    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)\n"
        "    r, c = i // cols, i % cols\n"
        "    x = tl.load(X + r * xs0 + c * xs1, mask=i < n)\n"
        "    tl.store(Y + r * ys0 + c * ys1, alpha * x, mask=i < n)\n"
        "\n"
        "\n"
        "emile_launch = {\n"
        "    \"kernel\": \"scale\",\n"
        "    \"args\": [(\"X\", \"*fp32\", \"x\"), (\"Y\", \"*fp32\", \"y\"),\n"
        "             (\"n\", \"i64\", \"x.shape[0] * x.shape[1]\"), (\"cols\", \"i64\", \"x.shape[1]\"),\n"
        "             (\"xs0\", \"i64\", \"x.stride[0]\"), (\"xs1\", \"i64\", \"x.stride[1]\"),\n"
        "             (\"ys0\", \"i64\", \"y.stride[0]\"), (\"ys1\", \"i64\", \"y.stride[1]\"),\n"
        "             (\"alpha\", \"fp32\", \"alpha\")],\n"
        "    \"constexprs\": {\"BLOCK\": BLOCK},\n"
        "    \"grid\": (\"cdiv(x.shape[0] * x.shape[1], BLOCK)\",),\n"
        "    \"num_warps\": 4,\n"
        "    \"num_stages\": 1,\n"
        "}\n",
    .render = lang_render_python,
};
