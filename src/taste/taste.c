/*
 * taste.c -- the Tasting Room run: same model, same prompt, reference
 * attention then candidate kernel, side by side (see taste.h).  What
 * differs between cpu and cuda lives behind engine_model_t (model.h); the
 * kernels come from taste_kernel.c, the prompt from taste_prompt.c.
 */
#include "taste/taste.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "engine/model.h"
#include "engine/qwen3.h"
#include "taste/taste_engine.h"
#include "taste/taste_kernel.h"
#include "taste/taste_prompt.h"
#include "taste/taste_status.h"
#include "engine/tokenizer.h"
#include "util/child_call.h"
#include "util/fs.h"

taste_opts_t taste_defaults(void)
{
    taste_opts_t o;
    memset(&o, 0, sizeof o);
    o.random_shape = "tiny";
    o.device = backend_default()->name;
    o.warmup = -1;
    o.weight_seed = 1;
    o.chat = 1;
    o.prompt_tokens = 32;
    o.gen = engine_gen_defaults();
    o.gen.max_new = 64;
    return o;
}

void taste_report_free(taste_report_t *rep)
{
    for (int i = 0; i < 2; i++)
        free(rep->side[i].tokens);
    memset(rep, 0, sizeof *rep);
}

/* The model's shape: a checkpoint's config.json or a named shape. */
static int load_config(const taste_opts_t *o, qwen3_config_t *c, char *err, size_t errlen)
{
    if (o->model_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", o->model_dir);
        return qwen3_config_load(c, path, err, errlen) == 0 ? 0 : TASTE_BAD_INPUT;
    }
    if (!o->random_shape || qwen3_config_named(c, o->random_shape) != 0) {
        snprintf(err, errlen, "unknown shape '%s' (qwen3-4b, qwen3-0.6b, tiny)",
                 o->random_shape ? o->random_shape : "");
        return TASTE_BAD_INPUT;
    }
    return 0;
}

static void print_table(FILE *out, const taste_report_t *r)
{
    const taste_side_t *a = &r->side[0], *b = &r->side[1];
    int two = r->n_sides == 2;
    fprintf(out, "%-22s %-28s %s\n", "", "reference", two ? "kernel" : "");
    fprintf(out, "%-22s %-28.28s %s\n", "attention", a->label, two ? b->label : "");
    fprintf(out, "%-22s %-28d %d\n", "prompt tokens", r->n_prompt, two ? r->n_prompt : 0);
    fprintf(out, "%-22s %-28.2f", "TTFT (ms)", a->stats.ttft_s * 1e3);
    if (two)
        fprintf(out, " %.2f (%.2fx)", b->stats.ttft_s * 1e3,
                b->stats.ttft_s > 0 ? a->stats.ttft_s / b->stats.ttft_s : 0.0);
    fprintf(out, "\n%-22s %-28.2f", "decode (tok/s)", a->stats.decode_tok_s);
    if (two)
        fprintf(out, " %.2f", b->stats.decode_tok_s);
    fprintf(out, "\n%-22s %-28d", "tokens generated", a->n);
    if (two)
        fprintf(out, " %d", b->n);
    fprintf(out, "\n");
    if (two) {
        if (r->agree)
            fprintf(out, "%-22s yes, all %d tokens\n", "same tokens", a->n);
        else
            fprintf(out, "%-22s no, first divergence at generated token %d\n", "same tokens",
                    r->first_divergence);
    }
    /* the other slots, where either side put a kernel */
    for (int op = ENGINE_OP_ATTENTION + 1; op < ENGINE_OP_COUNT; op++) {
        const char *la = a->op_label[op], *lb = two ? b->op_label[op] : "";
        if (strcmp(la, "builtin") != 0 || (two && strcmp(lb, "builtin") != 0))
            fprintf(out, "%-22s %-28.28s %s\n", engine_op_name(op), la, lb);
    }
    /* The device's own name and decode path where they say more than its
     * backend's name (the cpu model's are that name). */
    if (strcmp(r->device_name, r->device) != 0 || strcmp(r->decode_path, r->device) != 0)
        fprintf(out, "%-22s %s, %s; decode: %s\n", "device", r->device, r->device_name, r->decode_path);
    else
        fprintf(out, "%-22s %s\n", "device", r->device);
    for (int i = 0; i < r->n_sides; i++)
        if (r->side[i].has_profile) {
            engine_breakdown_t bd;
            engine_breakdown_compute(&r->config, &r->side[i].profile, &r->ceilings, &bd);
            engine_breakdown_print(out, i == 0 ? "reference" : "kernel", &bd);
        }
    if ((r->side[0].has_profile || r->side[1].has_profile) && r->ceilings.gbs <= 0)
        fprintf(out, "(no floors: the device's ceilings could not be measured)\n");
}

static void print_json(FILE *out, const taste_report_t *r)
{
    json_t *sides = json_array();
    for (int i = 0; i < r->n_sides; i++) {
        const taste_side_t *s = &r->side[i];
        json_t *ids = json_array();        /* the generated ids, to compare with a peer */
        for (int k = 0; k < s->n; k++)
            json_array_append_new(ids, json_integer(s->tokens[k]));
        json_t *ops = json_object();
        for (int op = 0; op < ENGINE_OP_COUNT; op++)
            json_object_set_new(ops, engine_op_name(op), json_string(s->op_label[op]));
        json_t *sj = json_pack("{s:s, s:s, s:o, s:f, s:f, s:i, s:o}", "role",
                               i == 0 ? "reference" : "kernel", "attention", s->label, "ops",
                               ops, "ttft_ms", s->stats.ttft_s * 1e3, "decode_tok_s",
                               s->stats.decode_tok_s, "tokens", s->n, "ids", ids);
        if (s->has_profile) {
            engine_breakdown_t bd;
            engine_breakdown_compute(&r->config, &s->profile, &r->ceilings, &bd);
            json_object_set_new(sj, "breakdown", engine_breakdown_json(&bd));
        }
        json_array_append_new(sides, sj);
    }
    /* decode_path: the cpu model's name, "graph" or "stream"; the reason,
     * if any, apart */
    char path[192], note[192] = "";
    const char *paren = strstr(r->decode_path, " (");
    int k = paren ? (int)(paren - r->decode_path) : (int)strlen(r->decode_path);
    snprintf(path, sizeof path, "%.*s", k, r->decode_path);
    if (paren) {
        snprintf(note, sizeof note, "%s", paren + 2);
        size_t n = strlen(note);
        if (n && note[n - 1] == ')')
            note[n - 1] = 0;
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:o}", "device", r->device, "device_name",
                          r->device_name, "decode_path", path, "prompt_tokens", r->n_prompt,
                          "runs", sides);
    if (note[0])
        json_object_set_new(j, "decode_path_note", json_string(note));
    if (r->n_sides == 2) {
        json_object_set_new(j, "agree", json_boolean(r->agree));
        json_object_set_new(j, "first_divergence", json_integer(r->first_divergence));
    }
    char *s = json_dumps(j, JSON_COMPACT);
    fprintf(out, "%s\n", s ? s : "{}");
    free(s);
    json_decref(j);
}

/* The kernel of side (0 reference, 1 kernel) for op's slot; NULL: the
 * engine's own. */
static const char *kernel_spec(const taste_opts_t *o, int side, int op)
{
    const char *k = side == 0 ? o->op_reference[op] : o->op_kernel[op];
    if (!k && op == ENGINE_OP_ATTENTION)
        k = side == 0 ? o->reference : o->kernel;
    return k;
}

static int ceilings_child(void *ctx, int fd)
{
    const backend_t *b = ctx;
    json_t *dev = NULL;
    char why[512];
    if (backend_device(b, 0, &dev, why, sizeof why) != 0)
        return 1;
    char *text = json_dumps(json_object_get(dev, "ceilings"), JSON_COMPACT);
    return text && fs_write_all(fd, text, strlen(text)) == 0 ? 0 : 1;
}

/* backend_device's ceilings, asked in a child: describing a GPU starts
 * its driver (cuInit: the driver's threads, a context), and this process
 * must reach the sandbox's fork() single-threaded with no driver in it.
 * New reference, or NULL when unknown. */
static json_t *ceilings_in_child(const backend_t *b)
{
    char buf[65536];
    size_t len = 0;
    if (child_call(ceilings_child, (void *)b, buf, sizeof buf - 1, &len) != 0)
        return NULL;
    buf[len] = 0;
    return json_loads(buf, 0, NULL);
}

/* The device's measured ceilings (cached by `emile devices`; measured
 * here the first time) for the breakdown's floors; gbs 0 when unknown. */
static void ceilings(const char *device, engine_ceilings_t *ce)
{
    memset(ce, 0, sizeof *ce);
    const backend_t *b = backend_find(device);
    const engine_device_t *ed = engine_device_find(device);
    ce->elem = b ? (int)emile_dtype_size(b->engine_dtype) : 4;
    json_t *c = b && ed ? ceilings_in_child(b) : NULL;
    if (!c)
        return;
    ce->gbs = json_number_value(json_object_get(c, "bandwidth_gbs"));
    ce->gflops = json_number_value(json_object_get(json_object_get(c, "peak_gflops"),
                                                   ed->slot_dtype));
    if (!(ce->gflops > 0))
        ce->gbs = 0;
    json_decref(c);
}

void taste_report_print(FILE *out, const taste_report_t *rep, int json)
{
    if (json)
        print_json(out, rep);
    else
        print_table(out, rep);
}

int taste_run(const taste_opts_t *o, FILE *out, taste_report_t *rep, char *err,
              size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    const char *device = o->device ? o->device : backend_default()->name;
    if (!engine_device_find(device)) {
        snprintf(err, errlen, "unknown device '%s' (%s)", device, engine_device_names());
        return TASTE_BAD_INPUT;
    }
    qwen3_config_t c;
    int rc = load_config(o, &c, err, errlen);
    if (rc != 0)
        return rc;
    tokenizer_t *tok = NULL;
    char tpath[4096] = "";
    if (o->tokenizer)
        snprintf(tpath, sizeof tpath, "%s", o->tokenizer);
    else if (o->model_dir)
        snprintf(tpath, sizeof tpath, "%s/tokenizer.json", o->model_dir);
    if (tpath[0] && (o->tokenizer || access(tpath, R_OK) == 0))
        rc = tokenizer_load(&tok, tpath, err, errlen) == 0 ? 0 : TASTE_BAD_INPUT;
    int *prompt = NULL, n_prompt = 0;
    if (rc == 0) {
        taste_prompt_src_t ps = { o->prompt, o->chat, o->prompt_ids, o->prompt_tokens,
                                  o->weight_seed };
        n_prompt = taste_prompt_ids(&ps, tok, c.vocab, &prompt, err, errlen);
        rc = n_prompt > 0 ? 0 : n_prompt;
    }
    rep->n_prompt = n_prompt;
    snprintf(rep->device, sizeof rep->device, "%s", device);
    taste_opts_t oo = *o;          /* resolve the automatic stop token and the device */
    oo.device = device;
    if (oo.gen.stop_id == -2)
        oo.gen.stop_id = o->prompt && o->chat && tok ? tokenizer_token_id(tok, "<|im_end|>") : -1;
    o = &oo;
    int ctx = o->context > 0 ? o->context : n_prompt + o->gen.max_new + 1;
    if (rc == 0 && n_prompt >= ctx) {
        snprintf(err, errlen, "a prompt of %d tokens does not fit a context of %d (--context)",
                 n_prompt, ctx);
        rc = TASTE_BAD_INPUT;
    }
    /* Every kernel named rightly before any is compiled. */
    for (int i = 0; i < 2 && rc == 0; i++)
        for (int op = 0; op < ENGINE_OP_COUNT && rc == 0; op++)
            rc = taste_kernel_check(kernel_spec(o, i, op), device, err, errlen);
    /* The kernels first (a compile error costs no model load), built in a
     * private directory; only the engine child loads them, in the sandbox. */
    taste_engine_job_t job;
    memset(&job, 0, sizeof job);
    job.o = o;
    job.c = c;
    job.prompt = prompt;
    job.n_prompt = n_prompt;
    job.tok = tok;
    job.ctx = ctx;
    job.sides = 1;
    for (int op = 0; op < ENGINE_OP_COUNT; op++)
        if (kernel_spec(o, 1, op))
            job.sides = 2;
    rep->config = c;
    job.sandbox = !o->no_sandbox;
    char dir[4096] = "";
    if (rc == 0 && fs_mkdtemp("emile-taste-", dir, sizeof dir) != 0) {
        snprintf(err, errlen, "cannot create a temporary directory");
        dir[0] = 0;
        rc = -1;
    }
    /* traversable (not listable) by the sandbox's user, who compiles a
     * run's source in it and loads what was built */
    if (rc == 0 && chmod(dir, 0711) != 0) {
        snprintf(err, errlen, "cannot open %s to the sandbox", dir);
        rc = -1;
    }
    for (int i = 0; i < job.sides && rc == 0; i++)
        for (int op = 0; op < ENGINE_OP_COUNT && rc == 0; op++) {
            char sub[4200];
            snprintf(sub, sizeof sub, "%s/%s-%s", dir, i == 0 ? "reference" : "kernel",
                     engine_op_name(op));
            rc = taste_kernel_prepare_op(kernel_spec(o, i, op), engine_op_name(op), i == 0,
                                         o->store, device, sub, job.so[i][op],
                                         sizeof job.so[i][op], job.label[i][op],
                                         sizeof job.label[i][op], err, errlen);
        }
    if (rc == 0 && o->breakdown)
        ceilings(device, &rep->ceilings);
    if (rc == 0)
        rc = taste_engine_run(&job, out, rep, err, errlen);
    if (dir[0])
        fs_rm_rf(dir);
    if (rc == 0 && rep->n_sides == 2) {
        const taste_side_t *a = &rep->side[0], *b = &rep->side[1];
        int k = 0;
        while (k < a->n && k < b->n && a->tokens[k] == b->tokens[k])
            k++;
        rep->agree = k == a->n && k == b->n;
        rep->first_divergence = rep->agree ? -1 : k;
    }
    if (rc == 0) {
        if (o->json)
            print_json(out, rep);
        else
            print_table(out, rep);
    }
    free(prompt);
    tokenizer_free(tok);
    if (rc != 0)
        taste_report_free(rep);
    return rc == 0 || rc == TASTE_BAD_INPUT ? rc : -1;
}
