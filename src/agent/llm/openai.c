/*
 * openai.c -- the OpenAI Chat Completions API with function tools, as spoken
 * by OpenAI and by the OpenAI-compatible servers (vLLM, llama.cpp's
 * llama-server, Ollama).
 *
 * Followed: the Chat Completions API reference (platform.openai.com/docs/
 * api-reference/chat/create, 2025; the API has no version header).
 *   POST {base_url}/chat/completions with "Authorization: Bearer KEY" when a
 *   key is set (local servers need none); body {model, messages (a "system"
 *   message first), tools [{type:"function", function:{name, description,
 *   parameters}}], tool_choice, max_completion_tokens (OpenAI; max_tokens is
 *   deprecated there but is what local servers read), temperature?}.
 *   choices[0].message: {content, tool_calls [{id, type:"function",
 *   function:{name, arguments}}], refusal}; `arguments` is a JSON *string*
 *   the model wrote and may be invalid JSON.  Each call is answered by a
 *   {"role":"tool", "tool_call_id", "content"} message (there is no
 *   is_error field: errors are said in the content).  finish_reason: stop,
 *   length, tool_calls, content_filter.
 * Differences among servers handled here: a missing tool-call id is
 * synthesised; `arguments` given as an object is accepted; tool calls with
 * finish_reason "stop" count as tool calls; reasoning fields are not echoed.
 * Left out: streaming, the Responses API, structured outputs / strict
 * schemas, parallel_tool_calls, logprobs, n > 1.
 */
#include "llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void o_endpoint(llm_conf_t *c)
{
    /* The SDK convention is a base URL that ends in /v1; a bare host
     * ("http://127.0.0.1:8000") gets /v1 added. */
    const char *p = strstr(c->base_url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    if (!p)
        snprintf(c->url, sizeof c->url, "%s/v1/chat/completions", c->base_url);
    else
        snprintf(c->url, sizeof c->url, "%s/chat/completions", c->base_url);
}

static void o_headers(const llm_conf_t *c, const char *key, llm_headers_t *h)
{
    (void)c;
    if (key && *key)
        llm_headers_add(h, "Authorization: Bearer %s", key);
}

static const char *max_tokens_field(const llm_conf_t *c)
{
    if (c->max_tokens_field[0])
        return c->max_tokens_field;
    /* OpenAI's reasoning models reject max_tokens; local servers may not
     * know max_completion_tokens. */
    return strstr(c->base_url, "api.openai.com") ? "max_completion_tokens" : "max_tokens";
}

static json_t *o_request(const llm_conf_t *c, const char *system,
                         const json_t *tools, const json_t *messages)
{
    json_t *body = json_pack("{s:s}", "model", c->model);
    json_t *msgs = json_array();
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content",
                                          system ? system : ""));
    json_array_extend(msgs, (json_t *)messages);
    json_object_set_new(body, "messages", msgs);
    json_t *tl = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
        json_array_append_new(tl, json_pack("{s:s, s:{s:O, s:O, s:O}}", "type", "function",
                                            "function", "name", json_object_get(t, "name"),
                                            "description",
                                            json_object_get(t, "description"),
                                            "parameters", json_object_get(t, "parameters")));
    json_object_set_new(body, "tools", tl);
    if (c->tool_choice[0])
        json_object_set_new(body, "tool_choice", json_string(c->tool_choice));
    json_object_set_new(body, max_tokens_field(c), json_integer(c->max_tokens));
    if (c->has_temperature)
        json_object_set_new(body, "temperature", json_real(c->temperature));
    return body;
}

static int o_append_user(json_t *messages, const json_t *user)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(user, "results"), i, r) {
        const char *content = json_string_value(json_object_get(r, "content"));
        char *s = json_is_true(json_object_get(r, "is_error"))
                      ? llm_strf("ERROR: %s", content ? content : "")
                      : strdup(content ? content : "");
        json_array_append_new(messages, json_pack("{s:s, s:O, s:s}", "role", "tool",
                                                  "tool_call_id", json_object_get(r, "id"),
                                                  "content", s ? s : ""));
        free(s);
    }
    const char *text = json_string_value(json_object_get(user, "text"));
    if (text && *text)
        json_array_append_new(messages,
                              json_pack("{s:s, s:s}", "role", "user", "content", text));
    return 0;
}

static json_t *first_message(const json_t *body)
{
    return json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message");
}

static void o_normalize(json_t *body, int turn)
{
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(first_message(body), "tool_calls"), i, tc) {
        const char *id = json_string_value(json_object_get(tc, "id"));
        if (!id || !*id) {
            char buf[64];
            snprintf(buf, sizeof buf, "call_t%d_%zu", turn, i);
            json_object_set_new(tc, "id", json_string(buf));
        }
        if (!json_is_string(json_object_get(tc, "type")))
            json_object_set_new(tc, "type", json_string("function"));
    }
}

static llm_stop_t stop_of(const char *s)
{
    if (!s)
        return LLM_STOP_OTHER;
    if (!strcmp(s, "stop"))
        return LLM_STOP_END;
    if (!strcmp(s, "tool_calls") || !strcmp(s, "function_call"))
        return LLM_STOP_TOOL;
    if (!strcmp(s, "length"))
        return LLM_STOP_LENGTH;
    if (!strcmp(s, "content_filter"))
        return LLM_STOP_REFUSAL;
    return LLM_STOP_OTHER;
}

/* A message's text: a string, or an array of {"type":"text","text"} parts. */
static char *content_text(const json_t *content)
{
    if (json_is_string(content))
        return strdup(json_string_value(content));
    char *s = strdup("");
    size_t i;
    const json_t *p;
    json_array_foreach(content, i, p) {
        const char *t = json_string_value(json_object_get(p, "text"));
        if (!t || !s)
            continue;
        char *n = llm_strf("%s%s%s", s, *s ? "\n" : "", t);
        free(s);
        s = n;
    }
    return s;
}

static int o_decode(const json_t *body, llm_reply_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const json_t *choice = json_array_get(json_object_get(body, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg)) {
        const char *e = llm_error_text(body);
        snprintf(err, errlen, "openai: the reply has no choices[0].message%s%s",
                 e ? ": " : "", e ? e : "");
        return -1;
    }
    const char *fr = json_string_value(json_object_get(choice, "finish_reason"));
    snprintf(out->stop_raw, sizeof out->stop_raw, "%s", fr ? fr : "");
    out->stop = stop_of(fr);
    const json_t *u = json_object_get(body, "usage");
    out->tokens_in = json_integer_value(json_object_get(u, "prompt_tokens"));
    out->tokens_out = json_integer_value(json_object_get(u, "completion_tokens"));
    const json_t *content = json_object_get(msg, "content");
    out->text = content_text(content);
    if (!out->text)
        return -1;
    const char *refusal = json_string_value(json_object_get(msg, "refusal"));
    if (refusal && *refusal)
        out->stop = LLM_STOP_REFUSAL;

    json_t *echo_calls = json_array();
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc) {
        const json_t *fn = json_object_get(tc, "function");
        const char *id = json_string_value(json_object_get(tc, "id"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        const json_t *a = json_object_get(fn, "arguments");
        json_t *args = NULL;
        char why[300] = "";
        char *astr = NULL;
        if (json_is_string(a)) {
            astr = strdup(json_string_value(a));
            json_error_t je;
            const char *as = json_string_value(a);
            /* Some servers send "" for a call without arguments. */
            if (as[strspn(as, " \t\r\n")] == '\0')
                args = json_object();
            else
                args = json_loads(as, JSON_DECODE_ANY, &je);
            if (!args)
                snprintf(why, sizeof why, "arguments are not valid JSON (%s at "
                         "character %d)", je.text, je.position);
        } else if (json_is_object(a)) {
            /* Some servers send an object; echo it back as the string the
             * API defines. */
            args = json_deep_copy(a);
            astr = json_dumps(a, JSON_COMPACT);
        } else {
            snprintf(why, sizeof why, "arguments are missing");
        }
        if (args && !json_is_object(args)) {
            json_decref(args);
            args = NULL;
            snprintf(why, sizeof why, "arguments are not a JSON object");
        }
        int rc = llm_reply_add_call(out, id, name, args, why[0] ? why : NULL);
        json_array_append_new(echo_calls,
                              json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id ? id : "",
                                        "type", "function", "function", "name",
                                        name ? name : "", "arguments",
                                        astr ? astr : ""));
        free(astr);
        if (rc) {
            json_decref(echo_calls);
            return -1;
        }
    }
    if (out->n_calls > 0 && (out->stop == LLM_STOP_END || out->stop == LLM_STOP_OTHER))
        out->stop = LLM_STOP_TOOL;   /* Ollama and others say "stop" */
    /* Echo only what the API defines for an assistant message. */
    out->message = json_pack("{s:s}", "role", "assistant");
    if (out->n_calls > 0) {
        json_object_set_new(out->message, "content",
                            *out->text ? json_string(out->text) : json_null());
        json_object_set_new(out->message, "tool_calls", echo_calls);
    } else {
        json_object_set_new(out->message, "content", json_string(out->text));
        json_decref(echo_calls);
    }
    return 0;
}

static json_t *o_compact(const json_t *message, const json_t *elide)
{
    json_t *m = json_deep_copy(message);
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(m, "tool_calls"), i, tc) {
        const char *id = json_string_value(json_object_get(tc, "id"));
        json_t *ph = id ? json_object_get(elide, id) : NULL;
        if (!ph)
            continue;
        json_t *fn = json_object_get(tc, "function");
        json_t *args = json_loads(json_string_value(json_object_get(fn, "arguments"))
                                      ? json_string_value(json_object_get(fn, "arguments"))
                                      : "", 0, NULL);
        if (!json_is_object(args)) {
            json_decref(args);
            args = json_object();
        }
        json_object_set(args, "source", ph);
        char *s = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_object_set_new(fn, "arguments", json_string(s ? s : "{}"));
        free(s);
        json_decref(args);
    }
    json_t *fenced = json_object_get(elide, "#fenced");
    const char *text = json_string_value(json_object_get(m, "content"));
    if (fenced && text) {
        char *t = llm_fence_elide(text, json_string_value(fenced));
        if (t)
            json_object_set_new(m, "content", json_string(t));
        free(t);
    }
    return m;
}

static const char *o_hint(long status, const char *message)
{
    if (status == 400 && message && (strstr(message, "tool") || strstr(message, "Tool")))
        return "tools must be enabled on the server: vLLM needs "
               "--enable-auto-tool-choice --tool-call-parser <parser for the model>, "
               "llama.cpp's llama-server needs --jinja";
    if (status == 404)
        return "check base_url (an OpenAI-compatible server serves "
               "<base_url>/chat/completions, base_url usually ending in /v1) and "
               "the model name (ollama: pull it first)";
    return NULL;
}

const llm_provider_t llm_provider_openai = {
    .name = "openai",
    .key_env = "OPENAI_API_KEY",
    .key_required = 0,
    .default_base_url = "https://api.openai.com/v1",
    .default_model = "gpt-4.1",
    .endpoint = o_endpoint,
    .headers = o_headers,
    .request = o_request,
    .append_user = o_append_user,
    .normalize = o_normalize,
    .decode = o_decode,
    .compact = o_compact,
    .hint = o_hint,
};

static int o_create(const json_t *config, const task_t *task, agent_t **out,
                    char *err, size_t errlen)
{
    return llm_agent_create(&llm_provider_openai, config, task, out, err, errlen);
}

const agent_ops_t agent_openai_ops = {
    .name = "openai",
    .summary = "any OpenAI-compatible Chat Completions server with tools: OpenAI, "
               "vLLM, llama.cpp, Ollama (key from OPENAI_API_KEY, optional)",
    .create = o_create,
    .propose = llm_agent_propose,
    .destroy = llm_agent_destroy,
};
