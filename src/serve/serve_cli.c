/* serve_cli.c -- `emile serve`: options, the printed address, and a clean
 * stop on SIGINT/SIGTERM. */
#include "serve.h"
#include "store/store.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#define MAX_LLM_BASE_URLS 16

static const char usage[] =
    "usage: emile serve [--host HOST] [--port PORT] [--token TOKEN] [--store PATH]\n"
    "                   [--emile PATH] [--examples DIR] [--model DIR] [--taste-timeout S]\n"
    "                   [--llm-base-url URL]...\n"
    "\n"
    "Serves the web UI (the Kitchen and the Tasting Room) and its API.\n"
    "  --host HOST      address to bind (default 127.0.0.1); any other than loopback\n"
    "                   needs an access token, generated and printed when not given\n"
    "  --port PORT      port (default 8080; 0 picks a free one)\n"
    "  --token TOKEN    access token every API call must carry\n"
    "  --store PATH     the run store (default $EMILE_STORE, else\n"
    "                   ~/.local/share/emile/runs.db)\n"
    "  --emile PATH     the emile binary that cooks (default: this one)\n"
    "  --examples DIR   ready tasks for the Kitchen (default: the examples/ folder\n"
    "                   beside the binary's build folder, else ./examples)\n"
    "  --model DIR      a Qwen3 checkpoint (Hugging Face layout) for the Tasting\n"
    "                   Room; without it, random weights of a named shape\n"
    "  --taste-timeout S  a tasting still running after S seconds is killed and\n"
    "                   reported as such (default 1800)\n"
    "  --llm-base-url URL  a base_url the page may give an LLM agent, exactly URL\n"
    "                   (repeatable); without it a cook from the page may not set\n"
    "                   base_url, and the agents use their providers' endpoints\n"
    "LLM agents read their API keys from this server's environment (ANTHROPIC_API_KEY,\n"
    "OPENAI_API_KEY); a cook from the page may neither name another variable\n"
    "(api_key_env) nor hold a key.\n";

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* examples/ of the source tree the binary was built in (build/emile ->
 * ../examples), else ./examples; NULL when neither exists. */
static const char *default_examples(char *buf, size_t n)
{
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        snprintf(buf, n, "%s/../examples", dirname(exe));
        if (is_dir(buf))
            return buf;
    }
    snprintf(buf, n, "examples");
    return is_dir(buf) ? buf : NULL;
}

/* The value of --name VALUE or --name=VALUE at argv[*i]; NULL if argv[*i]
 * is not that option.  Sets *missing when the value is absent. */
static const char *opt(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != 0)
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int serve_main(int argc, char **argv)
{
    serve_config_t cfg;
    serve_config_init(&cfg);
    char exbuf[PATH_MAX];
    const char *examples = NULL;
    const char *llm_urls[MAX_LLM_BASE_URLS];
    size_t n_llm_urls = 0;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if ((v = opt(argc, argv, &i, "--host", &missing))) {
            cfg.host = v;
        } else if ((v = opt(argc, argv, &i, "--port", &missing))) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*v == 0 || *end || p < 0 || p > 65535) {
                fprintf(stderr, "emile serve: --port needs a number in 0..65535 (got '%s')\n", v);
                return 2;
            }
            cfg.port = (int)p;
        } else if ((v = opt(argc, argv, &i, "--token", &missing))) {
            cfg.token = v;
        } else if ((v = opt(argc, argv, &i, "--store", &missing))) {
            cfg.store_path = v;
        } else if ((v = opt(argc, argv, &i, "--emile", &missing))) {
            cfg.emile_path = v;
        } else if ((v = opt(argc, argv, &i, "--examples", &missing))) {
            examples = v;
        } else if ((v = opt(argc, argv, &i, "--model", &missing))) {
            cfg.model_dir = v;
        } else if ((v = opt(argc, argv, &i, "--taste-timeout", &missing))) {
            char *end;
            double t = strtod(v, &end);
            if (*v == 0 || *end || !(t >= 1 && t <= 86400)) {
                fprintf(stderr, "emile serve: --taste-timeout needs seconds in 1..86400 (got '%s')\n",
                        v);
                return 2;
            }
            cfg.taste_timeout_s = t;
        } else if ((v = opt(argc, argv, &i, "--llm-base-url", &missing))) {
            if (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0) {
                fprintf(stderr, "emile serve: --llm-base-url needs an http:// or https:// URL "
                                "(got '%s')\n", v);
                return 2;
            }
            if (n_llm_urls == MAX_LLM_BASE_URLS) {
                fprintf(stderr, "emile serve: at most %d --llm-base-url\n", MAX_LLM_BASE_URLS);
                return 2;
            }
            llm_urls[n_llm_urls++] = v;
        } else {
            fprintf(stderr, missing ? "emile serve: %s needs a value\n%s"
                                    : "emile serve: unknown option '%s'\n%s",
                    argv[i], usage);
            return 2;
        }
        if (missing) {
            fprintf(stderr, "emile serve: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    char err[1024];
    if (cfg.store_path && store_check_named_path(cfg.store_path, err, sizeof err) != 0) {
        fprintf(stderr, "emile serve: --store %s: %s\n", cfg.store_path, err);
        return 2;
    }
    cfg.examples_dir = examples ? examples : default_examples(exbuf, sizeof exbuf);
    cfg.llm_base_urls = llm_urls;
    cfg.n_llm_base_urls = n_llm_urls;

    /* Block the stop signals in every thread (the server's threads inherit
     * this mask) and wait for them here; children start with a clean mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    serve_t *s;
    if (serve_start(&cfg, &s, err, sizeof err) != 0) {
        fprintf(stderr, "emile serve: %s\n", err);
        return 1;
    }
    const char *tok = serve_token(s);
    const char *h = cfg.host;
    int v6 = strchr(h, ':') != NULL;
    printf("emile serve: the Kitchen is open at http://%s%s%s:%d/%s%s\n", v6 ? "[" : "", h,
           v6 ? "]" : "", serve_port(s), tok ? "?token=" : "", tok ? tok : "");
    if (tok && !cfg.token)
        printf("emile serve: access token (generated): %s\n", tok);
    printf("emile serve: run store %s; Ctrl-C stops\n", serve_store_path(s));
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    /* A second Ctrl-C while cooks finish their candidate ends us at once. */
    pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
    fprintf(stderr, "emile serve: stopping (running cooks finish their candidate)\n");
    serve_stop(s);
    return 0;
}
