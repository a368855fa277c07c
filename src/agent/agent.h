/*
 * agent.h -- the one interface every agent implements: "given the task and
 * the history, propose the next candidate and say why".
 *
 * The cook loop (src/cook/) calls propose() once per iteration, then has a
 * worker compile, validate and profile the proposal, records the outcome in
 * the store and appends it to the history before the next call.  An agent
 * whose ops say "batch" is asked for several candidates at once (one per
 * worker): between those calls the history ends with the candidates already
 * proposed, as iterations with status "pending" (iter, label, params), and
 * each call must propose something not among them.
 * An agent must be a function of (task, device, history) plus its own
 * configuration, so a resumed run continues exactly where it stopped: keep
 * no state that the history does not hold (an LLM agent rebuilds its
 * conversation from the history and the stored messages).
 *
 * Adding an agent or LLM provider: one file in src/agent/ that defines an
 * agent_ops_t and one line in agent_registry (agent.c).
 */
#ifndef EMILE_AGENT_H
#define EMILE_AGENT_H

#include <jansson.h>
#include <stddef.h>
#include "task/task.h"

enum {
    AGENT_OK = 0,      /* a proposal was made */
    AGENT_DONE = 1,    /* nothing more to try; the loop ends */
    AGENT_ERROR = -1   /* err holds the reason; the loop stops the run */
};

/* Tools the harness offers an agent (the same the builtin agent, an LLM and
 * the user get).  Each returns 0 and a reply object, or -1 with err. */
typedef struct agent_tools {
    void *ctx;
    /* Compile, validate and profile a kernel without recording it as an
     * iteration (LLM "hardware_counters" uses options {"counters": true}). */
    int (*evaluate)(void *ctx, const char *source, const json_t *options,
                    json_t **reply, char *err, size_t errlen);
    /* Record one LLM request/reply pair with the run (never the key). */
    void (*record_message)(void *ctx, const char *role, const json_t *content,
                           long long tokens_in, long long tokens_out);
} agent_tools_t;

typedef struct agent_context {
    const task_t *task;
    const json_t *task_json;   /* canonical task (as stored) */
    const json_t *device;      /* {"backend","name","ceilings":{...},...} */
    const json_t *history;     /* array of iteration objects (store.h shape);
                                  history[0] is the reference */
    const json_t *messages;    /* stored LLM messages of this run (resume) */
    int next_iter;             /* the iteration number being proposed */
    int best_iter;             /* best valid iteration so far (0 = reference) */
    const agent_tools_t *tools;
} agent_context_t;

typedef struct agent_proposal {
    char *source;      /* full kernel source (malloc'd) */
    char *label;       /* short name, e.g. "flash bq=32 bk=64 t=2" */
    char *reason;      /* why, in words (malloc'd) */
    json_t *params;    /* template parameters, or NULL */
} agent_proposal_t;

typedef struct agent agent_t;

typedef struct agent_ops {
    const char *name;
    const char *summary;
    /* config: the task's agent_config (model, base_url, ...). */
    int (*create)(const json_t *config, const task_t *task, agent_t **out,
                  char *err, size_t errlen);
    int (*propose)(agent_t *a, const agent_context_t *ctx, agent_proposal_t *out,
                   char *err, size_t errlen);
    void (*destroy)(agent_t *a);
    int batch;         /* 1: may be asked again before the last proposal is
                          measured (see above); 0: one candidate at a time */
} agent_ops_t;

const agent_ops_t *agent_find(const char *name);
void agent_proposal_free(agent_proposal_t *p);

#endif
