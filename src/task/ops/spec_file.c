/*
 * spec_file.c -- user-defined ops that ship with emile: kernels/<name>/op.json
 * holds the same "op" object a task file may carry inline (ops/custom.c), so
 * a task can say "op": "decode_attention" and `emile cook --op qkv_proj`
 * works without repeating the tensors, FLOP and byte counts.  These are the
 * hot ops of a Qwen3 step (docs/ENGINE.md); their references and the
 * builtin agent's ladders live beside op.json.  Specs rather than builtin C
 * ops: nothing in them needs code (no float64 oracle beyond the reference,
 * no derived parameter), and a user reads and copies a JSON file more easily
 * than a C file.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "task/op.h"
#include "util/paths.h"

int op_from_spec_file(const char *name, op_t *out, char *err, size_t errlen)
{
    /* an identifier: the name becomes a path */
    if (!name || !*name || strlen(name) >= OP_NAME_MAX || !(isalpha((unsigned char)*name)))
        return 1;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return 1;
    char rel[OP_NAME_MAX + 32], path[4096];
    snprintf(rel, sizeof rel, "kernels/%s/op.json", name);
    emile_root_file(rel, path, sizeof path);
    if (access(path, R_OK) != 0)
        return 1;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return -1;
    }
    char why[512];
    int rc = op_from_json(j, out, why, sizeof why);
    json_decref(j);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    if (strcmp(out->name, name) != 0) {
        snprintf(err, errlen, "%s names the op \"%s\", not \"%s\"", path, out->name, name);
        op_free(out);
        return -1;
    }
    return 0;
}
