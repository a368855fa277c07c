/* agent.c -- the agent registry.  A new agent: one file, one line here. */
#include "agent.h"

#include <stdlib.h>
#include <string.h>

extern const agent_ops_t agent_builtin_ops;
extern const agent_ops_t agent_anthropic_ops;
extern const agent_ops_t agent_openai_ops;

static const agent_ops_t *const registry[] = {&agent_builtin_ops, &agent_anthropic_ops, &agent_openai_ops};

const agent_ops_t *agent_find(const char *name)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

void agent_proposal_free(agent_proposal_t *p)
{
    free(p->source);
    free(p->label);
    free(p->reason);
    json_decref(p->params);
    memset(p, 0, sizeof *p);
}
