/*
 * llm_harness.c -- see llm_harness.h.
 */
#include "llm_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_SOURCE "/* REFERENCE_MARKER */\n#include \"emile.h\"\n" \
                   "EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)\n" \
                   "{ (void)a; return 0; }\n"

static int fake_evaluate(void *ctx, const char *source, const json_t *options,
                         json_t **reply, char *err, size_t errlen)
{
    llm_harness_t *h = ctx;
    (void)err;
    (void)errlen;
    h->evals++;
    json_decref(h->eval_opts);
    h->eval_opts = json_deep_copy(options);
    free(h->eval_source);
    h->eval_source = strdup(source);
    *reply = json_pack("{s:b, s:s, s:n, s:{s:{s:f}, s:f, s:f, s:s, s:{s:f, s:i}, "
                       "s:[{s:s, s:s}]}}",
                       "ok", 1, "status", "valid", "error",
                       "report", "time_ms", "median", 2.5, "gflops", 7.0,
                       "roofline_pct", 3.5, "bound", "memory",
                       "counters", "dram_bytes", 123456.0, "achieved_occupancy", 42,
                       "diagnosis", "tag", "memory_bound", "detail", "COUNTERS_MARKER");
    return 0;
}

static void fake_record(void *ctx, const char *role, const json_t *content,
                        long long tin, long long tout)
{
    llm_harness_t *h = ctx;
    json_array_append_new(h->messages,
                          json_pack("{s:i, s:s, s:O, s:I, s:I}", "seq",
                                    (int)json_array_size(h->messages) + 1, "role", role,
                                    "content", content, "tokens_in", (json_int_t)tin,
                                    "tokens_out", (json_int_t)tout));
}

void llm_harness_init(llm_harness_t *h)
{
    memset(h, 0, sizeof *h);
    task_init(&h->task);
    json_t *tj = json_pack("{s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:s, s:s, "
                           "s:s, s:f, s:i, s:s}",
                           "name", "tiny-attention", "op", "attention", "params", "batch",
                           1, "seq", 64, "q_heads", 2, "kv_heads", 1, "head_dim", 16,
                           "causal", 1, "dtype", "f32", "backend", "cpu",
                           "reference_source", REF_SOURCE, "target", 50.0, "max_iters", 10,
                           "agent", "anthropic");
    char err[256];
    if (task_from_json(&h->task, tj, ".", err, sizeof err) != 0) {
        fprintf(stderr, "llm_harness: task_from_json: %s\n", err);
        abort();
    }
    h->task_json = task_to_json(&h->task);
    json_decref(tj);
    h->device = json_pack("{s:s, s:s, s:{s:{s:f}, s:f, s:b}, s:i}", "backend", "cpu",
                          "name", "Test CPU (2 cores)", "ceilings", "peak_gflops", "f32",
                          200.0, "bandwidth_gbs", 20.0, "measured", 1, "cores", 2);
    h->history = json_array();
    json_array_append_new(h->history, json_pack(
        "{s:i, s:s, s:s, s:s, s:{}, s:s, s:n, s:{s:{s:f}, s:f, s:f, s:s, s:[]}, "
        "s:f, s:f, s:f, s:f, s:f}",
        "iter", 0, "label", "reference", "reason", "the oracle", "source", REF_SOURCE,
        "params", "status", "valid", "error", "report", "time_ms", "median", 10.0,
        "gflops", 1.0, "roofline_pct", 0.5, "bound", "compute", "diagnosis",
        "time_ms", 10.0, "gflops", 1.0, "roofline_pct", 0.5, "speedup", 1.0,
        "elapsed_s", 0.01));
    h->messages = json_array();
    h->tools.ctx = h;
    h->tools.evaluate = fake_evaluate;
    h->tools.record_message = fake_record;
}

void llm_harness_free(llm_harness_t *h)
{
    task_free(&h->task);
    json_decref(h->task_json);
    json_decref(h->device);
    json_decref(h->history);
    json_decref(h->messages);
    json_decref(h->eval_opts);
    free(h->eval_source);
    memset(h, 0, sizeof *h);
}

int llm_harness_propose(llm_harness_t *h, const agent_ops_t *ops, agent_t *a,
                        agent_proposal_t *p, char *err, size_t errlen)
{
    agent_context_t ctx = {
        .task = &h->task,
        .task_json = h->task_json,
        .device = h->device,
        .history = h->history,
        .messages = h->messages,
        .next_iter = (int)json_array_size(h->history),
        .best_iter = h->best_iter,
        .tools = &h->tools,
    };
    return ops->propose(a, &ctx, p, err, errlen);
}

void llm_harness_record(llm_harness_t *h, const agent_proposal_t *p,
                        const char *status, double pct, const char *error)
{
    int iter = (int)json_array_size(h->history);
    int valid = strcmp(status, "valid") == 0;
    json_t *it = json_pack("{s:i, s:s?, s:s?, s:s, s:O?, s:s, s:f}", "iter", iter,
                           "label", p->label, "reason", p->reason, "source", p->source,
                           "params", p->params, "status", status, "elapsed_s", 0.01);
    json_object_set_new(it, "error", error ? json_string(error) : json_null());
    if (valid) {
        json_object_set_new(it, "report", json_pack(
            "{s:{s:f}, s:f, s:f, s:s, s:[{s:s, s:s}]}", "time_ms", "median", 1.0,
            "gflops", pct * 2, "roofline_pct", pct, "bound", "compute", "diagnosis",
            "tag", "single_threaded", "detail", "parallelism 1.0"));
        json_object_set_new(it, "time_ms", json_real(1.0));
        json_object_set_new(it, "gflops", json_real(pct * 2));
        json_object_set_new(it, "roofline_pct", json_real(pct));
        json_object_set_new(it, "speedup", json_real(10.0));
        const json_t *best = NULL;
        size_t i;
        const json_t *o;
        json_array_foreach(h->history, i, o)
            if (json_integer_value(json_object_get(o, "iter")) == h->best_iter)
                best = o;
        if (!best || pct > json_number_value(json_object_get(best, "roofline_pct")))
            h->best_iter = iter;
    } else {
        json_object_set_new(it, "report", json_null());
        json_object_set_new(it, "compile_log", json_string("cc -O3 ... ok"));
    }
    json_array_append_new(h->history, it);
}

void llm_harness_proposal_free(agent_proposal_t *p)
{
    free(p->source);
    free(p->label);
    free(p->reason);
    json_decref(p->params);
    memset(p, 0, sizeof *p);
}

int llm_harness_count(const llm_harness_t *h, const char *role)
{
    int n = 0;
    size_t i;
    const json_t *m;
    json_array_foreach(h->messages, i, m)
        n += strcmp(json_string_value(json_object_get(m, "role")), role) == 0;
    return n;
}
