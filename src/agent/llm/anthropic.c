/*
 * anthropic.c -- the Anthropic Messages API with client tools.
 *
 * Followed: the Messages API reference and the tool-use and stop-reason
 * guides (platform.claude.com/docs, 2025), API version header
 * "anthropic-version: 2023-06-01".
 *   POST {base_url}/v1/messages, headers x-api-key and anthropic-version;
 *   body {model, max_tokens (required), system, messages, tools
 *   [{name, description, input_schema}], temperature?}.
 *   A reply's content is an array of blocks; "tool_use" blocks {id, name,
 *   input} are answered in the next user message by "tool_result" blocks
 *   {tool_use_id, content, is_error}, which come first in that message.  The
 *   assistant's whole content array goes back into the history unchanged
 *   (thinking blocks included).
 *   stop_reason: end_turn, max_tokens, stop_sequence, tool_use, pause_turn
 *   (send the assistant content back as it is and the model goes on),
 *   refusal, model_context_window_exceeded.
 * Left out: streaming, prompt caching, extended thinking settings, server
 * tools, tool_choice (the default "auto" is what we want), batches.
 */
#include "llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANTHROPIC_VERSION "2023-06-01"

static void a_endpoint(llm_conf_t *c)
{
    size_t n = strlen(c->base_url);
    /* Accept both "https://api.anthropic.com" and ".../v1". */
    if (n >= 3 && strcmp(c->base_url + n - 3, "/v1") == 0)
        snprintf(c->url, sizeof c->url, "%s/messages", c->base_url);
    else
        snprintf(c->url, sizeof c->url, "%s/v1/messages", c->base_url);
}

static void a_headers(const llm_conf_t *c, const char *key, llm_headers_t *h)
{
    (void)c;
    if (key)
        llm_headers_add(h, "x-api-key: %s", key);
    llm_headers_add(h, "anthropic-version: %s", ANTHROPIC_VERSION);
}

/* Content as an array of blocks (a string becomes one text block). */
static json_t *blocks(const json_t *content)
{
    if (json_is_array(content))
        return json_deep_copy(content);
    return json_pack("[{s:s, s:s}]", "type", "text", "text",
                     json_is_string(content) ? json_string_value(content) : "");
}

static json_t *a_request(const llm_conf_t *c, const char *system,
                         const json_t *tools, const json_t *messages)
{
    json_t *body = json_pack("{s:s, s:i, s:s}", "model", c->model, "max_tokens",
                             c->max_tokens, "system", system ? system : "");
    if (c->has_temperature)
        json_object_set_new(body, "temperature", json_real(c->temperature));
    json_t *tl = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
        json_array_append_new(tl, json_pack("{s:O, s:O, s:O}", "name",
                                            json_object_get(t, "name"), "description",
                                            json_object_get(t, "description"),
                                            "input_schema",
                                            json_object_get(t, "parameters")));
    json_object_set_new(body, "tools", tl);
    /* Roles must alternate: a paused turn's continuation joins the assistant
     * message before it, as the pause_turn guide asks. */
    json_t *msgs = json_array();
    const json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *last = json_array_size(msgs)
                           ? json_array_get(msgs, json_array_size(msgs) - 1) : NULL;
        const char *lrole = last ? json_string_value(json_object_get(last, "role")) : NULL;
        if (last && role && lrole && strcmp(role, lrole) == 0) {
            json_t *add = blocks(json_object_get(m, "content"));
            json_array_extend(json_object_get(last, "content"), add);
            json_decref(add);
        } else {
            json_array_append_new(msgs, json_pack("{s:s, s:o}", "role",
                                                  role ? role : "user", "content",
                                                  blocks(json_object_get(m, "content"))));
        }
    }
    json_object_set_new(body, "messages", msgs);
    return body;
}

static int a_append_user(json_t *messages, const json_t *user)
{
    json_t *content = json_array();
    size_t i;
    const json_t *r;
    /* Tool results first: the API requires them at the start of the
     * message that follows the tool_use blocks. */
    json_array_foreach(json_object_get(user, "results"), i, r) {
        json_t *b = json_pack("{s:s, s:O, s:O}", "type", "tool_result", "tool_use_id",
                              json_object_get(r, "id"), "content",
                              json_object_get(r, "content"));
        if (json_is_true(json_object_get(r, "is_error")))
            json_object_set_new(b, "is_error", json_true());
        json_array_append_new(content, b);
    }
    const char *text = json_string_value(json_object_get(user, "text"));
    if (text && *text)
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", text));
    if (json_array_size(content) == 0)
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text",
                                                 "(continue)"));
    return json_array_append_new(messages, json_pack("{s:s, s:o}", "role", "user",
                                                     "content", content));
}

static void a_normalize(json_t *body, int turn)
{
    (void)body;
    (void)turn;   /* Anthropic always gives tool_use ids. */
}

static llm_stop_t stop_of(const char *s)
{
    if (!s)
        return LLM_STOP_OTHER;
    if (!strcmp(s, "end_turn") || !strcmp(s, "stop_sequence"))
        return LLM_STOP_END;
    if (!strcmp(s, "tool_use"))
        return LLM_STOP_TOOL;
    if (!strcmp(s, "max_tokens"))
        return LLM_STOP_LENGTH;
    if (!strcmp(s, "pause_turn"))
        return LLM_STOP_PAUSE;
    if (!strcmp(s, "refusal"))
        return LLM_STOP_REFUSAL;
    if (!strcmp(s, "model_context_window_exceeded"))
        return LLM_STOP_CONTEXT;
    return LLM_STOP_OTHER;
}

static long long usage(const json_t *u, const char *k)
{
    const json_t *v = json_object_get(u, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static int a_decode(const json_t *body, llm_reply_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const json_t *content = json_object_get(body, "content");
    if (!json_is_array(content)) {
        const char *e = llm_error_text(body);
        snprintf(err, errlen, "anthropic: the reply has no content array%s%s",
                 e ? ": " : "", e ? e : "");
        return -1;
    }
    const char *sr = json_string_value(json_object_get(body, "stop_reason"));
    snprintf(out->stop_raw, sizeof out->stop_raw, "%s", sr ? sr : "");
    out->stop = stop_of(sr);
    const json_t *u = json_object_get(body, "usage");
    /* Cache reads and writes are input too (we ask for neither, but a
     * proxy might). */
    out->tokens_in = usage(u, "input_tokens") + usage(u, "cache_creation_input_tokens") +
                     usage(u, "cache_read_input_tokens");
    out->tokens_out = usage(u, "output_tokens");
    size_t tl = 0;
    size_t i;
    const json_t *b;
    json_array_foreach(content, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (type && !strcmp(type, "text"))
            tl += json_string_length(json_object_get(b, "text")) + 1;
    }
    out->text = calloc(1, tl + 1);
    if (!out->text)
        return -1;
    json_array_foreach(content, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!type)
            continue;
        if (!strcmp(type, "text")) {
            const char *t = json_string_value(json_object_get(b, "text"));
            if (t) {
                if (out->text[0])
                    strcat(out->text, "\n");
                strcat(out->text, t);
            }
        } else if (!strcmp(type, "tool_use")) {
            const json_t *in = json_object_get(b, "input");
            const char *id = json_string_value(json_object_get(b, "id"));
            const char *name = json_string_value(json_object_get(b, "name"));
            int ok = json_is_object(in);
            if (llm_reply_add_call(out, id, name, ok ? json_deep_copy(in) : NULL,
                                   ok ? NULL : "the input is not a JSON object"))
                return -1;
        }
    }
    out->message = json_pack("{s:s, s:O}", "role", "assistant", "content", content);
    return out->message ? 0 : -1;
}

static json_t *a_compact(const json_t *message, const json_t *elide)
{
    json_t *m = json_deep_copy(message);
    json_t *fenced = json_object_get(elide, "#fenced");
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(m, "content"), i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        const char *id = json_string_value(json_object_get(b, "id"));
        if (type && !strcmp(type, "tool_use") && id && json_object_get(elide, id)) {
            json_t *in = json_object_get(b, "input");
            if (json_is_object(in))
                json_object_set(in, "source", json_object_get(elide, id));
        } else if (type && !strcmp(type, "text") && fenced) {
            char *t = llm_fence_elide(json_string_value(json_object_get(b, "text")),
                                      json_string_value(fenced));
            if (t)
                json_object_set_new(b, "text", json_string(t));
            free(t);
        }
    }
    return m;
}

static const char *a_hint(long status, const char *message)
{
    (void)message;
    if (status == 404)
        return "check base_url (the API serves /v1/messages) and the model name";
    if (status == 413)
        return "the request is too large; lower agent_config.history_keep";
    return NULL;
}

const llm_provider_t llm_provider_anthropic = {
    .name = "anthropic",
    .key_env = "ANTHROPIC_API_KEY",
    .key_required = 1,
    .default_base_url = "https://api.anthropic.com",
    .default_model = "claude-sonnet-4-5",
    .endpoint = a_endpoint,
    .headers = a_headers,
    .request = a_request,
    .append_user = a_append_user,
    .normalize = a_normalize,
    .decode = a_decode,
    .compact = a_compact,
    .hint = a_hint,
};

static int a_create(const json_t *config, const task_t *task, agent_t **out,
                    char *err, size_t errlen)
{
    return llm_agent_create(&llm_provider_anthropic, config, task, out, err, errlen);
}

const agent_ops_t agent_anthropic_ops = {
    .name = "anthropic",
    .summary = "Claude through the Anthropic Messages API with tool use "
               "(key from ANTHROPIC_API_KEY)",
    .create = a_create,
    .propose = llm_agent_propose,
    .destroy = llm_agent_destroy,
};
