/* export_torch.c -- the PyTorch half of `emile export RUN DIR`: a package
 * DIR/emile_<op>/ (python/emile/torch_op.py as its __init__.py, op.json, the
 * built kernel.so) that registers torch.ops.emile.<op>, and, for a run whose
 * reference is a PyTorch problem, DIR/model_new.py: the problem file followed
 * by class ModelNew(Model), KernelBench's convention, whose forward calls the
 * op with the forward's inputs and the model's state_dict tensors. */
#include "cli/export_torch.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task/task.h"
#include "util/fs.h"
#include "util/paths.h"

static void ident(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s && k + 1 < n; s++)
        out[k++] = isalnum((unsigned char)*s) || *s == '_' ? *s : '_';
    out[k] = 0;
}

void export_torch_package_name(const json_t *task, char *out, size_t n)
{
    const json_t *op = json_object_get(task, "op");
    const char *name = json_is_string(op) ? json_string_value(op) : json_string_value(json_object_get(op, "name"));
    char id[80];
    ident(name ? name : "kernel", id, sizeof id);
    snprintf(out, n, "emile_%s", id);
}

/* The op's tensors and parameters as torch_op.py reads them. */
static json_t *op_spec(const task_t *t, const char *opname, long long run, const json_t *best)
{
    json_t *spec = json_object(), *tensors = json_array(), *params = json_object();
    json_object_set_new(spec, "name", json_string(opname));
    json_object_set_new(spec, "backend", json_string(t->backend));
    json_object_set_new(spec, "dtype", json_string(dtype_name(t->dtype)));
    for (int k = 0; k < t->op.n_tensors; k++) {
        const op_tensor_t *ts = &t->op.tensors[k];
        json_t *shape = json_array();
        for (int d = 0; d < ts->ndim; d++)
            json_array_append_new(shape, json_string(ts->shape[d]));
        json_t *tj = json_pack("{sssossso}", "name", ts->name, "shape", shape, "dtype",
                               dtype_name(op_tensor_dtype(&t->op, k, t->dtype)), "output", json_boolean(ts->is_output));
        if (ts->scalar)
            json_object_set_new(tj, "scalar", json_true());     /* 0-d in PyTorch, [1] to the kernel */
        json_array_append_new(tensors, tj);
    }
    for (int i = 0; i < t->params.n; i++)
        json_object_set_new(params, t->params.names[i], json_real(t->params.values[i]));
    json_object_set_new(spec, "tensors", tensors);
    json_object_set_new(spec, "params", params);
    json_object_set_new(spec, "kernel", json_string("kernel.so"));
    json_object_set_new(spec, "run", json_integer(run));
    json_object_set(spec, "iteration", json_object_get(best, "iter"));
    json_object_set(spec, "label", json_object_get(best, "label"));
    json_object_set(spec, "time_ms", json_object_get(best, "time_ms"));
    return spec;
}

static int write_file(const char *path, const char *text, json_t *written)
{
    if (!text || fs_write_file(path, text, strlen(text)) != 0) {
        fprintf(stderr, "emile: cannot write %s: %s\n", path, text ? strerror(errno) : "out of memory");
        return -1;
    }
    json_array_append_new(written, json_string(path));
    return 0;
}

static char *model_new_source(const task_t *t, const char *pkg, const char *opname, const char *dir,
                              long long run, const json_t *best)
{
    static const char fmt[] =
        "\n\n# ---- Emile: the best kernel of run %lld (iteration %lld, %s), by `emile export` ----\n"
        "import os as _emile_os\n"
        "import sys as _emile_sys\n"
        "\n"
        "_emile_here = _emile_os.path.dirname(_emile_os.path.abspath(globals().get(\"__file__\") or %s))\n"
        "_emile_sys.path.insert(0, _emile_here)\n"
        "import %s as _emile_package  # noqa: E402  registers torch.ops.emile.%s\n"
        "\n"
        "\n"
        "class ModelNew(Model):\n"
        "    \"\"\"Model with its forward replaced by torch.ops.emile.%s: the same constructor (the\n"
        "    same seed gives the same parameters), the forward's inputs then the state_dict's\n"
        "    tensors, in its order, passed to the kernel.  The state's names are read once here:\n"
        "    state_dict() itself does not trace under torch.compile (torch 2.11: setattr on its\n"
        "    OrderedDict), attribute lookups do.  Outside torch.compile, jit tracing, fake tensors\n"
        "    and autograd the kernel is called without torch's dispatcher (_emile_package.call).\"\"\"\n"
        "\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        super().__init__(*args, **kwargs)\n"
        "        sd = self.state_dict(keep_vars=True)     # then the buffers it leaves out (persistent=False)\n"
        "        self._emile_state = [tuple(k.split(\".\")) for k, t in sd.items() if isinstance(t, torch.Tensor)] + \\\n"
        "                            [tuple(k.split(\".\")) for k, _ in self.named_buffers() if k not in sd]\n"
        "\n"
        "    def forward(self, *inputs):\n"
        "        inputs = _emile_package.kernel.tensors(inputs)     # a number get_inputs() gives: a 0-d tensor\n"
        "        state = []\n"
        "        for path in self._emile_state:\n"
        "            t = self\n"
        "            for part in path:\n"
        "                t = getattr(t, part)\n"
        "            state.append(t)\n"
        "        if not torch.compiler.is_compiling() and _emile_package.direct((*inputs, *state)):\n"
        "            return _emile_package.call(*inputs, *state)\n"
        "        return torch.ops.emile.%s(*inputs, *state)\n";
    char quoted[4200];
    snprintf(quoted, sizeof quoted, "\"%s/model_new.py\"", dir);
    for (char *q = quoted + 1; q[1]; q++)
        if (*q == '"' || *q == '\\')
            *q = '_';
    const char *label = json_string_value(json_object_get(best, "label"));
    size_t n = strlen(t->reference_source) + sizeof fmt + strlen(quoted) + 4 * 128 + 256;
    char *s = malloc(n);
    if (!s)
        return NULL;
    size_t k = (size_t)snprintf(s, n, "%s", t->reference_source);
    /* The sizes the run was cooked at, when the task changed the file's. */
    const char *key;
    json_t *v;
    if (json_object_size(t->constants) > 0) {
        n += 64 * json_object_size(t->constants) + 128;
        char *grown = realloc(s, n);
        if (!grown) {
            free(s);
            return NULL;
        }
        s = grown;
        k += (size_t)snprintf(s + k, n - k, "\n\n# The task's constants (get_inputs() reads them when called).\n");
        json_object_foreach(t->constants, key, v) {
            if (json_is_integer(v))
                k += (size_t)snprintf(s + k, n - k, "%.40s = %lld\n", key, (long long)json_integer_value(v));
            else
                k += (size_t)snprintf(s + k, n - k, "%.40s = %.17g\n", key, json_number_value(v));
        }
    }
    snprintf(s + k, n - k, fmt, run, (long long)json_integer_value(json_object_get(best, "iter")),
             label ? label : "", quoted, pkg, opname, opname, opname);
    return s;
}

int export_torch(const char *dir, const json_t *rj, const json_t *best, long long run, const char *so_path,
                 json_t *written)
{
    task_t t;
    task_init(&t);
    char err[1024], pkg[128], pdir[4200], path[4400], src[4096];
    const json_t *tj = json_object_get(rj, "task");
    if (task_from_json(&t, tj, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "emile: run %lld's task cannot be read back: %s\n", run, err);
        task_free(&t);
        return -1;
    }
    export_torch_package_name(tj, pkg, sizeof pkg);
    const char *opname = pkg + strlen("emile_");
    snprintf(pdir, sizeof pdir, "%s/%s", dir, pkg);
    int rc = 0;
    if (fs_mkdir_p(pdir, 0755) != 0) {
        fprintf(stderr, "emile: cannot create %s: %s\n", pdir, strerror(errno));
        rc = -1;
    }
    if (rc == 0) {
        emile_root_file("python/emile/torch_op.py", src, sizeof src);
        snprintf(path, sizeof path, "%s/__init__.py", pdir);
        if (fs_copy_file(src, path) != 0) {
            fprintf(stderr, "emile: cannot copy %s to %s: %s\n", src, path, strerror(errno));
            rc = -1;
        } else {
            json_array_append_new(written, json_string(path));
        }
    }
    if (rc == 0) {
        json_t *spec = op_spec(&t, opname, run, best);
        char *text = json_dumps(spec, JSON_INDENT(2));
        json_decref(spec);
        snprintf(path, sizeof path, "%s/op.json", pdir);
        rc = write_file(path, text, written);
        free(text);
    }
    if (rc == 0 && so_path) {
        snprintf(path, sizeof path, "%s/kernel.so", pdir);
        if (fs_copy_file(so_path, path) != 0) {
            fprintf(stderr, "emile: cannot copy %s to %s: %s\n", so_path, path, strerror(errno));
            rc = -1;
        } else {
            json_array_append_new(written, json_string(path));
        }
    }
    if (rc == 0 && task_reference_is_python(&t) && t.reference_source) {
        char *text = model_new_source(&t, pkg, opname, dir, run, best);
        snprintf(path, sizeof path, "%s/model_new.py", dir);
        rc = write_file(path, text, written);
        free(text);
    }
    task_free(&t);
    return rc;
}
