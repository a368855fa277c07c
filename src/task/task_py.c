/* task_py.c -- see task_py.h. */
#include "task/task_py.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_ident(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

json_t *task_problem_request(const task_t *t)
{
    json_t *req = json_object();
    json_object_set_new(req, "cmd", json_string("describe_problem"));
    json_object_set_new(req, "source", json_string(t->reference_source ? t->reference_source : ""));
    json_object_set_new(req, "filename", json_string(t->reference_path[0] ? t->reference_path : "problem.py"));
    json_object_set_new(req, "backend", json_string(t->backend));
    if (t->dtype_set)
        json_object_set_new(req, "dtype", json_string(dtype_name(t->dtype)));
    if (t->constants)
        json_object_set(req, "constants", t->constants);
    if (t->problem_op[0])
        json_object_set_new(req, "op", json_string(t->problem_op));
    json_object_set_new(req, "memory_limit_mb", json_real(t->memory_limit_mb));
    json_object_set_new(req, "time_limit_s", json_real(t->time_limit_s));
    if (t->tolerance > 0)
        json_object_set_new(req, "tolerance", json_real(t->tolerance));
    return req;
}

json_t *task_problem_json(const task_t *t)
{
    json_t *j = json_object();
    if (t->name[0])
        json_object_set_new(j, "name", json_string(t->name));
    json_object_set_new(j, "reference_source", json_string(t->reference_source ? t->reference_source : ""));
    json_object_set_new(j, "reference_lang", json_string("py"));
    json_object_set_new(j, "reference_path", json_string(t->reference_path));
    if (t->problem_op[0])
        json_object_set_new(j, "op", json_string(t->problem_op));
    if (t->dtype_set)
        json_object_set_new(j, "dtype", json_string(dtype_name(t->dtype)));
    json_object_set_new(j, "backend", json_string(t->backend));
    json_object_set_new(j, "target", json_real(t->target_pct));
    json_object_set_new(j, "max_iters", json_integer(t->max_iters));
    json_object_set_new(j, "agent", json_string(t->agent));
    if (t->constants)
        json_object_set(j, "constants", t->constants);
    if (t->no_compile_floor)
        json_object_set_new(j, "compile_floor", json_false());
    json_object_set_new(j, "time_limit_s", json_real(t->time_limit_s));
    json_object_set_new(j, "memory_limit_mb", json_real(t->memory_limit_mb));
    return j;
}

/* "softmax" from ".../23_Softmax.py": an identifier of at most 40 chars. */
static void op_name_of(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t k = 0;
    if (isdigit((unsigned char)*base) && n > 4)
        k = (size_t)snprintf(out, n, "op_");
    for (const char *c = base; *c && strcmp(c, ".py") != 0 && k + 1 < n && k < 40; c++)
        out[k++] = isalnum((unsigned char)*c) || *c == '_' ? *c : '_';
    out[k] = 0;
    if (!k)
        snprintf(out, n, "problem");
}

static const char *tname(const json_t *tj)
{
    const char *s = json_string_value(json_object_get(tj, "name"));
    return s ? s : "?";
}

static int is_output(const json_t *tj)
{
    const char *r = json_string_value(json_object_get(tj, "role"));
    return r && strcmp(r, "output") == 0;
}

/* The user-defined op's JSON (src/task/ops/custom.c's format). */
static json_t *custom_op_json(const task_t *t, const json_t *desc, char *err, size_t n)
{
    char name[64];
    op_name_of(t->reference_path[0] ? t->reference_path : "problem.py", name, sizeof name);
    json_t *op = json_object(), *params = json_object(), *tensors = json_array(), *vary = json_array();
    json_object_set_new(op, "name", json_string(name));
    char desc_text[160];
    snprintf(desc_text, sizeof desc_text, "PyTorch problem %.100s: Model.forward", t->reference_path);
    json_object_set_new(op, "description", json_string(desc_text));
    /* Parameters: the varied constants first, then every other constant,
     * then the constructor's numeric arguments (at most 32 in all). */
    const json_t *consts = json_object_get(desc, "constants"), *init = json_object_get(desc, "init_args");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(desc, "vary"), i, v) {
        json_object_set(params, json_string_value(v), json_object_get(consts, json_string_value(v)));
        json_array_append(vary, v);
    }
    const json_t *sources[2] = {consts, init};
    for (int s = 0; s < 2; s++) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)sources[s], key, val) {
            if (json_object_size(params) >= OP_MAX_PARAMS)
                break;
            if (is_ident(key) && strlen(key) < 32 && json_is_number(val) && !json_object_get(params, key) &&
                strcmp(key, "elem") != 0)
                json_object_set(params, key, val);
        }
    }
    json_object_set_new(op, "params", params);
    json_array_foreach(json_object_get(desc, "tensors"), i, v) {
        json_t *tj = json_object();
        json_object_set_new(tj, "name", json_string(tname(v)));
        json_object_set(tj, "shape", json_object_get(v, "shape_expr"));
        if (is_output(v))
            json_object_set_new(tj, "output", json_true());
        if (json_is_true(json_object_get(v, "scalar")))
            json_object_set_new(tj, "scalar", json_true());
        const char *dt = json_string_value(json_object_get(v, "dtype"));
        if (dt && dtype_from_name(dt) != t->dtype)
            json_object_set_new(tj, "dtype", json_string(dt));
        json_array_append_new(tensors, tj);
    }
    json_object_set_new(op, "tensors", tensors);
    const char *fx = json_string_value(json_object_get(desc, "flops_expr"));
    char flops[64];
    snprintf(flops, sizeof flops, "%.17g", json_number_value(json_object_get(desc, "flops")));
    json_object_set_new(op, "flops", json_string(fx ? fx : flops));
    const char *bx = json_string_value(json_object_get(desc, "bytes_expr"));
    if (bx)
        json_object_set_new(op, "bytes", json_string(bx));
    json_object_set_new(op, "vary", vary);
    (void)err;
    (void)n;
    return op;
}

/* Bind a builtin op's shape parameters from the problem's shapes. */
static int bind_shapes(task_t *t, const json_t *tensors, int *bound, char *err, size_t n)
{
    const op_t *op = &t->op;
    for (int k = 0; k < op->n_tensors; k++) {
        const json_t *shape = json_object_get(json_array_get(tensors, (size_t)k), "shape");
        if ((int)json_array_size(shape) != op->tensors[k].ndim) {
            snprintf(err, n, "%s's tensor %s has %d dimensions; the problem's %s has %zu",
                     op->name, op->tensors[k].name, op->tensors[k].ndim,
                     tname(json_array_get(tensors, (size_t)k)), json_array_size(shape));
            return -1;
        }
        for (int d = 0; d < op->tensors[k].ndim; d++) {
            const char *e = op->tensors[k].shape[d];
            double val = (double)json_integer_value(json_array_get(shape, (size_t)d));
            if (!is_ident(e) || isnan(op_param_get(&op->defaults, e, NAN)))
                continue;
            int p = 0;
            while (p < op->defaults.n && strcmp(op->defaults.names[p], e) != 0)
                p++;
            if (bound[p] && op_param_get(&t->params, e, 0) != val) {
                snprintf(err, n, "the problem's shapes disagree on %s's parameter %s: %g, then %g (tensor %s, "
                                 "dimension %d)",
                         op->name, e, op_param_get(&t->params, e, 0), val, op->tensors[k].name, d);
                return -1;
            }
            op_param_set(&t->params, e, val);
            bound[p] = 1;
        }
    }
    return 0;
}

/* The parameters no shape gives: emile_params, then a constructor argument
 * or constant of the same name, else the op's default. */
static int other_params(task_t *t, const json_t *desc, const int *bound, char *err, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(desc, "emile_params"), key, v) {
        if (isnan(op_param_get(&t->op.defaults, key, NAN))) {
            snprintf(err, n, "emile_params names '%s', which op %s does not have", key, t->op.name);
            return -1;
        }
    }
    for (int p = 0; p < t->op.defaults.n; p++) {
        if (bound[p])
            continue;
        const char *name = t->op.defaults.names[p];
        const json_t *from[3] = {json_object_get(desc, "emile_params"), json_object_get(desc, "init_args"),
                                 json_object_get(desc, "constants")};
        for (int s = 0; s < 3; s++)
            if (json_is_number(json_object_get(from[s], name))) {
                op_param_set(&t->params, name, json_number_value(json_object_get(from[s], name)));
                break;
            }
    }
    return 0;
}

static void shape_text(const json_t *shape, char *out, size_t n)
{
    size_t k = (size_t)snprintf(out, n, "[");
    size_t i;
    json_t *v;
    json_array_foreach(shape, i, v) if (k < n) k += (size_t)snprintf(out + k, n - k, "%s%lld", i ? ", " : "",
                                                                  (long long)json_integer_value(v));
    if (k < n)
        snprintf(out + k, n - k, "]");
}

static int match_builtin(task_t *t, const char *opname, const json_t *desc, char *err, size_t n)
{
    const op_t *b = op_find_builtin(opname);
    const json_t *tensors = json_object_get(desc, "tensors");
    if (!b) {
        const op_t **list;
        int nb;
        op_list_builtin(&list, &nb);
        char names[256] = "";
        for (int i = 0; i < nb; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", list[i]->name);
        snprintf(err, n, "emile_op names '%s', which is not a builtin op (%s)", opname, names);
        return -1;
    }
    if ((int)json_array_size(tensors) != b->n_tensors) {
        snprintf(err, n, "op %s takes %d tensors (inputs, then outputs); the problem has %zu (its forward's "
                         "inputs, the model's parameters and buffers, its outputs)",
                 b->name, b->n_tensors, json_array_size(tensors));
        return -1;
    }
    for (int k = 0; k < b->n_tensors; k++)
        if (is_output(json_array_get(tensors, (size_t)k)) != b->tensors[k].is_output) {
            snprintf(err, n, "op %s's tensor %d (%s) is an %s, the problem's (%s) is not", b->name, k,
                     b->tensors[k].name, b->tensors[k].is_output ? "output" : "input",
                     tname(json_array_get(tensors, (size_t)k)));
            return -1;
        }
    op_free(&t->op);
    op_copy(b, &t->op);
    t->params = b->defaults;
    int bound[OP_MAX_PARAMS] = {0};
    if (bind_shapes(t, tensors, bound, err, n) != 0 || other_params(t, desc, bound, err, n) != 0)
        return -1;
    if (t->op.derive_params)
        t->op.derive_params(&t->params);
    for (int k = 0; k < b->n_tensors; k++) {
        const json_t *tj = json_array_get(tensors, (size_t)k);
        int64_t shape[EMILE_MAX_DIMS];
        char e2[256], have[128], want[128] = "[";
        if (op_tensor_shape(&t->op, k, &t->params, shape, e2, sizeof e2) != 0) {
            snprintf(err, n, "op %s at the problem's sizes: %s", b->name, e2);
            return -1;
        }
        int same = 1;
        for (int d = 0; d < b->tensors[k].ndim; d++) {
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)shape[d]);
            same &= shape[d] == json_integer_value(json_array_get(json_object_get(tj, "shape"), (size_t)d));
        }
        strcat(want, "]");
        shape_text(json_object_get(tj, "shape"), have, sizeof have);
        if (!same) {
            snprintf(err, n, "the problem's %s has shape %s, where op %s's %s has %s at these parameters",
                     tname(tj), have, b->name, b->tensors[k].name, want);
            return -1;
        }
        int dt = dtype_from_name(json_string_value(json_object_get(tj, "dtype")));
        if (dt != op_tensor_dtype(&t->op, k, t->dtype)) {
            snprintf(err, n, "the problem's %s is %s, where op %s's %s is %s", tname(tj), dtype_name(dt), b->name,
                     b->tensors[k].name, dtype_name(op_tensor_dtype(&t->op, k, t->dtype)));
            return -1;
        }
    }
    /* emile_vary's constants -> the op parameters their dimensions name. */
    t->op.n_vary = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(desc, "vary"), i, v) {
        const char *c = json_string_value(v), *param = NULL;
        for (int k = 0; k < b->n_tensors && !param; k++) {
            const json_t *exprs = json_object_get(json_array_get(tensors, (size_t)k), "shape_expr");
            for (int d = 0; d < b->tensors[k].ndim && !param; d++) {
                const char *e = json_string_value(json_array_get(exprs, (size_t)d));
                if (c && e && strcmp(e, c) == 0 && is_ident(b->tensors[k].shape[d]))
                    param = b->tensors[k].shape[d];
            }
        }
        if (!param) {
            snprintf(err, n, "emile_vary's '%s' is no dimension of op %s that one of its parameters names alone",
                     c ? c : "?", b->name);
            return -1;
        }
        if (t->op.n_vary < 8)
            snprintf(t->op.vary[t->op.n_vary++], sizeof t->op.vary[0], "%s", param);
    }
    return 0;
}

int task_from_problem(task_t *t, const json_t *desc, char *err, size_t errlen)
{
    char e2[1024];
    const char *dt = json_string_value(json_object_get(desc, "dtype"));
    int dtype = dtype_from_name(dt);
    if (!t->dtype_set) {
        if (dtype < 0 || dtype == EMILE_DTYPE_I32 || dtype == EMILE_DTYPE_I64) {
            snprintf(err, errlen, "the problem's tensors are %s: give --dtype (f32, f16, bf16)",
                     dt ? dt : "?");
            return -1;
        }
        t->dtype = dtype;
    }
    const char *opname = t->problem_op[0] ? t->problem_op : json_string_value(json_object_get(desc, "emile_op"));
    int rc;
    if (opname && *opname) {
        rc = match_builtin(t, opname, desc, e2, sizeof e2);
    } else {
        json_t *opj = custom_op_json(t, desc, e2, sizeof e2);
        op_free(&t->op);
        rc = opj ? op_from_json(opj, &t->op, e2, sizeof e2) : -1;
        if (rc == 0)
            t->params = t->op.defaults;
        json_decref(opj);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", t->reference_path, e2);
        return -1;
    }
    t->problem_pending = 0;
    snprintf(t->reference_lang, sizeof t->reference_lang, "py");
    if (!t->name[0]) {
        const char *base = strrchr(t->reference_path, '/');
        snprintf(t->name, sizeof t->name, "%.100s (PyTorch)", base ? base + 1 : t->reference_path);
    }
    return 0;
}
