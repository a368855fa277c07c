/*
 * llm_harness.h -- drives an LLM agent through agent_ops_t->propose() the
 * way the cook loop does, without a worker: a hand-built context, a fake
 * tools->evaluate, an in-memory message store, and iterations recorded with
 * the outcome the test chooses.
 */
#ifndef LLM_HARNESS_H
#define LLM_HARNESS_H

#include <jansson.h>
#include "agent/agent.h"

typedef struct llm_harness {
    task_t task;
    json_t *task_json;
    json_t *device;
    json_t *history;      /* iterations, history[0] the reference */
    json_t *messages;     /* store-shaped message records */
    int best_iter;
    agent_tools_t tools;
    int evals;            /* tools->evaluate calls */
    json_t *eval_opts;    /* the last call's options */
    char *eval_source;    /* the last call's source */
} llm_harness_t;

/* A small attention task on the cpu backend with a reference iteration. */
void llm_harness_init(llm_harness_t *h);
void llm_harness_free(llm_harness_t *h);

/* propose() with a context built from the harness; a fresh context each
 * call, as the cook loop does. */
int llm_harness_propose(llm_harness_t *h, const agent_ops_t *ops, agent_t *a,
                        agent_proposal_t *p, char *err, size_t errlen);
/* Record the proposal as the next iteration: status "valid" (with
 * roofline_pct pct) or another status with an error message. */
void llm_harness_record(llm_harness_t *h, const agent_proposal_t *p,
                        const char *status, double pct, const char *error);
void llm_harness_proposal_free(agent_proposal_t *p);

/* Messages recorded with a role, e.g. "assistant". */
int llm_harness_count(const llm_harness_t *h, const char *role);

#endif
