/*
 * taste_engine.c -- the generations of a tasting, in sandboxed children or
 * in this process (see taste_engine.h).
 *
 * One child per side, each with only its own kernel loaded.  Each child
 * has /dev/null as stdin, the stream pipe as stdout and stderr (the side
 * header and the streamed text, copied to out as they come, at most
 * CHILD_STREAM_MAX), and the report pipe as fd 3, nothing else.  The report
 * is one JSON line at the end:
 *   {"device_name", "decode_path", "ttft_s", "decode_s", "decode_tok_s",
 *    "n_new", "n_prompt", "tokens": [ids], ["profile": {...}]}
 * or {"error": TEXT}, or -- from the SIGSYS handler -- {"forbidden": NAME,
 * "nr": N}.  The parent checks it against the job before believing it.
 */
#include "taste/taste_engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/breakdown.h"
#include "engine/generate.h"
#include "backend/backend.h"
#include "engine/model.h"
#include "taste/taste_confine.h"
#include "util/clock.h"
#include "util/fs.h"

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

/* One generation on m with ops (after the warm-up prefills), then, for the
 * breakdown, an untimed one with each op timed; fills side. */
static int run_side(const taste_engine_job_t *job, engine_model_t *m, engine_ops_t *ops,
                    FILE *out, taste_side_t *side, char *err, size_t errlen)
{
    const taste_opts_t *o = job->o;
    attn_slot_t *slot = &ops->slot[ENGINE_OP_ATTENTION];
    const engine_device_t *ed = engine_device_find(m->device);
    int warm = o->warmup >= 0 ? o->warmup : ed ? ed->warmup : 0;
    engine_gen_opts_t wg = o->gen;
    wg.max_new = 1;                    /* prefill and the first pick: what TTFT times */
    for (int i = 0; i < warm; i++)
        if (engine_generate_model(m, ops, job->prompt, job->n_prompt, &wg, NULL, NULL, NULL,
                                  NULL, err, errlen) < 0)
            return -1;
    side->tokens = malloc(((size_t)o->gen.max_new + 1) * sizeof *side->tokens);
    if (!side->tokens) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(side->label, sizeof side->label, "%s", slot->label);
    for (int op = 0; op < ENGINE_OP_COUNT; op++)
        snprintf(side->op_label[op], sizeof side->op_label[op], "%s", ops->slot[op].label);
    struct stream st = { job->tok, out };
    int show = job->tok && !o->quiet && !o->json;
    if (show)
        fprintf(out, "--- %s\n", slot->label);
    int n = engine_generate_model(m, ops, job->prompt, job->n_prompt, &o->gen, side->tokens,
                                  show ? stream_token : NULL, &st, &side->stats, err, errlen);
    if (show)
        fprintf(out, "\n");
    fflush(out);
    if (n < 0)
        return -1;
    side->n = n;
    if (o->breakdown) {
        memset(&side->profile, 0, sizeof side->profile);
        ops->prof = &side->profile;
        int rc = engine_generate_model(m, ops, job->prompt, job->n_prompt, &o->gen, NULL, NULL,
                                       NULL, NULL, err, errlen);
        ops->prof = NULL;
        /* back to the timed configuration (cuda: the graph without events) */
        if (rc >= 0 && m->prepare && m->prepare(m, ops, err, errlen) != 0)
            rc = -1;
        if (rc < 0)
            return -1;
        side->has_profile = 1;
    }
    return 0;
}

/* user: the parent's pid, taken before the fork. */
static int identity_hook(void *user, char *err, size_t errlen)
{
    return taste_confine_identity(*(const pid_t *)user, err, errlen);
}

/* Open the model, load the kernels of sides lo..hi-1, generate each: in a
 * child (sandbox: confined between the model and the kernels, forbidden
 * calls reported to report_fd) one side at a time, or all in this
 * process. */
static int engine_steps(const taste_engine_job_t *job, int lo, int hi, FILE *out,
                        int report_fd, pid_t parent, taste_report_t *rep, char *err,
                        size_t errlen)
{
    const taste_opts_t *o = job->o;
    const char *device = o->device;
    engine_weights_src_t src = { o->model_dir, o->weight_seed,
                                 job->sandbox ? identity_hook : NULL, &parent };
    engine_model_t m;
    memset(&m, 0, sizeof m);
    const engine_device_t *ed = engine_device_find(device);
    if (!ed) {
        snprintf(err, errlen, "unknown device '%s' (%s)", device, engine_device_names());
        return -1;
    }
    int rc = ed->open(&m, &job->c, &src, job->ctx, job->n_prompt, err, errlen);
    if (rc != 0)
        return -1;
    /* A GPU driver needs its ioctls and maps code as it pleases (backend.h). */
    const backend_t *b = backend_find(device);
    int gpu = b && b->kind == BACKEND_GPU;
    snprintf(rep->device_name, sizeof rep->device_name, "%s", m.device_name);
    snprintf(rep->decode_path, sizeof rep->decode_path, "%s", m.decode_path);
    engine_ops_t ops[2];
    engine_ops_init(&ops[0]);
    engine_ops_init(&ops[1]);
    if (job->sandbox)
        rc = taste_confine_filter(gpu, report_fd, err, errlen);
    for (int i = lo; i < hi && rc == 0; i++)
        for (int op = 0; op < ENGINE_OP_COUNT && rc == 0; op++) {
            op_slot_t *sl = &ops[i].slot[op];
            if (job->so[i][op][0])
                rc = op_slot_load(sl, job->so[i][op], err, errlen);
            if (rc == 0 && job->label[i][op][0])
                snprintf(sl->label, sizeof sl->label, "%s", job->label[i][op]);
        }
    if (rc == 0 && job->sandbox)
        rc = taste_confine_loaded(gpu, err, errlen);
    for (int i = lo; i < hi && rc == 0; i++) {
        rc = run_side(job, &m, &ops[i], out, &rep->side[i], err, errlen);
        if (rc == 0)
            rep->n_sides = i + 1;
    }
    /* The child leaves everything as it is for _exit (the sandbox forbids
     * nothing there, and nothing is gained by tearing down). */
    if (!job->sandbox) {
        engine_model_close(&m);
        engine_ops_close(&ops[0]);
        engine_ops_close(&ops[1]);
    }
    return rc;
}

/* The report of one side. */
static json_t *report_json(const taste_report_t *rep, int side)
{
    const taste_side_t *s = &rep->side[side];
    json_t *ids = json_array();
    for (int k = 0; k < s->n; k++)
        json_array_append_new(ids, json_integer(s->tokens[k]));
    json_t *j = json_pack("{s:s, s:s, s:f, s:f, s:f, s:i, s:i, s:o}", "device_name",
                          rep->device_name, "decode_path", rep->decode_path, "ttft_s",
                          s->stats.ttft_s, "decode_s", s->stats.decode_s, "decode_tok_s",
                          s->stats.decode_tok_s, "n_new", s->stats.n_new, "n_prompt",
                          s->stats.n_prompt, "tokens", ids);
    if (j && s->has_profile)
        json_object_set_new(j, "profile", engine_profile_to_json(&s->profile));
    return j;
}

/* Side `side` of rep from a child's report line, checked against what the
 * parent knows (the label is the parent's; the counts and ids must fit
 * the job; the times must fit in the child's life as the parent saw it).
 * A kernel shares the child's process, so it could still forge numbers
 * that fit: these checks stop a careless forgery, not a careful one.
 * 0, or -1 with err. */
static int report_from_json(const taste_engine_job_t *job, int side, const json_t *j,
                            double wall_s, taste_report_t *rep, char *err, size_t errlen)
{
    const char *dn = json_string_value(json_object_get(j, "device_name"));
    const char *dp = json_string_value(json_object_get(j, "decode_path"));
    json_t *ids = json_object_get(j, "tokens");
    taste_side_t *d = &rep->side[side];
    d->stats.ttft_s = json_number_value(json_object_get(j, "ttft_s"));
    d->stats.decode_s = json_number_value(json_object_get(j, "decode_s"));
    d->stats.decode_tok_s = json_number_value(json_object_get(j, "decode_tok_s"));
    d->stats.n_new = (int)json_integer_value(json_object_get(j, "n_new"));
    d->stats.n_prompt = (int)json_integer_value(json_object_get(j, "n_prompt"));
    size_t n = json_array_size(ids);
    int bad = !dn || !dp || !json_is_array(ids) || n > (size_t)job->o->gen.max_new ||
              (int)n != d->stats.n_new || d->stats.n_prompt != job->n_prompt ||
              !(d->stats.ttft_s > 0) || d->stats.decode_s < 0 ||
              d->stats.ttft_s + d->stats.decode_s > wall_s;
    for (size_t k = 0; k < n && !bad; k++) {
        json_int_t t = json_integer_value(json_array_get(ids, k));
        bad = !json_is_integer(json_array_get(ids, k)) || t < 0 || t >= job->c.vocab;
    }
    const json_t *prof = json_object_get(j, "profile");
    if (!bad && job->o->breakdown)
        bad = !prof || engine_profile_from_json(prof, &d->profile) != 0;
    if (bad) {
        snprintf(err, errlen, "the engine child's report for %s does not fit the tasting "
                 "(counts, token ids, times or breakdown out of bounds): a kernel in its slot "
                 "wrote it?", job->label[side][ENGINE_OP_ATTENTION]);
        return -1;
    }
    d->has_profile = job->o->breakdown;
    snprintf(rep->device_name, sizeof rep->device_name, "%s", dn);
    snprintf(rep->decode_path, sizeof rep->decode_path, "%s", dp);
    snprintf(d->label, sizeof d->label, "%s", job->label[side][ENGINE_OP_ATTENTION]);
    for (int op = 0; op < ENGINE_OP_COUNT; op++)
        snprintf(d->op_label[op], sizeof d->op_label[op], "%s", job->label[side][op]);
    d->n = (int)n;
    d->tokens = malloc((n + 1) * sizeof *d->tokens);
    if (!d->tokens) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t k = 0; k < n; k++)
        d->tokens[k] = (int)json_integer_value(json_array_get(ids, k));
    return 0;
}

#define CHILD_REPORT_FD 3

/* In the child: only what it needs open -- /dev/null as stdin (no
 * terminal to read or type into), the stream pipe as stdout and stderr,
 * the report pipe as fd 3, nothing else of the parent's (the store, a
 * server's sockets) -- then the steps of one side and its report line;
 * never returns. */
static void child_main(const taste_engine_job_t *job, int side, int stream_fd, int report_fd,
                       pid_t parent)
{
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0 || dup2(stream_fd, 1) < 0 || dup2(stream_fd, 2) < 0 ||
        dup2(report_fd, CHILD_REPORT_FD) < 0)
        _exit(1);
    close_range(CHILD_REPORT_FD + 1, ~0U, 0);
    FILE *out = fdopen(1, "w");
    taste_report_t rep;
    memset(&rep, 0, sizeof rep);
    char err[2048] = "";
    int rc = out ? engine_steps(job, side, side + 1, out, CHILD_REPORT_FD, parent, &rep, err,
                                sizeof err) : -1;
    if (out)
        fflush(out);
    json_t *j = rc == 0 ? report_json(&rep, side)
                        : json_pack("{s:s}", "error", out ? err : "cannot open the stream");
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (line) {
        fs_write_all(CHILD_REPORT_FD, line, strlen(line));
        fs_write_all(CHILD_REPORT_FD, "\n", 1);
    }
    /* _exit: no atexit work (a sanitizer's leak check would need calls the
     * filter forbids), and the parent's stdio buffers are not ours. */
    _exit(rc == 0 && line ? 0 : 1);
}

/* What a child may send before it is stopped: the streamed text of a long
 * generation is far below the first, a report (ids included) below the
 * second. */
#define CHILD_STREAM_MAX ((size_t)64 << 20)
#define CHILD_REPORT_MAX ((size_t)4 << 20)

/* Move what fd has to copy (the stream) or *buf (the report), counting in
 * *total; 0 at its end, 1 when more may come, -1 on error, -2 past max. */
static int drain(int fd, char **buf, size_t *len, FILE *copy, size_t *total, size_t max)
{
    char tmp[65536];
    ssize_t k = read(fd, tmp, sizeof tmp);
    if (k < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -1;
    if (k == 0)
        return 0;
    *total += (size_t)k;
    if (*total > max)
        return -2;
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

/* Threads of this process (fork copies only the calling one), and their
 * names ("emile, cuda-EvtHandlr") in names: who started the extra ones is
 * the question whoever meets the refusal below has to answer. */
static int thread_count(char *names, size_t n)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int count = 1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &count) == 1)
            break;
    if (f)
        fclose(f);
    names[0] = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    size_t used = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "?";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *c = fopen(path, "r");
        if (c) {
            if (fgets(comm, sizeof comm, c))
                comm[strcspn(comm, "\n")] = 0;
            fclose(c);
        }
        int w = snprintf(names + used, n - used, "%s%s", used ? ", " : "", comm);
        if (w < 0 || (size_t)w >= n - used) {
            names[used] = 0;
            break;
        }
        used += (size_t)w;
    }
    if (d)
        closedir(d);
    return count;
}

/* What a side put in the slots, for messages: the attention slot's label,
 * then each other loaded op's ("attention builtin, decode_attention run 4's
 * best"); only the attention's when no other is loaded. */
static const char *side_name(const taste_engine_job_t *job, int side, char *buf, size_t n)
{
    size_t off = (size_t)snprintf(buf, n, "%s", job->label[side][ENGINE_OP_ATTENTION]);
    for (int op = ENGINE_OP_ATTENTION + 1; op < ENGINE_OP_COUNT && off < n; op++)
        if (job->so[side][op][0])
            off += (size_t)snprintf(buf + off, n - off, ", %s %s", engine_op_name(op),
                                    job->label[side][op]);
    return buf;
}

/* One side in its own confined child: each kernel alone with the model
 * (the runner's rule: a candidate's threads or constructors cannot slow
 * the reference's measurement). */
static int run_in_child(const taste_engine_job_t *job, int side, FILE *out,
                        taste_report_t *rep, char *err, size_t errlen)
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
    fflush(stdout);
    fflush(stderr);
    double t0 = clock_mono_s();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(sp[0]); close(sp[1]); close(rp[0]); close(rp[1]);
        return -1;
    }
    if (pid == 0)
        child_main(job, side, sp[1], rp[1], parent);
    close(sp[1]);
    close(rp[1]);
    char *report = NULL;
    size_t len = 0, streamed = 0, reported = 0;
    int open_s = 1, open_r = 1, bad = 0;
    while ((open_s || open_r) && !bad) {
        struct pollfd pf[2] = {{open_s ? sp[0] : -1, POLLIN, 0}, {open_r ? rp[0] : -1, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            bad = errno != EINTR ? -1 : 0;
            continue;
        }
        if (open_s && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            int d = drain(sp[0], NULL, NULL, out, &streamed, CHILD_STREAM_MAX);
            open_s = d > 0;
            bad = d < 0 ? d : 0;
        }
        if (open_r && !bad && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            int d = drain(rp[0], &report, &len, NULL, &reported, CHILD_REPORT_MAX);
            open_r = d > 0;
            bad = d < 0 ? d : 0;
        }
    }
    close(sp[0]);
    close(rp[0]);
    if (bad)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    double wall_s = clock_mono_s() - t0;
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
    char who[1024];
    side_name(job, side, who, sizeof who);
    const char *forbidden = json_string_value(json_object_get(j, "forbidden"));
    const char *child_err = json_string_value(json_object_get(j, "error"));
    if (bad == -2)
        snprintf(err, errlen, "the engine child with %s sent more than %zu MiB and was "
                 "stopped", who,
                 (streamed > CHILD_STREAM_MAX ? CHILD_STREAM_MAX : CHILD_REPORT_MAX) >> 20);
    else if (forbidden || (WIFEXITED(st) && WEXITSTATUS(st) == 3))
        snprintf(err, errlen, "a kernel in the slots (%s) made a forbidden system "
                 "call: %s (nr %lld); the Tasting Room runs kernels in the worker's sandbox",
                 who, forbidden ? forbidden : "unnamed",
                 (long long)json_integer_value(json_object_get(j, "nr")));
    else if (child_err)
        snprintf(err, errlen, "%s", child_err);
    else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
        /* the filter's signal arrived while signals were blocked (as they
         * are around the clone of system() or posix_spawn): no name */
        snprintf(err, errlen, "a kernel in the slots (%s) made a forbidden system "
                 "call with its signals blocked (starting a process?); the Tasting Room runs "
                 "kernels in the worker's sandbox", who);
    else if (WIFSIGNALED(st))
        snprintf(err, errlen, "the engine with %s in its slots was killed by signal %d (%s)",
                 who, WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (!j || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        snprintf(err, errlen, "the engine with %s in its slots ended without a report (exit "
                 "status %d)", who, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    else
        rc = report_from_json(job, side, j, wall_s, rep, err, errlen);
    json_decref(j);
    free(report);
    return rc;
}

int taste_engine_run(const taste_engine_job_t *job, FILE *out, taste_report_t *rep,
                     char *err, size_t errlen)
{
    if (!job->sandbox)
        return engine_steps(job, 0, job->sides, out, -1, getpid(), rep, err, errlen);
    char names[512];
    int threads = thread_count(names, sizeof names);
    if (threads > 1) {
        /* fork copies only this thread: a lock another one held stays held
         * in the child (libgomp's, the allocator's, the CUDA driver's) */
        snprintf(err, errlen, "the tasting's sandbox forks, and this process runs %d threads "
                 "(%s): call taste_run from a single-threaded process, or --no-sandbox",
                 threads, names);
        return -1;
    }
    for (int i = 0; i < job->sides; i++) {
        if (run_in_child(job, i, out, rep, err, errlen) != 0)
            return -1;
        rep->n_sides = i + 1;
    }
    return 0;
}
