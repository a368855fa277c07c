/* device_turn.c -- see device_turn.h. */
#include "worker/device_turn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/fs.h"

void device_turn_key(const json_t *device, char *buf, size_t n)
{
    const char *pci = json_string_value(json_object_get(device, "pci_bus_id"));
    const char *uuid = json_string_value(json_object_get(device, "uuid"));
    if (pci && *pci) {
        snprintf(buf, n, "pci:%s", pci);
    } else if (uuid && *uuid) {
        snprintf(buf, n, "uuid:%s", uuid);
    } else {
        char host[256] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(buf, n, "host:%s", host);
    }
}

static int turned_off(void)
{
    const char *v = getenv("EMILE_DEVICE_LOCK");
    return v && (strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0);
}

/* EMILE_DEVICE_LOCK_DIR (made 0700 when missing; it must be ours and
 * closed to others), else NULL: device_lock_dir's default. */
static const char *lock_dir(char *err, size_t n)
{
    const char *d = getenv("EMILE_DEVICE_LOCK_DIR");
    if (!d || !*d)
        return NULL;
    struct stat st;
    if (mkdir(d, 0700) != 0 && errno != EEXIST) {
        snprintf(err, n, "cannot make EMILE_DEVICE_LOCK_DIR %.300s: %s", d, strerror(errno));
        return NULL;
    }
    if (lstat(d, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022)) {
        snprintf(err, n, "EMILE_DEVICE_LOCK_DIR %.300s is not a directory of ours closed to others", d);
        return NULL;
    }
    return d;
}

void device_turn_setup(device_turn_t *t, const json_t *device, int host, device_turn_progress_fn progress,
                       void *user)
{
    char key[256];
    device_turn_key(device, key, sizeof key);
    if (t->state != 0 && strcmp(key, t->key) == 0 && t->host == host) {
        t->progress = progress;
        t->progress_user = user;
        return;
    }
    device_turn_close(t);
    memset(t, 0, sizeof *t);
    t->lock.fd = t->lock.turn_fd = -1;
    snprintf(t->key, sizeof t->key, "%s", key);
    t->host = host;
    t->progress = progress;
    t->progress_user = user;
    /* Off, or unusable: the phases are still traced (a test's control). */
    t->state = 1;
    if (turned_off())
        return;
    char err[1200] = "";
    const char *dir = lock_dir(err, sizeof err);
    if (err[0] || device_lock_open(&t->lock, key, dir, err, sizeof err) != 0) {
        fprintf(stderr, "emile worker: warning: %s; timings of workers that share this device may overlap\n", err);
        return;
    }
    t->locking = 1;
}

/* What the phase takes: 0 nothing, else the mode + 1. */
static int wanted(const device_turn_t *t, device_phase_t phase)
{
    if (t->state != 1)
        return 0;
    if (phase == DEVICE_PHASE_TIME)
        return DEVICE_LOCK_EXCLUSIVE + 1;
    if (phase == DEVICE_PHASE_COMPILE && !t->host)
        return 0;
    return DEVICE_LOCK_SHARED + 1;
}

/* Wait for the lock, showing who holds it whenever that changes. */
static int wait_for(device_turn_t *t, device_lock_mode_t mode, const char *shown_phase, const char *what,
                    char *err, size_t n)
{
    double start = clock_mono_s();
    char last[220] = "\x01";
    for (;;) {
        char holder[200], words[320];
        device_lock_holder(&t->lock, holder, sizeof holder);
        if (strcmp(holder, last) != 0 && t->progress) {
            snprintf(words, sizeof words, "waiting for the device (%s)",
                     holder[0] ? holder : "other workers of this host are compiling or checking kernels on it");
            t->progress(t->progress_user, "wait", words);
            snprintf(last, sizeof last, "%s", holder);
        }
        int rc = device_lock_acquire(&t->lock, mode, 2.0, err, n);
        if (rc != 1) {
            if (rc == 0 && t->progress)
                t->progress(t->progress_user, shown_phase, what);
            return rc;
        }
        if (clock_mono_s() - start > DEVICE_TURN_MAX_WAIT_S) {
            snprintf(err, n, "the device stayed busy for %.0f s (%s: %s)", clock_mono_s() - start, t->lock.path,
                     holder[0] ? holder : "other workers compiling or checking kernels");
            return -1;
        }
    }
}

int device_turn_take(device_turn_t *t, device_phase_t phase, const char *shown_phase, const char *what, char *err,
                     size_t n)
{
    int want = wanted(t, phase);
    if (!want)
        return 0;
    device_lock_mode_t mode = (device_lock_mode_t)(want - 1);
    if (t->depth > 0) {
        if (mode != t->mode) {
            snprintf(err, n, "the device is held %s already; %s needs it %s", t->mode == DEVICE_LOCK_SHARED ?
                     "shared" : "exclusively", what, mode == DEVICE_LOCK_SHARED ? "shared" : "exclusively");
            return -1;
        }
        t->depth++;
        return 0;
    }
    int rc = t->locking ? device_lock_acquire(&t->lock, mode, 0, err, n) : 0;
    if (rc == 1)
        rc = wait_for(t, mode, shown_phase, what, err, n);
    if (rc != 0)
        return -1;
    t->depth = 1;
    t->mode = mode;
    t->t0 = clock_mono_s();
    snprintf(t->what, sizeof t->what, "%s", what ? what : "");
    if (mode == DEVICE_LOCK_EXCLUSIVE && t->locking) {
        char holder[200];
        snprintf(holder, sizeof holder, "worker pid %d: %.150s", (int)getpid(), t->what);
        device_lock_describe(&t->lock, holder);
    }
    return 0;
}

/* One line a window, written while it is still held (so its end comes
 * before the next holder's start). */
static void trace(const device_turn_t *t)
{
    const char *path = getenv("EMILE_DEVICE_LOCK_TRACE");
    if (!path || !*path)
        return;
    json_t *j = json_pack("{sisssssssfsfsb}", "pid", (int)getpid(), "key", t->key, "mode",
                          t->mode == DEVICE_LOCK_EXCLUSIVE ? "exclusive" : "shared", "what", t->what, "t0", t->t0,
                          "t1", clock_mono_s(), "locked", t->locking);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int fd = line ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
    if (fd >= 0) {
        size_t len = strlen(line);
        line[len] = '\n';                 /* one write: appended whole */
        fs_write_all(fd, line, len + 1);  /* a trace, never a reason to fail */
        close(fd);
    }
    free(line);
}

void device_turn_give(device_turn_t *t, device_phase_t phase)
{
    if (!wanted(t, phase) || t->depth == 0)
        return;
    if (--t->depth > 0)
        return;
    trace(t);
    if (t->locking)
        device_lock_release(&t->lock);
}

void device_turn_close(device_turn_t *t)
{
    if (t->locking)
        device_lock_close(&t->lock);
    t->locking = 0;
    t->state = 0;
    t->depth = 0;
}
