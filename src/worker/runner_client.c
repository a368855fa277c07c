/* runner_client.c -- see runner_client.h. */
#include "runner_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/paths.h"
#include "util/rng.h"

int runner_start(runner_t *r, const backend_t *b, const char *dir, const char *so_path, size_t arena_bytes,
                 const sandbox_limits_t *l)
{
    return runner_start_wrapped(r, b, dir, so_path, arena_bytes, l, NULL, 0);
}

int runner_start_wrapped(runner_t *r, const backend_t *b, const char *dir, const char *so_path,
                         size_t arena_bytes, const sandbox_limits_t *l, const char *const *wrap, int no_seccomp_arg)
{
    memset(r, 0, sizeof *r);
    r->arena_fd = -1;
    r->timeout_s = l->wall_s;
    r->arena_fd = memfd_create("emile-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    /* Sealed size: a kernel cannot shrink the arena under the worker
     * (which would kill the worker with SIGBUS on its next read). */
    if (r->arena_fd < 0 || ftruncate(r->arena_fd, (off_t)arena_bytes) != 0 ||
        fcntl(r->arena_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        snprintf(r->msg, sizeof r->msg, "cannot create the arena (%zu bytes): %s", arena_bytes, strerror(errno));
        return RUNNER_ERR;
    }
    r->arena = mmap(NULL, arena_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r->arena_fd, 0);
    if (r->arena == MAP_FAILED) {
        r->arena = NULL;
        snprintf(r->msg, sizeof r->msg, "cannot map the arena (%zu bytes): %s", arena_bytes, strerror(errno));
        return RUNNER_ERR;
    }
    r->arena_bytes = arena_bytes;
    sandbox_limits_t lim = *l;
    /* The arena is mapped in the runner too: it counts against RLIMIT_AS. */
    if (lim.mem_bytes)
        lim.mem_bytes += arena_bytes + ((size_t)256 << 20);
    char uid[32];
    snprintf(uid, sizeof uid, "%ld", l->drop_uid);
    const char *no_seccomp = getenv("EMILE_NO_SECCOMP");
    char *argv[48];
    int k = 0;
    for (int i = 0; wrap && wrap[i] && k < 32; i++)
        argv[k++] = (char *)wrap[i];
    argv[k++] = (char *)emile_runner_path();
    argv[k++] = "{CTL}";
    argv[k++] = "{ARENA}";
    argv[k++] = (char *)b->name;
    argv[k++] = (char *)so_path;
    if ((no_seccomp && *no_seccomp == '1') || no_seccomp_arg)
        argv[k++] = "--no-seccomp";
    if (l->drop_uid >= 0) {
        argv[k++] = "--user";
        argv[k++] = uid;
    }
    argv[k] = NULL;
    char err[512];
    if (sandbox_spawn(dir, argv, r->arena_fd, &lim, &r->proc, err, sizeof err) != 0) {
        snprintf(r->msg, sizeof r->msg, "%s", err);
        return RUNNER_ERR;
    }
    char line[1024];
    if (sandbox_read_line(&r->proc, line, sizeof line, r->timeout_s + 30) != 0) {
        r->dead = 1;
        sandbox_describe_death(&r->proc, r->timeout_s + 30, r->msg, sizeof r->msg);
        return RUNNER_DIED;
    }
    if (strncmp(line, "ready", 5) != 0) {
        /* "fatal ...": could not load the kernel, no device, ... */
        snprintf(r->msg, sizeof r->msg, "%s", strncmp(line, "fatal ", 6) == 0 ? line + 6 : line);
        runner_stop(r);
        r->dead = 1;
        return RUNNER_DIED;
    }
    const char *s = strstr(line, "seccomp=");
    r->seccomp = s ? atoi(s + 8) : 0;
    s = strstr(line, "uid=");
    r->uid = s ? atoi(s + 4) : -1;
    return RUNNER_OK;
}

int runner_cmd(runner_t *r, char *out, size_t n, const char *cmd, const char *args)
{
    if (r->dead || r->proc.ctl < 0) {
        if (!r->msg[0])
            snprintf(r->msg, sizeof r->msg, "the runner is gone");
        return RUNNER_DIED;
    }
    char nonce[24];
    snprintf(nonce, sizeof nonce, "%016llx", (unsigned long long)rng_entropy());
    size_t len = strlen(cmd) + strlen(args) + 64;
    char *line = malloc(len);
    if (!line)
        return RUNNER_ERR;
    snprintf(line, len, "%s %s %s", cmd, nonce, args);
    char reply[4096];
    int rc = sandbox_request(&r->proc, line, reply, sizeof reply, r->timeout_s);
    free(line);
    if (rc != 0) {
        r->dead = 1;
        sandbox_describe_death(&r->proc, r->timeout_s, r->msg, sizeof r->msg);
        return RUNNER_DIED;
    }
    if (strncmp(reply, "fatal ", 6) == 0) {
        snprintf(r->msg, sizeof r->msg, "%s", reply + 6);
        sandbox_kill(&r->proc);
        r->dead = 1;
        return RUNNER_DIED;
    }
    size_t nl = strlen(nonce);
    if (strncmp(reply, "ok ", 3) == 0 && strncmp(reply + 3, nonce, nl) == 0) {
        /* out may be larger than msg: launches lists come back here. */
        if (out)
            snprintf(out, n, "%s", reply + 3 + nl + (reply[3 + nl] == ' '));
        return RUNNER_OK;
    }
    if (strncmp(reply, "err ", 4) == 0 && strncmp(reply + 4, nonce, nl) == 0) {
        snprintf(r->msg, sizeof r->msg, "%s", reply + 4 + nl + 1);
        return RUNNER_ERR;
    }
    /* A reply we did not ask for: the kernel wrote to our socket. */
    snprintf(r->msg, sizeof r->msg, "forged or garbled reply on the control channel: %.200s", reply);
    sandbox_kill(&r->proc);
    r->dead = 1;
    return RUNNER_DIED;
}

void runner_stop(runner_t *r)
{
    if (r->proc.pid > 0)
        sandbox_kill(&r->proc);
    if (r->arena) {
        munmap(r->arena, r->arena_bytes);
        r->arena = NULL;
    }
    if (r->arena_fd >= 0) {
        close(r->arena_fd);
        r->arena_fd = -1;
    }
}
