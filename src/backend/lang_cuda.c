/* lang_cuda.c -- CUDA C++ kernels for the cuda backend, built by nvcc
 * (cuda.c's command). */
#include "backend/backend.h"
#include "backend/lang.h"

extern const backend_t backend_cuda;

static int cuda_lang_compile_argv(const char *src, const char *out, const char *include_dir, char **argv, int max,
                                  char *buf, size_t bufn)
{
    return backend_cuda.compile_argv(src, out, include_dir, argv, max, buf, bufn);
}

static const char *const cuda_fences[] = {"cu", "cpp", "c++", "cxx", "c", NULL};

const lang_t lang_cuda = {
    .name = "cuda",
    .tag = "cu",
    .src_ext = ".cu",
    .title = "CUDA C++",
    .fence = "cuda",
    .fence_aliases = cuda_fences,
    .entry_marker = "emile_kernel",
    .source_words = "it includes \"emile.h\" and defines emile_kernel",
    .ladder_dir = "cuda",
    .compile_argv = cuda_lang_compile_argv,
    .prompt_text =
        "CUDA C++ built by nvcc into a shared object; export the entry point with EMILE_KERNEL_EXPORT (it is "
        "extern \"C\"), launch on (cudaStream_t)args->stream, never synchronise the device or allocate with "
        "cudaMalloc inside the timed call unless unavoidable.",
    .example =
        "#include \"emile.h\"\n"
        "/* y = alpha * x over a rows x cols tensor (any strides). */\n"
        "__global__ void scale(const float *x, float *y, long rows, long cols, long xs0, long xs1, long ys0,\n"
        "                      long ys1, float alpha)\n"
        "{\n"
        "    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;\n"
        "    if (i < rows * cols)\n"
        "        y[(i / cols) * ys0 + (i % cols) * ys1] = alpha * x[(i / cols) * xs0 + (i % cols) * xs1];\n"
        "}\n"
        "EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)\n"
        "{\n"
        "    emile_tensor_t *x = emile_tensor(a, \"x\"), *y = emile_tensor(a, \"y\");\n"
        "    if (!x || !y || x->dtype != EMILE_DTYPE_F32)\n"
        "        return 1;\n"
        "    long rows = x->shape[0], cols = x->shape[1], n = rows * cols;\n"
        "    float alpha = (float)emile_param(a, \"alpha\", 1.0);\n"
        "    scale<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)a->stream>>>(\n"
        "        (const float *)x->data, (float *)y->data, rows, cols, x->strides[0], x->strides[1],\n"
        "        y->strides[0], y->strides[1], alpha);\n"
        "    return cudaPeekAtLastError() != cudaSuccess;\n"
        "}\n",
    .render = lang_render_defines,
};
