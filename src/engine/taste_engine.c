/*
 * taste_engine.c -- the generations of a tasting, in the sandboxed child or
 * in this process (see taste_engine.h).
 *
 * Child protocol: two pipes.  The stream pipe carries what the run prints
 * while it generates (the side headers and the streamed text), copied to
 * out as it comes.  The report pipe carries one JSON line at the end:
 *   {"device_name", "decode_path", "sides": [{"label", "ttft_s", "decode_s",
 *    "decode_tok_s", "n_new", "n_prompt", "tokens": [ids]}]}
 * or {"error": TEXT}, or -- from the SIGSYS handler -- {"forbidden": NAME,
 * "nr": N}.
 */
#include "engine/taste_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/attn_slot.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/taste_confine.h"

struct stream {
    tokenizer_t *tok;
    FILE *out;
};

static int stream_token(void *user, int token)
{
    struct stream *s = user;
    size_t n;
    const char *b = tokenizer_token_bytes(s->tok, token, &n);
    if (b) {
        fwrite(b, 1, n, s->out);
        fflush(s->out);
    }
    return 0;
}

/* One generation on m with slot (after the warm-up prefills); fills side. */
static int run_side(const taste_engine_job_t *job, engine_model_t *m, attn_slot_t *slot,
                    FILE *out, taste_side_t *side, char *err, size_t errlen)
{
    const taste_opts_t *o = job->o;
    int warm = o->warmup >= 0 ? o->warmup : strcmp(m->device, "cuda") == 0;
    engine_gen_opts_t wg = o->gen;
    wg.max_new = 1;                    /* prefill and the first pick: what TTFT times */
    for (int i = 0; i < warm; i++)
        if (engine_generate_model(m, slot, job->prompt, job->n_prompt, &wg, NULL, NULL, NULL,
                                  NULL, err, errlen) < 0)
            return -1;
    side->tokens = malloc(((size_t)o->gen.max_new + 1) * sizeof *side->tokens);
    if (!side->tokens) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(side->label, sizeof side->label, "%s", slot->label);
    struct stream st = { job->tok, out };
    int show = job->tok && !o->quiet && !o->json;
    if (show)
        fprintf(out, "--- %s\n", slot->label);
    int n = engine_generate_model(m, slot, job->prompt, job->n_prompt, &o->gen, side->tokens,
                                  show ? stream_token : NULL, &st, &side->stats, err, errlen);
    if (show)
        fprintf(out, "\n");
    fflush(out);
    if (n < 0)
        return -1;
    side->n = n;
    return 0;
}

static int identity_hook(void *user, char *err, size_t errlen)
{
    (void)user;
    return taste_confine_identity(err, errlen);
}

/* Open the model, load the kernels, generate each side: the same steps
 * in the child (sandbox: confined between the model and the kernels,
 * forbidden calls reported to report_fd) and in this process. */
static int engine_steps(const taste_engine_job_t *job, FILE *out, int report_fd,
                        taste_report_t *rep, char *err, size_t errlen)
{
    const taste_opts_t *o = job->o;
    const char *device = o->device;
    engine_weights_src_t src = { o->model_dir, o->weight_seed,
                                 job->sandbox ? identity_hook : NULL, NULL };
    engine_model_t m;
    memset(&m, 0, sizeof m);
    int rc = strcmp(device, "cuda") == 0
           ? engine_model_open_cuda(&m, &job->c, &src, job->ctx, job->n_prompt, err, errlen)
           : engine_model_open_cpu(&m, &job->c, &src, job->ctx, job->n_prompt, err, errlen);
    if (rc != 0)
        return -1;
    snprintf(rep->device_name, sizeof rep->device_name, "%s", m.device_name);
    snprintf(rep->decode_path, sizeof rep->decode_path, "%s", m.decode_path);
    attn_slot_t slots[2];
    attn_slot_init_builtin(&slots[0]);
    attn_slot_init_builtin(&slots[1]);
    if (job->sandbox)
        rc = taste_confine_filter(device, report_fd, err, errlen);
    for (int i = 0; i < job->sides && rc == 0; i++)
        if (job->so[i][0]) {
            rc = attn_slot_load(&slots[i], job->so[i], err, errlen);
            if (rc == 0)
                snprintf(slots[i].label, sizeof slots[i].label, "%s", job->label[i]);
        }
    if (rc == 0 && job->sandbox)
        rc = taste_confine_loaded(device, err, errlen);
    for (int i = 0; i < job->sides && rc == 0; i++) {
        rc = run_side(job, &m, &slots[i], out, &rep->side[i], err, errlen);
        if (rc == 0)
            rep->n_sides = i + 1;
    }
    /* The child leaves everything as it is for _exit: unloading a kernel
     * that started OpenMP threads unmaps the code those threads spin in
     * (a SIGSEGV seen here), and the sandbox forbids nothing at exit. */
    if (!job->sandbox) {
        engine_model_close(&m);
        attn_slot_close(&slots[0]);
        attn_slot_close(&slots[1]);
    }
    return rc;
}

static json_t *report_json(const taste_report_t *rep)
{
    json_t *sides = json_array();
    for (int i = 0; i < rep->n_sides; i++) {
        const taste_side_t *s = &rep->side[i];
        json_t *ids = json_array();
        for (int k = 0; k < s->n; k++)
            json_array_append_new(ids, json_integer(s->tokens[k]));
        json_array_append_new(sides, json_pack("{s:s, s:f, s:f, s:f, s:i, s:i, s:o}", "label",
                                               s->label, "ttft_s", s->stats.ttft_s, "decode_s",
                                               s->stats.decode_s, "decode_tok_s",
                                               s->stats.decode_tok_s, "n_new", s->stats.n_new,
                                               "n_prompt", s->stats.n_prompt, "tokens", ids));
    }
    return json_pack("{s:s, s:s, s:o}", "device_name", rep->device_name, "decode_path",
                     rep->decode_path, "sides", sides);
}

/* rep from the child's report line; 0, or -1 with err. */
static int report_from_json(const json_t *j, taste_report_t *rep, char *err, size_t errlen)
{
    snprintf(rep->device_name, sizeof rep->device_name, "%s",
             json_string_value(json_object_get(j, "device_name")) ?
             json_string_value(json_object_get(j, "device_name")) : "");
    snprintf(rep->decode_path, sizeof rep->decode_path, "%s",
             json_string_value(json_object_get(j, "decode_path")) ?
             json_string_value(json_object_get(j, "decode_path")) : "");
    json_t *sides = json_object_get(j, "sides");
    if (!json_is_array(sides) || json_array_size(sides) > 2) {
        snprintf(err, errlen, "the engine child's report has no sides");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(sides); i++) {
        json_t *s = json_array_get(sides, i), *ids = json_object_get(s, "tokens");
        taste_side_t *d = &rep->side[i];
        const char *label = json_string_value(json_object_get(s, "label"));
        snprintf(d->label, sizeof d->label, "%s", label ? label : "");
        d->stats.ttft_s = json_number_value(json_object_get(s, "ttft_s"));
        d->stats.decode_s = json_number_value(json_object_get(s, "decode_s"));
        d->stats.decode_tok_s = json_number_value(json_object_get(s, "decode_tok_s"));
        d->stats.n_new = (int)json_integer_value(json_object_get(s, "n_new"));
        d->stats.n_prompt = (int)json_integer_value(json_object_get(s, "n_prompt"));
        d->n = (int)json_array_size(ids);
        d->tokens = malloc(((size_t)d->n + 1) * sizeof *d->tokens);
        if (!d->tokens) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (int k = 0; k < d->n; k++)
            d->tokens[k] = (int)json_integer_value(json_array_get(ids, (size_t)k));
        rep->n_sides = (int)i + 1;
    }
    return 0;
}

static void write_line(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

/* In the child: the steps, then the report line; never returns. */
static void child_main(const taste_engine_job_t *job, int stream_fd, int report_fd)
{
    FILE *out = fdopen(stream_fd, "w");
    taste_report_t rep;
    memset(&rep, 0, sizeof rep);
    char err[2048] = "";
    int rc = out ? engine_steps(job, out, report_fd, &rep, err, sizeof err) : -1;
    if (out)
        fflush(out);
    json_t *j = rc == 0 ? report_json(&rep) : json_pack("{s:s}", "error", out ? err :
                                                        "cannot open the stream pipe");
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (line) {
        write_line(report_fd, line);
        write_line(report_fd, "\n");
    }
    /* _exit: no atexit work (a sanitizer's leak check would need calls the
     * filter forbids), and the parent's stdio buffers are not ours. */
    _exit(rc == 0 && line ? 0 : 1);
}

/* Append what fd has to *buf; 0 at its end, 1 when more may come, -1. */
static int drain(int fd, char **buf, size_t *len, FILE *copy)
{
    char tmp[65536];
    ssize_t k = read(fd, tmp, sizeof tmp);
    if (k < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -1;
    if (k == 0)
        return 0;
    if (copy) {
        fwrite(tmp, 1, (size_t)k, copy);
        fflush(copy);
        return 1;
    }
    char *nb = realloc(*buf, *len + (size_t)k + 1);
    if (!nb)
        return -1;
    memcpy(nb + *len, tmp, (size_t)k);
    *len += (size_t)k;
    nb[*len] = 0;
    *buf = nb;
    return 1;
}

static int run_in_child(const taste_engine_job_t *job, FILE *out, taste_report_t *rep,
                        char *err, size_t errlen)
{
    int sp[2], rp[2];
    if (pipe2(sp, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(rp, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        close(sp[0]);
        close(sp[1]);
        return -1;
    }
    fflush(out);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(sp[0]); close(sp[1]); close(rp[0]); close(rp[1]);
        return -1;
    }
    if (pid == 0) {
        close(sp[0]);
        close(rp[0]);
        child_main(job, sp[1], rp[1]);
    }
    close(sp[1]);
    close(rp[1]);
    char *report = NULL;
    size_t len = 0;
    int open_s = 1, open_r = 1, bad = 0;
    while ((open_s || open_r) && !bad) {
        struct pollfd pf[2] = {{open_s ? sp[0] : -1, POLLIN, 0}, {open_r ? rp[0] : -1, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            bad = errno != EINTR;
            continue;
        }
        if (open_s && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            int d = drain(sp[0], NULL, NULL, out);
            open_s = d > 0;
            bad = d < 0;
        }
        if (open_r && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            int d = drain(rp[0], &report, &len, NULL);
            open_r = d > 0;
            bad |= d < 0;
        }
    }
    close(sp[0]);
    close(rp[0]);
    if (bad)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    /* The last line the child wrote is its report. */
    json_t *j = NULL;
    if (report) {
        char *end = report + len;
        while (end > report && (end[-1] == '\n' || end[-1] == 0))
            *--end = 0;
        char *last = strrchr(report, '\n');
        j = json_loads(last ? last + 1 : report, 0, NULL);
    }
    int rc = -1;
    const char *forbidden = json_string_value(json_object_get(j, "forbidden"));
    const char *child_err = json_string_value(json_object_get(j, "error"));
    if (forbidden)
        snprintf(err, errlen, "a kernel in the attention slot made a forbidden system call: "
                 "%s (nr %lld); the Tasting Room runs kernels in the worker's sandbox",
                 forbidden, (long long)json_integer_value(json_object_get(j, "nr")));
    else if (child_err)
        snprintf(err, errlen, "%s", child_err);
    else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
        /* the filter's signal arrived while signals were blocked (as they
         * are around the clone of system() or posix_spawn): no name */
        snprintf(err, errlen, "a kernel in the attention slot made a forbidden system call "
                 "with its signals blocked (starting a process?); the Tasting Room runs "
                 "kernels in the worker's sandbox");
    else if (WIFSIGNALED(st))
        snprintf(err, errlen, "the engine (with the kernels in its slot) was killed by signal "
                 "%d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (!j || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        snprintf(err, errlen, "the engine ended without a report (exit status %d)",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    else
        rc = report_from_json(j, rep, err, errlen);
    json_decref(j);
    free(report);
    return rc;
}

int taste_engine_run(const taste_engine_job_t *job, FILE *out, taste_report_t *rep,
                     char *err, size_t errlen)
{
    if (!job->sandbox)
        return engine_steps(job, out, -1, rep, err, errlen);
    return run_in_child(job, out, rep, err, errlen);
}
