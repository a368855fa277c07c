/* task.c -- load, override, check and serialise a task (see task.h). */
#include "task.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/lang.h"
#include "util/fs.h"

static const char *const dtype_names[] = {"f32", "f16", "bf16", "f64", "i32", "i64"};

const char *dtype_name(int dtype)
{
    return dtype >= 0 && dtype < 6 ? dtype_names[dtype] : "?";
}

int dtype_from_name(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(s, dtype_names[i]) == 0)
            return i;
    if (strcmp(s, "float32") == 0 || strcmp(s, "fp32") == 0) return EMILE_DTYPE_F32;
    if (strcmp(s, "float16") == 0 || strcmp(s, "fp16") == 0 || strcmp(s, "half") == 0) return EMILE_DTYPE_F16;
    if (strcmp(s, "bfloat16") == 0) return EMILE_DTYPE_BF16;
    if (strcmp(s, "float64") == 0 || strcmp(s, "fp64") == 0) return EMILE_DTYPE_F64;
    return -1;
}

void task_init(task_t *t)
{
    memset(t, 0, sizeof *t);
    t->dtype = EMILE_DTYPE_F32;
    snprintf(t->backend, sizeof t->backend, "%s", backend_default()->name);
    snprintf(t->agent, sizeof t->agent, "builtin");
    t->target_pct = 50;
    t->max_iters = 8;
    t->time_limit_s = 60;
    t->compile_limit_s = 120;
    t->memory_limit_mb = 4096;
    t->seed = 0;   /* fresh inputs every evaluation */
}

void task_free(task_t *t)
{
    op_free(&t->op);
    free(t->reference_source);
    json_decref(t->agent_config);
    json_decref(t->constants);
    memset(t, 0, sizeof *t);
}

static int set_op(task_t *t, const json_t *opj, char *err, size_t errlen)
{
    op_free(&t->op);
    if (json_is_string(opj)) {
        const op_t *b = op_find_builtin(json_string_value(opj));
        if (b) {
            op_copy(b, &t->op);
        } else {
            /* an op spec shipped in kernels/<name>/op.json */
            int rc = op_from_spec_file(json_string_value(opj), &t->op, err, errlen);
            if (rc < 0)
                return -1;
            if (rc > 0) {
                snprintf(err, errlen, "unknown op '%s' (builtin ops: attention, softmax, rmsnorm; specs in "
                         "kernels/*/op.json; or describe the op as an object)",
                         json_string_value(opj));
                return -1;
            }
        }
    } else if (op_from_json(opj, &t->op, err, errlen) != 0) {
        return -1;
    }
    /* Start from the op's defaults; the task's params override them. */
    t->params = t->op.defaults;
    return 0;
}

int task_set_reference_file(task_t *t, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    char *src = fs_read_file(path, 1 << 22, &len);
    if (!src) {
        snprintf(err, errlen, "cannot read reference %s: %s", path, strerror(errno));
        return -1;
    }
    free(t->reference_source);
    t->reference_source = src;
    snprintf(t->reference_path, sizeof t->reference_path, "%s", path);
    const char *dot = strrchr(path, '.');
    snprintf(t->reference_lang, sizeof t->reference_lang, "%s",
             dot && strcmp(dot, ".cu") == 0 ? "cu" : dot && strcmp(dot, ".py") == 0 ? "py" : "c");
    /* A PyTorch problem describes its own op: the worker's oracle says
     * which (task_py.h), so nothing about the op is known yet. */
    t->problem_pending = strcmp(t->reference_lang, "py") == 0;
    if (t->problem_pending) {
        if (t->op.name[0] && !t->problem_op[0])
            snprintf(t->problem_op, sizeof t->problem_op, "%s", t->op.name);
        op_free(&t->op);
        memset(&t->op, 0, sizeof t->op);
        memset(&t->params, 0, sizeof t->params);
    }
    return 0;
}

int task_reference_is_python(const task_t *t)
{
    return t->problem_pending || strcmp(t->reference_lang, "py") == 0;
}

const char *task_reference_kernel_lang(const task_t *t)
{
    return task_reference_is_python(t) ? NULL : t->reference_lang;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = s ? strlen(s) : 0, b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* "constants": {"NAME": number, ...} of a PyTorch problem. */
static int set_constants(task_t *t, const json_t *val, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    if (!json_is_object(val)) {
        snprintf(err, errlen, "\"constants\" must be an object of numbers (the problem's module-level constants)");
        return -1;
    }
    json_object_foreach((json_t *)val, key, v) if (!json_is_number(v)) {
        snprintf(err, errlen, "constant \"%s\" must be a number", key);
        return -1;
    }
    if (!t->constants)
        t->constants = json_object();
    json_object_update(t->constants, (json_t *)val);
    return 0;
}

/* "vary": the parameters validation may change, instead of the op's own. */
static int set_vary(task_t *t, const json_t *val, char *err, size_t errlen)
{
    size_t i;
    json_t *v;
    if (!json_is_array(val) || json_array_size(val) > 8) {
        snprintf(err, errlen, "\"vary\" must list up to 8 parameter names");
        return -1;
    }
    t->op.n_vary = 0;
    json_array_foreach(val, i, v) {
        const char *name = json_string_value(v);
        if (!name || strlen(name) >= sizeof t->op.vary[0] || isnan(op_param_get(&t->op.defaults, name, NAN))) {
            snprintf(err, errlen, "\"vary\" names '%s', which op %s does not have", name ? name : "?", t->op.name);
            return -1;
        }
        snprintf(t->op.vary[t->op.n_vary++], sizeof t->op.vary[0], "%s", name);
    }
    return 0;
}

static const char *const known_keys[] = {
    "name", "op", "params", "dtype", "backend", "lang", "reference", "reference_source", "reference_lang",
    "reference_path", "target", "max_iters", "agent", "agent_config", "tolerance", "time_limit_s",
    "compile_limit_s", "memory_limit_mb", "seed", "description", "constants", "vary", "compile_floor"};

int task_from_json(task_t *t, const json_t *j, const char *base_dir, char *err, size_t errlen)
{
    if (!json_is_object(j)) {
        snprintf(err, errlen, "a task must be a JSON object");
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)j, key, val) {
        int ok = 0;
        for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
            ok |= strcmp(key, known_keys[i]) == 0;
        if (!ok) {
            snprintf(err, errlen, "unknown task field \"%s\"", key);
            return -1;
        }
    }
    json_t *opj = json_object_get(j, "op");
    /* A PyTorch reference not yet described (a .py path, or a pasted
     * problem's text with reference_lang "py"): its op comes from the
     * problem.  A described one (task_to_json's) always has "params". */
    const char *lang = json_string_value(json_object_get(j, "reference_lang"));
    int pasted = json_object_get(j, "reference_source") && lang && strcmp(lang, "py") == 0;
    int py_pending = pasted ? !json_object_get(j, "params")
                            : !json_object_get(j, "reference_source") &&
                                  ends_with(json_string_value(json_object_get(j, "reference")), ".py");
    if (py_pending) {
        if (json_is_string(opj) && !op_find_builtin(json_string_value(opj))) {
            snprintf(err, errlen, "unknown op '%s' (a PyTorch problem may name a builtin op to match)",
                     json_string_value(opj));
            return -1;
        }
        if (opj && !json_is_string(opj)) {
            snprintf(err, errlen, "a PyTorch problem describes its own tensors: \"op\" may only name a builtin op "
                                  "to match (e.g. \"attention\")");
            return -1;
        }
        if (json_object_get(j, "params") || json_object_get(j, "vary")) {
            snprintf(err, errlen, "a PyTorch problem's sizes are its module-level constants: set them with "
                                  "\"constants\" (and emile_vary in the file), not \"%s\"",
                     json_object_get(j, "params") ? "params" : "vary");
            return -1;
        }
        if (opj)
            snprintf(t->problem_op, sizeof t->problem_op, "%s", json_string_value(opj));
    } else if (!opj) {
        snprintf(err, errlen, "task has no \"op\" (e.g. \"op\": \"attention\")");
        return -1;
    } else if (set_op(t, opj, err, errlen) != 0) {
        return -1;
    }
    if ((val = json_object_get(j, "vary")) && set_vary(t, val, err, errlen) != 0)
        return -1;
    if ((val = json_object_get(j, "constants")) && set_constants(t, val, err, errlen) != 0)
        return -1;
    if ((val = json_object_get(j, "compile_floor"))) {
        if (!json_is_boolean(val)) {
            snprintf(err, errlen, "\"compile_floor\" must be true or false");
            return -1;
        }
        t->no_compile_floor = json_is_false(val);
    }
    const char *s;
    if ((s = json_string_value(json_object_get(j, "name"))))
        snprintf(t->name, sizeof t->name, "%s", s);
    json_t *params = json_object_get(j, "params");
    if (params && !json_is_object(params)) {
        snprintf(err, errlen, "\"params\" must be an object");
        return -1;
    }
    json_object_foreach(params, key, val) {
        double v;
        if (json_is_boolean(val)) v = json_is_true(val);
        else if (json_is_number(val)) v = json_number_value(val);
        else {
            snprintf(err, errlen, "parameter \"%s\" must be a number", key);
            return -1;
        }
        if (isnan(op_param_get(&t->op.defaults, key, NAN))) {
            snprintf(err, errlen, "op %s has no parameter \"%s\"", t->op.name, key);
            return -1;
        }
        op_param_set(&t->params, key, v);
    }
    if ((val = json_object_get(j, "dtype"))) {
        t->dtype_set = 1;
        t->dtype = dtype_from_name(json_string_value(val));
        if (t->dtype < 0 || t->dtype == EMILE_DTYPE_I32 || t->dtype == EMILE_DTYPE_I64) {
            snprintf(err, errlen, "unknown dtype (use f32, f16, bf16 or f64)");
            return -1;
        }
    }
    if ((s = json_string_value(json_object_get(j, "backend"))))
        snprintf(t->backend, sizeof t->backend, "%s", s);
    if ((val = json_object_get(j, "lang"))) {
        if (!json_is_string(val)) {
            snprintf(err, errlen, "\"lang\" must be a string (a kernel language, e.g. \"cuda\" or \"triton\")");
            return -1;
        }
        snprintf(t->lang, sizeof t->lang, "%s", json_string_value(val));
    }
    if ((s = json_string_value(json_object_get(j, "agent"))))
        snprintf(t->agent, sizeof t->agent, "%s", s);
    if ((val = json_object_get(j, "agent_config"))) {
        if (!json_is_object(val)) {
            snprintf(err, errlen, "\"agent_config\" must be an object");
            return -1;
        }
        json_decref(t->agent_config);
        t->agent_config = json_deep_copy(val);
    }
    struct { const char *k; double *dst; } nums[] = {
        {"target", &t->target_pct}, {"tolerance", &t->tolerance}, {"time_limit_s", &t->time_limit_s},
        {"compile_limit_s", &t->compile_limit_s}, {"memory_limit_mb", &t->memory_limit_mb}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if ((val = json_object_get(j, nums[i].k))) {
            if (!json_is_number(val)) {
                snprintf(err, errlen, "\"%s\" must be a number", nums[i].k);
                return -1;
            }
            *nums[i].dst = json_number_value(val);
        }
    if ((val = json_object_get(j, "max_iters"))) {
        if (!json_is_integer(val)) {
            snprintf(err, errlen, "\"max_iters\" must be an integer");
            return -1;
        }
        if (json_integer_value(val) < 0 || json_integer_value(val) > 10000) {
            char *v = json_dumps(val, JSON_ENCODE_ANY);
            snprintf(err, errlen, "max_iters must be between 0 and 10000 (got %s)", v ? v : "?");
            free(v);
            return -1;
        }
        t->max_iters = (int)json_integer_value(val);
    }
    if ((val = json_object_get(j, "seed"))) {
        if (!json_is_integer(val)) {
            snprintf(err, errlen, "\"seed\" must be an integer (0: fresh random inputs)");
            return -1;
        }
        t->seed = (unsigned long long)json_integer_value(val);
    }

    if ((s = json_string_value(json_object_get(j, "reference_source")))) {
        free(t->reference_source);
        t->reference_source = strdup(s);
        snprintf(t->reference_lang, sizeof t->reference_lang, "%s", lang ? lang : "c");
        const char *rp = json_string_value(json_object_get(j, "reference_path"));
        if (rp)
            snprintf(t->reference_path, sizeof t->reference_path, "%s", rp);
        t->problem_pending = py_pending;
        if (py_pending && !rp)
            snprintf(t->reference_path, sizeof t->reference_path, "problem.py");
    } else if ((s = json_string_value(json_object_get(j, "reference")))) {
        char path[PATH_MAX];
        if (s[0] == '/' || !base_dir)
            snprintf(path, sizeof path, "%s", s);
        else
            snprintf(path, sizeof path, "%s/%s", base_dir, s);
        if (task_set_reference_file(t, path, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int task_load_file(task_t *t, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        if (errno == ENOENT || je.line < 0)
            snprintf(err, errlen, "cannot read task file %s: %s", path, je.text);
        else
            snprintf(err, errlen, "task file %s is not valid JSON: line %d column %d: %s", path, je.line,
                     je.column, je.text);
        return -1;
    }
    char *copy = strdup(path);
    int rc = task_from_json(t, j, dirname(copy), err, errlen);
    free(copy);
    json_decref(j);
    if (rc != 0) {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen, "%s: %s", path, tmp);
    }
    return rc;
}

/* CLI flag names use dashes; params use underscores. */
static void flag_to_param(const char *key, char *out, size_t n)
{
    snprintf(out, n, "%s", key);
    for (char *p = out; *p; p++)
        if (*p == '-')
            *p = '_';
    if (strcmp(out, "heads") == 0)      /* alias, for task_set callers */
        snprintf(out, n, "q_heads");
}

int task_set(task_t *t, const char *key, const char *value, char *err, size_t errlen)
{
    char k[64];
    flag_to_param(key, k, sizeof k);
    char *end = NULL;
    if (strcmp(k, "op") == 0 && t->problem_pending) {
        if (!op_find_builtin(value)) {
            snprintf(err, errlen, "unknown op '%s' (a PyTorch problem may name a builtin op to match)", value);
            return -1;
        }
        snprintf(t->problem_op, sizeof t->problem_op, "%s", value);
        return 0;
    }
    if (strcmp(k, "const") == 0)
        return task_set_constant(t, value, err, errlen);
    if (strcmp(k, "param") == 0) {
        /* Any parameter of the op by name (--param vocab=32768): the ops
         * of issue 13 have parameters no dedicated flag names. */
        const char *eq = value ? strchr(value, '=') : NULL;
        char name[64];
        if (!eq || eq == value || (size_t)(eq - value) >= sizeof name || !eq[1]) {
            snprintf(err, errlen, "--param wants NAME=NUMBER (a parameter of the op), not '%s'", value ? value : "");
            return -1;
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - value), value);
        if (strcmp(name, "param") == 0 || strcmp(name, "const") == 0 || strcmp(name, "op") == 0) {
            snprintf(err, errlen, "--param %s: not a parameter of the op", name);
            return -1;
        }
        return task_set(t, name, eq + 1, err, errlen);
    }
    if (strcmp(k, "op") == 0) {
        json_t *s = json_string(value);
        int rc = set_op(t, s, err, errlen);
        json_decref(s);
        return rc;
    }
    if (strcmp(k, "dtype") == 0) {
        t->dtype_set = 1;
        t->dtype = dtype_from_name(value);
        if (t->dtype < 0 || t->dtype == EMILE_DTYPE_I32 || t->dtype == EMILE_DTYPE_I64) {
            snprintf(err, errlen, "unknown dtype '%s' (use f32, f16, bf16 or f64)", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(k, "backend") == 0) { snprintf(t->backend, sizeof t->backend, "%s", value); return 0; }
    if (strcmp(k, "lang") == 0) { snprintf(t->lang, sizeof t->lang, "%s", value); return 0; }
    if (strcmp(k, "agent") == 0) { snprintf(t->agent, sizeof t->agent, "%s", value); return 0; }
    if (strcmp(k, "reference") == 0) return task_set_reference_file(t, value, err, errlen);
    if (strcmp(k, "model") == 0 || strcmp(k, "base_url") == 0) {
        if (!t->agent_config)
            t->agent_config = json_object();
        json_object_set_new(t->agent_config, k, json_string(value));
        return 0;
    }
    double v = value ? strtod(value, &end) : 0;
    if (!value || end == value || *end) {
        snprintf(err, errlen, "--%s needs a number (got '%s')", key, value ? value : "");
        return -1;
    }
    if (strcmp(k, "target") == 0) { t->target_pct = v; return 0; }
    if (strcmp(k, "max_iters") == 0) {
        if (v < 0 || v > 10000 || v != floor(v)) {
            snprintf(err, errlen, "--max-iters must be an integer between 0 and 10000 (got '%s')", value);
            return -1;
        }
        t->max_iters = (int)v;
        return 0;
    }
    if (strcmp(k, "tolerance") == 0) { t->tolerance = v; return 0; }
    if (strcmp(k, "time_limit") == 0) { t->time_limit_s = v; return 0; }
    if (strcmp(k, "seed") == 0) { t->seed = (unsigned long long)v; return 0; }
    if (t->problem_pending) {
        snprintf(err, errlen, "--%s: a PyTorch problem's sizes are its module-level constants (--const NAME=VALUE)",
                 key);
        return -1;
    }
    if (!t->op.name[0]) {
        snprintf(err, errlen, "--%s given before the op is known (give --op or a task file first)", key);
        return -1;
    }
    if (isnan(op_param_get(&t->op.defaults, k, NAN))) {
        snprintf(err, errlen, "op %s has no parameter '%s'", t->op.name, k);
        return -1;
    }
    return op_param_set(&t->params, k, v);
}

int task_set_constant(task_t *t, const char *assignment, char *err, size_t errlen)
{
    const char *eq = assignment ? strchr(assignment, '=') : NULL;
    char name[64], *end = NULL;
    double v = eq ? strtod(eq + 1, &end) : 0;
    if (!eq || eq == assignment || (size_t)(eq - assignment) >= sizeof name || end == eq + 1 || *end) {
        snprintf(err, errlen, "--const wants NAME=NUMBER (a module-level constant of the problem), not '%s'",
                 assignment ? assignment : "");
        return -1;
    }
    snprintf(name, sizeof name, "%.*s", (int)(eq - assignment), assignment);
    if (!t->constants)
        t->constants = json_object();
    json_object_set_new(t->constants, name, v == floor(v) && fabs(v) < 9e15 ? json_integer((json_int_t)v)
                                                                          : json_real(v));
    return 0;
}

int task_finalize(task_t *t, char *err, size_t errlen)
{
    if (t->problem_pending) {
        snprintf(err, errlen, "the PyTorch problem %s has not been described by a worker yet", t->reference_path);
        return -1;
    }
    if (!t->op.name[0]) {
        snprintf(err, errlen, "no op given (task file \"op\" or --op)");
        return -1;
    }
    if (!t->reference_source) {
        snprintf(err, errlen, "no reference kernel given (task file \"reference\" or --reference FILE)");
        return -1;
    }
    if (!backend_find(t->backend)) {
        snprintf(err, errlen, "unknown backend '%s' (%s)", t->backend, backend_names());
        return -1;
    }
    /* The candidates' language: the backend's default unless the task
     * names one it builds. */
    const lang_t *lg = lang_for(t->backend, t->lang, err, errlen);
    if (!lg)
        return -1;
    snprintf(t->lang, sizeof t->lang, "%s", lg->name);
    if (t->max_iters < 0 || t->max_iters > 10000) {
        snprintf(err, errlen, "max_iters must be between 0 and 10000 (got %d)", t->max_iters);
        return -1;
    }
    if (!(t->target_pct > 0 && t->target_pct <= 100)) {
        snprintf(err, errlen, "target must be a share of the roofline in (0, 100] %% (got %g)", t->target_pct);
        return -1;
    }
    if (!(t->time_limit_s > 0) || !(t->compile_limit_s > 0) || !(t->memory_limit_mb >= 16)) {
        snprintf(err, errlen, "time_limit_s, compile_limit_s must be positive and memory_limit_mb at least 16");
        return -1;
    }
    if (t->op.derive_params)
        t->op.derive_params(&t->params);
    if (op_check_params(&t->op, &t->params, t->dtype, err, errlen) != 0)
        return -1;
    /* The validation sets must make sense too, before anything runs. */
    op_params_t sets[2];
    const char *names[2] = {"ragged", "small"};
    op_validation_params(&t->op, &t->params, &sets[0], &sets[1]);
    for (int i = 0; i < 2; i++)
        if (op_check_params(&t->op, &sets[i], t->dtype, err, errlen) != 0) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s", err);
            snprintf(err, errlen, "the %s validation set (%s = %g) is impossible: %s", names[i], t->op.vary[0],
                     op_param_get(&sets[i], t->op.vary[0], 0), tmp);
            return -1;
        }
    return 0;
}

json_t *task_to_json(const task_t *t)
{
    json_t *j = json_object();
    if (t->name[0])
        json_object_set_new(j, "name", json_string(t->name));
    json_object_set_new(j, "op", t->op.builtin ? json_string(t->op.name) : op_to_json(&t->op));
    json_t *p = json_object();
    for (int i = 0; i < t->params.n; i++) {
        double v = t->params.values[i];
        if (v == floor(v) && fabs(v) < 9e15)
            json_object_set_new(p, t->params.names[i], json_integer((json_int_t)v));
        else
            json_object_set_new(p, t->params.names[i], json_real(v));
    }
    json_object_set_new(j, "params", p);
    json_object_set_new(j, "dtype", json_string(dtype_name(t->dtype)));
    json_object_set_new(j, "backend", json_string(t->backend));
    if (t->lang[0])
        json_object_set_new(j, "lang", json_string(t->lang));
    if (t->reference_source)
        json_object_set_new(j, "reference_source", json_string(t->reference_source));
    json_object_set_new(j, "reference_lang", json_string(t->reference_lang[0] ? t->reference_lang : "c"));
    if (t->reference_path[0])
        json_object_set_new(j, "reference_path", json_string(t->reference_path));
    json_object_set_new(j, "target", json_real(t->target_pct));
    json_object_set_new(j, "max_iters", json_integer(t->max_iters));
    json_object_set_new(j, "agent", json_string(t->agent));
    if (t->agent_config)
        json_object_set(j, "agent_config", t->agent_config);
    if (t->tolerance > 0)
        json_object_set_new(j, "tolerance", json_real(t->tolerance));
    json_object_set_new(j, "time_limit_s", json_real(t->time_limit_s));
    json_object_set_new(j, "compile_limit_s", json_real(t->compile_limit_s));
    json_object_set_new(j, "memory_limit_mb", json_real(t->memory_limit_mb));
    json_object_set_new(j, "seed", json_integer((json_int_t)t->seed));
    if (t->constants)
        json_object_set(j, "constants", t->constants);
    if (t->no_compile_floor)
        json_object_set_new(j, "compile_floor", json_false());
    /* A builtin op's validation sizes, when they are not its own. */
    const op_t *b = t->op.builtin ? op_find_builtin(t->op.name) : NULL;
    int same = b && b->n_vary == t->op.n_vary;
    for (int i = 0; same && i < b->n_vary; i++)
        same = strcmp(b->vary[i], t->op.vary[i]) == 0;
    if (b && !same) {
        json_t *vary = json_array();
        for (int i = 0; i < t->op.n_vary; i++)
            json_array_append_new(vary, json_string(t->op.vary[i]));
        json_object_set_new(j, "vary", vary);
    }
    return j;
}
