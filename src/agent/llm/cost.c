/*
 * cost.c -- estimated prices, USD per million tokens, by model prefix.
 *
 * These are ESTIMATES from the providers' public price lists as known when
 * this table was written (2025); they are not fetched and will drift.  They
 * exist so a run's summary can say roughly what it cost; the providers'
 * own consoles are the truth.  agent_config.price_in_per_mtok and
 * price_out_per_mtok override the table.  Unknown models (local servers)
 * count as free.
 */
#include "llm.h"

#include <string.h>

typedef struct price {
    const char *prefix;
    double in, out;
} price_t;

/* The longest matching prefix wins, so order does not matter. */
static const price_t prices[] = {
    /* Anthropic */
    {"claude-opus-4-5", 5.0, 25.0},
    {"claude-opus-4", 15.0, 75.0},
    {"claude-3-opus", 15.0, 75.0},
    {"claude-sonnet-4", 3.0, 15.0},
    {"claude-3-7-sonnet", 3.0, 15.0},
    {"claude-3-5-sonnet", 3.0, 15.0},
    {"claude-haiku-4", 1.0, 5.0},
    {"claude-3-5-haiku", 0.8, 4.0},
    {"claude-3-haiku", 0.25, 1.25},
    /* OpenAI */
    {"gpt-5-nano", 0.05, 0.40},
    {"gpt-5-mini", 0.25, 2.0},
    {"gpt-5", 1.25, 10.0},
    {"gpt-4.1-nano", 0.10, 0.40},
    {"gpt-4.1-mini", 0.40, 1.60},
    {"gpt-4.1", 2.0, 8.0},
    {"gpt-4o-mini", 0.15, 0.60},
    {"gpt-4o", 2.5, 10.0},
    {"o4-mini", 1.1, 4.4},
    {"o3-mini", 1.1, 4.4},
    {"o3", 2.0, 8.0},
    {"o1", 15.0, 60.0},
};

int llm_price(const char *model, double *in, double *out)
{
    size_t best = 0;
    const price_t *hit = NULL;
    for (size_t i = 0; model && i < sizeof prices / sizeof prices[0]; i++) {
        size_t k = strlen(prices[i].prefix);
        if (k > best && strncmp(model, prices[i].prefix, k) == 0) {
            best = k;
            hit = &prices[i];
        }
    }
    *in = hit ? hit->in : 0.0;
    *out = hit ? hit->out : 0.0;
    return hit != NULL;
}

double llm_cost_usd(const llm_conf_t *c, long long tokens_in, long long tokens_out)
{
    double pin, pout;
    llm_price(c->model, &pin, &pout);
    if (c->price_in >= 0)
        pin = c->price_in;
    if (c->price_out >= 0)
        pout = c->price_out;
    return ((double)tokens_in * pin + (double)tokens_out * pout) / 1e6;
}
