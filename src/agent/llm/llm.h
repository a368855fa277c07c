/*
 * llm.h -- the inside of the LLM agents (src/agent/llm/).  Two providers
 * (anthropic.c, openai.c) speak their wire protocols; everything else is
 * shared and provider-neutral:
 *
 *   conv.c     the conversation engine behind propose(): rebuilds the
 *              conversation from the stored messages and the history, asks
 *              the model, runs the inline tools, returns a proposal
 *   config.c   agent_config -> llm_conf_t
 *   cost.c     token prices by model prefix (estimates)
 *   prompt.c   the system prompt and the task message
 *   tools.c    tool schemas and the inline tools' answers
 *   fence.c    code fenced in prose: find it, elide it
 *   history.c  the bounded history: old iterations summarised
 *   http.c     POST with the SDKs' retry policy
 *
 * Records.  Every turn of a conversation is recorded with the run through
 * tools->record_message (the key never is).  A record's content is a JSON
 * object {"provider", "turn" (0, 1, ...), "kind", ...}:
 *   role "system"     kind "system": "system" (text), "tools" (neutral defs)
 *   role "user"       kind "prompt" | "tool_results" | "nudge" | "cut" |
 *                     "prose_result": "user": a neutral user turn
 *                     {"results": [{"id","name","content","is_error"}],
 *                      "text": "...", "fenced_id": "..."}
 *   role "assistant"  kind "reply": "reply" (the provider's reply body as
 *                     received, tool-call ids filled in where a local server
 *                     left them out), "model", "tokens_in", "tokens_out",
 *                     "cost_usd", "elapsed_s", "attempts"
 *   role "error"      kind "error": "status", "error" (not replayed)
 *   role "note"       kind "done": "reason" (why the agent stopped; not
 *                     replayed)
 * A request is therefore stored as its new part: the system record, then
 * every user turn; the rest of each request is the earlier records.
 */
#ifndef EMILE_LLM_H
#define EMILE_LLM_H

#include <jansson.h>
#include <stddef.h>
#include "../agent.h"
#include "http.h"

/* The tool names, as the model sees them. */
#define LLM_TOOL_PROFILE  "profile_kernel"
#define LLM_TOOL_COUNTERS "hardware_counters"
#define LLM_TOOL_REF      "get_reference"
#define LLM_TOOL_BEST     "get_best"

/* ------------------------------------------------------------------ config */

typedef struct llm_conf {
    char model[128];
    char base_url[512];
    char url[640];              /* the endpoint, base_url + provider path */
    char key_env[64];           /* the variable the key is read from */
    int max_tokens;             /* per reply */
    int has_temperature;
    double temperature;
    llm_http_conf_t http;       /* timeout_s, max_retries, backoff */
    long long token_budget;     /* tokens in + out for the run; 0: none */
    double wall_budget_s;       /* model + evaluation seconds; 0: none */
    int history_keep;           /* newest iterations kept whole */
    int max_calls;              /* model calls per proposal */
    double price_in, price_out; /* USD per million tokens; < 0: table */
    char tool_choice[32];       /* openai: "auto" (default), "" omits it */
    char max_tokens_field[32];  /* openai: "max_tokens" or
                                   "max_completion_tokens" */
} llm_conf_t;

typedef struct llm_provider llm_provider_t;

/*
 * Fill c from the task's agent_config (may be NULL) and the provider's
 * defaults.  Keys: model, base_url, max_tokens, temperature, timeout_s,
 * connect_timeout_s, max_retries, retry_base_s, retry_max_s, token_budget,
 * wall_budget_s, history_keep, max_calls_per_iter, api_key_env,
 * price_in_per_mtok, price_out_per_mtok, tool_choice, max_tokens_field.
 * A key "api_key" is refused: keys come from the environment only.
 * Returns 0, or -1 with err naming the bad key.
 */
int llm_conf_parse(const llm_provider_t *p, const json_t *cfg, llm_conf_t *c,
                   char *err, size_t errlen);

/* ------------------------------------------------------------------- cost */

/* Estimated USD per million input/output tokens for a model name, by the
 * longest matching prefix of a built-in table; 0 and 0 (and return 0) when
 * the model is unknown (a local model costs nothing).  Returns 1 if known. */
int llm_price(const char *model, double *in_per_mtok, double *out_per_mtok);

/* Estimated cost of one reply under c (its price overrides, else the
 * table). */
double llm_cost_usd(const llm_conf_t *c, long long tokens_in, long long tokens_out);

/* ------------------------------------------------------------ the replies */

typedef enum llm_stop {
    LLM_STOP_END = 0,     /* end_turn / stop / stop_sequence */
    LLM_STOP_TOOL,        /* tool_use / tool_calls */
    LLM_STOP_LENGTH,      /* max_tokens / length: the reply is cut */
    LLM_STOP_PAUSE,       /* anthropic pause_turn: send it back to go on */
    LLM_STOP_REFUSAL,     /* refusal / content_filter */
    LLM_STOP_CONTEXT,     /* model_context_window_exceeded */
    LLM_STOP_OTHER
} llm_stop_t;

typedef struct llm_call {
    char *id;
    char *name;
    json_t *args;         /* an object, or NULL when args_error is set */
    char *args_error;     /* why the arguments cannot be used */
} llm_call_t;

typedef struct llm_reply {
    json_t *message;      /* the native assistant message to echo back */
    char *text;           /* the text blocks, joined ("" if none) */
    llm_call_t *calls;
    int n_calls;
    llm_stop_t stop;
    char stop_raw[48];    /* the provider's word */
    long long tokens_in, tokens_out;
} llm_reply_t;

void llm_reply_free(llm_reply_t *r);
/* Append one call (copies strings; takes a reference to args). */
int llm_reply_add_call(llm_reply_t *r, const char *id, const char *name,
                       json_t *args, const char *args_error);

/* ---------------------------------------------------------- the providers */

#define LLM_MAX_HEADERS 8
typedef struct llm_headers {
    char line[LLM_MAX_HEADERS][1024];
    const char *ptr[LLM_MAX_HEADERS + 1];  /* NULL-terminated, for http.c */
    int n;
} llm_headers_t;

void llm_headers_init(llm_headers_t *h);
void llm_headers_add(llm_headers_t *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Overwrite every line (the key was in one) before the buffer goes. */
void llm_headers_wipe(llm_headers_t *h);

struct llm_provider {
    const char *name;              /* "anthropic" | "openai" */
    const char *key_env;           /* default key variable */
    int key_required;              /* 0: local servers need none */
    const char *default_base_url;
    const char *default_model;
    /* The endpoint for a base URL (c->base_url) into c->url. */
    void (*endpoint)(llm_conf_t *c);
    /* Header lines of one request; key is NULL when none is set. */
    void (*headers)(const llm_conf_t *c, const char *key, llm_headers_t *h);
    /* The request body from the system text, the neutral tool definitions
     * ([{"name","description","parameters"}]) and the native messages. */
    json_t *(*request)(const llm_conf_t *c, const char *system,
                       const json_t *tools, const json_t *messages);
    /* Append a neutral user turn as native message(s); 0 on success. */
    int (*append_user)(json_t *messages, const json_t *user);
    /* Give a reply body's tool calls ids where a server left them out,
     * derived from the turn number so a rebuild finds the same ones. */
    void (*normalize)(json_t *body, int turn);
    /* Decode a reply body; 0, or -1 with err. */
    int (*decode)(const json_t *body, llm_reply_t *out, char *err, size_t errlen);
    /* A copy of a native assistant message whose calls named in `elide`
     * (object: call id -> placeholder) carry the placeholder instead of
     * their source, and whose fenced code is elided when elide has the key
     * "#fenced".  New reference. */
    json_t *(*compact)(const json_t *message, const json_t *elide);
    /* A sentence added to an HTTP error (e.g. how to enable tools on a
     * local server), or NULL. */
    const char *(*hint)(long status, const char *message);
};

extern const llm_provider_t llm_provider_anthropic;
extern const llm_provider_t llm_provider_openai;

/* ------------------------------------------------------- the conversation */

/* One run's conversation as rebuilt for one propose() call. */
typedef struct llm_conv {
    json_t *records;       /* record contents, ordered by turn */
    llm_reply_t *replies;  /* parallel to records; zeroed for non-replies */
    size_t cap;
    json_t *call_iter;     /* call id (or "<turn>#fenced") -> iteration */
} llm_conv_t;

/* The agent handle shared by both providers (agent.h's opaque agent_t). */
struct agent {
    const llm_provider_t *prov;
    llm_conf_t conf;
    json_t *journal;       /* records written by this process: a cache of
                              the store, for a caller whose ctx->messages
                              is a snapshot taken before them */
};

int llm_agent_create(const llm_provider_t *p, const json_t *config,
                     const task_t *task, agent_t **out, char *err, size_t errlen);
int llm_agent_propose(agent_t *a, const agent_context_t *ctx,
                      agent_proposal_t *out, char *err, size_t errlen);
void llm_agent_destroy(agent_t *a);

/* ----------------------------------------------------------------- prompt */

/* The system prompt: role, kernel ABI, validation rules, how to use the
 * tools.  malloc'd. */
char *llm_system_prompt(const agent_context_t *ctx);
/* The first user message: the op's contract, the parameters, the device and
 * its measured ceilings, the reference (source and profile), the target.
 * malloc'd. */
char *llm_task_prompt(const agent_context_t *ctx);

/* ------------------------------------------------------------------ tools */

/* The neutral tool definitions [{"name","description","parameters"}]. */
json_t *llm_tool_defs(const agent_context_t *ctx);
int llm_tool_known(const char *name);
/* Answer an inline tool call (hardware_counters, get_reference, get_best;
 * anything else is an error answer): {"id","name","content","is_error"}. */
json_t *llm_tool_answer(const agent_context_t *ctx, const llm_call_t *call);
/* The answer to a profile_kernel call from its recorded iteration. */
json_t *llm_tool_iteration_answer(const agent_context_t *ctx, const char *id,
                                  const json_t *iteration);
/* An error answer. */
json_t *llm_tool_error(const char *id, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The iteration of the history with that number, or NULL. */
const json_t *llm_history_find(const json_t *history, int iter);

/* ------------------------------------------------------------------ fence */

/* The kernel in a reply's prose: the last closed ``` block that defines
 * emile_kernel (preferring c/cuda/cpp-tagged ones); malloc'd, or NULL. */
char *llm_fence_extract(const char *text);
/* text with the body of every closed ``` block replaced by placeholder;
 * malloc'd. */
char *llm_fence_elide(const char *text, const char *placeholder);

/* ---------------------------------------------------------------- history */

/* One line for an iteration: status, time, GFLOP/s, share of roofline,
 * bound, speedup, then the diagnosis tags with their details.  malloc'd. */
char *llm_iteration_line(const json_t *iteration);
/* The same for a bare profile report (hardware_counters answers). */
char *llm_report_line(const json_t *report);

/*
 * The native messages of a request: the conversation with every iteration
 * older than the newest `keep` summarised (its source replaced by a
 * placeholder, its answer by its one line) and old inline-tool answers
 * shortened, so a long run fits the context window.  New reference.
 */
json_t *llm_history_messages(const llm_provider_t *p, const llm_conv_t *cv,
                             const json_t *history, int keep);

/* --------------------------------------------------------------- helpers */

/* malloc'd printf. */
char *llm_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The error text of an error body (Anthropic {"error":{"message"}},
 * OpenAI {"error":{"message"}}, vLLM {"message"}), or NULL. */
const char *llm_error_text(const json_t *body);

#endif
