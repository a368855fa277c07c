/*
 * test_device_lock.c -- src/worker/device_lock.c: timing is exclusive,
 * compiles share; a waiting timer goes before later compiles; a holder that
 * dies frees the device; devices are independent; the lock directory must
 * be ours and closed to others.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fs.h"
#include "worker/device_lock.h"

static char dir[512];
static const char *KEY = "cpu:host:AMD EPYC:2";

static int setup(void **state)
{
    (void)state;
    return fs_mkdtemp("emile-test-lock-", dir, sizeof dir);
}

static int teardown(void **state)
{
    (void)state;
    return fs_rm_rf(dir);
}

static void open_lock(device_lock_t *l, const char *key)
{
    char err[512];
    assert_int_equal(device_lock_open(l, key, dir, err, sizeof err), 0);
}

static int take(device_lock_t *l, device_lock_mode_t m, double timeout)
{
    char err[512];
    return device_lock_acquire(l, m, timeout, err, sizeof err);
}

static void test_timing_is_exclusive(void **state)
{
    (void)state;
    device_lock_t a, b;
    open_lock(&a, KEY);
    open_lock(&b, KEY);
    assert_int_equal(take(&a, DEVICE_LOCK_EXCLUSIVE, 1), 0);
    char err[512];
    assert_int_equal(device_lock_acquire(&b, DEVICE_LOCK_EXCLUSIVE, 0.2, err, sizeof err), 1);
    assert_non_null(strstr(err, "the device was busy for"));
    assert_int_equal(take(&b, DEVICE_LOCK_SHARED, 0.2), 1);   /* no compile beside a timing */
    device_lock_release(&a);
    assert_int_equal(take(&b, DEVICE_LOCK_EXCLUSIVE, 2), 0);
    device_lock_close(&a);
    device_lock_close(&b);
}

static void test_compiles_share(void **state)
{
    (void)state;
    device_lock_t a, b, c;
    open_lock(&a, KEY);
    open_lock(&b, KEY);
    open_lock(&c, KEY);
    assert_int_equal(take(&a, DEVICE_LOCK_SHARED, 1), 0);
    assert_int_equal(take(&b, DEVICE_LOCK_SHARED, 1), 0);
    assert_int_equal(take(&c, DEVICE_LOCK_EXCLUSIVE, 0.2), 1); /* no timing beside compiles */
    device_lock_release(&a);
    device_lock_release(&b);
    assert_int_equal(take(&c, DEVICE_LOCK_EXCLUSIVE, 2), 0);
    device_lock_close(&a);
    device_lock_close(&b);
    device_lock_close(&c);
}

typedef struct waiter {
    device_lock_t *l;
    int rc;
} waiter_t;

static void *wait_exclusive(void *arg)
{
    waiter_t *w = arg;
    w->rc = take(w->l, DEVICE_LOCK_EXCLUSIVE, 20);
    return NULL;
}

/* A compile holds the device; a timer waits; a later compile waits behind
 * the timer (else a stream of compiles would starve it). */
static void test_waiting_timer_goes_first(void **state)
{
    (void)state;
    device_lock_t compile1, timer, compile2;
    open_lock(&compile1, KEY);
    open_lock(&timer, KEY);
    open_lock(&compile2, KEY);
    assert_int_equal(take(&compile1, DEVICE_LOCK_SHARED, 1), 0);
    waiter_t w = {&timer, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_exclusive, &w), 0);
    usleep(300000);                                  /* the timer is waiting by now */
    assert_int_equal(take(&compile2, DEVICE_LOCK_SHARED, 0.3), 1);
    device_lock_release(&compile1);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    device_lock_release(&timer);
    assert_int_equal(take(&compile2, DEVICE_LOCK_SHARED, 2), 0);
    device_lock_close(&compile1);
    device_lock_close(&timer);
    device_lock_close(&compile2);
}

/* A worker killed while timing frees the device at once. */
static void test_dead_holder_frees_the_device(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        device_lock_t l;
        char err[512];
        if (device_lock_open(&l, KEY, dir, err, sizeof err) != 0 ||
            device_lock_acquire(&l, DEVICE_LOCK_EXCLUSIVE, 5, err, sizeof err) != 0)
            _exit(1);
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    device_lock_t l;
    open_lock(&l, KEY);
    assert_int_equal(take(&l, DEVICE_LOCK_EXCLUSIVE, 0.1), 1);
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(take(&l, DEVICE_LOCK_EXCLUSIVE, 2), 0);
    device_lock_close(&l);
    close(p[0]);
    close(p[1]);
}

/* Two GPUs of one host: two locks. */
static void test_devices_are_independent(void **state)
{
    (void)state;
    device_lock_t a, b;
    open_lock(&a, "cuda:host:0000:19:00.0");
    open_lock(&b, "cuda:host:0000:3b:00.0");
    assert_int_equal(take(&a, DEVICE_LOCK_EXCLUSIVE, 1), 0);
    assert_int_equal(take(&b, DEVICE_LOCK_EXCLUSIVE, 0.2), 0);
    assert_string_not_equal(a.path, b.path);
    device_lock_close(&a);
    device_lock_close(&b);
}

/* The default directory: under $XDG_RUNTIME_DIR, ours, 0700; one others
 * may write is refused. */
static void test_lock_dir_is_private(void **state)
{
    (void)state;
    char *saved = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
    setenv("XDG_RUNTIME_DIR", dir, 1);
    char d[1024], err[512];
    assert_int_equal(device_lock_dir(d, sizeof d, err, sizeof err), 0);
    char want[700];
    snprintf(want, sizeof want, "%s/emile-locks", dir);
    assert_string_equal(d, want);
    struct stat st;
    assert_int_equal(stat(d, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(chmod(d, 0777), 0);
    assert_int_equal(device_lock_dir(d, sizeof d, err, sizeof err), -1);
    assert_non_null(strstr(err, "closed to others"));
    if (saved) {
        setenv("XDG_RUNTIME_DIR", saved, 1);
        free(saved);
    } else {
        unsetenv("XDG_RUNTIME_DIR");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timing_is_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compiles_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_timer_goes_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_holder_frees_the_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_are_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_dir_is_private, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
