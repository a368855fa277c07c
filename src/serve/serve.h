/*
 * serve.h -- `emile serve`: the web UI (the Kitchen and the Tasting Room)
 * and its JSON API, served by the emile binary itself over libmicrohttpd.
 *
 * The server never runs candidate code and never writes kernels: to cook it
 * spawns the CLI (`EMILE cook TASKFILE --store STORE --events`) and relays
 * the child's NDJSON events to browsers over server-sent events; runs and
 * iterations are read straight from the run store.  One cook per device
 * (backend) at a time; further requests wait in a queue.
 *
 * Binding to an address other than loopback requires an access token; when
 * a token is set every API call must carry it (Authorization: Bearer TOKEN
 * or ?token=TOKEN).  The static pages themselves carry no data and are
 * served without it; the page takes the token from its own URL.
 *
 * A cook's agent_config from the page never chooses where the server's
 * API keys go or which of its variables is sent as one: "api_key_env"
 * (any "*_env") and credential-like keys are refused, and "base_url" too
 * unless it is one the server was started with (--llm-base-url).
 */
#ifndef EMILE_SERVE_H
#define EMILE_SERVE_H

#include <stddef.h>

typedef struct serve_config {
    const char *host;          /* default "127.0.0.1" */
    int port;                  /* 0: an ephemeral port (see serve_port) */
    const char *token;         /* NULL: none on loopback, generated elsewhere */
    const char *store_path;    /* the run store (created when absent) */
    const char *emile_path;    /* the CLI to spawn; default /proc/self/exe */
    const char *examples_dir;  /* ready tasks offered by /api/examples; NULL: none */
    const char *model_dir;     /* a Qwen3 checkpoint for the Tasting Room; NULL:
                                  random weights only */
    size_t max_body;           /* request body limit; 0: SERVE_MAX_BODY */
    int max_queue;             /* queued cooks per device; 0: SERVE_MAX_QUEUE */
    double stop_grace_s;       /* at shutdown: SIGTERM, then SIGKILL after this */
    double taste_timeout_s;    /* a tasting killed after this long; 0: SERVE_TASTE_TIMEOUT_S */
    double idle_timeout_s;     /* a connection without a request being answered is
                                  closed after this long (its next request, headers
                                  and body, must arrive within it); 0:
                                  SERVE_IDLE_TIMEOUT_S */
    int quiet;                 /* 1: log nothing to stderr (tests) */
    /* The base_url values a page may put in a cook's agent_config (each
     * copied; http:// or https://).  None: a page may not set base_url,
     * and the LLM agents send the server's keys to their own endpoints
     * only.  A page may never name the variable a key is read from. */
    const char *const *llm_base_urls;
    size_t n_llm_base_urls;
} serve_config_t;

#define SERVE_MAX_BODY (1u << 20)   /* 1 MiB: a kernel source and its task */
#define SERVE_MAX_QUEUE 16
#define SERVE_TASTE_TIMEOUT_S 1800.0  /* 30 min: qwen3-0.6b on a slow CPU */
#define SERVE_IDLE_TIMEOUT_S 10.0     /* a page's next request comes at once */

typedef struct serve serve_t;

/* Fill cfg with the defaults above. */
void serve_config_init(serve_config_t *cfg);

/* Open the store, bind and start serving on background threads.  Returns 0
 * and *out, or -1 with err (address in use, bad host, non-loopback host
 * without a way to make a token, store error).  Never exits the process. */
int serve_start(const serve_config_t *cfg, serve_t **out, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int serve_port(const serve_t *s);

/* The run store's path (the default resolved). */
const char *serve_store_path(const serve_t *s);

/* The token every API call must carry, or NULL when none is required. */
const char *serve_token(const serve_t *s);

/* Stop accepting, end event streams, stop running cooks (SIGTERM, then
 * SIGKILL after stop_grace_s), wait for every thread, free everything. */
void serve_stop(serve_t *s);

/* `emile serve [--host H] [--port P] [--token T] [--store PATH]
 * [--emile PATH] [--examples DIR] [--model DIR] [--taste-timeout S]
 * [--llm-base-url URL]...`: runs until SIGINT/SIGTERM.  Returns the
 * process exit status (0 after a clean stop, 2 on a usage error, 1 when the
 * server could not start). */
int serve_main(int argc, char **argv);

#endif
