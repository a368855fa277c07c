/*
 * test_llm_anthropic.c -- the anthropic agent against the scripted loopback
 * server: a whole conversation with every tool, retries (429 with
 * retry-after, 529, 500, timeouts, x-should-retry), authentication errors,
 * cut replies, fenced code, pause_turn, refusal, resume from the stored
 * messages, and the bounded history.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "fake_llm_server.h"
#include "llm_harness.h"

extern const agent_ops_t agent_anthropic_ops;

#define KEY "sk-ant-test-0123"
#define K_A "/* KERNEL_A */ int emile_kernel(void *a) { return 1; }"
#define K_B "/* KERNEL_B */ int emile_kernel(void *a) { return 0; }"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Start the server on a script, create an agent pointed at it. */
static fake_llm_t *start(const char *script_sq, const char *extra_cfg_sq, agent_t **a)
{
    json_t *s = fake_llm_json(script_sq);
    char err[512];
    fake_llm_t *f = fake_llm_start(s, err, sizeof err);
    json_decref(s);
    assert_non_null(f);
    json_t *cfg = fake_llm_json(extra_cfg_sq ? extra_cfg_sq : "{}");
    json_object_set_new(cfg, "base_url", json_string(fake_llm_url(f)));
    if (!json_object_get(cfg, "model"))
        json_object_set_new(cfg, "model", json_string("claude-sonnet-4-5"));
    if (!json_object_get(cfg, "retry_base_s"))
        json_object_set_new(cfg, "retry_base_s", json_real(0.001));
    setenv("ANTHROPIC_API_KEY", KEY, 1);
    int rc = agent_anthropic_ops.create(cfg, NULL, a, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "create: %s\n", err);
    assert_int_equal(rc, 0);
    json_decref(cfg);
    return f;
}

/* Every check the server made passed and the script was used up. */
static void finish(fake_llm_t *f)
{
    static char buf[1 << 15];
    int nf = fake_llm_failures(f, buf, sizeof buf);
    if (nf)
        fprintf(stderr, "fake server failures:\n%s", buf);
    assert_int_equal(nf, 0);
    assert_int_equal(fake_llm_pending(f), 0);
    fake_llm_stop(f);
}

static void test_whole_conversation(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'anthropic','key':'" KEY "','steps':["
        /* 0: the first request: system prompt, tools, the task. */
        "{'expect':{'n_messages':1,'body_contains':['profile_kernel','hardware_counters',"
        "  'get_reference','get_best','input_schema','emile_kernel','REFERENCE_MARKER',"
        "  'Test CPU','peak_gflops','Target: 50','NaN'],"
        "  'body_lacks':['1592590337','" KEY "']},"
        " 'body':{'id':'msg_1','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'text','text':'A naive start.'},"
        "   {'type':'tool_use','id':'toolu_1','name':'profile_kernel',"
        "    'input':{'source':'" K_A "','label':'naive','reason':'a baseline'}}],"
        "  'stop_reason':'tool_use','usage':{'input_tokens':1000,'output_tokens':200}}},"
        /* 1: the invalid kernel's answer is an error tied to toolu_1. */
        "{'expect':{'n_messages':3,'tool_results':[{'id':'toolu_1','is_error':true,"
        "  'contains':'mismatch at o[3]'}]},"
        " 'body':{'id':'msg_2','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'thinking','thinking':'hmm','signature':'sig'},"
        "   {'type':'tool_use','id':'toolu_2','name':'get_reference','input':{}},"
        "   {'type':'tool_use','id':'toolu_3','name':'hardware_counters',"
        "    'input':{'source':'" K_B "'}}],"
        "  'stop_reason':'tool_use','usage':{'input_tokens':1500,'output_tokens':100}}},"
        /* 2: both inline tools answered, in order, thinking echoed. */
        "{'expect':{'n_messages':5,'body_contains':['\\'signature\\':\\'sig\\''],"
        "  'tool_results':[{'id':'toolu_2','is_error':false,'contains':'REFERENCE_MARKER'},"
        "  {'id':'toolu_3','is_error':false,'contains':'dram_bytes'}]},"
        " 'body':{'id':'msg_3','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'tool_use','id':'toolu_4','name':'profile_kernel',"
        "    'input':{'source':'" K_B "'}}],"
        "  'stop_reason':'tool_use','usage':{'input_tokens':2000,'output_tokens':100}}},"
        /* 3: the valid kernel's report. */
        "{'expect':{'n_messages':7,'tool_results':[{'id':'toolu_4','is_error':false,"
        "  'contains':'12.5'}]},"
        " 'body':{'id':'msg_4','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'tool_use','id':'toolu_5','name':'get_best','input':{}},"
        "   {'type':'tool_use','id':'toolu_6','name':'run_shell','input':{'cmd':'ls'}},"
        "   {'type':'tool_use','id':'toolu_7','name':'profile_kernel','input':{'src':'x'}},"
        "   {'type':'tool_use','id':'toolu_8','name':'hardware_counters','input':'oops'}],"
        "  'stop_reason':'tool_use','usage':{'input_tokens':2500,'output_tokens':100}}},"
        /* 4: unknown tool, missing source, non-object input: errors, no crash. */
        "{'expect':{'tool_results':[{'id':'toolu_5','is_error':false,'contains':'KERNEL_B'},"
        "  {'id':'toolu_6','is_error':true,'contains':'unknown tool'},"
        "  {'id':'toolu_7','is_error':true,'contains':'needs'},"
        "  {'id':'toolu_8','is_error':true,'contains':'not a JSON object'}]},"
        " 'body':{'id':'msg_5','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'text','text':'I believe this is as good as it gets.'}],"
        "  'stop_reason':'end_turn','usage':{'input_tokens':3000,'output_tokens':20}}},"
        /* 5: one nudge, then the model still calls nothing: done. */
        "{'expect':{'text_contains':'You did not call a tool'},"
        " 'body':{'id':'msg_6','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'text','text':'Still nothing to add.'}],"
        "  'stop_reason':'end_turn','usage':{'input_tokens':3100,'output_tokens':10}}}"
        "]}",
        NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];

    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_A);
    assert_string_equal(p.label, "naive");
    assert_string_equal(p.reason, "a baseline");
    assert_string_equal(json_string_value(json_object_get(p.params, "llm_call_id")),
                        "toolu_1");
    assert_int_equal(json_integer_value(json_object_get(p.params, "tokens_in")), 1000);
    llm_harness_record(&h, &p, "invalid", 0, "output mismatch at o[3]: 0.5 > 1e-4");
    llm_harness_proposal_free(&p);

    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_B);
    assert_string_equal(json_string_value(json_object_get(p.params, "llm_call_id")),
                        "toolu_4");
    /* hardware_counters went through tools->evaluate with counters on. */
    assert_int_equal(h.evals, 1);
    assert_true(json_is_true(json_object_get(h.eval_opts, "counters")));
    assert_string_equal(h.eval_source, K_B);
    llm_harness_record(&h, &p, "valid", 12.5, NULL);
    llm_harness_proposal_free(&p);
    assert_int_equal(h.best_iter, 2);

    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_DONE);
    assert_non_null(strstr(err, "stopped calling tools"));
    assert_null(p.source);

    /* Every request and reply was recorded, tokens with the replies. */
    assert_int_equal(llm_harness_count(&h, "system"), 1);
    assert_int_equal(llm_harness_count(&h, "assistant"), 6);
    assert_int_equal(llm_harness_count(&h, "user"), 6);
    long long tin = 0;
    double cost = 0;
    size_t i;
    const json_t *m;
    json_array_foreach(h.messages, i, m) {
        tin += json_integer_value(json_object_get(m, "tokens_in"));
        cost += json_number_value(json_object_get(json_object_get(m, "content"), "cost_usd"));
        /* The key is never stored. */
        char *s = json_dumps(m, 0);
        assert_null(strstr(s, KEY));
        free(s);
    }
    assert_int_equal(tin, 1000 + 1500 + 2000 + 2500 + 3000 + 3100);
    /* claude-sonnet-4*: $3 in, $15 out per million (estimate): 13100 in, 530 out. */
    assert_true(cost > 0.04724 && cost < 0.04726);
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static const char *const ok_reply =
    "{'id':'msg_ok','type':'message','role':'assistant','model':'m',"
    " 'content':[{'type':'tool_use','id':'toolu_ok','name':'profile_kernel',"
    "  'input':{'source':'" K_A "'}}],"
    " 'stop_reason':'tool_use','usage':{'input_tokens':10,'output_tokens':10}}";

static void test_retries_and_timeout(void **state)
{
    (void)state;
    char script[8192];
    snprintf(script, sizeof script,
             "{'protocol':'anthropic','key':'" KEY "','steps':["
             "{'expect':{'n_messages':1},'status':429,'headers':{'retry-after-ms':'150'},"
             " 'body':{'type':'error','error':{'type':'rate_limit_error','message':'slow'}}},"
             "{'expect':{'n_messages':1},'status':529,"
             " 'body':{'type':'error','error':{'type':'overloaded_error','message':'busy'}}},"
             "{'expect':{'n_messages':1},'status':500,'body':'not even json'},"
             "{'expect':{'n_messages':1},'delay_ms':5000,'body':%s},"
             "{'expect':{'n_messages':1},'body':%s}]}", ok_reply, ok_reply);
    agent_t *a;
    fake_llm_t *f = start(script, "{'timeout_s':0.4,'max_retries':4}", &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    double t0 = now();
    int rc = llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err);
    double dt = now() - t0;
    if (rc != AGENT_OK)
        fprintf(stderr, "propose: %s\n", err);
    assert_int_equal(rc, AGENT_OK);
    assert_string_equal(p.source, K_A);
    /* retry-after-ms was honoured, the timeout cut the slow answer: about
     * 0.55 s; without the cut it takes at least 0.15 + 5 s (the slow step's
     * delay_ms, long so that the bound can leave room for a slow ASan CI
     * machine; the server's wait ends when it stops). */
    assert_true(dt >= 0.15 + 0.4);
    assert_true(dt < 3.0);
    assert_int_equal(fake_llm_requests(f), 5);
    /* The reply record says how many attempts it took. */
    const json_t *last = json_array_get(h.messages, json_array_size(h.messages) - 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(last, "content"),
                                                        "attempts")), 5);
    llm_harness_proposal_free(&p);
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_retry_after_seconds_and_cap(void **state)
{
    (void)state;
    char script[8192];
    /* retry-after in seconds is honoured; one beyond 60 s is not (the
     * SDKs fall back to their backoff), so the third request comes fast. */
    snprintf(script, sizeof script,
             "{'protocol':'anthropic','key':'" KEY "','steps':["
             "{'status':429,'headers':{'retry-after':'1'},'body':{'type':'error',"
             " 'error':{'type':'rate_limit_error','message':'slow'}}},"
             "{'status':429,'headers':{'retry-after':'3600'},'body':{'type':'error',"
             " 'error':{'type':'rate_limit_error','message':'slower'}}},"
             "{'body':%s}]}", ok_reply);
    agent_t *a;
    fake_llm_t *f = start(script, NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    double t0 = now();
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    double dt = now() - t0;
    assert_true(dt >= 0.95);
    assert_true(dt < 2.5);
    llm_harness_proposal_free(&p);
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_should_retry_header_and_exhaustion(void **state)
{
    (void)state;
    /* x-should-retry: true makes a 400 retried; x-should-retry: false stops
     * a 529 at once. */
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'anthropic','key':'" KEY "','steps':["
        "{'status':400,'headers':{'x-should-retry':'true'},'body':{'type':'error',"
        " 'error':{'type':'invalid_request_error','message':'flaky'}}},"
        "{'status':529,'headers':{'x-should-retry':'false'},'body':{'type':'error',"
        " 'error':{'type':'overloaded_error','message':'Overloaded'}}}]}",
        NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_ERROR);
    assert_non_null(strstr(err, "HTTP 529"));
    assert_non_null(strstr(err, "Overloaded"));
    assert_non_null(strstr(err, "2 attempts"));
    assert_int_equal(fake_llm_requests(f), 2);
    finish(f);
    agent_anthropic_ops.destroy(a);

    /* Retries run out: the last 429 is reported. */
    f = start("{'protocol':'anthropic','steps':["
              "{'status':429,'headers':{'retry-after-ms':'1'},'body':{'type':'error',"
              " 'error':{'type':'rate_limit_error','message':'r1'}}},"
              "{'status':429,'headers':{'retry-after-ms':'1'},'body':{'type':'error',"
              " 'error':{'type':'rate_limit_error','message':'r2'}}}]}",
              "{'max_retries':1}", &a);
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_ERROR);
    assert_non_null(strstr(err, "HTTP 429"));
    assert_non_null(strstr(err, "r2"));
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_auth_error(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'anthropic','key':'" KEY "','steps':["
        "{'status':401,'body':{'type':'error','error':{'type':'authentication_error',"
        " 'message':'invalid x-api-key'}}}]}",
        NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_ERROR);
    assert_non_null(strstr(err, "anthropic"));
    assert_non_null(strstr(err, "401"));
    assert_non_null(strstr(err, "ANTHROPIC_API_KEY"));
    assert_non_null(strstr(err, "invalid x-api-key"));
    assert_null(strstr(err, KEY));
    assert_int_equal(fake_llm_requests(f), 1);   /* never retried */
    /* The failure is recorded with the run; the prompt is not lost. */
    assert_int_equal(llm_harness_count(&h, "error"), 1);
    assert_int_equal(llm_harness_count(&h, "user"), 1);
    finish(f);
    agent_anthropic_ops.destroy(a);

    /* No key at all: create() refuses, naming the variable. */
    unsetenv("ANTHROPIC_API_KEY");
    agent_t *b = NULL;
    assert_int_equal(agent_anthropic_ops.create(NULL, NULL, &b, err, sizeof err), -1);
    assert_null(b);
    assert_non_null(strstr(err, "ANTHROPIC_API_KEY"));
    /* A key in the task file is refused. */
    setenv("ANTHROPIC_API_KEY", KEY, 1);
    json_t *cfg = fake_llm_json("{'api_key':'sk-in-a-file'}");
    assert_int_equal(agent_anthropic_ops.create(cfg, NULL, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "environment"));
    json_decref(cfg);
    llm_harness_free(&h);
}

static void test_cut_fenced_and_cut_call(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'anthropic','key':'" KEY "','steps':["
        "{'body':{'id':'m1','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'text','text':'Plan: tile it.\\n```c\\nint emile_kernel('}],"
        "  'stop_reason':'max_tokens','usage':{'input_tokens':5,'output_tokens':8192}}},"
        "{'expect':{'text_contains':'cut at the max_tokens limit','n_messages':3},"
        " 'body':{'id':'m2','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'text','text':'Here:\\n```c\\n" K_A "\\n```\\nDone.'}],"
        "  'stop_reason':'end_turn','usage':{'input_tokens':5,'output_tokens':50}}},"
        "{'expect':{'text_contains':'run as iteration 1','n_messages':5},"
        " 'body':{'id':'m3','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'tool_use','id':'toolu_cut','name':'profile_kernel',"
        "   'input':{'source':'int emile_ker'}}],"
        "  'stop_reason':'max_tokens','usage':{'input_tokens':5,'output_tokens':8192}}},"
        "{'expect':{'tool_results':[{'id':'toolu_cut','is_error':true,'contains':'cut'}],"
        "  'text_contains':'cut at the max_tokens'},"
        " 'body':{'id':'m4','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'tool_use','id':'toolu_b','name':'profile_kernel',"
        "   'input':{'source':'" K_B "'}}],"
        "  'stop_reason':'tool_use','usage':{'input_tokens':5,'output_tokens':50}}}]}",
        NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_A "\n");
    assert_non_null(strstr(p.reason, "fenced code block"));
    assert_string_equal(json_string_value(json_object_get(p.params, "via")), "fenced_code");
    llm_harness_record(&h, &p, "compile_error", 0, "error: expected ';'");
    llm_harness_proposal_free(&p);
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_B);
    llm_harness_proposal_free(&p);
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_pause_turn_and_refusal(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'anthropic','key':'" KEY "','steps':["
        "{'body':{'id':'m1','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'text','text':'Thinking about tiles...'}],"
        "  'stop_reason':'pause_turn','usage':{'input_tokens':5,'output_tokens':5}}},"
        "{'expect':{'last_role':'assistant','n_messages':2,"
        "  'body_contains':['Thinking about tiles']},"
        " 'body':{'id':'m2','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'text','text':'I will not do that.'}],"
        "  'stop_reason':'refusal','usage':{'input_tokens':5,'output_tokens':5}}}]}",
        NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_DONE);
    assert_non_null(strstr(err, "refused"));
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_resume_from_stored_messages(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'anthropic','key':'" KEY "','steps':["
        "{'body':{'id':'m1','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'tool_use','id':'toolu_r1','name':'profile_kernel',"
        "   'input':{'source':'" K_A "'}},"
        "   {'type':'tool_use','id':'toolu_r2','name':'profile_kernel',"
        "   'input':{'source':'" K_B "'}}],"
        "  'stop_reason':'tool_use','usage':{'input_tokens':5,'output_tokens':5}}},"
        "{'expect':{'n_messages':3,'tool_results':["
        "  {'id':'toolu_r1','is_error':true,'contains':'crashed'},"
        "  {'id':'toolu_r2','is_error':false,'contains':'roofline'}]},"
        " 'body':{'id':'m2','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'text','text':'DONE'}],"
        "  'stop_reason':'end_turn','usage':{'input_tokens':5,'output_tokens':1}}}]}",
        NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_A);
    /* The process dies before the iteration is recorded: a new agent,
     * knowing only the stored messages, proposes the same call again
     * without asking the model. */
    agent_anthropic_ops.destroy(a);
    llm_harness_proposal_free(&p);
    json_t *cfg = json_pack("{s:s, s:s}", "base_url", fake_llm_url(f), "model", "m");
    assert_int_equal(agent_anthropic_ops.create(cfg, NULL, &a, err, sizeof err), 0);
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_A);
    assert_int_equal(fake_llm_requests(f), 1);
    llm_harness_record(&h, &p, "crashed", 0, "crashed: SIGSEGV");
    llm_harness_proposal_free(&p);
    /* Resumed again: the second call of the same reply is next. */
    agent_anthropic_ops.destroy(a);
    assert_int_equal(agent_anthropic_ops.create(cfg, NULL, &a, err, sizeof err), 0);
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_B);
    assert_int_equal(fake_llm_requests(f), 1);
    llm_harness_record(&h, &p, "valid", 4.0, NULL);
    llm_harness_proposal_free(&p);
    /* Both answers go back, tied to their ids; an explicit DONE ends it. */
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_DONE);
    assert_non_null(strstr(err, "DONE"));
    json_decref(cfg);
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_history_is_bounded(void **state)
{
    (void)state;
    /* Five iterations with history_keep 2: by the fifth request the first
     * two sources are gone, replaced by their one-line summaries. */
    char script[16384];
    size_t n = (size_t)snprintf(script, sizeof script,
                                "{'protocol':'anthropic','key':'" KEY "','steps':[");
    for (int i = 1; i <= 5; i++) {
        char expect[512] = "";
        if (i == 5)
            snprintf(expect, sizeof expect,
                     "'expect':{'body_lacks':['SRC_ONE_','SRC_TWO_'],"
                     "'body_contains':['SRC_THREE_','SRC_FOUR_','elided',"
                     "'summarised, older iteration','iter 1']},");
        static const char *const names[] = {"", "ONE", "TWO", "THREE", "FOUR", "FIVE"};
        n += (size_t)snprintf(script + n, sizeof script - n,
                              "%s{%s'body':{'id':'m%d','type':'message','role':'assistant',"
                              "'model':'m','content':[{'type':'tool_use','id':'toolu_%d',"
                              "'name':'profile_kernel','input':{'source':'/* SRC_%s_ */ "
                              "int emile_kernel(void *a) { return %d; }'}}],"
                              "'stop_reason':'tool_use','usage':{'input_tokens':5,"
                              "'output_tokens':5}}}",
                              i > 1 ? "," : "", expect, i, i, names[i], i);
    }
    snprintf(script + n, sizeof script - n, "]}");
    agent_t *a;
    fake_llm_t *f = start(script, "{'history_keep':2}", &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err,
                                             sizeof err), AGENT_OK);
        llm_harness_record(&h, &p, "valid", (double)i, NULL);
        llm_harness_proposal_free(&p);
    }
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_token_budget(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'anthropic','key':'" KEY "','steps':["
        "{'body':{'id':'m1','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'tool_use','id':'toolu_1','name':'profile_kernel',"
        "   'input':{'source':'" K_A "'}}],"
        "  'stop_reason':'tool_use','usage':{'input_tokens':900,'output_tokens':200}}}]}",
        "{'token_budget':1000}", &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    llm_harness_record(&h, &p, "valid", 1.0, NULL);
    llm_harness_proposal_free(&p);
    /* 1100 tokens spent of 1000: no further request. */
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_DONE);
    assert_non_null(strstr(err, "token budget"));
    assert_int_equal(fake_llm_requests(f), 1);
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_wall_budget_and_call_cap(void **state)
{
    (void)state;
    agent_t *a;
    /* The wall-time budget counts model seconds and evaluation seconds. */
    fake_llm_t *f = start(
        "{'protocol':'anthropic','key':'" KEY "','steps':["
        "{'body':{'id':'m1','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'tool_use','id':'toolu_1','name':'profile_kernel',"
        "   'input':{'source':'" K_A "'}}],"
        "  'stop_reason':'tool_use','usage':{'input_tokens':5,'output_tokens':5}}}]}",
        "{'wall_budget_s':0.005}", &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    llm_harness_record(&h, &p, "valid", 1.0, NULL);   /* elapsed_s 0.01 */
    llm_harness_proposal_free(&p);
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_DONE);
    assert_non_null(strstr(err, "wall-time budget"));
    assert_int_equal(fake_llm_requests(f), 1);
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);

    /* A model that only ever asks for the reference is stopped after
     * max_calls_per_iter calls. */
    const char *ref_call =
        "{'body':{'id':'mr','type':'message','role':'assistant','model':'m',"
        "  'content':[{'type':'tool_use','id':'toolu_r%d','name':'get_reference',"
        "   'input':{}}],'stop_reason':'tool_use',"
        "  'usage':{'input_tokens':5,'output_tokens':5}}}";
    char script[4096], one[512];
    size_t n = (size_t)snprintf(script, sizeof script,
                                "{'protocol':'anthropic','key':'" KEY "','steps':[");
    for (int i = 0; i < 3; i++) {
        snprintf(one, sizeof one, ref_call, i);
        n += (size_t)snprintf(script + n, sizeof script - n, "%s%s", i ? "," : "", one);
    }
    snprintf(script + n, sizeof script - n, "]}");
    f = start(script, "{'max_calls_per_iter':3}", &a);
    llm_harness_init(&h);
    assert_int_equal(llm_harness_propose(&h, &agent_anthropic_ops, a, &p, err, sizeof err),
                     AGENT_DONE);
    assert_non_null(strstr(err, "3 model calls without a kernel"));
    assert_int_equal(fake_llm_requests(f), 3);
    finish(f);
    agent_anthropic_ops.destroy(a);
    llm_harness_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_conversation),
        cmocka_unit_test(test_retries_and_timeout),
        cmocka_unit_test(test_retry_after_seconds_and_cap),
        cmocka_unit_test(test_should_retry_header_and_exhaustion),
        cmocka_unit_test(test_auth_error),
        cmocka_unit_test(test_cut_fenced_and_cut_call),
        cmocka_unit_test(test_pause_turn_and_refusal),
        cmocka_unit_test(test_resume_from_stored_messages),
        cmocka_unit_test(test_history_is_bounded),
        cmocka_unit_test(test_token_budget),
        cmocka_unit_test(test_wall_budget_and_call_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
