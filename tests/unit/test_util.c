/*
 * test_util.c -- src/util's write-all and monotonic deadline: every byte
 * through a pipe that takes them in pieces, an error (not a signal) from
 * a pipe nobody reads, and deadlines normalised and s seconds ahead.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/child_call.h"
#include "util/clock.h"
#include "util/fs.h"

/* 4 MiB into a 64 KiB pipe: many short writes; the reader gets them all,
 * in order. */
static void test_write_all_through_a_pipe(void **st)
{
    (void)st;
    size_t n = (size_t)4 << 20;
    unsigned char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 131u + (i >> 12));
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        size_t got = 0, bad = 0;
        unsigned char buf[7919];          /* an odd size: reads straddle writes */
        ssize_t k;
        while ((k = read(p[0], buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < k; i++)
                bad += buf[i] != (unsigned char)((got + (size_t)i) * 131u + ((got + (size_t)i) >> 12));
            got += (size_t)k;
        }
        _exit(got == n && bad == 0 ? 0 : 1);
    }
    close(p[0]);
    assert_int_equal(fs_write_all(p[1], data, n), 0);
    close(p[1]);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    free(data);
}

static void test_write_all_to_nobody(void **st)
{
    (void)st;
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    errno = 0;
    assert_int_equal(fs_write_all(p[1], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    close(p[1]);
    signal(SIGPIPE, old);
}

/* With SIGPIPE at its default (death), a write to a pipe nobody reads is
 * EPIPE and the process lives; nothing is left pending, the mask is as it
 * was; a SIGPIPE already pending before the write is left pending. */
static void test_write_pipe_to_nobody(void **st)
{
    (void)st;
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    errno = 0;
    assert_int_equal(fs_write_pipe(p[1], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    sigset_t set;
    sigpending(&set);
    assert_false(sigismember(&set, SIGPIPE));
    pthread_sigmask(SIG_BLOCK, NULL, &set);
    assert_false(sigismember(&set, SIGPIPE));
    /* One the caller had blocked and pending stays theirs. */
    sigset_t pipe_only, before;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &before);
    raise(SIGPIPE);
    assert_int_equal(fs_write_pipe(p[1], "y", 1), -1);
    sigpending(&set);
    assert_true(sigismember(&set, SIGPIPE));
    signal(SIGPIPE, SIG_IGN);                 /* discards the pending one */
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    close(p[1]);
    /* And to a pipe someone reads, it writes. */
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fs_write_pipe(p[1], "ok", 2), 0);
    char buf[3] = "";
    assert_int_equal(read(p[0], buf, 2), 2);
    assert_string_equal(buf, "ok");
    close(p[0]);
    close(p[1]);
    signal(SIGPIPE, old);
}

static int answer(void *ctx, int fd)
{
    const char *text = ctx;
    return fs_write_all(fd, text, strlen(text)) == 0 ? 0 : 1;
}

static int refuse(void *ctx, int fd)
{
    (void)ctx;
    fs_write_all(fd, "half", 4);
    return 3;
}

static int in_child_pid(void *ctx, int fd)
{
    pid_t pid = getpid();
    (void)ctx;
    return fs_write_all(fd, &pid, sizeof pid) == 0 ? 0 : 1;
}

/* The answer comes back; a non-zero status or a short buffer is said. */
static void test_child_call(void **st)
{
    (void)st;
    char buf[64];
    size_t len = 99;
    assert_int_equal(child_call(answer, "ceilings {}", buf, sizeof buf, &len), 0);
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "ceilings {}", 11);
    /* Truncated at cap: the child's rest is dropped, not waited for. */
    assert_int_equal(child_call(answer, "0123456789", buf, 4, &len), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "0123", 4);
    /* Its status decides, whatever it wrote. */
    assert_int_equal(child_call(refuse, NULL, buf, sizeof buf, &len), -1);
    assert_int_equal(len, 4);
    /* It ran in another process. */
    pid_t pid = 0;
    assert_int_equal(child_call(in_child_pid, NULL, &pid, sizeof pid, &len), 0);
    assert_int_equal(len, sizeof pid);
    assert_true(pid > 0 && pid != getpid());
}

static void test_mono_after(void **st)
{
    (void)st;
    double secs[] = {0.0, 0.25, 0.999999, 1.5, 15.0, -3.0};
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++) {
        double before = clock_mono_s();
        struct timespec t = clock_mono_after(secs[i]);
        double after = clock_mono_s();
        double at = (double)t.tv_sec + t.tv_nsec * 1e-9, want = secs[i] > 0 ? secs[i] : 0;
        assert_true(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
        assert_true(at >= before + want - 1e-6);
        assert_true(at <= after + want + 1e-6);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_all_through_a_pipe),
        cmocka_unit_test(test_write_all_to_nobody),
        cmocka_unit_test(test_write_pipe_to_nobody),
        cmocka_unit_test(test_mono_after),
        cmocka_unit_test(test_child_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
