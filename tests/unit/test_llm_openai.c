/*
 * test_llm_openai.c -- the openai agent (Chat Completions) against the
 * scripted loopback server, in the shapes OpenAI and the local servers
 * answer: tool_calls with arguments as a JSON string (valid, invalid,
 * empty), missing call ids, finish_reason "stop" with tool calls (Ollama),
 * code fenced in prose, a cut reply, refusal, no key for a local server,
 * a key as a Bearer token, 401, and vLLM's 400 when tools are not enabled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/llm/llm.h"
#include "fake_llm_server.h"
#include "llm_harness.h"

extern const agent_ops_t agent_openai_ops;

#define KEY "sk-proj-test-4567"
#define K_A "/* KERNEL_A */ int emile_kernel(void *a) { return 1; }"
#define K_B "/* KERNEL_B */ int emile_kernel(void *a) { return 0; }"

static fake_llm_t *start(const char *script_sq, const char *cfg_sq, const char *key,
                         const char *url_suffix, agent_t **a)
{
    json_t *s = fake_llm_json(script_sq);
    char err[512];
    fake_llm_t *f = fake_llm_start(s, err, sizeof err);
    json_decref(s);
    assert_non_null(f);
    json_t *cfg = fake_llm_json(cfg_sq ? cfg_sq : "{}");
    char url[128];
    snprintf(url, sizeof url, "%s%s", fake_llm_url(f), url_suffix ? url_suffix : "");
    json_object_set_new(cfg, "base_url", json_string(url));
    if (!json_object_get(cfg, "model"))
        json_object_set_new(cfg, "model", json_string("qwen3-coder"));
    json_object_set_new(cfg, "retry_base_s", json_real(0.001));
    if (key)
        setenv("OPENAI_API_KEY", key, 1);
    else
        unsetenv("OPENAI_API_KEY");
    int rc = agent_openai_ops.create(cfg, NULL, a, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "create: %s\n", err);
    assert_int_equal(rc, 0);
    json_decref(cfg);
    return f;
}

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

/* A chat.completion with one choice. */
#define COMPLETION(msg, finish, pin, pout)                                        \
    "{'id':'chatcmpl-1','object':'chat.completion','model':'qwen3-coder',"       \
    "'choices':[{'index':0,'message':" msg ",'finish_reason':'" finish "'}],"    \
    "'usage':{'prompt_tokens':" #pin ",'completion_tokens':" #pout "}}"

static void test_local_server_conversation(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'openai','key':null,'steps':["
        "{'expect':{'n_messages':2,'body_contains':['\\'tool_choice\\':\\'auto\\'',"
        "  '\\'max_tokens\\':8192','\\'type\\':\\'function\\'','profile_kernel',"
        "  'REFERENCE_MARKER'],'body_lacks':['max_completion_tokens','1592590337']},"
        " 'body':" COMPLETION("{'role':'assistant','content':null,'tool_calls':["
        "  {'id':'call_1','type':'function','function':{'name':'profile_kernel',"
        "   'arguments':'{\\'source\\':\\'" K_A "\\',\\'label\\':\\'v1\\'}'}}]}",
        "tool_calls", 700, 90) "},"
        "{'expect':{'n_messages':4,'tool_results':[{'id':'call_1','is_error':true,"
        "  'contains':'mismatch'}]},"
        " 'body':" COMPLETION("{'role':'assistant','content':'Trying a few things.',"
        "  'reasoning_content':'private','tool_calls':["
        "  {'id':'call_2','type':'function','function':{'name':'profile_kernel',"
        "   'arguments':'{\\'source\\': \\'int x = '}},"
        "  {'id':'call_3','type':'function','function':{'name':'get_everything',"
        "   'arguments':'{}'}},"
        "  {'id':'call_4','type':'function','function':{'name':'get_reference',"
        "   'arguments':''}},"
        "  {'function':{'name':'get_best','arguments':{}}}]}",
        "stop", 800, 60) "},"
        /* Invalid JSON, unknown tool: error answers; an empty arguments
         * string and an object are accepted; the id-less call got one. */
        "{'expect':{'n_messages':9,'body_lacks':['private'],'tool_results':["
        "  {'id':'call_2','is_error':true,'contains':'not valid JSON'},"
        "  {'id':'call_3','is_error':true,'contains':'unknown tool'},"
        "  {'id':'call_4','is_error':false,'contains':'REFERENCE_MARKER'},"
        "  {'id':'call_t4_3','is_error':false,'contains':'the best is still the "
        "reference'}]},"
        " 'body':" COMPLETION("{'role':'assistant','content':'Here is v2:\\n```c\\n" K_B
        "\\n```'}", "stop", 900, 80) "},"
        "{'expect':{'text_contains':'was in prose','n_messages':11},"
        " 'body':" COMPLETION("{'role':'assistant','content':'Let me explain at length'}",
        "length", 1000, 8192) "},"
        "{'expect':{'text_contains':'cut at the max_tokens limit'},"
        " 'body':" COMPLETION("{'role':'assistant','content':'DONE'}", "stop", 1100, 1) "}"
        "]}",
        NULL, NULL, NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_openai_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_A);
    assert_string_equal(p.label, "v1");
    llm_harness_record(&h, &p, "invalid", 0, "output mismatch at o[7]");
    llm_harness_proposal_free(&p);

    assert_int_equal(llm_harness_propose(&h, &agent_openai_ops, a, &p, err, sizeof err),
                     AGENT_OK);
    assert_string_equal(p.source, K_B "\n");
    assert_non_null(strstr(p.reason, "did not call profile_kernel"));
    llm_harness_record(&h, &p, "valid", 7.0, NULL);
    llm_harness_proposal_free(&p);

    assert_int_equal(llm_harness_propose(&h, &agent_openai_ops, a, &p, err, sizeof err),
                     AGENT_DONE);
    assert_non_null(strstr(err, "DONE"));
    /* A local model costs nothing. */
    size_t i;
    const json_t *m;
    json_array_foreach(h.messages, i, m)
        assert_true(json_number_value(json_object_get(json_object_get(m, "content"),
                                                      "cost_usd")) == 0.0);
    finish(f);
    agent_openai_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_key_and_auth_error(void **state)
{
    (void)state;
    agent_t *a;
    /* base_url with /v1 is used as given; the key goes as a Bearer token. */
    fake_llm_t *f = start(
        "{'protocol':'openai','key':'" KEY "','steps':["
        "{'status':401,'body':{'error':{'message':'Incorrect API key provided',"
        " 'type':'invalid_request_error','code':'invalid_api_key'}}}]}",
        NULL, KEY, "/v1", &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_openai_ops, a, &p, err, sizeof err),
                     AGENT_ERROR);
    assert_non_null(strstr(err, "openai"));
    assert_non_null(strstr(err, "OPENAI_API_KEY"));
    assert_non_null(strstr(err, "Incorrect API key"));
    assert_null(strstr(err, KEY));
    assert_int_equal(fake_llm_requests(f), 1);
    finish(f);
    agent_openai_ops.destroy(a);

    /* OpenAI itself without a key: refused before any request. */
    unsetenv("OPENAI_API_KEY");
    json_t *cfg = fake_llm_json("{'base_url':'https://api.openai.com/v1'}");
    agent_t *b = NULL;
    assert_int_equal(agent_openai_ops.create(cfg, NULL, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "OPENAI_API_KEY"));
    json_decref(cfg);
    llm_harness_free(&h);
}

static void test_vllm_without_tool_parser(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'openai','steps':["
        "{'status':400,'body':{'object':'error','message':'\\'auto\\' tool choice "
        "requires --enable-auto-tool-choice and --tool-call-parser to be set',"
        "'type':'BadRequestError','code':400}}]}",
        NULL, NULL, NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_openai_ops, a, &p, err, sizeof err),
                     AGENT_ERROR);
    assert_non_null(strstr(err, "HTTP 400"));
    assert_non_null(strstr(err, "--jinja"));
    assert_non_null(strstr(err, "requires --enable-auto-tool-choice"));
    assert_int_equal(fake_llm_requests(f), 1);
    finish(f);
    agent_openai_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_refusal_and_overload(void **state)
{
    (void)state;
    agent_t *a;
    fake_llm_t *f = start(
        "{'protocol':'openai','steps':["
        "{'status':503,'body':{'error':{'message':'overloaded'}}},"
        "{'status':502,'body':'<html>bad gateway</html>'},"
        "{'body':" COMPLETION("{'role':'assistant','content':null,'refusal':'I cannot "
        "help with that.'}", "stop", 5, 5) "}]}",
        NULL, NULL, NULL, &a);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_openai_ops, a, &p, err, sizeof err),
                     AGENT_DONE);
    assert_non_null(strstr(err, "refused"));
    assert_int_equal(fake_llm_requests(f), 3);
    finish(f);
    agent_openai_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* Nothing listens on the port of a stopped server. */
    agent_t *a;
    fake_llm_t *f = start("{'protocol':'openai','steps':[]}", "{'max_retries':2}", NULL,
                          NULL, &a);
    fake_llm_stop(f);
    llm_harness_t h;
    llm_harness_init(&h);
    agent_proposal_t p;
    char err[1024];
    assert_int_equal(llm_harness_propose(&h, &agent_openai_ops, a, &p, err, sizeof err),
                     AGENT_ERROR);
    assert_non_null(strstr(err, "no answer"));
    assert_non_null(strstr(err, "3 attempts"));
    agent_openai_ops.destroy(a);
    llm_harness_free(&h);
}

static void test_request_shape_for_openai_itself(void **state)
{
    (void)state;
    /* OpenAI's reasoning models want max_completion_tokens; the base URL
     * picks it, agent_config.max_tokens_field overrides. */
    llm_conf_t c;
    char err[256];
    json_t *cfg = fake_llm_json("{'base_url':'https://api.openai.com/v1/',"
                                "'model':'o4-mini','temperature':0.2}");
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), 0);
    assert_string_equal(c.url, "https://api.openai.com/v1/chat/completions");
    json_t *tools = llm_tool_defs(NULL);
    json_t *msgs = json_array();
    json_t *body = llm_provider_openai.request(&c, "sys", tools, msgs);
    assert_int_equal(json_integer_value(json_object_get(body, "max_completion_tokens")), 8192);
    assert_null(json_object_get(body, "max_tokens"));
    assert_true(json_number_value(json_object_get(body, "temperature")) == 0.2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(body, "messages"), 0), "role")),
                        "system");
    assert_int_equal(json_array_size(json_object_get(body, "tools")), 4);
    json_decref(body);
    json_decref(cfg);
    cfg = fake_llm_json("{'base_url':'https://api.openai.com/v1',"
                        "'max_tokens_field':'max_tokens','tool_choice':''}");
    assert_int_equal(llm_conf_parse(&llm_provider_openai, cfg, &c, err, sizeof err), 0);
    body = llm_provider_openai.request(&c, "sys", tools, msgs);
    assert_non_null(json_object_get(body, "max_tokens"));
    assert_null(json_object_get(body, "tool_choice"));
    assert_null(json_object_get(body, "temperature"));
    json_decref(body);
    json_decref(cfg);
    json_decref(tools);
    json_decref(msgs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_server_conversation),
        cmocka_unit_test(test_key_and_auth_error),
        cmocka_unit_test(test_vllm_without_tool_parser),
        cmocka_unit_test(test_refusal_and_overload),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_request_shape_for_openai_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
