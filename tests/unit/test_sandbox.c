/*
 * test_sandbox.c -- the sandbox's process setup (src/sandbox/sandbox.c):
 *
 *   - sandbox_scrub_env overwrites the environment strings it drops, so a
 *     secret is not left in memory (the initial environment on the stack,
 *     /proc/self/environ) for code loaded into the process afterwards;
 *   - a sandboxed child leads a session of its own (sid == pgid == pid):
 *     it has no controlling terminal, even when we have one (a pty here);
 *   - a sandboxed child dies with the process that started it (here a
 *     sandbox_run killed with SIGKILL), with and without the uid drop;
 *   - a sandboxed child sees only itself in /proc (pid namespace, fresh
 *     /proc), and with a Landlock view reads only the system trees and its
 *     own directory (not /etc/passwd, not a file beside its directory);
 *   - the seccomp filters: fcntl F_SETOWN/F_SETSIG, prlimit64 on another
 *     pid, memfd_create, System V shared memory, personality changes and
 *     executable memory that no file backs (mmap or mprotect) all raise
 *     SIGSYS; a read-only executable file mapping (the loader's) passes;
 *   - the output filter: secrets of our environment redacted, control
 *     characters escaped, invalid UTF-8 escaped, head or tail kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/syscall.h>

#include <jansson.h>

#include "util/fs.h"
#include "sandbox/landlock.h"
#include "sandbox/output_filter.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp_filter.h"

#define SECRET "sk-emile-test-7f3a9c1e5b2d8f40"

extern char **environ;

/* ---- the environment ------------------------------------------------------ */

/* Whether needle occurs in the n bytes at p. */
static int holds(const char *p, size_t n, const char *needle)
{
    return memmem(p, n, needle, strlen(needle)) != NULL;
}

/* Run in a re-executed copy of this binary whose initial environment (on
 * its stack) holds the secret: scrub, then look for the secret where it
 * was and in /proc/self/environ (which reads that stack region).  Prints
 * one word: "clean", or what still holds it. */
static int scrub_child(void)
{
    char *orig = NULL;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "EMILE_TEST_API_KEY=", 19) == 0)
            orig = *e;
    if (!orig) {
        printf("no-secret\n");
        return 0;
    }
    size_t len = strlen(orig);
    sandbox_scrub_env();
    const char *path = getenv("PATH");
    char buf[65536];
    size_t got = 0;
    int fd = open("/proc/self/environ", O_RDONLY);
    if (fd >= 0) {
        ssize_t k;
        while (got < sizeof buf && (k = read(fd, buf + got, sizeof buf - got)) > 0)
            got += (size_t)k;
        close(fd);
    }
    if (getenv("EMILE_TEST_API_KEY"))
        printf("getenv\n");
    else if (holds(orig, len, SECRET))
        printf("original-string\n");
    else if (holds(buf, got, SECRET))
        printf("proc-environ\n");
    else if (!path || strcmp(path, "/usr/bin:/bin") != 0)
        printf("path-lost\n");
    else
        printf("clean\n");
    return 0;
}

static void test_scrub_env_wipes_dropped_strings(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        char *argv[] = {"test_sandbox", "--scrub-child", NULL};
        char *envp[] = {"PATH=/usr/bin:/bin", "EMILE_TEST_API_KEY=" SECRET, "LANG=C",
                        "ASAN_OPTIONS=detect_leaks=0", NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    close(p[1]);
    char out[128] = "";
    ssize_t k = read(p[0], out, sizeof out - 1);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    out[k > 0 ? k : 0] = 0;
    if (strcmp(out, "clean\n") != 0)
        fail_msg("after sandbox_scrub_env the secret is still readable: %s", out);
}

/* The same for a variable set at run time (setenv's heap copy), in a
 * forked child as the callers run it; the parent's value is untouched. */
static void test_scrub_env_wipes_setenv_strings(void **state)
{
    (void)state;
    setenv("EMILE_TEST_TOKEN", SECRET, 1);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *s = getenv("EMILE_TEST_TOKEN") - strlen("EMILE_TEST_TOKEN=");
        size_t len = strlen(s);
        sandbox_scrub_env();
        char c = getenv("EMILE_TEST_TOKEN") ? 'g' : holds(s, len, SECRET) ? 'm' : 'c';
        ssize_t w = write(p[1], &c, 1);
        (void)w;
        _exit(0);
    }
    close(p[1]);
    char c = 0;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(c, 'c');
    assert_string_equal(getenv("EMILE_TEST_TOKEN"), SECRET);    /* copy-on-write */
    unsetenv("EMILE_TEST_TOKEN");
}

/* ---- sessions and terminals ----------------------------------------------- */

static void make_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/emile-test-sandbox-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0777), 0);        /* the sandbox user writes here */
}

/* With a controlling terminal of our own (a pty), a sandboxed child has
 * none: /dev/tty does not open, and it leads its own session and group. */
static void test_child_has_no_terminal(void **state)
{
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0)
        skip();
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    char slave_name[128];
    assert_int_equal(ptsname_r(master, slave_name, sizeof slave_name), 0);
    char dir[64];
    make_dir(dir, sizeof dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A session whose controlling terminal is the pty. */
        if (setsid() < 0)
            _exit(20);
        int slave = open(slave_name, O_RDWR);
        if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) != 0)
            _exit(21);
        int tty = open("/dev/tty", O_RDONLY | O_NOCTTY);
        if (tty < 0)
            _exit(22);                            /* the setup itself failed */
        close(tty);
        sandbox_limits_t l;
        sandbox_limits_default(&l);
        l.wall_s = 20;
        l.isolate_net = 0;
        char *argv[] = {"/bin/sh", "-c",
                        "if ( : < /dev/tty ) 2>/dev/null; then echo HAS_TTY; else echo NO_TTY; fi; "
                        "read -r s < /proc/$$/stat; echo \"$s\"", NULL};
        int st = 0, to = 0;
        char *log = NULL, err[256];
        if (sandbox_run(dir, argv, &l, &st, &to, &log, NULL, err, sizeof err) != 0 || !log)
            _exit(23);
        int rc = 0;
        int cpid = 0, pgrp = 0, sid = 0;
        const char *stat = strstr(log, "\n");
        const char *rp = stat ? strrchr(stat, ')') : NULL;
        if (strstr(log, "HAS_TTY"))
            rc = 1;
        else if (!strstr(log, "NO_TTY"))
            rc = 24;
        else if (!rp || sscanf(stat + 1, "%d", &cpid) != 1 || sscanf(rp + 2, "%*c %*d %d %d", &pgrp, &sid) != 2)
            rc = 25;
        else if (pgrp != cpid)
            rc = 2;                               /* not its own group */
        else if (sid != cpid)
            rc = 3;                               /* not its own session */
        free(log);
        _exit(rc);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(master);
    fs_rm_rf(dir);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 1)
        fail_msg("a sandboxed child opened /dev/tty: it shares our controlling terminal");
    if (WEXITSTATUS(st) == 2 || WEXITSTATUS(st) == 3)
        fail_msg("a sandboxed child does not lead its own %s", WEXITSTATUS(st) == 2 ? "process group" : "session");
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- dying with the parent ------------------------------------------------ */

static int gone_or_zombie(pid_t pid)
{
    char path[64], buf[512] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    int z = fgets(buf, sizeof buf, f) && strstr(buf, ") Z ");
    fclose(f);
    return z;
}

/* A process runs a sandboxed `sleep 60` through sandbox_run and is killed
 * with SIGKILL while it waits: the sleep, in a session of its own, must
 * not live on. */
/* The pid (in our namespace) of a child of parent, or 0. */
static pid_t child_of(pid_t parent)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)parent, (int)parent);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fgets(buf, sizeof buf, f))
            pid = atoi(buf);
        fclose(f);
    }
    return pid;
}

/* A process runs a sandboxed `sleep 60` through sandbox_run and is killed
 * with SIGKILL while it waits: the sleep, in a session (and a pid
 * namespace) of its own, must not live on.  The child's pid is read from
 * here: inside its pid namespace it is 1. */
static void check_dies_with_parent(long drop_uid)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    char pidfile[128];
    snprintf(pidfile, sizeof pidfile, "%s/child.pid", dir);
    pid_t runner = fork();
    assert_true(runner >= 0);
    if (runner == 0) {
        sandbox_limits_t l;
        sandbox_limits_default(&l);
        l.wall_s = 60;
        l.isolate_net = 0;
        l.drop_uid = drop_uid;
        char *argv[] = {"/bin/sh", "-c", "echo $$ > child.pid.tmp && mv child.pid.tmp child.pid && exec sleep 60",
                        NULL};
        int st, to;
        char err[256];
        sandbox_run(dir, argv, &l, &st, &to, NULL, NULL, err, sizeof err);
        _exit(0);
    }
    pid_t child = 0;
    for (int i = 0; i < 500 && child <= 0; i++) {
        if (fs_exists(pidfile))
            child = child_of(runner);
        if (child <= 0)
            usleep(10000);
    }
    if (child <= 0) {
        kill(runner, SIGKILL);
        waitpid(runner, NULL, 0);
        fs_rm_rf(dir);
        fail_msg("the sandboxed child did not start (uid %ld)", drop_uid);
    }
    usleep(50000);                                /* exec'd into sleep */
    kill(runner, SIGKILL);
    waitpid(runner, NULL, 0);
    int gone = 0;
    for (int i = 0; i < 300 && !gone; i++) {
        gone = gone_or_zombie(child);
        if (!gone)
            usleep(10000);
    }
    if (!gone)
        kill(child, SIGKILL);                     /* do not leave it behind */
    fs_rm_rf(dir);
    if (!gone)
        fail_msg("a sandboxed child (uid %ld) outlived the process that started it", drop_uid);
}

static void test_child_dies_with_parent(void **state)
{
    (void)state;
    check_dies_with_parent(-1);
}

/* As root the child becomes nobody, and a uid change clears the
 * parent-death signal: it must be set again after the drop. */
static void test_child_dies_with_parent_after_uid_drop(void **state)
{
    (void)state;
    long uid = sandbox_untrusted_uid();
    if (uid < 0)
        skip();                                   /* not root: no uid drop */
    check_dies_with_parent(uid);
}

/* ---- namespaces and the file system view ------------------------------------ */

/* Run `sh -c script` sandboxed (as sandbox_run's callers do), its output. */
static char *run_sh(const char *dir, const char *script, const sandbox_fs_t *fs, int *layers)
{
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.wall_s = 30;
    l.fs = fs;
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    int st = 0, to = 0;
    char *log = NULL, err[256];
    assert_int_equal(sandbox_run_layers(dir, argv, &l, &st, &to, &log, NULL, layers, err, sizeof err), 0);
    assert_false(to);
    assert_non_null(log);
    return log;
}

/* The child is alone: in /proc only its own processes (the shell, the ls
 * it runs), and it is pid 1; it has no network but loopback. */
static void test_child_sees_only_itself(void **state)
{
    (void)state;
    char dir[64];
    make_dir(dir, sizeof dir);
    int layers = 0;
    char *log = run_sh(dir, "echo pid=$$; ls /proc | grep -c '^[0-9]' ; tail -n +3 /proc/net/dev | cut -d: -f1", NULL, &layers);
    print_message("layers %#x: %s", layers, log);
    fs_rm_rf(dir);
    if (!(layers & SANDBOX_PID) || !(layers & SANDBOX_PROC)) {
        free(log);
        fail_msg("no pid namespace with its own /proc here (layers %#x)", layers);
    }
    int pid = 0, procs = 0;
    const char *nl = strchr(log, '\n');
    sscanf(log, "pid=%d", &pid);
    if (nl)
        sscanf(nl + 1, "%d", &procs);
    /* /proc/net/dev of its network namespace: loopback only. */
    int only_lo = strstr(log, "lo") && !strstr(log, "eth") && !strstr(log, "ens") && !strstr(log, "ifb");
    free(log);
    assert_int_equal(pid, 1);
    if (procs < 1 || procs > 3)
        fail_msg("the sandboxed shell sees %d processes in /proc", procs);
    if ((layers & SANDBOX_NET) && !only_lo)
        fail_msg("a network namespace of its own, yet it sees other interfaces");
    if (geteuid() != 0)
        assert_true(layers & SANDBOX_USER);
}

/* The scheduling policy (field 41 of /proc/<pid>/stat) of a sandboxed
 * shell run with idle as given, and of a child it starts. */
static void policies_of(int idle, int *shell, int *child)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.wall_s = 30;
    l.idle = idle;
    char *argv[] = {"/bin/sh", "-c", "read -r s < /proc/$$/stat; echo \"$s\"; sh -c 'read -r t < /proc/$$/stat; "
                                     "echo \"$t\"'", NULL};
    int st = 0, to = 0;
    char *log = NULL, err[256];
    assert_int_equal(sandbox_run(dir, argv, &l, &st, &to, &log, NULL, err, sizeof err), 0);
    fs_rm_rf(dir);
    assert_non_null(log);
    int *out[2] = {shell, child};
    const char *line = log;
    for (int i = 0; i < 2; i++) {
        const char *rp = line ? strchr(line, ')') : NULL;   /* after "pid (comm)" */
        assert_non_null(rp);
        int field = 2, policy = -1;
        for (const char *p = rp + 1; *p && *p != '\n'; p++)
            if (*p == ' ' && ++field == 41) {        /* the token after this space is field 41 */
                sscanf(p + 1, "%d", &policy);
                break;
            }
        *out[i] = policy;
        line = strchr(rp, '\n');
        line = line ? line + 1 : NULL;
    }
    free(log);
}

/* l.idle: the child and what it starts run at SCHED_IDLE (a GPU host's
 * compilers beside a timing worker), and cannot go back to the normal
 * policy (chrt -o: refused); by default the normal policy. */
static void test_idle_children(void **state)
{
    (void)state;
    int shell = -1, child = -1;
    policies_of(1, &shell, &child);
    assert_int_equal(shell, SCHED_IDLE);
    assert_int_equal(child, SCHED_IDLE);
    policies_of(0, &shell, &child);
    assert_int_equal(shell, SCHED_OTHER);
    assert_int_equal(child, SCHED_OTHER);
    if (access("/usr/bin/chrt", X_OK) != 0)
        skip();
    char dir[64];
    make_dir(dir, sizeof dir);
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.wall_s = 30;
    l.idle = 1;
    char *argv[] = {"/bin/sh", "-c", "if /usr/bin/chrt -o -p 0 $$ 2>/dev/null; then echo LEFT; else echo STAYED; fi",
                    NULL};
    int st = 0, to = 0;
    char *log = NULL, err[256];
    assert_int_equal(sandbox_run(dir, argv, &l, &st, &to, &log, NULL, err, sizeof err), 0);
    fs_rm_rf(dir);
    assert_non_null(log);
    int stayed = strstr(log, "STAYED") != NULL;
    free(log);
    assert_true(stayed);
}

/* With a Landlock view: its own directory and /usr read, /etc/passwd and a
 * file beside its directory not, nothing written outside its directory. */
static void test_child_file_system_view(void **state)
{
    (void)state;
    if (sandbox_landlock_abi() <= 0)
        skip();
    char dir[64], other[64];
    make_dir(dir, sizeof dir);
    make_dir(other, sizeof other);
    char secret[128], mine[128];
    snprintf(secret, sizeof secret, "%s/secret.txt", other);
    snprintf(mine, sizeof mine, "%s/mine.txt", dir);
    assert_int_equal(fs_write_file(secret, "SECRET-BESIDE\n", 14), 0);
    assert_int_equal(fs_write_file(mine, "MINE\n", 5), 0);
    chmod(secret, 0644);
    chmod(mine, 0644);
    sandbox_fs_t fs;
    memset(&fs, 0, sizeof fs);
    fs.own_dir = dir;
    fs.own_write = 1;
    char script[512];
    snprintf(script, sizeof script,
             "cat mine.txt; cat %s 2>/dev/null || echo no-secret; head -c 4 /etc/passwd 2>/dev/null || echo no-passwd; "
             "test -r /usr/include/stdio.h && echo usr-ok; echo w > made.txt && echo own-write-ok; "
             "echo w > %s/made.txt 2>/dev/null || echo no-write-beside",
             secret, other);
    int layers = 0;
    char *log = run_sh(dir, script, &fs, &layers);
    print_message("%s", log);
    char beside[160];
    snprintf(beside, sizeof beside, "%s/made.txt", other);
    int wrote_beside = fs_exists(beside);
    fs_rm_rf(dir);
    fs_rm_rf(other);
    assert_true(layers & SANDBOX_LANDLOCK);
    assert_non_null(strstr(log, "MINE"));
    assert_null(strstr(log, "SECRET-BESIDE"));
    assert_non_null(strstr(log, "no-secret"));
    assert_non_null(strstr(log, "no-passwd"));
    assert_null(strstr(log, "root"));
    assert_non_null(strstr(log, "usr-ok"));
    assert_non_null(strstr(log, "own-write-ok"));
    assert_non_null(strstr(log, "no-write-beside"));
    assert_false(wrote_beside);
    free(log);
}

/* ---- the seccomp filters ------------------------------------------------------ */

/* In a forked child: both filters of a runner (before loading), then
 * `what`; the child's end: 0 when the call went through, SIGSYS when the
 * filter trapped it. */
static int filtered_call(int what)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        signal(SIGSYS, SIG_DFL);
        if (seccomp_install(0, -1, err, sizeof err) != 0 || seccomp_forbid_anon_exec(err, sizeof err) != 0)
            _exit(90);
        int p[2] = {-1, -1};
        struct rlimit r = {1, 1};
        void *m;
        switch (what) {
        case 0:
            if (pipe(p) != 0)
                _exit(91);
            fcntl(p[0], F_SETOWN, getppid());
            break;
        case 1:
            if (pipe(p) != 0)
                _exit(91);
            fcntl(p[0], 10 /* F_SETSIG */, SIGKILL);
            break;
        case 2:
            prlimit(getppid(), RLIMIT_CPU, &r, NULL);
            break;
        case 3:
            syscall(SYS_memfd_create, "x", 0);
            break;
        case 4:
            shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
            break;
        case 5:
            personality(READ_IMPLIES_EXEC);
            break;
        case 6:
            mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            break;
        case 7:
            m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            mprotect(m, 4096, PROT_READ | PROT_EXEC);
            break;
        case 8: {
            /* The loader's way: a file mapped read + execute. */
            int fd = open("/bin/sh", O_RDONLY);
            if (fd < 0 || mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED)
                _exit(92);
            break;
        }
        case 9:
            prlimit(0, RLIMIT_CPU, NULL, &r);   /* our own: allowed */
            break;
        }
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return WIFSIGNALED(st) ? WTERMSIG(st) : -1;
}

static void test_seccomp_denials(void **state)
{
    (void)state;
    static const char *names[] = {"fcntl F_SETOWN",  "fcntl F_SETSIG",      "prlimit64 on another pid",
                                  "memfd_create",    "shmget",              "personality(READ_IMPLIES_EXEC)",
                                  "anonymous mmap PROT_EXEC", "mprotect PROT_EXEC"};
    for (int i = 0; i < 8; i++) {
        int got = filtered_call(i);
        if (got == 90)
            skip();                               /* no seccomp here */
        if (got != SIGSYS)
            fail_msg("%s: the child ended with %d, not SIGSYS", names[i], got);
    }
    assert_int_equal(filtered_call(8), 0);
    assert_int_equal(filtered_call(9), 0);
}

/* ---- the output filter ---------------------------------------------------------- */

static void test_output_filter(void **state)
{
    (void)state;
    setenv("EMILE_TEST_TOKEN", "tok-0123456789", 1);
    setenv("EMILE_TEST_SHORTKEY", "abc", 1);        /* under 8 characters: left alone */
    setenv("EMILE_TEST_PLAIN", "visible-value-123", 1);
    const char *in = "a tok-0123456789 b abc visible-value-123\x1b[2J\x07 c\xff\n";
    char *out = output_filter(in, strlen(in), 0, OUTPUT_KEEP_HEAD);
    assert_non_null(out);
    assert_string_equal(out, "a [redacted EMILE_TEST_TOKEN] b abc visible-value-123\\x1b[2J\\x07 c\\xff\n");
    free(out);
    /* One line, the tail kept. */
    out = output_filter("first\nsecond\tthird", 18, 10, OUTPUT_KEEP_TAIL | OUTPUT_ONE_LINE);
    assert_non_null(out);
    assert_non_null(strstr(out, "ond third"));
    assert_null(strchr(out, '\n'));
    assert_non_null(strstr(out, "bytes cut"));
    free(out);
    /* The head kept, UTF-8 left whole. */
    out = output_filter("h\xc3\xa9llo world", 12, 3, OUTPUT_KEEP_HEAD);
    assert_non_null(out);
    assert_int_equal(strncmp(out, "h\xc3\xa9", 3), 0);
    assert_non_null(strstr(out, "more bytes"));
    free(out);
    assert_true(output_secret_name("OPENAI_API_KEY", 14));
    assert_true(output_secret_name("my_password", 11));
    assert_false(output_secret_name("PATH", 4));
    unsetenv("EMILE_TEST_TOKEN");
    unsetenv("EMILE_TEST_SHORTKEY");
    unsetenv("EMILE_TEST_PLAIN");
}

/* What a kernel prints cannot act on a terminal or blank its own error:
 * C1 controls, separators and bidirectional overrides are shown as
 * \uXXXX; overlong forms, surrogates and code points past U+10FFFF byte
 * by byte; ordinary non-ASCII text stays; the result is always UTF-8 that
 * jansson takes. */
static void test_output_filter_unicode(void **state)
{
    (void)state;
    const char *in = "ok \xc2\x9b" "2J \xc2\x85" "x \xe2\x80\xa8" "y \xe2\x80\xae" "dilav "
                     "\xe2\x81\xa6" "z \xef\xbb\xbf" "w \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
                     "\xc0\xaf \xe0\x80\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xf0\x80\x80\xaf end";
    char *out = output_filter(in, strlen(in), 0, OUTPUT_KEEP_HEAD);
    assert_non_null(out);
    assert_string_equal(out, "ok \\u009B2J \\u0085x \\u2028y \\u202Edilav \\u2066z \\uFEFFw "
                             "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
                             "\\xc0\\xaf \\xe0\\x80\\xaf \\xed\\xa0\\x80 \\xf4\\x90\\x80\\x80 "
                             "\\xf0\\x80\\x80\\xaf end");
    json_t *j = json_string(out);
    assert_non_null(j);
    json_decref(j);
    free(out);
    /* Tag characters (invisible ASCII: "hi" as U+E0068 U+E0069) and a
     * soft hyphen: shown, past U+FFFF as \UXXXXXXXX. */
    out = output_filter("a\xf3\xa0\x81\xa8\xf3\xa0\x81\xa9" "b\xc2\xad", 12, 0, OUTPUT_KEEP_HEAD);
    assert_non_null(out);
    assert_string_equal(out, "a\\U000E0068\\U000E0069b\\u00AD");
    free(out);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--scrub-child") == 0)
        return scrub_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrub_env_wipes_dropped_strings),
        cmocka_unit_test(test_scrub_env_wipes_setenv_strings),
        cmocka_unit_test(test_child_has_no_terminal),
        cmocka_unit_test(test_idle_children),
        cmocka_unit_test(test_child_dies_with_parent),
        cmocka_unit_test(test_child_dies_with_parent_after_uid_drop),
        cmocka_unit_test(test_child_sees_only_itself),
        cmocka_unit_test(test_child_file_system_view),
        cmocka_unit_test(test_seccomp_denials),
        cmocka_unit_test(test_output_filter),
        cmocka_unit_test(test_output_filter_unicode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
