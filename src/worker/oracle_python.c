/* oracle_python.c -- see oracle_python.h. */
#include "worker/oracle_python.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/fs.h"
#include "util/python.h"

#define SHM_ALIGN 256

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void oracle_python_stop(oracle_python_t *o)
{
    if (o->pid > 0) {
        /* A polite quit first: torch.compile's workers end with it.  (The
         * process may be gone already, killed at a deadline: no SIGPIPE.) */
        if (o->to_fd >= 0)
            fs_write_pipe(o->to_fd, "{\"cmd\":\"quit\"}\n", 15);
        close_fd(&o->to_fd);
        int st;
        for (int i = 0; i < 50 && waitpid(o->pid, &st, WNOHANG) == 0; i++)
            usleep(20000);
        kill(-o->pid, SIGKILL);
        kill(o->pid, SIGKILL);
        waitpid(o->pid, &st, 0);
        o->pid = 0;
    }
    close_fd(&o->to_fd);
    close_fd(&o->from_fd);
    close_fd(&o->err_fd);
    if (o->shm)
        munmap(o->shm, o->shm_size);
    o->shm = NULL;
    o->shm_size = 0;
    close_fd(&o->shm_fd);
    free(o->buf);
    o->buf = NULL;
    o->len = o->cap = 0;
}

/* In the child: fds 0, 1, 2 and 3 in place, then exec. */
static void child(oracle_python_t *o, int in_r, int out_w, int err_w, pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0 || dup2(o->shm_fd, 3) < 0)
        _exit(126);
    fcntl(3, F_SETFD, 0);
    char path[4096];
    setenv("PYTHONPATH", emile_python_path(path, sizeof path), 1);
    setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
    setenv("PYTHONUNBUFFERED", "1", 1);
    char *argv[] = {o->python, "-m", "emile.oracle", "--shm-fd", "3", NULL};
    execvp(o->python, argv);
    dprintf(2, "emile-exec-failed: %s\n", strerror(errno));
    _exit(127);
}

static int spawn(oracle_python_t *o, char *err, size_t n)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
    o->shm_fd = memfd_create("emile-oracle", MFD_CLOEXEC);
    if (o->shm_fd < 0 || pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(er, O_CLOEXEC) != 0) {
        snprintf(err, n, "cannot create the oracle's pipes: %s", strerror(errno));
        goto fail;
    }
    pid_t parent = getpid();
    o->pid = fork();
    if (o->pid < 0) {
        snprintf(err, n, "cannot start the oracle: %s", strerror(errno));
        o->pid = 0;
        goto fail;
    }
    if (o->pid == 0)
        child(o, in[0], out[1], er[1], parent);
    setpgid(o->pid, o->pid);
    close(in[0]);
    close(out[1]);
    close(er[1]);
    o->to_fd = in[1];
    o->from_fd = out[0];
    o->err_fd = er[0];
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&er[i]);
    }
    return -1;
}

static void keep_tail(oracle_python_t *o, const char *data, size_t len)
{
    size_t cap = sizeof o->tail - 1;
    if (len >= cap) {
        memcpy(o->tail, data + len - cap, cap);
        o->tail_len = cap;
    } else {
        if (o->tail_len + len > cap) {
            size_t drop = o->tail_len + len - cap;
            memmove(o->tail, o->tail + drop, o->tail_len - drop);
            o->tail_len -= drop;
        }
        memcpy(o->tail + o->tail_len, data, len);
        o->tail_len += len;
    }
    o->tail[o->tail_len] = 0;
}

/* The last non-empty line of stderr (Python's exception line), into buf. */
static const char *last_line(const oracle_python_t *o, char *buf, size_t n)
{
    const char *end = o->tail + o->tail_len;
    while (end > o->tail && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > o->tail && start[-1] != '\n')
        start--;
    snprintf(buf, n, "%.*s", (int)(end - start), start);
    return buf;
}

/* Why the process is gone, as a user can act on it. */
static int death(oracle_python_t *o, const char *when, char *err, size_t n)
{
    int st = 0;
    if (o->pid > 0 && waitpid(o->pid, &st, 0) == o->pid)
        o->pid = 0;
    char line[1024];
    last_line(o, line, sizeof line);
    if (strstr(o->tail, "emile-exec-failed")) {
        snprintf(err, n, "a PyTorch problem needs Python with torch, and '%s' cannot be run (%s); set "
                         "EMILE_PYTHON to an interpreter that has torch (scripts/setup.sh makes build/venv)",
                 o->python, strchr(line, ':') ? strchr(line, ':') + 2 : line);
        return ORACLE_PY_MISSING;
    }
    if (strstr(o->tail, "No module named 'torch'") || strstr(o->tail, "No module named torch")) {
        snprintf(err, n, "a PyTorch problem needs torch, and %s has none (No module named 'torch'); set "
                         "EMILE_PYTHON to an interpreter that has it (scripts/setup.sh makes build/venv)",
                 o->python);
        return ORACLE_PY_MISSING;
    }
    if (strstr(o->tail, "No module named 'emile'")) {
        char path[2048];
        snprintf(err, n, "the oracle cannot import Emile's Python package from %s (is the emile root "
                         "complete? EMILE_ROOT)", emile_python_path(path, sizeof path));
        return ORACLE_PY_FAILED;
    }
    if (WIFSIGNALED(st))
        snprintf(err, n, "the PyTorch oracle was killed by signal %d %s%s%.600s", WTERMSIG(st), when,
                 line[0] ? ": " : "", line);
    else
        snprintf(err, n, "the PyTorch oracle exited (status %d) %s%s%.600s", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                 when, line[0] ? ": " : "", line);
    return ORACLE_PY_FAILED;
}

/* One line of stdout within timeout_s, draining stderr meanwhile. */
static int read_line(oracle_python_t *o, double timeout_s, char **line, char *err, size_t n)
{
    double deadline = clock_mono_s() + timeout_s;
    for (;;) {
        char *nl = o->buf ? memchr(o->buf, '\n', o->len) : NULL;
        if (nl) {
            size_t k = (size_t)(nl - o->buf);
            *line = strndup(o->buf, k);
            memmove(o->buf, nl + 1, o->len - k - 1);
            o->len -= k + 1;
            return ORACLE_PY_OK;
        }
        double left = deadline - clock_mono_s();
        if (left <= 0) {
            char tail[600];
            snprintf(err, n, "the PyTorch oracle gave no answer within %.0f s (the task's time limit; a "
                             "hanging reference?)%s%s", timeout_s, o->tail_len ? ": " : "",
                     last_line(o, tail, sizeof tail));
            kill(-o->pid, SIGKILL);
            return ORACLE_PY_FAILED;
        }
        struct pollfd p[2] = {{o->from_fd, POLLIN, 0}, {o->err_fd, POLLIN, 0}};
        int r = poll(p, o->err_fd >= 0 ? 2 : 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR)
            return death(o, "(poll failed)", err, n);
        char chunk[65536];
        if (o->err_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP))) {
            ssize_t k = read(o->err_fd, chunk, sizeof chunk);
            if (k > 0)
                keep_tail(o, chunk, (size_t)k);
            else if (k == 0)
                close_fd(&o->err_fd);
        }
        if (p[0].revents & (POLLIN | POLLHUP)) {
            ssize_t k = read(o->from_fd, chunk, sizeof chunk);
            if (k <= 0) {
                /* Drain what stderr still holds: the reason is there. */
                ssize_t e;
                while (o->err_fd >= 0 && (e = read(o->err_fd, chunk, sizeof chunk)) > 0)
                    keep_tail(o, chunk, (size_t)e);
                return death(o, "", err, n);
            }
            if (o->len + (size_t)k + 1 > o->cap) {
                size_t cap = (o->len + (size_t)k + 1) * 2;
                char *grown = realloc(o->buf, cap);
                if (!grown) {
                    snprintf(err, n, "out of memory reading the oracle's reply");
                    return ORACLE_PY_FAILED;
                }
                o->buf = grown;
                o->cap = cap;
            }
            memcpy(o->buf + o->len, chunk, (size_t)k);
            o->len += (size_t)k;
        }
    }
}

int oracle_python_call(oracle_python_t *o, json_t *req, double timeout_s, json_t **reply, char *err, size_t n)
{
    *reply = NULL;
    if (o->pid <= 0) {
        snprintf(err, n, "the PyTorch oracle is not running");
        return ORACLE_PY_FAILED;
    }
    char *text = json_dumps(req, JSON_COMPACT);
    if (!text) {
        snprintf(err, n, "out of memory");
        return ORACLE_PY_FAILED;
    }
    int wrc = fs_write_pipe(o->to_fd, text, strlen(text));
    free(text);
    if (wrc != 0 || fs_write_pipe(o->to_fd, "\n", 1) != 0) {
        /* It died before reading: reading to the end finds why. */
        char *line = NULL;
        int rc = read_line(o, 5, &line, err, n);
        free(line);
        return rc != ORACLE_PY_OK ? rc : death(o, "", err, n);
    }
    char *line = NULL;
    int rc = read_line(o, timeout_s, &line, err, n);
    if (rc != ORACLE_PY_OK)
        return rc;
    json_error_t je;
    json_t *r = json_loads(line, 0, &je);
    if (!json_is_object(r)) {
        snprintf(err, n, "the PyTorch oracle answered something that is not a JSON object: %.200s", line);
        free(line);
        json_decref(r);
        return ORACLE_PY_FAILED;
    }
    free(line);
    if (!json_is_true(json_object_get(r, "ok"))) {
        const char *kind = json_string_value(json_object_get(r, "kind"));
        const char *msg = json_string_value(json_object_get(r, "error"));
        snprintf(err, n, "%s", msg ? msg : "the PyTorch oracle failed without a message");
        int problem = kind && strcmp(kind, "problem") == 0;
        json_decref(r);
        return problem ? ORACLE_PY_PROBLEM : ORACLE_PY_FAILED;
    }
    *reply = r;
    return ORACLE_PY_OK;
}

int oracle_python_start(oracle_python_t *o, const char *source, const char *filename, const char *device,
                        const char *dtype, const json_t *constants, double memory_limit_mb, double timeout_s,
                        char *err, size_t n)
{
    memset(o, 0, sizeof *o);
    o->to_fd = o->from_fd = o->err_fd = o->shm_fd = -1;
    emile_python(o->python, sizeof o->python);
    if (spawn(o, err, n) != 0)
        return ORACLE_PY_FAILED;
    json_t *req = json_pack("{sssssssssssf}", "cmd", "load", "source", source, "filename", filename, "device",
                            device, "dtype", dtype ? dtype : "", "memory_limit_mb", memory_limit_mb);
    if (!dtype || !*dtype)
        json_object_set_new(req, "dtype", json_null());
    if (constants)
        json_object_set(req, "constants", (json_t *)constants);
    json_t *reply = NULL;
    int rc = oracle_python_call(o, req, timeout_s, &reply, err, n);
    json_decref(req);
    json_decref(reply);
    if (rc != ORACLE_PY_OK)
        oracle_python_stop(o);
    return rc;
}

static size_t align_up(size_t x)
{
    return (x + SHM_ALIGN - 1) / SHM_ALIGN * SHM_ALIGN;
}

static int map_shm(oracle_python_t *o, size_t size, char *err, size_t n)
{
    if (o->shm && o->shm_size == size)
        return 0;
    if (o->shm)
        munmap(o->shm, o->shm_size);
    o->shm = NULL;
    o->shm_size = 0;
    if (ftruncate(o->shm_fd, (off_t)size) != 0) {
        snprintf(err, n, "cannot size the oracle's shared memory to %zu bytes: %s", size, strerror(errno));
        return -1;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, o->shm_fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, n, "cannot map the oracle's shared memory (%zu bytes): %s", size, strerror(errno));
        return -1;
    }
    o->shm = p;
    o->shm_size = size;
    return 0;
}

int oracle_python_fill(oracle_python_t *o, const slot_layout_t *sl, uint64_t seed, uint8_t *dst, size_t base_off,
                       void **expected, double timeout_s, char *err, size_t n)
{
    size_t pos[OP_MAX_TENSORS], size = 0;
    json_t *tensors = json_array();
    for (int k = 0; k < sl->n_tensors; k++) {
        pos[k] = size;
        size = align_up(size + sl->bytes[k]);
        json_t *shape = json_array();
        for (int d = 0; d < sl->ndim[k]; d++)
            json_array_append_new(shape, json_integer(sl->shape[k][d]));
        json_array_append_new(tensors, json_pack("{sosIsI}", "shape", shape, "off", (json_int_t)pos[k], "bytes",
                                                 (json_int_t)sl->bytes[k]));
    }
    if (size == 0)
        size = SHM_ALIGN;
    if (map_shm(o, size, err, n) != 0) {
        json_decref(tensors);
        return ORACLE_PY_FAILED;
    }
    /* The seed travels as a number Python reads exactly (< 2^53). */
    json_t *req = json_pack("{sssIsIso}", "cmd", "fill", "seed", (json_int_t)(seed & ((1ULL << 52) - 1)), "size",
                            (json_int_t)size, "tensors", tensors);
    json_t *reply = NULL;
    int rc = oracle_python_call(o, req, timeout_s, &reply, err, n);
    json_decref(req);
    json_decref(reply);
    if (rc != ORACLE_PY_OK)
        return rc;
    for (int k = 0; k < sl->n_tensors; k++) {
        if (!sl->is_out[k]) {
            memcpy(dst + (sl->off[k] - base_off), o->shm + pos[k], sl->bytes[k]);
            continue;
        }
        if (!expected[k] && !(expected[k] = malloc(sl->bytes[k] ? sl->bytes[k] : 1))) {
            snprintf(err, n, "out of memory for the expected output %s", sl->tname[k]);
            return ORACLE_PY_FAILED;
        }
        memcpy(expected[k], o->shm + pos[k], sl->bytes[k]);
    }
    return ORACLE_PY_OK;
}
