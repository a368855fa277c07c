/*
 * task.h -- what the user asks for: an op at service parameters, a dtype, a
 * reference kernel (oracle and floor), a target share of the roofline, an
 * iteration budget, a backend and an agent.  Loaded from a JSON file and/or
 * CLI flags; serialised back to canonical JSON (stored with each run and sent
 * to the worker).
 */
#ifndef EMILE_TASK_H
#define EMILE_TASK_H

#include <jansson.h>
#include "op.h"

typedef struct task {
    char name[128];
    op_t op;                    /* builtin copy or user-defined */
    op_params_t params;         /* the service parameters, complete */
    int dtype;                  /* emile_dtype_t */
    char backend[16];           /* a backend of src/backend (backend_find) */
    char lang[16];              /* the candidates' language on that backend
                                   (src/backend/lang.h: a lang_t's name);
                                   "" until task_finalize sets the default */
    char *reference_source;     /* the reference kernel's text */
    char reference_path[512];   /* where it came from (informational) */
    char reference_lang[8];     /* "c" | "cu" */
    double target_pct;          /* % of roofline that ends the cook */
    int max_iters;              /* candidates after the reference */
    char agent[32];             /* "builtin" | "anthropic" | "openai" */
    json_t *agent_config;       /* model, base_url, ... (never a key) */
    double tolerance;           /* 0: the op's per-dtype default */
    double time_limit_s;        /* wall-clock limit per candidate run */
    double compile_limit_s;
    double memory_limit_mb;     /* host memory limit for the candidate */
    unsigned long long seed;    /* 0: fresh random inputs every evaluation (the
                                   default); else reproducible inputs drawn from
                                   it (debugging).  Never given to a kernel nor
                                   shown to an LLM agent. */
    /* PyTorch problems (reference_lang "py", docs/PYTORCH.md). */
    int problem_pending;        /* the reference is a .py file whose op is not
                                   known yet: task_py.h resolves it */
    char problem_op[OP_NAME_MAX]; /* the builtin op the problem is matched to
                                   ("op" or --op before resolution), or "" */
    json_t *constants;          /* module-level constants to override, or NULL */
    int dtype_set;              /* the dtype was given (file or flag) */
    int no_compile_floor;       /* "compile_floor": false: time the reference
                                   eager only (torch.compile takes ~30 s on
                                   a small CPU) */
} task_t;

void task_init(task_t *t);
void task_free(task_t *t);

/* Load a task file.  base_dir resolves a relative "reference" path. */
int task_load_file(task_t *t, const char *path, char *err, size_t errlen);
int task_from_json(task_t *t, const json_t *j, const char *base_dir,
                   char *err, size_t errlen);
/* Apply one CLI override ("seq", "512"); 0 on success. */
int task_set(task_t *t, const char *key, const char *value, char *err, size_t errlen);
/* "NAME=VALUE": override a PyTorch problem's module-level constant. */
int task_set_constant(task_t *t, const char *assignment, char *err, size_t errlen);
/* Read the reference file into the task. */
int task_set_reference_file(task_t *t, const char *path, char *err, size_t errlen);
/* Everything checked once more after overrides; clear error on failure. */
int task_finalize(task_t *t, char *err, size_t errlen);
/* Canonical JSON: self-contained (reference source inlined). */
json_t *task_to_json(const task_t *t);

/* The reference is a PyTorch problem file (resolved or not). */
int task_reference_is_python(const task_t *t);
/* The reference's kernel language for an evaluate request ("kernel":
 * {"lang"}), or NULL for a PyTorch problem: "py" is then no kernel
 * language (Triton's tag is also "py"), the worker's oracle answers. */
const char *task_reference_kernel_lang(const task_t *t);

const char *dtype_name(int dtype);
int dtype_from_name(const char *s);

#endif
