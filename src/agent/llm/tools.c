/*
 * tools.c -- the tools an LLM gets, backed by the worker exactly as the
 * builtin agent uses it:
 *   profile_kernel(source)     compile, validate, profile: an iteration.  The
 *                              call becomes the agent's proposal; the cook
 *                              loop evaluates and records it, and the next
 *                              propose() answers the call from the history.
 *   hardware_counters(source)  tools->evaluate(..., {"counters": true}); not
 *                              an iteration.
 *   get_reference()            history[0]: the reference's source and report.
 *   get_best()                 the best valid iteration so far.
 * Answers are compact JSON text; a failed kernel is an is_error answer so
 * the model cannot mistake it for success.
 */
#include "llm.h"

#include "backend/backend.h"
#include "backend/lang.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAIL_CHARS 4000

static json_t *schema_source(const char *what)
{
    return json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}}, s:[s]}",
                     "type", "object", "properties",
                     "source", "type", "string", "description", what,
                     "label", "type", "string", "description",
                     "optional: a short name for this version, e.g. \"tiled 64x64 omp\"",
                     "reason", "type", "string", "description",
                     "optional: one or two sentences on what changed and why",
                     "required", "source");
}

json_t *llm_tool_defs(const agent_context_t *ctx)
{
    const char *be = ctx && ctx->task ? ctx->task->backend : backend_default()->name;
    const lang_t *lg = lang_for(be, ctx && ctx->task ? ctx->task->lang : NULL, NULL, 0);
    if (!lg)
        lg = lang_for(backend_default()->name, NULL, NULL, 0);
    char profile[600], src[400], counters[600];
    snprintf(src, sizeof src, "the complete %s source file of the kernel (%s)", lg->title, lg->source_words);
    snprintf(profile, sizeof profile,
             "Compile, validate and profile one kernel on the %s device. This is "
             "one iteration of the budget. Returns the profile report as JSON "
             "(time, GFLOP/s, share of the roofline, bound, diagnosis tags), or "
             "the compiler's or the validator's message.", be);
    snprintf(counters, sizeof counters,
             "Compile, validate and profile a kernel with hardware counters (DRAM "
             "bytes, achieved occupancy, pipe throughput, stall reasons) where the "
             "%s backend has them. Does not count as an iteration and is not "
             "recorded as a candidate: use it to understand a bottleneck.", be);
    json_t *empty = json_pack("{s:s, s:{}}", "type", "object", "properties");
    json_t *defs = json_pack(
        "[{s:s, s:s, s:o}, {s:s, s:s, s:o}, {s:s, s:s, s:O}, {s:s, s:s, s:O}]",
        "name", LLM_TOOL_PROFILE, "description", profile, "parameters",
        schema_source(src),
        "name", LLM_TOOL_COUNTERS, "description", counters, "parameters",
        schema_source(src),
        "name", LLM_TOOL_REF, "description",
        "The reference kernel (the correctness oracle and the performance floor): "
        "its source and its profile report.", "parameters", empty,
        "name", LLM_TOOL_BEST, "description",
        "The best valid kernel so far (fastest that passed validation): its "
        "source and its profile report.", "parameters", empty);
    json_decref(empty);
    return defs;
}

int llm_tool_known(const char *name)
{
    return name && (strcmp(name, LLM_TOOL_PROFILE) == 0 ||
                    strcmp(name, LLM_TOOL_COUNTERS) == 0 ||
                    strcmp(name, LLM_TOOL_REF) == 0 || strcmp(name, LLM_TOOL_BEST) == 0);
}

const json_t *llm_history_find(const json_t *history, int iter)
{
    size_t i;
    const json_t *it;
    json_array_foreach(history, i, it) {
        const json_t *n = json_object_get(it, "iter");
        if (json_is_integer(n) && json_integer_value(n) == iter)
            return it;
    }
    return NULL;
}

static json_t *answer(const char *id, const char *name, json_t *content_obj,
                      int is_error)
{
    char *s = json_dumps(content_obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(content_obj);
    json_t *a = json_pack("{s:s, s:s, s:s, s:b}", "id", id ? id : "", "name",
                          name ? name : "", "content", s ? s : "{}", "is_error",
                          is_error);
    free(s);
    return a;
}

json_t *llm_tool_error(const char *id, const char *name, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:s, s:s, s:s, s:b}", "id", id ? id : "", "name",
                     name ? name : "", "content", msg, "is_error", 1);
}

/* The tail of a long log: the last lines carry the first error less often
 * than the first, but the end says how the build finished; keep both ends. */
static json_t *log_excerpt(const char *log)
{
    if (!log)
        return json_null();
    size_t n = strlen(log);
    if (n <= LOG_TAIL_CHARS)
        return json_string(log);
    char *s = llm_strf("%.*s\n... [%zu characters cut] ...\n%s", LOG_TAIL_CHARS / 2,
                       log, n - LOG_TAIL_CHARS, log + n - LOG_TAIL_CHARS / 2);
    json_t *j = json_string(s ? s : "");
    free(s);
    return j;
}

/* Where the run stands: best so far, the target, iterations used. */
static json_t *progress(const agent_context_t *ctx)
{
    json_t *p = json_object();
    const json_t *best = llm_history_find(ctx->history, ctx->best_iter);
    json_object_set_new(p, "best_iteration", json_integer(ctx->best_iter));
    if (best && json_is_number(json_object_get(best, "roofline_pct")))
        json_object_set(p, "best_roofline_pct", json_object_get(best, "roofline_pct"));
    if (ctx->task) {
        json_object_set_new(p, "target_roofline_pct", json_real(ctx->task->target_pct));
        json_object_set_new(p, "max_iterations", json_integer(ctx->task->max_iters));
    }
    json_object_set_new(p, "iterations_used",
                        json_integer(ctx->next_iter > 0 ? ctx->next_iter - 1 : 0));
    return p;
}

json_t *llm_tool_iteration_answer(const agent_context_t *ctx, const char *id,
                                  const json_t *it)
{
    const char *status = json_string_value(json_object_get(it, "status"));
    int valid = status && strcmp(status, "valid") == 0;
    json_t *o = json_object();
    char *line = llm_iteration_line(it);
    json_object_set(o, "iteration", json_object_get(it, "iter"));
    json_object_set_new(o, "status", json_string(status ? status : "unknown"));
    json_object_set_new(o, "summary", json_string(line ? line : ""));
    free(line);
    const json_t *e = json_object_get(it, "error");
    if (json_is_string(e))
        json_object_set(o, "error", (json_t *)e);
    const char *log = json_string_value(json_object_get(it, "compile_log"));
    if (!valid && log && *log)
        json_object_set_new(o, "compile_log", log_excerpt(log));
    const json_t *rep = json_object_get(it, "report");
    if (json_is_object(rep))
        json_object_set(o, "report", (json_t *)rep);
    json_object_set_new(o, "progress", progress(ctx));
    return answer(id, LLM_TOOL_PROFILE, o, !valid);
}

/* Source and report of a history entry, for get_reference / get_best. */
static json_t *kernel_answer(const char *id, const char *name, const json_t *it,
                             const char *note)
{
    json_t *o = json_object();
    char *line = llm_iteration_line(it);
    if (note)
        json_object_set_new(o, "note", json_string(note));
    json_object_set(o, "iteration", json_object_get(it, "iter"));
    json_object_set_new(o, "summary", json_string(line ? line : ""));
    free(line);
    json_object_set(o, "source", json_object_get(it, "source"));
    const json_t *rep = json_object_get(it, "report");
    if (json_is_object(rep))
        json_object_set(o, "report", (json_t *)rep);
    return answer(id, name, o, 0);
}

static json_t *run_counters(const agent_context_t *ctx, const llm_call_t *c,
                            const char *source)
{
    if (!ctx->tools || !ctx->tools->evaluate)
        return llm_tool_error(c->id, c->name, "hardware_counters is not available "
                              "in this run");
    json_t *opts = json_pack("{s:b, s:s}", "counters", 1, "label", "hardware_counters");
    json_t *reply = NULL;
    char err[512] = "";
    int rc = ctx->tools->evaluate(ctx->tools->ctx, source, opts, &reply, err, sizeof err);
    json_decref(opts);
    if (rc != 0) {
        json_decref(reply);
        return llm_tool_error(c->id, c->name, "the evaluation failed: %s",
                              err[0] ? err : "unknown error");
    }
    const char *status = json_string_value(json_object_get(reply, "status"));
    int valid = status && strcmp(status, "valid") == 0;
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(status ? status : "unknown"));
    const json_t *e = json_object_get(reply, "error");
    if (json_is_string(e))
        json_object_set(o, "error", (json_t *)e);
    const json_t *rep = json_object_get(reply, "report");
    if (json_is_object(rep)) {
        char *line = llm_report_line(rep);
        json_object_set_new(o, "summary", json_string(line ? line : ""));
        free(line);
        const json_t *cnt = json_object_get(rep, "counters");
        if (!cnt || json_is_null(cnt))
            json_object_set_new(o, "note", json_string(
                "no hardware counters on this backend/device; the report below "
                "is the ordinary profile"));
        json_object_set(o, "report", (json_t *)rep);
    }
    const json_t *comp = json_object_get(reply, "compile");
    const char *log = json_string_value(json_object_get(comp, "log"));
    if (!valid && log && *log)
        json_object_set_new(o, "compile_log", log_excerpt(log));
    const json_t *val = json_object_get(reply, "validation");
    if (!valid && json_is_string(json_object_get(val, "message")))
        json_object_set(o, "validation", json_object_get(val, "message"));
    json_decref(reply);
    return answer(c->id, c->name, o, !valid);
}

json_t *llm_tool_answer(const agent_context_t *ctx, const llm_call_t *c)
{
    if (!llm_tool_known(c->name))
        return llm_tool_error(c->id, c->name,
                              "unknown tool \"%s\"; the tools are profile_kernel, "
                              "hardware_counters, get_reference and get_best",
                              c->name);
    if (c->args_error)
        return llm_tool_error(c->id, c->name,
                              "the arguments of %s could not be used: %s. Nothing "
                              "was run. Send a JSON object such as "
                              "{\"source\": \"<the whole kernel>\"}.",
                              c->name, c->args_error);
    if (strcmp(c->name, LLM_TOOL_REF) == 0) {
        const json_t *ref = llm_history_find(ctx->history, 0);
        if (!ref)
            ref = json_array_get(ctx->history, 0);
        if (ref)
            return kernel_answer(c->id, c->name, ref, NULL);
        json_t *o = json_pack("{s:s?}", "source",
                              ctx->task ? ctx->task->reference_source : NULL);
        return answer(c->id, c->name, o, 0);
    }
    if (strcmp(c->name, LLM_TOOL_BEST) == 0) {
        const json_t *best = llm_history_find(ctx->history, ctx->best_iter);
        if (best && ctx->best_iter > 0)
            return kernel_answer(c->id, c->name, best, NULL);
        const json_t *ref = llm_history_find(ctx->history, 0);
        if (!ref)
            return llm_tool_error(c->id, c->name, "no kernel has been profiled yet");
        return kernel_answer(c->id, c->name, ref,
                             "no candidate is valid and faster yet: the best is "
                             "still the reference (iteration 0)");
    }
    const char *src = json_string_value(json_object_get(c->args, "source"));
    if (!src || !*src)
        return llm_tool_error(c->id, c->name, "%s needs \"source\": the complete "
                              "kernel as one string. Nothing was run.", c->name);
    if (strcmp(c->name, LLM_TOOL_COUNTERS) == 0)
        return run_counters(ctx, c, src);
    /* profile_kernel is answered from the history (conv.c); reaching here
     * means its iteration is missing. */
    return llm_tool_error(c->id, c->name, "this kernel was not evaluated (the run "
                          "stopped before it); send it again if you still want it");
}
