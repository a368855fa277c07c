/* lang_c.c -- C11 kernels for the cpu backend, built by the system C
 * compiler (cpu.c's command). */
#include "backend/backend.h"
#include "backend/lang.h"

extern const backend_t backend_cpu;

static int c_compile_argv(const char *src, const char *out, const char *include_dir, char **argv, int max,
                          char *buf, size_t bufn)
{
    return backend_cpu.compile_argv(src, out, include_dir, argv, max, buf, bufn);
}

static const char *const c_fences[] = {"C", "h", NULL};

const lang_t lang_c = {
    .name = "c",
    .tag = "c",
    .src_ext = ".c",
    .title = "C",
    .fence = "c",
    .fence_aliases = c_fences,
    .entry_marker = "emile_kernel",
    .source_words = "it includes \"emile.h\" and defines emile_kernel",
    .ladder_dir = "cpu",
    .compile_argv = c_compile_argv,
    .prompt_text =
        "C11 built by the system C compiler with optimisation and OpenMP into a shared object; pointers are "
        "host memory; use OpenMP threads and SIMD (auto-vectorisable loops or intrinsics for the host CPU).",
    .example =
        "#include \"emile.h\"\n"
        "/* y = alpha * x over a rows x cols tensor (any strides). */\n"
        "EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)\n"
        "{\n"
        "    emile_tensor_t *x = emile_tensor(a, \"x\"), *y = emile_tensor(a, \"y\");\n"
        "    if (!x || !y || x->dtype != EMILE_DTYPE_F32)\n"
        "        return 1;\n"
        "    long rows = x->shape[0], cols = x->shape[1];\n"
        "    float alpha = (float)emile_param(a, \"alpha\", 1.0);\n"
        "    const float *X = x->data;\n"
        "    float *Y = y->data;\n"
        "    #pragma omp parallel for\n"
        "    for (long r = 0; r < rows; r++)\n"
        "        for (long c = 0; c < cols; c++)\n"
        "            Y[r * y->strides[0] + c * y->strides[1]] = alpha * X[r * x->strides[0] + c * x->strides[1]];\n"
        "    return 0;\n"
        "}\n",
    .render = lang_render_defines,
};
