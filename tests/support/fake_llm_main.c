/*
 * fake_llm_main.c -- the scripted LLM server as a program, for end-to-end
 * tests that run `emile cook --agent anthropic|openai` against it.
 *
 *   fake-llm SCRIPT.json [--port-file FILE] [--timeout SECONDS]
 *
 * Prints "PORT URL" on stdout (and the port alone into FILE), serves until
 * every step is served, optional ones included (then half a second more
 * for the last reply to go out), or SIGTERM/SIGINT, or the timeout
 * (default 300 s); then prints the failed checks on stderr and exits 0
 * only when every check passed and every non-optional step was served.
 * So a test starts it in the background, runs the cook, sends SIGTERM (it
 * may have ended already) and waits for its exit status.
 *
 * The main is compiled only with -DFAKE_LLM_MAIN, because every file in
 * tests/support also goes into the test library, which must not define
 * main.
 */
#include "fake_llm_server.h"

typedef int fake_llm_main_unit_t;   /* keeps the file non-empty without main */

#ifdef FAKE_LLM_MAIN
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_now;

static void on_signal(int sig)
{
    (void)sig;
    stop_now = 1;
}

int main(int argc, char **argv)
{
    const char *script = NULL, *port_file = NULL;
    double timeout = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port-file") && i + 1 < argc)
            port_file = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout = atof(argv[++i]);
        else if (argv[i][0] != '-' && !script)
            script = argv[i];
        else {
            fprintf(stderr, "usage: fake-llm SCRIPT.json [--port-file FILE] "
                    "[--timeout SECONDS]\n");
            return 2;
        }
    }
    if (!script) {
        fprintf(stderr, "usage: fake-llm SCRIPT.json [--port-file FILE] "
                "[--timeout SECONDS]\n");
        return 2;
    }
    char err[512];
    fake_llm_t *f = fake_llm_start_file(script, err, sizeof err);
    if (!f) {
        fprintf(stderr, "fake-llm: %s\n", err);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("%d %s\n", fake_llm_port(f), fake_llm_url(f));
    fflush(stdout);
    if (port_file) {
        /* Written whole, then renamed, so a reader never sees half. */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *pf = fopen(tmp, "w");
        if (!pf || fprintf(pf, "%d\n", fake_llm_port(f)) < 0 || fclose(pf) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, "fake-llm: cannot write %s\n", port_file);
            fake_llm_stop(f);
            return 2;
        }
    }
    /* Optional steps are served too if asked for, so only a signal, the
     * timeout or the end of the whole script ends the wait. */
    struct timespec tick = {0, 100000000L};
    for (double waited = 0; !stop_now && waited < timeout && fake_llm_remaining(f) > 0;
         waited += 0.1)
        nanosleep(&tick, NULL);
    if (!stop_now) {
        struct timespec grace = {0, 500000000L};   /* let the last reply go out */
        nanosleep(&grace, NULL);
    }
    static char fails[1 << 16];
    int nf = fake_llm_failures(f, fails, sizeof fails);
    int pending = fake_llm_pending(f);
    fprintf(stderr, "fake-llm: %d requests, %d checks failed, %d steps not served\n",
            fake_llm_requests(f), nf, pending);
    if (nf)
        fputs(fails, stderr);
    fake_llm_stop(f);
    return (nf == 0 && pending == 0) ? 0 : 1;
}
#endif
