/* device_lock.c -- see device_lock.h. */
#include "worker/device_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"

int device_lock_dir(char *buf, size_t len, char *err, size_t n)
{
    const char *run = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (run && *run && stat(run, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid())
        snprintf(buf, len, "%s/emile-locks", run);
    else
        snprintf(buf, len, "/tmp/emile-locks-%u", (unsigned)getuid());
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
        snprintf(err, n, "cannot make %s: %s", buf, strerror(errno));
        return -1;
    }
    /* Another user's directory of that name (made before us in /tmp) must
     * not hold our locks: a lock anyone can take is no lock. */
    if (lstat(buf, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022)) {
        snprintf(err, n, "%s is not a directory of ours, closed to others (owner %u, mode %o)", buf,
                 (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

/* The key as a file name: its safe characters, and a hash of all of it. */
static void file_name(const char *key, char *buf, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    char safe[101];
    size_t k = 0;
    for (const char *p = key; *p && k < sizeof safe - 1; p++)
        safe[k++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                            *p == '.' || *p == '-' ? *p : '_';
    safe[k] = '\0';
    snprintf(buf, len, "%s-%016llx", safe, (unsigned long long)h);
}

static int open_file(const char *path, char *err, size_t n)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        snprintf(err, n, "cannot open the device lock %s: %s", path, strerror(errno));
    return fd;
}

int device_lock_open(device_lock_t *l, const char *device_key, const char *dir, char *err, size_t n)
{
    memset(l, 0, sizeof *l);
    l->fd = l->turn_fd = -1;
    char d[800], name[160], turn[1100];
    if (dir)
        snprintf(d, sizeof d, "%s", dir);
    else if (device_lock_dir(d, sizeof d, err, n) != 0)
        return -1;
    file_name(device_key && *device_key ? device_key : "device", name, sizeof name);
    snprintf(l->path, sizeof l->path, "%s/%s.lock", d, name);
    snprintf(turn, sizeof turn, "%s/%s.turn", d, name);
    l->fd = open_file(l->path, err, n);
    l->turn_fd = l->fd >= 0 ? open_file(turn, err, n) : -1;
    if (l->turn_fd < 0) {
        device_lock_close(l);
        return -1;
    }
    return 0;
}

/* flock(fd, op) by the deadline (0: none).  0, 1 at the deadline, -1. */
static int lock_by(int fd, int op, double deadline)
{
    long nap_us = 1000;
    for (;;) {
        if (flock(fd, op | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (deadline > 0 && clock_mono_s() >= deadline)
            return 1;
        struct timespec ts = {0, nap_us * 1000};
        nanosleep(&ts, NULL);
        if (nap_us < 20000)
            nap_us *= 2;
    }
}

int device_lock_acquire(device_lock_t *l, device_lock_mode_t mode, double timeout_s, char *err, size_t n)
{
    if (l->held) {
        snprintf(err, n, "the device lock %s is held already", l->path);
        return -1;
    }
    double t0 = clock_mono_s();
    double deadline = timeout_s >= 0 ? t0 + timeout_s : 0;
    if (timeout_s == 0)
        deadline = t0 + 1e-9;
    /* Through the turnstile: a waiting exclusive holder keeps it, so
     * shared holders that come later wait behind it. */
    int rc = lock_by(l->turn_fd, LOCK_EX, deadline);
    if (rc == 0) {
        rc = lock_by(l->fd, mode == DEVICE_LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH, deadline);
        flock(l->turn_fd, LOCK_UN);
    }
    if (rc == 0) {
        l->held = (int)mode + 1;
        return 0;
    }
    if (rc > 0)
        snprintf(err, n, "the device was busy for %.1f s (%s: another worker of this host %s)",
                 clock_mono_s() - t0, l->path, mode == DEVICE_LOCK_EXCLUSIVE ? "compiles or times on it" : "times on it");
    else
        snprintf(err, n, "cannot lock %s: %s", l->path, strerror(errno));
    return rc;
}

/* Empty the lock file (what its last exclusive holder said). */
static void clear_words(int fd)
{
    if (ftruncate(fd, 0) != 0)
        return;             /* a stale description, nothing worse */
}

void device_lock_describe(device_lock_t *l, const char *holder)
{
    if (!l->held || l->fd < 0)
        return;
    size_t len = strnlen(holder, 200);
    clear_words(l->fd);
    if (pwrite(l->fd, holder, len, 0) != (ssize_t)len)
        clear_words(l->fd);
}

void device_lock_holder(const device_lock_t *l, char *buf, size_t len)
{
    buf[0] = '\0';
    if (l->fd < 0 || len == 0)
        return;
    ssize_t k = pread(l->fd, buf, len - 1, 0);
    buf[k > 0 ? (size_t)k : 0] = '\0';
    /* Another process's words: printable text only. */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = ' ';
}

void device_lock_release(device_lock_t *l)
{
    if (l->held && l->fd >= 0) {
        /* Clear what an exclusive holder said before anyone else holds it. */
        if (l->held == DEVICE_LOCK_EXCLUSIVE + 1)
            clear_words(l->fd);
        flock(l->fd, LOCK_UN);
    }
    l->held = 0;
}

void device_lock_close(device_lock_t *l)
{
    device_lock_release(l);
    if (l->fd >= 0)
        close(l->fd);
    if (l->turn_fd >= 0)
        close(l->turn_fd);
    l->fd = l->turn_fd = -1;
}
