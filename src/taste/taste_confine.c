/*
 * taste_confine.c -- the sandbox of the Tasting Room's engine child (see
 * taste_confine.h); the same pieces as the runner's (src/runner/
 * runner_main.c), in the same order.
 */
#include "taste/taste_confine.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "util/fs.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp_filter.h"

static int g_report_fd = -1;

/* Async-signal-safe: fs_write_all is write(2) alone. */
static void put(const char *s)
{
    fs_write_all(g_report_fd, s, strlen(s));
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig; (void)uc;
    long nr = si->si_syscall;
    char num[24];
    int k = (int)sizeof num - 1;
    num[k] = 0;
    unsigned long v = nr < 0 ? 0 : (unsigned long)nr;
    do {
        num[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v && k > 0);
    /* The names are plain words with spaces and parentheses: no JSON
     * escaping needed. */
    put("{\"forbidden\":\"");
    put(seccomp_syscall_name(nr));
    put("\",\"nr\":");
    put(num + k);
    put("}\n");
    _exit(3);
}

int taste_confine_identity(pid_t parent, char *err, size_t errlen)
{
    long uid = sandbox_untrusted_uid();
    if (uid >= 0) {
        /* Root: no network (the runner's namespace; best effort, as there:
         * a container may refuse it, and the filter allows no network
         * socket anyway), then nobody. */
        if (unshare(CLONE_NEWNET) != 0 && errno != EPERM && errno != EINVAL) {
            snprintf(err, errlen, "cannot leave the network (unshare): %s", strerror(errno));
            return -1;
        }
        if (sandbox_become(uid) != 0) {
            snprintf(err, errlen, "cannot drop privileges to uid %ld: %s", uid, strerror(errno));
            return -1;
        }
    }
    /* Die with the parent (after the uid change, which clears it). */
    sandbox_die_with_parent(parent);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* The runner's limits that fit a whole model: no core files, files of
     * at most 64 MiB (cuda allows opens for writing), and -- only for the
     * dedicated uid, where it counts nobody's processes, not the user's --
     * at most 512 threads.  No address-space limit (the model and the CUDA
     * driver's reservations), no CPU limit (the server's --taste-timeout
     * bounds a tasting). */
    sandbox_limits_t l;
    memset(&l, 0, sizeof l);
    l.fsize_bytes = (size_t)64 << 20;
    l.nproc = 512;
    l.drop_uid = uid;
    sandbox_apply_limits(&l);
    sandbox_scrub_env();
    return 0;
}

int taste_confine_filter(int gpu, int report_fd, char *err, size_t errlen)
{
    g_report_fd = report_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    char why[256];
    /* report_fd takes the runner's control socket's place: a kernel can
     * neither close it nor dup2 another file onto it. */
    if (seccomp_install(gpu, report_fd, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot install the sandbox's system-call filter (%s); the "
                 "Tasting Room does not run kernels without it (--no-sandbox runs trusted "
                 "kernels in-process)", why);
        return -1;
    }
    return 0;
}

int taste_confine_loaded(int gpu, char *err, size_t errlen)
{
    /* A GPU driver maps code as it pleases (the runner scans instead). */
    if (gpu)
        return 0;
    char why[256];
    if (seccomp_forbid_exec_mappings(0, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot forbid new executable memory: %s", why);
        return -1;
    }
    return 0;
}
