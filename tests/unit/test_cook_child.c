/*
 * test_cook_child.c -- src/serve/cook_child.c, the server's children (cooks
 * and tastings): lines from stdout, the exit seen before the reap (so the
 * pid is forgotten before it can be reused), and a wait that fails is
 * never taken for a clean exit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve/cook_child.h"

/* The child's lines, its exit status, then the reap. */
static void test_lines_exit_reap(void **st)
{
    (void)st;
    char *argv[] = {"/bin/sh", "-c", "echo one; echo two; echo oops >&2; exit 3", NULL};
    cook_child_t c;
    char err[256];
    assert_int_equal(cook_child_spawn(&c, argv, NULL, err, sizeof err), 0);
    char *line;
    assert_int_equal(cook_child_next_line(&c, &line), 1);
    assert_string_equal(line, "one");
    free(line);
    assert_int_equal(cook_child_next_line(&c, &line), 1);
    assert_string_equal(line, "two");
    free(line);
    assert_int_equal(cook_child_next_line(&c, &line), 0);
    int ws = 0;
    assert_int_equal(cook_child_wait_exit(&c, &ws), 0);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 3);
    /* exited but not reaped: still a zombie we own */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    assert_int_equal(waitid(P_PID, (id_t)c.pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
    assert_int_equal(si.si_pid, c.pid);
    char last[128];
    cook_child_last_error(&c, last, sizeof last);
    assert_non_null(strstr(last, "oops"));
    assert_int_equal(cook_child_reap(&c), 0);
}

/* A child reaped behind cook_child's back: the wait fails, and that is
 * not reported as a clean exit (which a caller would take for success). */
static void test_failed_wait_is_not_clean(void **st)
{
    (void)st;
    char *argv[] = {"/bin/true", NULL};
    cook_child_t c;
    char err[256];
    assert_int_equal(cook_child_spawn(&c, argv, NULL, err, sizeof err), 0);
    char *line;
    while (cook_child_next_line(&c, &line) == 1)
        free(line);
    int st2;
    assert_int_equal(waitpid(c.pid, &st2, 0), c.pid);      /* someone else reaps it */
    int ws = 0;
    assert_int_equal(cook_child_wait_exit(&c, &ws), -1);
    assert_int_equal(ws, COOK_CHILD_UNKNOWN_STATUS);
    assert_false(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    cook_child_reap(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_exit_reap),
        cmocka_unit_test(test_failed_wait_is_not_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
