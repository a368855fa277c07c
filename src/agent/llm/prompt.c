/*
 * prompt.c -- what the model is told.  The system prompt is the same for
 * every task of a backend and language: the role, the kernel ABI, the
 * validation rules, how to use the tools, the language's own rules and a
 * complete example in it (all from src/backend/lang_*.c).  The task message carries this task: the op's
 * contract, the parameters, the device and its measured ceilings, the
 * reference with its profile, the target and the budget.
 */
#include "llm.h"

#include "backend/backend.h"
#include "backend/lang.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep in step with include/emile.h (ABI version 1): the model writes
 * against this text. */
static const char abi_text[] =
    "A kernel is one source file that includes \"emile.h\" and exports one entry "
    "point:\n"
    "    EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args);\n"
    "The harness owns every allocation, the inputs, the outputs and the timing; a "
    "kernel owns nothing that outlives the call. It may launch any number of inner "
    "kernels (OpenMP regions, CUDA launches) but must have finished all of its work "
    "on the given stream when the stream is synchronised (cuda) or when the call "
    "returns (cpu). Return 0 on success, non-zero on failure.\n"
    "Tensors arrive in the op's order (inputs first, then outputs) and are also "
    "found by name. Strides are in elements, not bytes. Op parameters (sizes, "
    "flags, scale) arrive as name/value pairs (doubles).\n\n"
    "    typedef enum { EMILE_DTYPE_F32 = 0, EMILE_DTYPE_F16 = 1, EMILE_DTYPE_BF16 = 2,\n"
    "                   EMILE_DTYPE_F64 = 3, EMILE_DTYPE_I32 = 4, EMILE_DTYPE_I64 = 5 } emile_dtype_t;\n"
    "    typedef struct emile_tensor {\n"
    "        void *data;            /* host memory (cpu) or device memory (cuda) */\n"
    "        const char *name;      /* \"q\", \"k\", \"v\", \"o\", ... */\n"
    "        int32_t dtype;         /* emile_dtype_t */\n"
    "        int32_t ndim;\n"
    "        int64_t shape[EMILE_MAX_DIMS];\n"
    "        int64_t strides[EMILE_MAX_DIMS];   /* in elements */\n"
    "    } emile_tensor_t;\n"
    "    typedef struct emile_param { const char *name; double value; } emile_param_t;\n"
    "    typedef struct emile_args {\n"
    "        int32_t abi_version;   /* EMILE_ABI_VERSION (1) */\n"
    "        int32_t n_tensors; emile_tensor_t *tensors;\n"
    "        int32_t n_params; const emile_param_t *params;\n"
    "        void *stream;          /* cudaStream_t on cuda, NULL on cpu */\n"
    "    } emile_args_t;\n"
    "    /* helpers (static inline in emile.h) */\n"
    "    double emile_param(const emile_args_t *a, const char *name, double dflt);\n"
    "    emile_tensor_t *emile_tensor(const emile_args_t *a, const char *name);\n"
    "    size_t emile_dtype_size(int32_t dtype);\n";

static const char rules_text[] =
    "Validation (a kernel that fails any of these is rejected and cannot win):\n"
    "- fresh random inputs for every check (never zeros), several input sets, "
    "including a ragged size that is not a multiple of any tile: handle every "
    "size, never assume divisibility;\n"
    "- outputs are poisoned with NaN before each run, so every element you do not "
    "write fails; NaN never passes;\n"
    "- relative error per dtype against the reference, within the task's "
    "tolerance;\n"
    "- a second run is compared with the first to catch races;\n"
    "- inputs are drawn again between validation and timing and the timed output "
    "is checked again: caching results, reading the reference's output or "
    "skipping work under the timer is caught;\n"
    "- each candidate runs sandboxed with time and memory limits: a crash, hang or "
    "exit() costs that candidate only.\n";

/* The task's language (lang.h) and backend; the default backend's
 * default language without a task. */
static const lang_t *task_lang(const agent_context_t *ctx, const backend_t **b)
{
    const task_t *t = ctx ? ctx->task : NULL;
    *b = t ? backend_find(t->backend) : NULL;
    if (!*b)
        *b = backend_default();
    const lang_t *lg = lang_for((*b)->name, t ? t->lang : NULL, NULL, 0);
    return lg ? lg : lang_for((*b)->name, NULL, NULL, 0);
}

char *llm_system_prompt(const agent_context_t *ctx)
{
    const backend_t *b;
    const lang_t *lg = task_lang(ctx, &b);
    return llm_strf(
        "You are the kernel engineer inside Emile, a harness that compiles, "
        "validates and profiles kernels. Your job: write a %s kernel for the "
        "operation described in the first message that is correct and as fast as "
        "possible on the given device, until it reaches the target share of the "
        "device's roofline or the iteration budget is spent.\n\n"
        "How to work:\n"
        "- Call profile_kernel with the COMPLETE source of one kernel. Each call is "
        "one iteration of a limited budget: the harness compiles it, validates it "
        "against the reference and profiles it, and answers with the profile report "
        "(JSON: time, GFLOP/s, share of the measured roofline, bound, diagnosis "
        "tags) or with the compiler's or the validator's message.\n"
        "- hardware_counters(source) profiles with hardware counters where the "
        "backend has them; it is not an iteration. get_reference() and get_best() "
        "return a kernel's source and report.\n"
        "- Read each report's diagnosis tags; change one main idea at a time and "
        "give the reason in one or two sentences (the \"reason\" argument).\n"
        "- Put code only in tool calls, never in prose; keep prose short.\n"
        "- The best valid kernel as measured by the harness wins; claims in prose "
        "count for nothing. When nothing is left worth trying, answer DONE without "
        "a tool call.\n\n"
        "The kernel ABI (include/emile.h, version 1):\n%s\n"
        "%s\n"
        "Backend %s (kernels run on %s). Language %s: %s\n\n"
        "A complete kernel in %s that meets the ABI (an elementwise example: follow its "
        "shape, not its op; it receives a rows x cols tensor x, writes y, and a "
        "parameter alpha):\n```%s\n%s```\n",
        lg->title, abi_text, rules_text, b->name, b->device_words, lg->title, lg->prompt_text, lg->title,
        lg->fence, lg->example);
}

static const char *dtype_str(int d)
{
    static const char *const names[] = {"f32", "f16", "bf16", "f64", "i32", "i64"};
    return d >= 0 && d < 6 ? names[d] : "?";
}

/* A growing string. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns)
            return;
        b->s = ns;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void add_json(sbuf_t *b, const char *title, const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (s)
        sb_add(b, "%s: %s\n", title, s);
    free(s);
}

static void add_op(sbuf_t *b, const task_t *t)
{
    const op_t *op = &t->op;
    sb_add(b, "Op: %s%s%s\n", op->name, op->description[0] ? " -- " : "",
           op->description);
    sb_add(b, "Tensors (the kernel receives them in this order):\n");
    for (int i = 0; i < op->n_tensors; i++) {
        const op_tensor_t *ot = &op->tensors[i];
        sb_add(b, "  %-8s %-6s %s [", ot->name, ot->is_output ? "output" : "input",
               dtype_str(ot->dtype >= 0 ? ot->dtype : t->dtype));
        for (int d = 0; d < ot->ndim; d++)
            sb_add(b, "%s%s", d ? ", " : "", ot->shape[d] ? ot->shape[d] : "?");
        sb_add(b, "]\n");
    }
    sb_add(b, "Parameters:");
    for (int i = 0; i < t->params.n; i++)
        sb_add(b, " %s=%.17g", t->params.names[i], t->params.values[i]);
    sb_add(b, "\n");
    if (op->flops_expr)
        sb_add(b, "FLOPs per call (the harness's model): %s\n", op->flops_expr);
    if (op->bytes_expr)
        sb_add(b, "Bytes per call (the harness's model): %s\n", op->bytes_expr);
    else
        sb_add(b, "Bytes per call: every tensor read or written once\n");
    if (t->tolerance > 0)
        sb_add(b, "Tolerance: %g relative\n", t->tolerance);
    else if (t->dtype >= 0 && t->dtype < 6 && op->tol[t->dtype] > 0)
        sb_add(b, "Tolerance: %g relative\n", op->tol[t->dtype]);
}

char *llm_task_prompt(const agent_context_t *ctx)
{
    sbuf_t b = {0};
    const task_t *t = ctx->task;
    const backend_t *be;
    const lang_t *lg = task_lang(ctx, &be);
    /* A PyTorch problem's reference is Python, not a kernel language
     * (Triton's tag is "py" too). */
    int py_ref = task_reference_is_python(t);
    const lang_t *ref_lg = py_ref ? NULL : lang_find(t->reference_lang[0] ? t->reference_lang : lg->name);
    sb_add(&b, "Task%s%s: backend %s, dtype %s, language %s.\n", t->name[0] ? " " : "", t->name,
           t->backend, dtype_str(t->dtype), lg->title);
    add_op(&b, t);
    if (ctx->task_json) {
        /* The canonical task, for the exact contract; the reference source
         * follows on its own and the agent's settings are ours. */
        json_t *tj = json_deep_copy(ctx->task_json);
        json_object_del(tj, "reference_source");
        json_object_del(tj, "reference");
        json_object_del(tj, "agent_config");
        /* The input seed is the worker's secret: a kernel that knew it
         * could precompute its outputs. */
        json_object_del(tj, "seed");
        json_object_del(tj, "reference_path");
        add_json(&b, "Task (canonical JSON)", tj);
        json_decref(tj);
    }
    if (ctx->device) {
        const json_t *ceil = json_object_get(ctx->device, "ceilings");
        const char *name = json_string_value(json_object_get(ctx->device, "name"));
        sb_add(&b, "Device: %s\n", name ? name : "(unnamed)");
        if (ceil)
            add_json(&b, "Measured ceilings (the roofline is built from these)", ceil);
        json_t *rest = json_deep_copy(ctx->device);
        json_object_del(rest, "ceilings");
        add_json(&b, "Device details", rest);
        json_decref(rest);
    }
    sb_add(&b, "Target: %.4g%% of the roofline. Budget: %d iterations "
           "(profile_kernel calls).\n", t->target_pct, t->max_iters);
    const json_t *ref = llm_history_find(ctx->history, 0);
    if (ref) {
        char *line = llm_iteration_line(ref);
        sb_add(&b, "Reference profile: %s\n", line ? line : "");
        free(line);
    }
    const char *src = ref ? json_string_value(json_object_get(ref, "source")) : NULL;
    if (!src)
        src = t->reference_source;
    if (src) {
        sb_add(&b, "%s (the oracle; it defines the semantics):\n"
               "```%s\n%s%s```\n", py_ref ? "Reference: the user's PyTorch problem" : "Reference kernel",
               py_ref ? "python" : ref_lg ? ref_lg->fence : lg->fence, src,
               src[0] && src[strlen(src) - 1] == '\n' ? "" : "\n");
        if (py_ref)
            sb_add(&b, "Its forward's inputs, then its parameters and buffers in state_dict order, are the "
                       "kernel's input tensors; write your kernels in %s.\n", lg->title);
        else if (ref_lg && ref_lg != lg)
            sb_add(&b, "The reference is %s; write your kernels in %s.\n", ref_lg->title, lg->title);
    }
    sb_add(&b, "Begin: call profile_kernel with your first kernel, in %s.\n", lg->title);
    return b.s;
}
