/*
 * conv.c -- the conversation engine behind both providers' propose().
 *
 * propose() keeps no state of its own between calls: it rebuilds the
 * conversation from the stored records (ctx->messages, plus the records this
 * process wrote, in case ctx->messages is an older snapshot) and the
 * history, so a resumed run continues where it stopped.  Then it looks at
 * the last record:
 *   - a reply with a profile_kernel call whose iteration is not in the
 *     history yet: that call is the proposal (AGENT_OK);
 *   - a reply whose calls are all answerable: answer them (iterations from
 *     the history, the other tools inline), record the answers, ask again;
 *   - a reply with the kernel fenced in prose: propose it, saying so;
 *   - a reply cut at max_tokens: ask it to go on (twice at most);
 *   - a reply with no tool call: nudge once, then AGENT_DONE;
 *   - pause_turn: send the reply back as it is;
 *   - refusal, a full context window, a spent budget: AGENT_DONE;
 *   - a user turn: ask the model.
 * A profile_kernel call is tied to its iteration by the proposal's params
 * {"llm_call_id"} (stored with the iteration), else by identical source.
 */
#include "llm.h"
#include "util/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* What resolve() decided. */
enum { R_ASK, R_PROPOSE, R_DONE, R_ERROR };

/* One usable proposal in a reply: a profile_kernel call or fenced code. */
typedef struct prop {
    char id[160];
    const char *source;          /* borrowed from the call, or fenced */
    char *fenced;                /* owned when the source came from prose */
    const llm_call_t *call;      /* NULL for fenced code */
} prop_t;

#define MAX_PROPS 32

/* agent_proposal_free's job, kept local so this file needs nothing from
 * agent.c. */
static void proposal_clear(agent_proposal_t *p)
{
    free(p->source);
    free(p->label);
    free(p->reason);
    json_decref(p->params);
    memset(p, 0, sizeof *p);
}

static int is_cut(const llm_reply_t *r)
{
    return r->stop == LLM_STOP_LENGTH || r->stop == LLM_STOP_CONTEXT;
}

static const char *kind_of(const json_t *rec)
{
    const char *k = json_string_value(json_object_get(rec, "kind"));
    return k ? k : "";
}

static int turn_of(const json_t *rec)
{
    return (int)json_integer_value(json_object_get(rec, "turn"));
}

/* The proposals a reply makes, in order.  Returns how many. */
static int reply_props(const llm_reply_t *r, int turn, prop_t *out, int max)
{
    int n = 0;
    if (r->n_calls > 0) {
        if (is_cut(r))
            return 0;   /* a cut call's arguments are not trustworthy */
        for (int i = 0; i < r->n_calls && n < max; i++) {
            const llm_call_t *c = &r->calls[i];
            const char *src = json_string_value(json_object_get(c->args, "source"));
            if (strcmp(c->name, LLM_TOOL_PROFILE) != 0 || c->args_error || !src || !*src)
                continue;
            memset(&out[n], 0, sizeof out[n]);
            snprintf(out[n].id, sizeof out[n].id, "%s", c->id);
            out[n].source = src;
            out[n].call = c;
            n++;
        }
        return n;
    }
    char *code = llm_fence_extract(r->text);
    if (code && max > 0) {
        memset(&out[0], 0, sizeof out[0]);
        snprintf(out[0].id, sizeof out[0].id, "%d#fenced", turn);
        out[0].source = out[0].fenced = code;
        return 1;
    }
    free(code);
    return 0;
}

static void props_free(prop_t *p, int n)
{
    for (int i = 0; i < n; i++)
        free(p[i].fenced);
}

/* ------------------------------------------------------------ the records */

static void conv_free(llm_conv_t *cv)
{
    size_t n = json_array_size(cv->records);
    for (size_t i = 0; i < n && cv->replies; i++)
        llm_reply_free(&cv->replies[i]);
    free(cv->replies);
    json_decref(cv->records);
    json_decref(cv->call_iter);
    memset(cv, 0, sizeof *cv);
}

static int cmp_turn(const void *a, const void *b)
{
    int x = turn_of(*(json_t *const *)a), y = turn_of(*(json_t *const *)b);
    return (x > y) - (x < y);
}

/* Keep one record per turn of this provider's conversation. */
static void collect(json_t *by_turn, const json_t *src, const char *prov, int wrapped)
{
    size_t i;
    const json_t *m;
    json_array_foreach(src, i, m) {
        const json_t *c = wrapped ? json_object_get(m, "content") : m;
        const char *p = json_string_value(json_object_get(c, "provider"));
        if (!json_is_object(c) || !p || strcmp(p, prov) != 0 ||
            !json_is_integer(json_object_get(c, "turn")))
            continue;
        char key[32];
        snprintf(key, sizeof key, "%d", turn_of(c));
        if (!json_object_get(by_turn, key))
            json_object_set(by_turn, key, (json_t *)c);
    }
}

static int ensure_cap(llm_conv_t *cv, size_t n)
{
    if (n <= cv->cap)
        return 0;
    size_t cap = cv->cap ? cv->cap * 2 : 16;
    while (cap < n)
        cap *= 2;
    llm_reply_t *nr = realloc(cv->replies, cap * sizeof *nr);
    if (!nr)
        return -1;
    memset(nr + cv->cap, 0, (cap - cv->cap) * sizeof *nr);
    cv->replies = nr;
    cv->cap = cap;
    return 0;
}

static int conv_load(agent_t *a, const agent_context_t *ctx, llm_conv_t *cv,
                     char *err, size_t errlen)
{
    memset(cv, 0, sizeof *cv);
    cv->call_iter = json_object();
    json_t *by_turn = json_object();
    collect(by_turn, ctx->messages, a->prov->name, 1);
    collect(by_turn, a->journal, a->prov->name, 0);
    size_t n = json_object_size(by_turn), k = 0;
    json_t **v = calloc(n ? n : 1, sizeof *v);
    const char *key;
    json_t *val;
    json_object_foreach(by_turn, key, val)
        v[k++] = val;
    qsort(v, n, sizeof *v, cmp_turn);
    cv->records = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(cv->records, v[i]);
    free(v);
    json_decref(by_turn);
    if (ensure_cap(cv, n + 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *rec = json_array_get(cv->records, i);
        if (strcmp(kind_of(rec), "reply") != 0)
            continue;
        if (a->prov->decode(json_object_get(rec, "reply"), &cv->replies[i], err, errlen))
            return -1;
    }
    return 0;
}

/* Record a turn with the run and append it to the conversation.  Steals
 * content. */
static int conv_record(agent_t *a, const agent_context_t *ctx, llm_conv_t *cv,
                       const char *role, json_t *content, long long tin,
                       long long tout, char *err, size_t errlen)
{
    size_t n = json_array_size(cv->records);
    int turn = n ? turn_of(json_array_get(cv->records, n - 1)) + 1 : 0;
    json_object_set_new(content, "provider", json_string(a->prov->name));
    json_object_set_new(content, "turn", json_integer(turn));
    if (ctx->tools && ctx->tools->record_message)
        ctx->tools->record_message(ctx->tools->ctx, role, content, tin, tout);
    json_array_append(a->journal, content);
    if (ensure_cap(cv, n + 2)) {
        json_decref(content);
        return -1;
    }
    json_array_append_new(cv->records, content);
    if (strcmp(kind_of(content), "reply") == 0 &&
        a->prov->decode(json_object_get(content, "reply"), &cv->replies[n], err, errlen))
        return -1;
    return 0;
}

/* A note that is kept with the run but not replayed (no turn). */
static void record_note(agent_t *a, const agent_context_t *ctx, const char *role,
                        json_t *content)
{
    json_object_set_new(content, "provider", json_string(a->prov->name));
    if (ctx->tools && ctx->tools->record_message)
        ctx->tools->record_message(ctx->tools->ctx, role, content, 0, 0);
    json_decref(content);
}

static int record_user(agent_t *a, const agent_context_t *ctx, llm_conv_t *cv,
                       const char *kind, json_t *user, char *err, size_t errlen)
{
    json_t *c = json_pack("{s:s, s:o}", "kind", kind, "user", user);
    return conv_record(a, ctx, cv, "user", c, 0, 0, err, errlen);
}

/* Tie each profile_kernel call (and fenced proposal) to its iteration. */
static void conv_map(llm_conv_t *cv, const json_t *history)
{
    json_t *claimed = json_object();
    int min_iter = 1;
    size_t n = json_array_size(cv->records);
    for (size_t i = 0; i < n; i++) {
        const json_t *rec = json_array_get(cv->records, i);
        if (!cv->replies[i].message)
            continue;
        prop_t props[MAX_PROPS];
        int np = reply_props(&cv->replies[i], turn_of(rec), props, MAX_PROPS);
        for (int p = 0; p < np; p++) {
            const json_t *hit = NULL;
            size_t h;
            const json_t *it;
            json_array_foreach(history, h, it) {
                const char *cid = json_string_value(
                    json_object_get(json_object_get(it, "params"), "llm_call_id"));
                if (cid && strcmp(cid, props[p].id) == 0) {
                    hit = it;
                    break;
                }
            }
            json_array_foreach(history, h, it) {
                if (hit)
                    break;
                int iter = (int)json_integer_value(json_object_get(it, "iter"));
                char key[32];
                snprintf(key, sizeof key, "%d", iter);
                const char *src = json_string_value(json_object_get(it, "source"));
                if (iter >= min_iter && !json_object_get(claimed, key) && src &&
                    strcmp(src, props[p].source) == 0)
                    hit = it;
            }
            if (hit) {
                int iter = (int)json_integer_value(json_object_get(hit, "iter"));
                char key[32];
                snprintf(key, sizeof key, "%d", iter);
                json_object_set_new(claimed, key, json_true());
                json_object_set_new(cv->call_iter, props[p].id, json_integer(iter));
                if (iter + 1 > min_iter)
                    min_iter = iter + 1;
            }
        }
        props_free(props, np);
    }
    json_decref(claimed);
}

/* Totals over the replies. */
static void totals(const llm_conv_t *cv, long long *tin, long long *tout,
                   double *cost, double *secs)
{
    *tin = *tout = 0;
    *cost = *secs = 0;
    size_t i;
    const json_t *rec;
    json_array_foreach(cv->records, i, rec) {
        if (strcmp(kind_of(rec), "reply") != 0)
            continue;
        *tin += json_integer_value(json_object_get(rec, "tokens_in"));
        *tout += json_integer_value(json_object_get(rec, "tokens_out"));
        *cost += json_number_value(json_object_get(rec, "cost_usd"));
        *secs += json_number_value(json_object_get(rec, "elapsed_s"));
    }
}

/* ------------------------------------------------------------- proposing */

static char *clip(const char *s, size_t max)
{
    if (!s)
        return strdup("");
    while (*s == ' ' || *s == '\n')
        s++;
    size_t n = strlen(s);
    if (n <= max)
        return strdup(s);
    return llm_strf("%.*s...", (int)max, s);
}

static int fill_proposal(agent_t *a, const agent_context_t *ctx, const llm_conv_t *cv,
                         const llm_reply_t *r, const prop_t *p, agent_proposal_t *out)
{
    const char *label = p->call ? json_string_value(json_object_get(p->call->args, "label"))
                                : NULL;
    const char *why = p->call ? json_string_value(json_object_get(p->call->args, "reason"))
                              : NULL;
    out->source = strdup(p->source);
    if (label && *label)
        out->label = clip(label, 80);
    else
        out->label = llm_strf("%s %s #%d", a->prov->name, a->conf.model, ctx->next_iter);
    if (p->call) {
        char *text = clip(why && *why ? why : r->text, 2000);
        out->reason = text;
    } else {
        char *prose = llm_fence_elide(r->text, "(the kernel)");
        char *text = clip(prose, 1500);
        out->reason = llm_strf("[taken from a fenced code block in the model's prose: "
                               "it did not call profile_kernel] %s", text ? text : "");
        free(prose);
        free(text);
    }
    long long tin, tout;
    double cost, secs;
    totals(cv, &tin, &tout, &cost, &secs);
    out->params = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:f}", "llm_call_id", p->id,
                            "via", p->call ? "profile_kernel" : "fenced_code",
                            "provider", a->prov->name, "model", a->conf.model,
                            "tokens_in", (json_int_t)tin, "tokens_out", (json_int_t)tout,
                            "cost_usd", cost);
    return (out->source && out->label && out->reason && out->params) ? 0 : -1;
}

/* How many "cut" user turns directly precede the last reply. */
static int cuts_in_a_row(const llm_conv_t *cv)
{
    int k = 0;
    size_t n = json_array_size(cv->records);
    for (size_t i = n - 1; i-- > 0;) {
        const char *kind = kind_of(json_array_get(cv->records, i));
        if (!strcmp(kind, "cut"))
            k++;
        else if (strcmp(kind, "reply") != 0)
            break;
    }
    return k;
}

static int explicit_done(const char *text)
{
    while (*text == ' ' || *text == '\n' || *text == '*')
        text++;
    return strncasecmp(text, "DONE", 4) == 0 &&
           strspn(text + 4, " .!*\n\r") == strlen(text + 4);
}

static int resolve(agent_t *a, const agent_context_t *ctx, llm_conv_t *cv,
                   agent_proposal_t *out, char *err, size_t errlen)
{
    size_t last = json_array_size(cv->records) - 1;
    const json_t *rec = json_array_get(cv->records, last);
    const llm_reply_t *r = &cv->replies[last];
    const char *pn = a->prov->name;
    if (r->stop == LLM_STOP_REFUSAL) {
        char *t = clip(r->text, 300);
        snprintf(err, errlen, "%s: the model refused (%s)%s%s", pn, r->stop_raw,
                 t && *t ? ": " : "", t ? t : "");
        free(t);
        return R_DONE;
    }
    prop_t props[MAX_PROPS];
    int np = reply_props(r, turn_of(rec), props, MAX_PROPS);
    for (int i = 0; i < np; i++) {
        if (json_object_get(cv->call_iter, props[i].id))
            continue;
        int rc = fill_proposal(a, ctx, cv, r, &props[i], out);
        props_free(props, np);
        if (rc) {
            snprintf(err, errlen, "%s: out of memory", pn);
            return R_ERROR;
        }
        return R_PROPOSE;
    }

    json_t *user = json_object();
    const char *kind = NULL;
    if (r->n_calls > 0) {
        json_t *res = json_array();
        for (int i = 0; i < r->n_calls; i++) {
            const llm_call_t *c = &r->calls[i];
            json_t *mapped = json_object_get(cv->call_iter, c->id);
            const json_t *it = mapped ? llm_history_find(ctx->history,
                                                         (int)json_integer_value(mapped))
                                      : NULL;
            if (is_cut(r))
                json_array_append_new(res, llm_tool_error(
                    c->id, c->name, "your reply was cut (%s) before this call was "
                    "complete; nothing was run. Send it again with less prose.",
                    r->stop_raw));
            else if (it)
                json_array_append_new(res, llm_tool_iteration_answer(ctx, c->id, it));
            else
                json_array_append_new(res, llm_tool_answer(ctx, c));
        }
        json_object_set_new(user, "results", res);
        kind = "tool_results";
        if (is_cut(r))
            json_object_set_new(user, "text", json_string(
                "Your reply was cut at the max_tokens limit. Keep prose short and send "
                "one complete kernel per profile_kernel call."));
    } else if (np > 0) {
        int iter = (int)json_integer_value(json_object_get(cv->call_iter, props[0].id));
        json_t *ans = llm_tool_iteration_answer(ctx, props[0].id,
                                                llm_history_find(ctx->history, iter));
        char *t = llm_strf("The kernel in your last message was in prose, not in a "
                           "profile_kernel call; it was run as iteration %d. Result: %s\n"
                           "From now on call profile_kernel with the source.", iter,
                           json_string_value(json_object_get(ans, "content")));
        json_decref(ans);
        json_object_set_new(user, "text", json_string(t ? t : ""));
        json_object_set_new(user, "fenced_id", json_string(props[0].id));
        free(t);
        kind = "prose_result";
    } else if (r->stop == LLM_STOP_PAUSE) {
        /* pause_turn: the reply goes back as it is and the model goes on. */
        props_free(props, np);
        json_decref(user);
        return R_ASK;
    } else if (r->stop == LLM_STOP_LENGTH) {
        if (cuts_in_a_row(cv) >= 2) {
            snprintf(err, errlen, "%s: three replies in a row were cut at max_tokens "
                     "(%d) before any tool call; raise agent_config.max_tokens", pn,
                     a->conf.max_tokens);
            props_free(props, np);
            json_decref(user);
            return R_DONE;
        }
        char *t = llm_strf("Your reply was cut at the max_tokens limit (%d tokens) "
                           "before any tool call. Do not repeat it: call profile_kernel "
                           "now with the complete kernel, and keep prose short.",
                           a->conf.max_tokens);
        json_object_set_new(user, "text", json_string(t ? t : ""));
        free(t);
        kind = "cut";
    } else if (r->stop == LLM_STOP_CONTEXT) {
        snprintf(err, errlen, "%s: the model's context window is full (%s); lower "
                 "agent_config.history_keep or resume with a larger-context model",
                 pn, r->stop_raw);
        props_free(props, np);
        json_decref(user);
        return R_DONE;
    } else {
        const json_t *prev = last > 0 ? json_array_get(cv->records, last - 1) : NULL;
        if (explicit_done(r->text) || (prev && !strcmp(kind_of(prev), "nudge"))) {
            snprintf(err, errlen, "%s: the model stopped calling tools%s", pn,
                     explicit_done(r->text) ? " (it answered DONE)" : " after a nudge");
            props_free(props, np);
            json_decref(user);
            return R_DONE;
        }
        json_object_set_new(user, "text", json_string(
            "You did not call a tool. Call profile_kernel with the complete source of "
            "your next kernel (code goes in the tool call, not in prose), or answer "
            "DONE if nothing is left worth trying."));
        kind = "nudge";
    }
    props_free(props, np);
    if (record_user(a, ctx, cv, kind, user, err, errlen))
        return R_ERROR;
    return R_ASK;
}

/* ----------------------------------------------------------- asking */

static int budget_spent(agent_t *a, const agent_context_t *ctx, const llm_conv_t *cv,
                        char *err, size_t errlen)
{
    long long tin, tout;
    double cost, secs;
    totals(cv, &tin, &tout, &cost, &secs);
    if (a->conf.token_budget > 0 && tin + tout >= a->conf.token_budget) {
        snprintf(err, errlen, "%s: the token budget is spent (%lld of %lld tokens, "
                 "about $%.2f)", a->prov->name, tin + tout, a->conf.token_budget, cost);
        return 1;
    }
    if (a->conf.wall_budget_s > 0) {
        size_t i;
        const json_t *it;
        json_array_foreach(ctx->history, i, it)
            if (json_integer_value(json_object_get(it, "iter")) > 0)
                secs += json_number_value(json_object_get(it, "elapsed_s"));
        if (secs >= a->conf.wall_budget_s) {
            snprintf(err, errlen, "%s: the wall-time budget is spent (%.0f of %.0f s)",
                     a->prov->name, secs, a->conf.wall_budget_s);
            return 1;
        }
    }
    return 0;
}

static int ask(agent_t *a, const agent_context_t *ctx, llm_conv_t *cv,
               const char *system, const json_t *tools, char *err, size_t errlen)
{
    const llm_provider_t *p = a->prov;
    json_t *msgs = llm_history_messages(p, cv, ctx->history, a->conf.history_keep);
    json_t *body = p->request(&a->conf, system, tools, msgs);
    json_decref(msgs);
    char *bs = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!bs) {
        snprintf(err, errlen, "%s: could not build the request", p->name);
        return -1;
    }
    /* The key is read here, used, and wiped with the header buffer. */
    const char *key = getenv(a->conf.key_env);
    int have_key = key && *key;
    llm_headers_t h;
    llm_headers_init(&h);
    p->headers(&a->conf, have_key ? key : NULL, &h);
    llm_http_reply_t hr;
    char herr[512] = "";
    double t0 = clock_mono_s();
    int rc = llm_http_post_json(a->conf.url, h.ptr, bs, &a->conf.http, &hr, herr,
                                sizeof herr);
    double elapsed = clock_mono_s() - t0;
    llm_headers_wipe(&h);
    free(bs);
    if (rc != 0) {
        snprintf(err, errlen, "%s: no answer: %s", p->name, herr);
        record_note(a, ctx, "error", json_pack("{s:s, s:s, s:i}", "kind", "error",
                                               "error", herr, "attempts", hr.attempts));
        llm_http_reply_free(&hr);
        return -1;
    }
    json_error_t je;
    json_t *reply = json_loadb(hr.body, hr.len, 0, &je);
    if (hr.status < 200 || hr.status >= 300) {
        const char *msg = llm_error_text(reply);
        char shown[400];
        snprintf(shown, sizeof shown, "%s", msg ? msg : (hr.body ? hr.body : ""));
        if (hr.status == 401 || hr.status == 403)
            snprintf(err, errlen, "%s: authentication failed (HTTP %ld from %s): %s. "
                     "%s %s (the key is read from the environment only)", p->name,
                     hr.status, a->conf.url, shown, a->conf.key_env,
                     have_key ? "holds a key the server refuses; set it to a valid one"
                              : "is not set; set it to a valid key");
        else {
            const char *hint = p->hint(hr.status, msg);
            snprintf(err, errlen, "%s: HTTP %ld from %s after %d attempt%s: %s%s%s",
                     p->name, hr.status, a->conf.url, hr.attempts,
                     hr.attempts == 1 ? "" : "s", shown, hint ? ". Hint: " : "",
                     hint ? hint : "");
        }
        record_note(a, ctx, "error", json_pack("{s:s, s:I, s:s, s:s, s:i}", "kind",
                                               "error", "status", (json_int_t)hr.status,
                                               "error", shown, "request_id",
                                               hr.request_id, "attempts", hr.attempts));
        json_decref(reply);
        llm_http_reply_free(&hr);
        return -1;
    }
    if (!json_is_object(reply)) {
        snprintf(err, errlen, "%s: the reply from %s is not a JSON object (%s)", p->name,
                 a->conf.url, reply ? "wrong type" : je.text);
        json_decref(reply);
        llm_http_reply_free(&hr);
        return -1;
    }
    size_t n = json_array_size(cv->records);
    int turn = n ? turn_of(json_array_get(cv->records, n - 1)) + 1 : 0;
    p->normalize(reply, turn);
    llm_reply_t probe;
    if (p->decode(reply, &probe, err, errlen)) {
        json_decref(reply);
        llm_http_reply_free(&hr);
        return -1;
    }
    long long tin = probe.tokens_in, tout = probe.tokens_out;
    llm_reply_free(&probe);
    json_t *content = json_pack("{s:s, s:s, s:o, s:I, s:I, s:f, s:f, s:i}", "kind",
                                "reply", "model", a->conf.model, "reply", reply,
                                "tokens_in", (json_int_t)tin, "tokens_out",
                                (json_int_t)tout, "cost_usd",
                                llm_cost_usd(&a->conf, tin, tout), "elapsed_s", elapsed,
                                "attempts", hr.attempts);
    if (hr.request_id[0])
        json_object_set_new(content, "request_id", json_string(hr.request_id));
    llm_http_reply_free(&hr);
    return conv_record(a, ctx, cv, "assistant", content, tin, tout, err, errlen);
}

/* ------------------------------------------------------------ the agent */

int llm_agent_create(const llm_provider_t *p, const json_t *config, const task_t *task,
                     agent_t **out, char *err, size_t errlen)
{
    (void)task;
    *out = NULL;
    agent_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->prov = p;
    if (llm_conf_parse(p, config, &a->conf, err, errlen)) {
        free(a);
        return -1;
    }
    const char *key = getenv(a->conf.key_env);
    if ((p->key_required || strstr(a->conf.base_url, "api.openai.com")) &&
        (!key || !*key)) {
        snprintf(err, errlen, "%s: %s is not set; export your API key in it (keys are "
                 "read from the environment only, never stored)", p->name,
                 a->conf.key_env);
        free(a);
        return -1;
    }
    a->journal = json_array();
    *out = a;
    return 0;
}

void llm_agent_destroy(agent_t *a)
{
    if (!a)
        return;
    json_decref(a->journal);
    free(a);
}

int llm_agent_propose(agent_t *a, const agent_context_t *ctx, agent_proposal_t *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    llm_conv_t cv;
    if (conv_load(a, ctx, &cv, err, errlen)) {
        conv_free(&cv);
        return AGENT_ERROR;
    }
    int status = AGENT_ERROR;
    /* A new conversation: the system prompt and the task, recorded first so
     * a resume replays exactly what the model saw. */
    if (json_array_size(cv.records) == 0) {
        char *sys = llm_system_prompt(ctx);
        json_t *c = json_pack("{s:s, s:s, s:o}", "kind", "system", "system",
                              sys ? sys : "", "tools", llm_tool_defs(ctx));
        free(sys);
        if (conv_record(a, ctx, &cv, "system", c, 0, 0, err, errlen))
            goto done;
    }
    if (json_array_size(cv.records) == 1) {
        char *task = llm_task_prompt(ctx);
        int rc = record_user(a, ctx, &cv, "prompt",
                             json_pack("{s:[], s:s}", "results", "text", task ? task : ""),
                             err, errlen);
        free(task);
        if (rc)
            goto done;
    }
    const json_t *sysrec = json_array_get(cv.records, 0);
    const char *system = json_string_value(json_object_get(sysrec, "system"));
    const json_t *tools = json_object_get(sysrec, "tools");
    if (strcmp(kind_of(sysrec), "system") != 0 || !system) {
        snprintf(err, errlen, "%s: the stored conversation has no system record",
                 a->prov->name);
        goto done;
    }
    conv_map(&cv, ctx->history);
    for (int calls = 0;;) {
        const json_t *last = json_array_get(cv.records, json_array_size(cv.records) - 1);
        if (strcmp(kind_of(last), "reply") == 0) {
            int r = resolve(a, ctx, &cv, out, err, errlen);
            if (r == R_PROPOSE) {
                status = AGENT_OK;
                goto done;
            }
            if (r == R_DONE) {
                record_note(a, ctx, "note", json_pack("{s:s, s:s}", "kind", "done",
                                                      "reason", err));
                status = AGENT_DONE;
                goto done;
            }
            if (r == R_ERROR)
                goto done;
        }
        if (budget_spent(a, ctx, &cv, err, errlen)) {
            status = AGENT_DONE;
            goto done;
        }
        if (calls >= a->conf.max_calls) {
            snprintf(err, errlen, "%s: %d model calls without a kernel to profile "
                     "(agent_config.max_calls_per_iter)", a->prov->name, calls);
            status = AGENT_DONE;
            goto done;
        }
        if (ask(a, ctx, &cv, system, tools, err, errlen))
            goto done;
        calls++;
    }
done:
    if (status != AGENT_OK)
        proposal_clear(out);
    conv_free(&cv);
    return status;
}
