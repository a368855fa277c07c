/* ladder.c -- see ladder.h. */
#include "ladder.h"

#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/lang.h"
#include "util/fs.h"
#include "util/paths.h"

/* Manifests may list params as an array of {"name", "values", "default",
 * "effect"} and give "tuning": {tag: ["raise EMILE_BK", "EMILE_SCHEDULE -> 2",
 * "lower EMILE_BQ ..."]}.  Normalise both into the object form ladder.h
 * documents: params[name] = {values, default, addresses: [tag...],
 * prefer: {tag: "raise" | "lower" | value}}.  A non-numeric default (e.g.
 * "native") is dropped: the template's own default applies. */
static void normalise_rung(json_t *rung)
{
    json_t *params = json_object_get(rung, "params");
    if (json_is_array(params)) {
        json_t *obj = json_object();
        size_t i;
        json_t *p;
        json_array_foreach(params, i, p) {
            const char *name = json_string_value(json_object_get(p, "name"));
            if (name)
                json_object_set(obj, name, p);
        }
        json_object_set_new(rung, "params", obj);
        params = obj;
    }
    const char *k;
    json_t *spec;
    json_object_foreach(params, k, spec) {
        json_t *def = json_object_get(spec, "default");
        if (def && !json_is_number(def))
            json_object_del(spec, "default");
        if (!json_object_get(spec, "addresses"))
            json_object_set_new(spec, "addresses", json_array());
        if (!json_object_get(spec, "prefer"))
            json_object_set_new(spec, "prefer", json_object());
    }
    const char *tag;
    json_t *hints;
    json_object_foreach(json_object_get(rung, "tuning"), tag, hints) {
        size_t i;
        json_t *h;
        json_array_foreach(hints, i, h) {
            const char *text = json_string_value(h);
            if (!text)
                continue;
            json_object_foreach(params, k, spec) {
                const char *at = strstr(text, k);
                if (!at)
                    continue;
                json_array_append_new(json_object_get(spec, "addresses"), json_string(tag));
                const char *arrow = strstr(at, "->");
                json_t *prefer = json_object_get(spec, "prefer");
                if (arrow)
                    json_object_set_new(prefer, tag, json_integer(strtol(arrow + 2, NULL, 10)));
                else if (strncmp(text, "raise", 5) == 0)
                    json_object_set_new(prefer, tag, json_string("raise"));
                else if (strncmp(text, "lower", 5) == 0)
                    json_object_set_new(prefer, tag, json_string("lower"));
            }
        }
    }
    json_t *gain = json_object_get(rung, "expected_gain");
    if (json_is_object(gain) && json_is_string(json_object_get(gain, "text")))
        json_object_set(rung, "expected_gain", json_object_get(gain, "text"));
}

int ladder_load(ladder_t *l, const char *op, const char *backend, char *err, size_t n)
{
    memset(l, 0, sizeof *l);
    char rel[256], path[1300];
    snprintf(rel, sizeof rel, "kernels/%s/%s", op, backend);
    emile_root_file(rel, l->dir, sizeof l->dir);
    snprintf(path, sizeof path, "%s/ladder.json", l->dir);
    if (access(path, F_OK) != 0) {
        int none = errno == ENOENT;
        snprintf(err, n, "the builtin agent has no ladder for op %s on %s (%s: %s)", op, backend, path,
                 strerror(errno));
        return none ? LADDER_NONE : -1;
    }
    json_error_t je;
    l->root = json_load_file(path, 0, &je);
    if (!l->root) {
        snprintf(err, n, "the builtin agent's ladder for op %s on %s is unreadable (%s: %s)", op, backend, path,
                 je.text);
        return -1;
    }
    l->rungs = json_object_get(l->root, "rungs");
    if (!json_is_array(l->rungs) || json_array_size(l->rungs) == 0) {
        snprintf(err, n, "%s has no \"rungs\" array", path);
        json_decref(l->root);
        l->root = NULL;
        return -1;
    }
    size_t i;
    json_t *r;
    json_array_foreach(l->rungs, i, r) normalise_rung(r);
    return 0;
}

void ladder_bind(ladder_t *l, const task_t *t)
{
    json_decref(l->bound);
    l->bound = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(l->rungs, i, r) {
        const char *k;
        json_t *spec;
        json_object_foreach(json_object_get(r, "params"), k, spec) {
            const char *from = json_string_value(json_object_get(spec, "from_task"));
            if (!from)
                continue;
            if (strcmp(from, "dtype") == 0) {
                json_object_set_new(l->bound, k, json_string(dtype_name(t->dtype)));
                continue;
            }
            double v = op_param_get(&t->params, from, NAN);
            if (v == (double)(long long)v)
                json_object_set_new(l->bound, k, json_integer((json_int_t)v));
            else if (v == v)
                json_object_set_new(l->bound, k, json_real(v));
        }
    }
}

void ladder_free(ladder_t *l)
{
    json_decref(l->bound);
    json_decref(l->root);
    memset(l, 0, sizeof *l);
}

json_t *ladder_defaults(const json_t *rung)
{
    json_t *d = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(rung, "params"), k, v) {
        /* No default: the template's own (e.g. the native vector width). */
        json_t *def = json_object_get(v, "default");
        if (def)
            json_object_set(d, k, def);
    }
    return d;
}

char *ladder_render(const ladder_t *l, const json_t *rung, const json_t *params, char *err, size_t n)
{
    const char *file = json_string_value(json_object_get(rung, "file"));
    if (!file) {
        snprintf(err, n, "rung without \"file\"");
        return NULL;
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", l->dir, file);
    size_t len;
    char *tpl = fs_read_file(path, 1 << 22, &len);
    if (!tpl) {
        snprintf(err, n, "cannot read template %s", path);
        return NULL;
    }
    /* The task's own values first, then the proposal's parameters. */
    json_t *all = json_object();
    if (l->bound)
        json_object_update(all, l->bound);
    json_object_update(all, (json_t *)params);
    const lang_t *lg = lang_find(json_string_value(json_object_get(l->root, "lang")));
    char *out = (lg ? lg->render : lang_render_defines)(tpl, all, path, err, n);
    json_decref(all);
    free(tpl);
    return out;
}

static int in_list(const json_t *arr, double v)
{
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) if (json_number_value(x) == v) return 1;
    return 0;
}

const char *ladder_unmet(const json_t *rung, const json_t *device, const json_t *task_json, char *buf, size_t n)
{
    const json_t *req = json_object_get(rung, "requires");
    if (!req)
        return NULL;
    const json_t *sm = json_object_get(req, "sm");
    if (sm) {
        json_int_t have = json_integer_value(json_object_get(device, "compute_capability"));
        if (have < json_integer_value(sm)) {
            snprintf(buf, n, "needs sm_%lld, the device is sm_%lld", (long long)json_integer_value(sm),
                     (long long)have);
            return buf;
        }
    }
    const json_t *params = json_object_get(task_json, "params");
    const json_t *hd = json_object_get(req, "head_dims");
    if (hd && !in_list(hd, json_number_value(json_object_get(params, "head_dim")))) {
        snprintf(buf, n, "specialised for other head dims than %g", json_number_value(json_object_get(params, "head_dim")));
        return buf;
    }
    const json_t *dts = json_object_get(req, "dtypes");
    if (dts) {
        const char *dt = json_string_value(json_object_get(task_json, "dtype"));
        size_t i;
        json_t *x;
        int ok = 0;
        json_array_foreach(dts, i, x) ok |= dt && json_string_value(x) && strcmp(dt, json_string_value(x)) == 0;
        if (!ok) {
            snprintf(buf, n, "does not support dtype %s", dt ? dt : "?");
            return buf;
        }
    }
    const json_t *causal = json_object_get(req, "causal");
    if (causal && json_number_value(json_object_get(params, "causal")) != json_number_value(causal)) {
        snprintf(buf, n, "written for causal=%g only", json_number_value(causal));
        return buf;
    }
    return NULL;
}
