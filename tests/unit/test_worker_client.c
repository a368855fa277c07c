/*
 * test_worker_client.c -- the orchestrator's side of the worker protocol
 * (src/worker/worker_client.c) against small shell workers: replies are
 * matched by id past banner lines, a dead worker is named with its exit
 * status, and a worker that never answers is stopped at the timeout
 * instead of hanging the cook -- also when it never reads its request (the
 * pipe fills), and later calls say why it is gone; a template that prompts
 * at our terminal (ssh) can read the answer when we are in its foreground;
 * progress events before a reply reach the callback, in order, and never
 * stand for the reply.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "worker/worker_client.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* A worker that prints a banner and a reply for another id before the
 * real one: only the reply with the request's id comes back. */
static void test_reply_matched_past_banner(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    const char *cmd = "read req; echo 'Welcome to gpu1'; echo '{\"id\":7,\"ok\":false}'; "
                      "echo '{\"id\":1,\"ok\":true,\"answer\":42}'; read more";
    assert_int_equal(worker_client_open(&w, cmd, err, sizeof err), 0);
    w.timeout_s = 20;
    json_t *req = json_pack("{ss}", "cmd", "devices");
    json_t *reply = worker_client_call(&w, req, err, sizeof err);
    assert_non_null(reply);
    assert_int_equal(json_integer_value(json_object_get(req, "id")), 1);
    assert_int_equal(json_integer_value(json_object_get(reply, "answer")), 42);
    json_decref(reply);
    json_decref(req);
    worker_client_close(&w);
    assert_int_equal(w.pid, 0);
}

/* Progress events (lines with "event" and the request's id) go to the
 * callback in order; the reply is the line without "event"; the request
 * asked for them.  Without a callback the same events are skipped. */
typedef struct seen {
    int n;
    char phases[8][32];
    int k[8];
} seen_t;

static void on_progress(const json_t *ev, void *user)
{
    seen_t *s = user;
    if (s->n < 8) {
        snprintf(s->phases[s->n], sizeof s->phases[s->n], "%s", json_string_value(json_object_get(ev, "phase")));
        s->k[s->n] = (int)json_integer_value(json_object_get(ev, "k"));
    }
    s->n++;
}

static void test_progress_events(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    /* The worker answers only a request that asked for progress. */
    const char *cmd = "while read req; do case \"$req\" in *'\"progress\":true'*) "
                      "echo '{\"event\":\"progress\",\"id\":1,\"phase\":\"compile\",\"k\":0,\"n\":0}'; "
                      "echo '{\"event\":\"progress\",\"id\":1,\"phase\":\"validate\",\"k\":2,\"n\":4}'; "
                      "echo '{\"id\":1,\"ok\":true,\"status\":\"valid\"}';; "
                      "*) echo '{\"event\":\"progress\",\"id\":2,\"phase\":\"time\"}'; "
                      "echo '{\"id\":2,\"ok\":true,\"status\":\"quiet\"}';; esac; done";
    assert_int_equal(worker_client_open(&w, cmd, err, sizeof err), 0);
    w.timeout_s = 20;
    seen_t seen = {0};
    json_t *req = json_pack("{ss}", "cmd", "evaluate");
    json_t *reply = worker_client_call_progress(&w, req, on_progress, &seen, err, sizeof err);
    assert_non_null(reply);
    assert_string_equal(json_string_value(json_object_get(reply, "status")), "valid");
    assert_true(json_is_true(json_object_get(req, "progress")));
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.phases[0], "compile");
    assert_string_equal(seen.phases[1], "validate");
    assert_int_equal(seen.k[1], 2);
    json_decref(reply);
    json_decref(req);
    /* The old call: no progress asked for, an event skipped all the same. */
    req = json_pack("{ss}", "cmd", "evaluate");
    reply = worker_client_call(&w, req, err, sizeof err);
    assert_non_null(reply);
    assert_string_equal(json_string_value(json_object_get(reply, "status")), "quiet");
    assert_null(json_object_get(req, "progress"));
    json_decref(reply);
    json_decref(req);
    worker_client_close(&w);
}

/* A long reply line arriving in many pieces is put back together. */
static void test_long_reply_in_pieces(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    const char *cmd = "read req; printf '{\"id\":1,\"pad\":\"'; "
                      "i=0; while [ $i -lt 300 ]; do printf '%0500d' 0; i=$((i+1)); done; "
                      "printf '\"}\\n'";
    assert_int_equal(worker_client_open(&w, cmd, err, sizeof err), 0);
    json_t *req = json_object();
    json_t *reply = worker_client_call(&w, req, err, sizeof err);
    assert_non_null(reply);
    assert_int_equal(strlen(json_string_value(json_object_get(reply, "pad"))), 300 * 500);
    json_decref(reply);
    json_decref(req);
    worker_client_close(&w);
}

/* A worker that exits without answering is named with its status. */
static void test_dead_worker_named(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    assert_int_equal(worker_client_open(&w, "read req; echo not json; exit 3", err, sizeof err), 0);
    json_t *req = json_object();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    assert_non_null(strstr(err, "exited with status 3"));
    assert_non_null(strstr(err, "without answering"));
    json_decref(req);
    worker_client_close(&w);
}

/* A worker killed by a signal says which. */
static void test_killed_worker_named(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    assert_int_equal(worker_client_open(&w, "read req; kill -9 $$", err, sizeof err), 0);
    json_t *req = json_object();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    assert_non_null(strstr(err, "killed by signal 9"));
    json_decref(req);
    worker_client_close(&w);
}

/* A worker that reads the request and never answers is stopped at the
 * timeout, and the call returns (well before the worker's own 60 s). */
static void test_hung_worker_times_out(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    assert_int_equal(worker_client_open(&w, "read req; exec sleep 60", err, sizeof err), 0);
    w.timeout_s = 0.5;
    pid_t pid = w.pid;
    json_t *req = json_object();
    double t0 = now_s();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    double took = now_s() - t0;
    assert_true(took >= 0.45 && took < 10);
    assert_non_null(strstr(err, "gave no answer within"));
    assert_non_null(strstr(err, "was stopped"));
    json_decref(req);
    worker_client_close(&w);
    /* reaped, not left behind */
    assert_int_equal(kill(pid, 0), -1);
}

/* A timeout ends the worker's whole group: what a template's shell
 * started (here a background sleep) is gone too, not orphaned. */
static void test_timeout_ends_the_group(void **state)
{
    (void)state;
    char pidfile[] = "/tmp/emile-test-wc-XXXXXX";
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "read req; sleep 60 & echo $! > %s; wait", pidfile);
    worker_client_t w;
    char err[512] = "";
    assert_int_equal(worker_client_open(&w, cmd, err, sizeof err), 0);
    w.timeout_s = 0.5;
    json_t *req = json_object();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    json_decref(req);
    worker_client_close(&w);
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int bg = 0;
    assert_int_equal(fscanf(f, "%d", &bg), 1);
    fclose(f);
    unlink(pidfile);
    assert_true(bg > 0);
    /* killed (a zombie until its reaper, init, collects it: give it time) */
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        char stat[64], buf[512] = "";
        snprintf(stat, sizeof stat, "/proc/%d/stat", bg);
        FILE *s = fopen(stat, "r");
        gone = !s || (fgets(buf, sizeof buf, s) && strstr(buf, ") Z "));
        if (s)
            fclose(s);
        if (!gone)
            usleep(20000);
    }
    assert_true(gone);
}

/* Writing to a worker that is already gone is an error, not SIGPIPE. */
static void test_write_to_gone_worker(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    assert_int_equal(worker_client_open(&w, "exec 0<&-; exit 5", err, sizeof err), 0);
    usleep(200000);
    json_t *req = json_pack("{ss}", "pad", "x");
    assert_null(worker_client_call(&w, req, err, sizeof err));
    assert_non_null(strstr(err, "status 5"));
    json_decref(req);
    worker_client_close(&w);
}

/* A worker that never reads its stdin: a request larger than the pipe
 * fills it, and the timeout covers the sending too (no blocking write). */
static void test_send_times_out(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    assert_int_equal(worker_client_open(&w, "exec sleep 60", err, sizeof err), 0);
    w.timeout_s = 0.5;
    pid_t pid = w.pid;
    size_t big = 4u << 20;
    char *pad = malloc(big + 1);
    assert_non_null(pad);
    memset(pad, 'x', big);
    pad[big] = 0;
    json_t *req = json_pack("{ss}", "pad", pad);
    free(pad);
    double t0 = now_s();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    double took = now_s() - t0;
    json_decref(req);
    if (!(took >= 0.45 && took < 10))
        fail_msg("the call took %.1f s (timeout 0.5 s): %s", took, err);
    assert_non_null(strstr(err, "did not read its request within"));
    assert_non_null(strstr(err, "was stopped"));
    worker_client_close(&w);
    assert_int_equal(kill(pid, 0), -1);
}

/* After a timeout stopped the worker, a later call says so (not "killed
 * by signal 9", the stop's own doing), at once. */
static void test_call_after_timeout_names_it(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    assert_int_equal(worker_client_open(&w, "read req; exec sleep 60", err, sizeof err), 0);
    w.timeout_s = 0.5;
    json_t *req = json_object();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    json_decref(req);
    req = json_object();
    double t0 = now_s();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    assert_true(now_s() - t0 < 0.4);
    json_decref(req);
    if (strstr(err, "signal 9") || !strstr(err, "gave no answer within"))
        fail_msg("the call after a timeout says: %s", err);
    worker_client_close(&w);
}

/* The same after the worker exited: the exit status, again. */
static void test_call_after_exit_names_it(void **state)
{
    (void)state;
    worker_client_t w;
    char err[512] = "";
    assert_int_equal(worker_client_open(&w, "read req; exit 4", err, sizeof err), 0);
    json_t *req = json_object();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    json_decref(req);
    req = json_object();
    assert_null(worker_client_call(&w, req, err, sizeof err));
    json_decref(req);
    assert_non_null(strstr(err, "exited with status 4"));
    worker_client_close(&w);
}

/* We run at a terminal (a pty), in its foreground: a template that reads
 * the terminal (ssh asking for a password) gets the user's answer.  In a
 * background process group of its own it would be stopped by SIGTTIN and
 * the call would hang until the timeout. */
static void test_prompt_at_our_terminal(void **state)
{
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0)
        skip();
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    char slave_name[128];
    assert_int_equal(ptsname_r(master, slave_name, sizeof slave_name), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A session at the pty, in its foreground (as a shell runs us). */
        if (setsid() < 0)
            _exit(20);
        int slave = open(slave_name, O_RDWR);
        if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) != 0 || tcgetpgrp(slave) != getpgrp())
            _exit(21);
        dup2(slave, 0);
        close(slave);
        worker_client_t w;
        char err[512] = "";
        const char *cmd = "read req; read answer < /dev/tty; "
                          "echo \"{\\\"id\\\":1,\\\"answer\\\":\\\"$answer\\\"}\"";
        if (worker_client_open(&w, cmd, err, sizeof err) != 0)
            _exit(22);
        w.timeout_s = 5;
        json_t *req = json_object();
        json_t *reply = worker_client_call(&w, req, err, sizeof err);
        const char *answer = json_string_value(json_object_get(reply, "answer"));
        int rc = answer && strcmp(answer, "hunter2") == 0 ? 0 : 1;
        if (rc)
            fprintf(stderr, "the prompting worker: %s\n", reply ? "wrong answer" : err);
        json_decref(reply);
        json_decref(req);
        worker_client_close(&w);
        _exit(rc);
    }
    /* The user types the answer. */
    assert_int_equal(write(master, "hunter2\n", 8), 8);
    /* Drain the echo so the pty never blocks the child. */
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        char tmp[256];
        int fl = fcntl(master, F_GETFL);
        fcntl(master, F_SETFL, fl | O_NONBLOCK);
        while (read(master, tmp, sizeof tmp) > 0)
            ;
        if (waitpid(pid, &st, WNOHANG) == pid)
            break;
        usleep(10000);
        if (i == 999) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
    }
    close(master);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 1)
        fail_msg("a worker template that reads our terminal did not get the answer typed there "
                 "(stopped in a background process group?)");
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_evaluate_timeout_bound(void **state)
{
    (void)state;
    /* the task defaults (compile 120 s, run 60 s): 2 x (240 + 180 + 660 + 120) + 60 */
    assert_true(worker_client_evaluate_timeout(120, 60) == 2460.0);
    assert_true(worker_client_evaluate_timeout(1, 1) > 2 * 70.0);
}

int main(void)
{
    /* The group tests expect what a cook under serve or CI has: no
     * controlling terminal (in its foreground the worker stays in our
     * group, see worker_client.h).  Run from a terminal, the tests run in
     * a session of their own. */
    int tty = open("/dev/tty", O_RDONLY | O_NOCTTY);
    if (tty >= 0) {
        close(tty);
        pid_t p = fork();
        if (p > 0) {
            int st = 0;
            while (waitpid(p, &st, 0) < 0)
                ;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        }
        if (p == 0)
            setsid();
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_matched_past_banner),
        cmocka_unit_test(test_long_reply_in_pieces),
        cmocka_unit_test(test_progress_events),
        cmocka_unit_test(test_dead_worker_named),
        cmocka_unit_test(test_killed_worker_named),
        cmocka_unit_test(test_hung_worker_times_out),
        cmocka_unit_test(test_timeout_ends_the_group),
        cmocka_unit_test(test_write_to_gone_worker),
        cmocka_unit_test(test_send_times_out),
        cmocka_unit_test(test_call_after_timeout_names_it),
        cmocka_unit_test(test_call_after_exit_names_it),
        cmocka_unit_test(test_prompt_at_our_terminal),
        cmocka_unit_test(test_evaluate_timeout_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
