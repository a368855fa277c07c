/*
 * config.c -- the task's agent_config for an LLM agent, checked key by key
 * so a typo is an error rather than a silently ignored setting.
 */
#include "llm.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const known_keys[] = {
    "model", "base_url", "max_tokens", "temperature", "timeout_s",
    "connect_timeout_s", "max_retries", "retry_base_s", "retry_max_s",
    "token_budget", "wall_budget_s", "history_keep", "max_calls_per_iter",
    "api_key_env", "price_in_per_mtok", "price_out_per_mtok", "tool_choice",
    "max_tokens_field", NULL
};

static int get_num(const json_t *cfg, const char *key, double lo, double hi,
                   double *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v)) {
        snprintf(err, errlen, "agent_config.%s must be a number", key);
        return -1;
    }
    double d = json_number_value(v);
    if (d < lo || d > hi) {
        snprintf(err, errlen, "agent_config.%s = %g is outside [%g, %g]", key, d,
                 lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

static int get_str(const json_t *cfg, const char *key, char *out, size_t n,
                   char *err, size_t errlen)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= n) {
        snprintf(err, errlen, "agent_config.%s must be a string shorter than %zu",
                 key, n);
        return -1;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int llm_conf_parse(const llm_provider_t *p, const json_t *cfg, llm_conf_t *c,
                   char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    snprintf(c->model, sizeof c->model, "%s", p->default_model);
    snprintf(c->base_url, sizeof c->base_url, "%s", p->default_base_url);
    snprintf(c->key_env, sizeof c->key_env, "%s", p->key_env);
    snprintf(c->tool_choice, sizeof c->tool_choice, "auto");
    c->max_tokens = 8192;
    llm_http_conf_default(&c->http);
    /* A cook lasts hours; riding out an overload is worth more retries
     * than the SDKs' default of 2. */
    c->http.max_retries = 4;
    c->history_keep = 4;
    c->max_calls = 8;
    c->price_in = c->price_out = -1;

    if (cfg && !json_is_null(cfg)) {
        if (!json_is_object(cfg)) {
            snprintf(err, errlen, "agent_config must be an object");
            return -1;
        }
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)cfg, key, v) {
            int ok = 0;
            for (int i = 0; known_keys[i]; i++)
                ok |= strcmp(key, known_keys[i]) == 0;
            if (strcmp(key, "api_key") == 0 || strcmp(key, "key") == 0) {
                snprintf(err, errlen,
                         "agent_config.%s: keys are read from the environment "
                         "only (%s), never from a task file", key, c->key_env);
                return -1;
            }
            if (!ok) {
                snprintf(err, errlen, "agent_config: unknown key \"%s\"", key);
                return -1;
            }
        }
        double d;
        int rc = 0;
        rc |= get_str(cfg, "model", c->model, sizeof c->model, err, errlen);
        if (rc == 0)
            rc |= get_str(cfg, "base_url", c->base_url, sizeof c->base_url, err, errlen);
        if (rc == 0)
            rc |= get_str(cfg, "api_key_env", c->key_env, sizeof c->key_env, err, errlen);
        if (rc == 0)
            rc |= get_str(cfg, "tool_choice", c->tool_choice, sizeof c->tool_choice,
                          err, errlen);
        if (rc == 0)
            rc |= get_str(cfg, "max_tokens_field", c->max_tokens_field,
                          sizeof c->max_tokens_field, err, errlen);
        if (rc)
            return -1;
        d = c->max_tokens;
        if (get_num(cfg, "max_tokens", 1, 1e6, &d, err, errlen))
            return -1;
        c->max_tokens = (int)d;
        if (json_object_get(cfg, "temperature") &&
            !json_is_null(json_object_get(cfg, "temperature"))) {
            if (get_num(cfg, "temperature", 0, 2, &c->temperature, err, errlen))
                return -1;
            c->has_temperature = 1;
        }
        if (get_num(cfg, "timeout_s", 0.001, 86400, &c->http.timeout_s, err, errlen) ||
            get_num(cfg, "connect_timeout_s", 0.001, 3600, &c->http.connect_timeout_s,
                    err, errlen) ||
            get_num(cfg, "retry_base_s", 0, 600, &c->http.backoff_base_s, err, errlen) ||
            get_num(cfg, "retry_max_s", 0, 3600, &c->http.backoff_max_s, err, errlen) ||
            get_num(cfg, "wall_budget_s", 0, 1e9, &c->wall_budget_s, err, errlen) ||
            get_num(cfg, "price_in_per_mtok", 0, 1e6, &c->price_in, err, errlen) ||
            get_num(cfg, "price_out_per_mtok", 0, 1e6, &c->price_out, err, errlen))
            return -1;
        d = c->http.max_retries;
        if (get_num(cfg, "max_retries", 0, 100, &d, err, errlen))
            return -1;
        c->http.max_retries = (int)d;
        d = 0;
        if (get_num(cfg, "token_budget", 0, 1e15, &d, err, errlen))
            return -1;
        c->token_budget = (long long)d;
        d = c->history_keep;
        if (get_num(cfg, "history_keep", 1, 1000, &d, err, errlen))
            return -1;
        c->history_keep = (int)d;
        d = c->max_calls;
        if (get_num(cfg, "max_calls_per_iter", 1, 1000, &d, err, errlen))
            return -1;
        c->max_calls = (int)d;
    }
    if (!c->model[0]) {
        snprintf(err, errlen, "%s: agent_config.model is empty", p->name);
        return -1;
    }
    if (strncasecmp(c->base_url, "http://", 7) != 0 &&
        strncasecmp(c->base_url, "https://", 8) != 0) {
        snprintf(err, errlen, "%s: base_url \"%s\" must start with http:// or https://",
                 p->name, c->base_url);
        return -1;
    }
    if (c->max_tokens_field[0] && strcmp(c->max_tokens_field, "max_tokens") != 0 &&
        strcmp(c->max_tokens_field, "max_completion_tokens") != 0) {
        snprintf(err, errlen, "agent_config.max_tokens_field must be \"max_tokens\" "
                 "or \"max_completion_tokens\"");
        return -1;
    }
    /* Strip trailing slashes so endpoint joining is uniform. */
    size_t n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/')
        c->base_url[--n] = '\0';
    p->endpoint(c);
    return 0;
}
