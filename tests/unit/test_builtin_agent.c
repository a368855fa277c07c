/*
 * test_builtin_agent.c -- the builtin agent (src/agent/builtin/) driven with
 * synthetic histories: iteration objects shaped as in src/store/store.h,
 * each with "params" (its rung and template parameters), "status",
 * "time_ms" and a report whose "diagnosis" holds the tags.
 *
 * Two ladders:
 *   - the real cpu attention ladder, kernels/attention/cpu/ladder.json
 *     (v1_blocked, v2_flash, v3_simd, v4_parallel): climbing, tuning by one
 *     step, no repeats, and a whole simulated run to AGENT_DONE;
 *   - a fixture, tests/data/ladder/kernels/attention/cpu/ladder.json, with
 *     rungs whose requirements (dtype, sm, head_dim) are unmet, params in
 *     both manifest forms and tuning hints.  The ladder's directory comes
 *     from emile_root(), which is fixed once per process, so the fixture
 *     group runs in a child process with EMILE_ROOT=tests/data/ladder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/agent.h"
#include "agent/builtin/ladder.h"
#include "emile_test.h"
#include "task/task.h"

/* ---- a small harness ---------------------------------------------------------- */

typedef struct {
    const agent_ops_t *ops;
    agent_t *agent;
    task_t task;
    json_t *task_json;
    json_t *device;
    json_t *history;
    agent_proposal_t prop;
    int have_prop;
} harness_t;

static harness_t H;

static void harness_open(const char *dtype, int head_dim, int cc)
{
    memset(&H, 0, sizeof H);
    H.ops = agent_find("builtin");
    assert_non_null(H.ops);
    assert_string_equal(H.ops->name, "builtin");
    char text[512], err[512];
    snprintf(text, sizeof text,
             "{\"op\": \"attention\", \"backend\": \"cpu\", \"dtype\": \"%s\", \"reference_source\": \"x\","
             " \"params\": {\"seq\": 512, \"q_heads\": 8, \"kv_heads\": 2, \"head_dim\": %d}}",
             dtype, head_dim);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    task_init(&H.task);
    assert_int_equal(task_from_json(&H.task, j, NULL, err, sizeof err), 0);
    assert_int_equal(task_finalize(&H.task, err, sizeof err), 0);
    json_decref(j);
    H.task_json = task_to_json(&H.task);
    H.device = json_pack("{s:s, s:s}", "backend", "cpu", "name", "test cpu");
    if (cc > 0)
        json_object_set_new(H.device, "compute_capability", json_integer(cc));
    H.history = json_array();
    if (H.ops->create(NULL, &H.task, &H.agent, err, sizeof err) != 0)
        fail_msg("builtin create: %s", err);
}

static int harness_close(void **state)
{
    (void)state;
    if (H.have_prop)
        agent_proposal_free(&H.prop);
    if (H.ops && H.agent)
        H.ops->destroy(H.agent);
    task_free(&H.task);
    json_decref(H.task_json);
    json_decref(H.device);
    json_decref(H.history);
    memset(&H, 0, sizeof H);
    return 0;
}

/* Append an iteration.  rung NULL: the reference.  params: a JSON object
 * text without the rung.  tags: comma-separated diagnosis tags or "". */
static void add_iter(const char *rung, const char *params, const char *status, double time_ms, const char *tags)
{
    int iter = (int)json_array_size(H.history);
    json_t *p = params ? json_loads(params, 0, NULL) : json_object();
    assert_non_null(p);
    if (rung)
        json_object_set_new(p, "rung", json_string(rung));
    json_t *diag = json_array();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", tags ? tags : "");
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char detail[128];
        snprintf(detail, sizeof detail, "detail of %s", t);
        json_array_append_new(diag, json_pack("{s:s, s:s}", "tag", t, "detail", detail));
    }
    json_t *it = json_pack("{s:i, s:s, s:s, s:o, s:s, s:o}", "iter", iter, "label", rung ? rung : "reference",
                           "reason", "", "params", p, "status", status, "error", json_null());
    if (strcmp(status, "valid") == 0) {
        json_object_set_new(it, "time_ms", json_real(time_ms));
        json_object_set_new(it, "gflops", json_real(1000.0 / time_ms));
        json_object_set_new(it, "report", json_pack("{s:f, s:f, s:o}", "gflops", 1000.0 / time_ms, "roofline_pct",
                                                   10.0 / time_ms, "diagnosis", diag));
    } else {
        json_object_set_new(it, "report", json_null());
        json_decref(diag);
    }
    json_array_append_new(H.history, it);
}

static int propose(void)
{
    if (H.have_prop)
        agent_proposal_free(&H.prop);
    H.have_prop = 0;
    agent_context_t ctx = {
        .task = &H.task,
        .task_json = H.task_json,
        .device = H.device,
        .history = H.history,
        .messages = NULL,
        .next_iter = (int)json_array_size(H.history),
        .best_iter = 0,
        .tools = NULL,
    };
    char err[512] = "";
    int rc = H.ops->propose(H.agent, &ctx, &H.prop, err, sizeof err);
    if (rc == AGENT_ERROR)
        fail_msg("propose: %s", err);
    H.have_prop = rc == AGENT_OK;
    if (rc == AGENT_OK) {
        assert_non_null(H.prop.source);
        assert_non_null(H.prop.label);
        assert_non_null(H.prop.reason);
        assert_true(json_is_object(H.prop.params));
    }
    return rc;
}

static const char *prop_rung(void)
{
    return json_string_value(json_object_get(H.prop.params, "rung"));
}

static long long prop_int(const char *k)
{
    const json_t *v = json_object_get(H.prop.params, k);
    if (!json_is_integer(v))
        fail_msg("proposal has no integer %s", k);
    return (long long)json_integer_value(v);
}

/* The proposal's params (without the rung) as text, to record it. */
static char *prop_params_text(void)
{
    json_t *p = json_deep_copy(H.prop.params);
    json_object_del(p, "rung");
    char *s = json_dumps(p, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(p);
    return s;
}

/* Record the proposal in the history as a valid, slower kernel. */
static void record_prop(double time_ms, const char *tags)
{
    char *p = prop_params_text();
    char rung[64];
    snprintf(rung, sizeof rung, "%s", prop_rung());
    add_iter(rung, p, "valid", time_ms, tags);
    free(p);
}

/* The signature (rung + params) of every (rung-bearing) history entry. */
static int history_has(const char *rung, const json_t *params)
{
    size_t i;
    json_t *it;
    json_array_foreach(H.history, i, it) {
        const json_t *p = json_object_get(it, "params");
        const char *r = json_string_value(json_object_get(p, "rung"));
        if (r && strcmp(r, rung) == 0 && json_equal((json_t *)p, (json_t *)params))
            return 1;
    }
    return 0;
}

/* The rung's manifest entry (normalised, from the loaded ladder). */
static json_t *manifest_rung(ladder_t *l, const char *id)
{
    size_t i;
    json_t *r;
    json_array_foreach(l->rungs, i, r) if (strcmp(json_string_value(json_object_get(r, "id")), id) == 0) return r;
    fail_msg("no rung %s in the ladder", id);
    return NULL;
}

/* Source = generated comment line, one "#define K V" line per param (in
 * the params' order), then the template file byte for byte. */
static void assert_source_layout(const char *ladder_dir)
{
    const char *src = H.prop.source;
    const char *nl = strchr(src, '\n');
    assert_non_null(nl);
    assert_true(strncmp(src, "/* Generated by emile's builtin agent from ", 43) == 0);
    const char *line = nl + 1;
    const char *k;
    json_t *v;
    int n = 0;
    json_object_foreach(H.prop.params, k, v) {
        if (strcmp(k, "rung") == 0)
            continue;
        char want[256];
        snprintf(want, sizeof want, "#define %s %lld\n", k, (long long)json_integer_value(v));
        if (strncmp(line, want, strlen(want)) != 0)
            fail_msg("define line %d is \"%.*s\", expected \"%s\"", n, (int)(strchr(line, '\n') - line), line, want);
        line += strlen(want);
        n++;
    }
    assert_true(n >= 1);
    /* The rest is the template itself. */
    json_t *r = NULL;
    ladder_t l;
    char err[256];
    assert_int_equal(ladder_load(&l, "attention", "cpu", err, sizeof err), 0);
    r = manifest_rung(&l, prop_rung());
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", ladder_dir, json_string_value(json_object_get(r, "file")));
    char *tpl = test_read_file(path);
    ladder_free(&l);
    assert_non_null(tpl);
    if (strcmp(line, tpl) != 0)
        fail_msg("the source after the #define lines is not the template %s", path);
    free(tpl);
}

/* Differences between the proposal and a rung's defaults: exactly one
 * parameter, moved by `steps` positions in its values list. */
static void assert_one_step_from(const char *base_params, const char *want_param, int want_steps)
{
    json_t *base = json_loads(base_params, 0, NULL);
    ladder_t l;
    char err[256];
    assert_int_equal(ladder_load(&l, "attention", "cpu", err, sizeof err), 0);
    const json_t *specs = json_object_get(manifest_rung(&l, prop_rung()), "params");
    int ndiff = 0;
    const char *k;
    json_t *v;
    json_object_foreach(base, k, v) {
        const json_t *now = json_object_get(H.prop.params, k);
        if (json_equal(v, (json_t *)now))
            continue;
        ndiff++;
        assert_string_equal(k, want_param);
        const json_t *vals = json_object_get(json_object_get(specs, k), "values");
        long from = -1, to = -1;
        for (size_t i = 0; i < json_array_size(vals); i++) {
            if (json_equal(json_array_get(vals, i), v))
                from = (long)i;
            if (json_equal(json_array_get(vals, i), (json_t *)now))
                to = (long)i;
        }
        assert_true(from >= 0 && to >= 0);
        if (to - from != want_steps)
            fail_msg("%s moved from index %ld to %ld, expected %+d", k, from, to, want_steps);
    }
    /* And no parameter was added. */
    assert_int_equal(json_object_size(H.prop.params), json_object_size(base) + 1);
    assert_int_equal(ndiff, 1);
    ladder_free(&l);
    json_decref(base);
}

/* ---- the real cpu attention ladder ------------------------------------------------ */

#define V1_DEF "{\"EMILE_BQ\": 32, \"EMILE_BK\": 64}"
#define V2_DEF "{\"EMILE_BQ\": 32, \"EMILE_BK\": 64}"
#define V3_DEF "{\"EMILE_BQ\": 64, \"EMILE_BK\": 64, \"EMILE_RM\": 4, \"EMILE_NR\": 4}"
#define V4_DEF                                                                                        \
    "{\"EMILE_BQ\": 32, \"EMILE_BK\": 64, \"EMILE_RM\": 4, \"EMILE_NR\": 4, \"EMILE_THREADS\": 0," \
    " \"EMILE_SCHEDULE\": 2, \"EMILE_GQA_PACK\": 1}"

static void test_real_climb_from_reference(void **state)
{
    (void)state;
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "single_threaded,scalar_code");
    assert_int_equal(propose(), AGENT_OK);
    /* v1 and v2 address memory_bound only; v3_simd is the lowest rung that
     * addresses one of the tags (scalar_code). */
    assert_string_equal(prop_rung(), "v3_simd");
    assert_contains(H.prop.reason, "scalar_code");
    assert_contains(H.prop.reason, "detail of scalar_code");
    assert_contains(H.prop.reason, "v3_simd");
    assert_contains(H.prop.reason, "100.000 ms");
    assert_true(strncmp(H.prop.label, "v3_simd", 7) == 0);
    assert_contains(H.prop.label, "BQ=64");
    /* The rung's defaults; no value for the "native" vector width. */
    assert_int_equal(prop_int("EMILE_BQ"), 64);
    assert_int_equal(prop_int("EMILE_BK"), 64);
    assert_int_equal(prop_int("EMILE_RM"), 4);
    assert_int_equal(prop_int("EMILE_NR"), 4);
    assert_null(json_object_get(H.prop.params, "EMILE_VEC_BYTES"));
    assert_int_equal(json_object_size(H.prop.params), 5);
    harness_close(NULL);

    /* Other tags, other rungs. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "memory_bound");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "v1_blocked");
    assert_contains(H.prop.reason, "memory_bound");
    harness_close(NULL);

    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "single_threaded");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "v4_parallel");
    assert_contains(H.prop.reason, "single_threaded");
    harness_close(NULL);

    /* No tag any rung addresses: the next rung up, said so. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "noisy_timing");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "v1_blocked");
    assert_contains(H.prop.reason, "Climbing to the next rung");
    harness_close(NULL);
}

/* Record the proposal as in flight: "pending", as the cook shows a
 * batch's earlier proposals to the agent. */
static void pend_prop(void)
{
    int iter = (int)json_array_size(H.history);
    json_array_append_new(H.history, json_pack("{s:i, s:s, s:s, s:O}", "iter", iter, "status", "pending",
                                               "label", H.prop.label, "params", H.prop.params));
}

/* A batch climbs first: v3_simd (the rung the tags ask for), then the rung
 * above it, v4_parallel; no rung is left above, so then v4_parallel's
 * parameter sweep (one step of one parameter each, never a candidate in
 * flight); the sweep done, the policy's next climb from the best measured
 * point. */
static void test_real_batch_sweeps_a_new_rung(void **state)
{
    (void)state;
    harness_open("f32", 64, 0);
    assert_true(H.ops->batch);
    add_iter(NULL, NULL, "valid", 100.0, "single_threaded,scalar_code");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "v3_simd");
    pend_prop();
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "v4_parallel");
    json_t *first = json_deep_copy(H.prop.params);
    pend_prop();
    json_t *seen = json_array();
    json_array_append(seen, first);
    int sweep = 0;
    for (;;) {
        assert_int_equal(propose(), AGENT_OK);
        if (strcmp(prop_rung(), "v4_parallel") != 0)
            break;
        sweep++;
        assert_contains(H.prop.reason, "parameter sweep");
        assert_contains(H.prop.reason, "proposed in this batch");
        /* One parameter one step from the rung's defaults. */
        int differ = 0;
        const char *k;
        json_t *v;
        json_object_foreach(first, k, v)
            differ += !json_equal(v, json_object_get(H.prop.params, k));
        assert_int_equal(differ, 1);
        size_t i;
        json_t *x;
        json_array_foreach(seen, i, x)
            assert_false(json_equal(x, H.prop.params));   /* never one in flight */
        json_array_append(seen, H.prop.params);
        pend_prop();
        assert_true(sweep < 40);
    }
    assert_true(sweep >= 8);                             /* its eight parameters, each up or down */
    assert_string_equal(prop_rung(), "v1_blocked");      /* the sweep done: the next climb from the reference */
    json_decref(first);
    json_decref(seen);
}

/* A tuning batch: the best point's neighbours, none twice. */
static void test_real_batch_of_tuning_steps(void **state)
{
    (void)state;
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "single_threaded,scalar_code");
    add_iter("v1_blocked", V1_DEF, "valid", 50, "");
    add_iter("v2_flash", V2_DEF, "valid", 40, "");
    add_iter("v3_simd", V3_DEF, "valid", 10, "single_threaded");
    add_iter("v4_parallel", V4_DEF, "valid", 3, "compute_bound");
    json_t *seen = json_array();
    for (int k = 0; k < 4; k++) {
        assert_int_equal(propose(), AGENT_OK);
        assert_string_equal(prop_rung(), "v4_parallel");
        assert_contains(H.prop.reason, "Tuning v4_parallel");
        size_t i;
        json_t *x;
        json_array_foreach(seen, i, x)
            assert_false(json_equal(x, H.prop.params));
        json_array_append(seen, H.prop.params);
        pend_prop();
    }
    json_decref(seen);
}

static void test_real_source_starts_with_defines(void **state)
{
    (void)state;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/kernels/attention/cpu", getenv("EMILE_ROOT"));
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "single_threaded,scalar_code");
    assert_int_equal(propose(), AGENT_OK);
    assert_source_layout(dir);
    /* A tuned proposal too (the changed value is in its #define). */
    add_iter("v1_blocked", V1_DEF, "valid", 50, "");
    add_iter("v2_flash", V2_DEF, "valid", 40, "");
    add_iter("v3_simd", V3_DEF, "valid", 10, "single_threaded");
    add_iter("v4_parallel", V4_DEF, "valid", 3, "compute_bound");
    assert_int_equal(propose(), AGENT_OK);
    assert_source_layout(dir);
    assert_contains(H.prop.source, "#define EMILE_BK 128\n");
    harness_close(NULL);
}

static void test_real_climb_from_best_rung(void **state)
{
    (void)state;
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "single_threaded,scalar_code");
    add_iter("v3_simd", V3_DEF, "valid", 12.0, "single_threaded");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "v4_parallel");
    assert_contains(H.prop.reason, "single_threaded");
    assert_contains(H.prop.reason, "12.000 ms");          /* it describes the best */
    harness_close(NULL);

    /* A rung that failed counts as tried: not proposed again. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    add_iter("v3_simd", V3_DEF, "crashed", 0, "");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_not_equal(prop_rung(), "v3_simd");
    harness_close(NULL);
}

static void test_real_tune_when_all_rungs_tried(void **state)
{
    (void)state;
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "single_threaded,scalar_code");
    add_iter("v1_blocked", V1_DEF, "valid", 50, "single_threaded,scalar_code");
    add_iter("v2_flash", V2_DEF, "valid", 40, "single_threaded,scalar_code");
    add_iter("v3_simd", V3_DEF, "valid", 10, "single_threaded");
    add_iter("v4_parallel", V4_DEF, "valid", 3, "compute_bound");
    assert_int_equal(propose(), AGENT_OK);
    /* The best rung, one parameter one step: compute_bound -> "raise
     * EMILE_BK" in the manifest: 64 -> 128. */
    assert_string_equal(prop_rung(), "v4_parallel");
    assert_one_step_from(V4_DEF, "EMILE_BK", +1);
    assert_contains(H.prop.reason, "EMILE_BK 64 -> 128");
    assert_contains(H.prop.reason, "compute_bound");
    assert_contains(H.prop.label, "BK=128");

    /* That was slower: the other direction next. */
    record_prop(4.0, "compute_bound");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "v4_parallel");
    assert_one_step_from(V4_DEF, "EMILE_BK", -1);
    harness_close(NULL);

    /* Without a tag: a coordinate step, said so. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "");
    add_iter("v1_blocked", V1_DEF, "valid", 50, "");
    add_iter("v2_flash", V2_DEF, "valid", 40, "");
    add_iter("v3_simd", V3_DEF, "valid", 10, "");
    add_iter("v4_parallel", V4_DEF, "valid", 3, "");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "v4_parallel");
    assert_contains(H.prop.reason, "coordinate search");
    assert_one_step_from(V4_DEF, "EMILE_BQ", +1);
    harness_close(NULL);

    /* A better point moves the search: around the new best. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "");
    add_iter("v1_blocked", V1_DEF, "valid", 50, "");
    add_iter("v2_flash", V2_DEF, "valid", 40, "");
    add_iter("v3_simd", V3_DEF, "valid", 10, "");
    add_iter("v4_parallel", V4_DEF, "valid", 3, "");
    const char *better = "{\"EMILE_BQ\": 64, \"EMILE_BK\": 64, \"EMILE_RM\": 4, \"EMILE_NR\": 4, \"EMILE_THREADS\": 0,"
                         " \"EMILE_SCHEDULE\": 2, \"EMILE_GQA_PACK\": 1}";
    add_iter("v4_parallel", better, "valid", 2.5, "");
    assert_int_equal(propose(), AGENT_OK);
    /* From BQ=64: up to 128 (BQ 32 is tried: it was the old best). */
    assert_one_step_from(better, "EMILE_BQ", +1);
    harness_close(NULL);
}

/* A whole run: every proposal recorded as valid but slower than the best,
 * until the agent is done.  It must never repeat a (rung, params), each
 * tuning step must move one parameter by one position around its rung's
 * best point, and it must stop after exactly the neighbours of every valid
 * rung's best point: v1 4, v2 4, v3 8 (the native width has no manifest
 * default), v4 11 (threads 0, schedule 2 and pack 1 are at an end). */
static void test_real_run_to_done(void **state)
{
    (void)state;
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "single_threaded,scalar_code");
    add_iter("v1_blocked", V1_DEF, "valid", 50, "");
    add_iter("v2_flash", V2_DEF, "valid", 40, "");
    add_iter("v3_simd", V3_DEF, "valid", 10, "");
    add_iter("v4_parallel", V4_DEF, "valid", 3, "compute_bound");
    int per_rung[4] = {0}, n = 0, rc;
    const char *ids[4] = {"v1_blocked", "v2_flash", "v3_simd", "v4_parallel"};
    const char *defs[4] = {V1_DEF, V2_DEF, V3_DEF, V4_DEF};
    while ((rc = propose()) == AGENT_OK && n < 200) {
        if (history_has(prop_rung(), H.prop.params)) {
            char *s = json_dumps(H.prop.params, JSON_SORT_KEYS | JSON_COMPACT);
            fail_msg("proposal %d repeats a tried point: %s", n, s);
        }
        int r = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(prop_rung(), ids[i]) == 0)
                r = i;
        assert_true(r >= 0);
        /* One parameter one step from the rung's defaults (its best point
         * throughout: everything new is slower). */
        json_t *base = json_loads(defs[r], 0, NULL);
        int ndiff = 0;
        const char *k;
        json_t *v;
        json_object_foreach(base, k, v) ndiff += !json_equal(v, json_object_get(H.prop.params, k));
        json_decref(base);
        assert_int_equal(ndiff, 1);
        per_rung[r]++;
        n++;
        record_prop(200.0 + n, "");
    }
    assert_int_equal(rc, AGENT_DONE);
    assert_int_equal(per_rung[3], 11);
    assert_int_equal(per_rung[2], 8);
    assert_int_equal(per_rung[1], 4);
    assert_int_equal(per_rung[0], 4);
    assert_int_equal(n, 27);
    /* Done stays done. */
    assert_int_equal(propose(), AGENT_DONE);
    harness_close(NULL);
}

static void test_real_errors(void **state)
{
    (void)state;
    harness_open("f32", 64, 0);
    /* No valid kernel at all. */
    add_iter(NULL, NULL, "invalid", 0, "");
    agent_context_t ctx = {.task = &H.task, .task_json = H.task_json, .device = H.device, .history = H.history};
    char err[256] = "";
    agent_proposal_t p;
    assert_int_equal(H.ops->propose(H.agent, &ctx, &p, err, sizeof err), AGENT_ERROR);
    assert_contains(err, "no valid kernel");
    harness_close(NULL);

    /* No ladder for a user-defined op: the agent starts (the reference is
     * measured) and its first proposal says why it stops, and what would
     * go on. */
    task_t t;
    task_init(&t);
    snprintf(t.op.name, sizeof t.op.name, "conv9d");
    snprintf(t.backend, sizeof t.backend, "cpu");
    agent_t *a = NULL;
    const agent_ops_t *b = agent_find("builtin");
    char why[4096] = "";
    assert_int_equal(b->create(NULL, &t, &a, why, sizeof why), 0);
    assert_non_null(a);
    assert_string_equal(why, "");
    json_t *ref_only = json_pack("[{sisssf}]", "iter", 0, "status", "valid", "time_ms", 1.0);
    agent_context_t c0 = {.task = &t, .history = ref_only};
    assert_int_equal(b->propose(a, &c0, &p, why, sizeof why), AGENT_DONE);
    assert_contains(why, "no ladder for op conv9d on cpu");
    assert_contains(why, "--agent anthropic");
    json_decref(ref_only);
    b->destroy(a);
    /* A builtin op without a ladder for the task's language is said
     * before any work (softmax has none in Triton). */
    task_t ts;
    task_init(&ts);
    snprintf(ts.op.name, sizeof ts.op.name, "softmax");
    ts.op.builtin = 1;
    snprintf(ts.backend, sizeof ts.backend, "cuda");
    snprintf(ts.lang, sizeof ts.lang, "triton");
    a = NULL;
    why[0] = '\0';
    assert_int_equal(b->create(NULL, &ts, &a, why, sizeof why), -1);
    assert_null(a);
    assert_contains(why, "no ladder for op softmax");
    assert_null(agent_find("no-such-agent"));
}

/* ---- the fixture ladder (in a child process) ----------------------------------------- */

static void test_fixture_unmet_requires_skipped(void **state)
{
    (void)state;
    /* f32, head_dim 64, a device without a compute capability: t2 (bf16
     * only) and t3 (sm_90) are skipped, and the reason says why. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "t4_simd");
    assert_contains(H.prop.reason, "skipped t2_bf16 (does not support dtype f32)");
    assert_contains(H.prop.reason, "skipped t3_hopper (needs sm_90, the device is sm_0)");
    assert_contains(H.prop.reason, "Expected: 5x");      /* the object form of expected_gain */
    /* Array-form params; the "native" default is dropped. */
    assert_int_equal(prop_int("EMILE_B"), 1);
    assert_int_equal(prop_int("EMILE_C"), 16);
    assert_null(json_object_get(H.prop.params, "EMILE_W"));
    harness_close(NULL);

    /* bf16: t2 can run and is the lowest addressing scalar_code. */
    harness_open("bf16", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "t2_bf16");
    harness_close(NULL);

    /* An sm_90 device: t3. */
    harness_open("f32", 64, 90);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "t3_hopper");
    assert_null(strstr(H.prop.reason, "skipped t3_hopper"));
    harness_close(NULL);

    /* head_dim: t5 needs 128. */
    harness_open("f32", 128, 0);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    add_iter("t4_simd", "{\"EMILE_B\": 1, \"EMILE_C\": 16}", "valid", 10, "compute_bound");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "t5_d128");
    harness_close(NULL);
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    add_iter("t4_simd", "{\"EMILE_B\": 1, \"EMILE_C\": 16}", "valid", 10, "compute_bound");
    assert_int_equal(propose(), AGENT_OK);
    /* t5 unmet, nothing left above t4: tuning instead. */
    assert_string_equal(prop_rung(), "t4_simd");
    harness_close(NULL);
    /* Only unmet rungs above the reference and nothing addressing: pass 2
     * takes the next runnable rung (t1), never an unmet one. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "t1_basic");
    record_prop(90, "");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "t4_simd");
    harness_close(NULL);
}

static void test_fixture_tuning_hints(void **state)
{
    (void)state;
    /* "EMILE_B -> 3" for compute_bound: a jump to the named value. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    add_iter("t4_simd", "{\"EMILE_B\": 1, \"EMILE_C\": 16}", "valid", 10, "compute_bound");
    assert_int_equal(propose(), AGENT_OK);
    assert_string_equal(prop_rung(), "t4_simd");
    assert_int_equal(prop_int("EMILE_B"), 3);
    assert_int_equal(prop_int("EMILE_C"), 16);
    assert_contains(H.prop.reason, "because compute_bound");
    harness_close(NULL);

    /* "lower EMILE_C" for load_imbalance: down first. */
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    add_iter("t4_simd", "{\"EMILE_B\": 1, \"EMILE_C\": 16}", "valid", 10, "load_imbalance");
    assert_int_equal(propose(), AGENT_OK);
    assert_int_equal(prop_int("EMILE_C"), 8);
    assert_int_equal(prop_int("EMILE_B"), 1);
    record_prop(11, "load_imbalance");
    assert_int_equal(propose(), AGENT_OK);
    assert_int_equal(prop_int("EMILE_C"), 32);         /* then up */
    harness_close(NULL);
}

static void test_fixture_run_to_done(void **state)
{
    (void)state;
    harness_open("f32", 64, 0);
    add_iter(NULL, NULL, "valid", 100.0, "scalar_code");
    add_iter("t1_basic", "{\"EMILE_A\": 2}", "valid", 50, "");
    add_iter("t4_simd", "{\"EMILE_B\": 1, \"EMILE_C\": 16}", "valid", 10, "");
    /* t4: B 1 -> 2 (1 is the low end), C 16 -> 32 and -> 8; t1: A -> 4, -> 1. */
    const char *want[][2] = {{"t4_simd", "{\"EMILE_B\":2,\"EMILE_C\":16}"},
                             {"t4_simd", "{\"EMILE_B\":1,\"EMILE_C\":32}"},
                             {"t4_simd", "{\"EMILE_B\":1,\"EMILE_C\":8}"},
                             {"t1_basic", "{\"EMILE_A\":4}"},
                             {"t1_basic", "{\"EMILE_A\":1}"}};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(propose(), AGENT_OK);
        char *p = prop_params_text();
        if (strcmp(prop_rung(), want[i][0]) != 0 || strcmp(p, want[i][1]) != 0)
            fail_msg("proposal %d: %s %s, expected %s %s", i, prop_rung(), p, want[i][0], want[i][1]);
        free(p);
        record_prop(300 + i, "");
    }
    assert_int_equal(propose(), AGENT_DONE);
    harness_close(NULL);
}

/* ladder_render with a long parameter value: the generated source must be
 * the define line plus the template, whatever the length (the output
 * buffer is sized template + 4096).  Run in a child so that a heap
 * overflow (an ASan abort) fails this test only. */
static void test_fixture_render_long_value(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ladder_t l;
        char err[256];
        if (ladder_load(&l, "attention", "cpu", err, sizeof err) != 0)
            _exit(10);
        json_t *params = json_object();
        char *big = malloc(6001);
        memset(big, 'x', 6000);
        big[6000] = 0;
        json_object_set_new(params, "EMILE_NAME", json_string(big));
        json_object_set_new(params, "EMILE_A", json_integer(4));
        char *src = ladder_render(&l, json_array_get(l.rungs, 0), params, err, sizeof err);
        int ok = src && strstr(src, big) && strstr(src, "#define EMILE_A 4\n") &&
                 strstr(src, "int emile_fixture_t1 = EMILE_A;");
        _exit(ok ? 0 : 11);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st))
        fail_msg("ladder_render with a 6000-byte parameter value crashed (signal %d)", WTERMSIG(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("ladder_render with a 6000-byte parameter value failed (exit %d: 1 is an ASan report, 11 a "
                 "truncated source)",
                 WEXITSTATUS(st));
}

/* ---- main ---------------------------------------------------------------------------- */

int main(void)
{
    char root[PATH_MAX], fixture[PATH_MAX];
    if (!realpath(".", root) || !realpath("tests/data/ladder", fixture)) {
        fprintf(stderr, "run from the repository root (tests/data/ladder is missing)\n");
        return 1;
    }
    const struct CMUnitTest fixture_tests[] = {
        cmocka_unit_test_teardown(test_fixture_unmet_requires_skipped, harness_close),
        cmocka_unit_test_teardown(test_fixture_tuning_hints, harness_close),
        cmocka_unit_test_teardown(test_fixture_run_to_done, harness_close),
        cmocka_unit_test(test_fixture_render_long_value),
    };
    const struct CMUnitTest real_tests[] = {
        cmocka_unit_test_teardown(test_real_climb_from_reference, harness_close),
        cmocka_unit_test_teardown(test_real_source_starts_with_defines, harness_close),
        cmocka_unit_test_teardown(test_real_climb_from_best_rung, harness_close),
        cmocka_unit_test_teardown(test_real_tune_when_all_rungs_tried, harness_close),
        cmocka_unit_test_teardown(test_real_run_to_done, harness_close),
        cmocka_unit_test_teardown(test_real_batch_sweeps_a_new_rung, harness_close),
        cmocka_unit_test_teardown(test_real_batch_of_tuning_steps, harness_close),
        cmocka_unit_test_teardown(test_real_errors, harness_close),
    };
    /* The fixture first, in a child: emile_root() is fixed per process. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        setenv("EMILE_ROOT", fixture, 1);
        int rc = cmocka_run_group_tests_name("builtin agent, fixture ladder", fixture_tests, NULL, NULL);
        exit(rc ? 1 : 0);     /* exit, not _exit: LeakSanitizer checks the child too */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int child_failed = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    setenv("EMILE_ROOT", root, 1);
    int rc = cmocka_run_group_tests_name("builtin agent, kernels/attention/cpu/ladder.json", real_tests, NULL, NULL);
    return rc || child_failed ? 1 : 0;
}
