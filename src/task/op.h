/*
 * op.h -- the op registry.  An op says which tensors a kernel receives (shapes
 * as expressions of the op's parameters), how to fill its inputs, how many
 * FLOPs and bytes one call must do at least, how close an output must be to
 * the reference per dtype, and (optionally) how to evaluate it in float64 on
 * the CPU so the reference itself can be checked.
 *
 * Builtin ops live one per file in src/task/ops/ and register themselves in
 * op_builtin_table (op.c).  User-defined ops are described in the task file
 * and parsed by op_from_json (ops/custom.c); both produce the same op_t.
 */
#ifndef EMILE_OP_H
#define EMILE_OP_H

#include <jansson.h>
#include <stddef.h>
#include "emile.h"

#define OP_MAX_TENSORS 16
#define OP_MAX_PARAMS 32
#define OP_NAME_MAX 64

typedef struct op_tensor {
    char name[32];
    int is_output;
    int ndim;
    char *shape[EMILE_MAX_DIMS];   /* expressions of the params, e.g. "batch" */
    int dtype;                     /* -1: the task's dtype */
    double init_std;               /* inputs: N(0, init_std^2); 0 means 1.0 */
    char *range[2];                /* integer inputs: drawn uniformly in [lo, hi]
                                      (expressions of the params), e.g. a position
                                      a kernel reads from device memory; NULL: normal */
    int scalar;                    /* a 0-d tensor of the user's world (a PyTorch
                                      loss, a BatchNorm's num_batches_tracked): shape
                                      [1] to the kernel, 0-d again in an export */
} op_tensor_t;

typedef struct op_params {
    int n;
    char names[OP_MAX_PARAMS][32];
    double values[OP_MAX_PARAMS];
} op_params_t;

typedef struct op op_t;

/* float64 CPU evaluation: inputs and outputs are dense, row-major, double. */
typedef int (*op_eval_f64_fn)(const op_t *op, const op_params_t *p,
                              double *const *tensors);

struct op {
    char name[OP_NAME_MAX];
    char description[160];
    int n_tensors;
    op_tensor_t tensors[OP_MAX_TENSORS];
    op_params_t defaults;          /* parameters and their defaults */
    char *flops_expr;              /* FLOPs of one call */
    char *bytes_expr;              /* NULL: every tensor read or written once */
    double tol[6];                 /* per emile_dtype_t; 0 = default */
    int n_vary;                    /* params validation may shrink (ragged) */
    char vary[8][32];
    op_eval_f64_fn eval_f64;       /* NULL: no float64 oracle */
    /* Check parameters beyond "every shape positive"; NULL = none. */
    int (*check_params)(const op_params_t *p, char *err, size_t errlen);
    /* Derive parameters the user need not give (e.g. scale); NULL = none. */
    void (*derive_params)(op_params_t *p);
    int builtin;
};

/* Registry. */
const op_t *op_find_builtin(const char *name);
void op_list_builtin(const op_t ***list, int *n);

/* Parse a user-defined op from the task's "op" object; 0 on success. */
int op_from_json(const json_t *j, op_t *out, char *err, size_t errlen);
/* A user-defined op shipped with emile, found by name: kernels/<name>/op.json
 * under the root (paths.h), parsed by op_from_json (ops/spec_file.c).  0, 1
 * when there is no such file (an unknown op), -1 with err when it is
 * malformed. */
int op_from_spec_file(const char *name, op_t *out, char *err, size_t errlen);
void op_free(op_t *op);             /* frees expressions of a parsed op */
int op_copy(const op_t *src, op_t *dst);

/* Parameters. */
double op_param_get(const op_params_t *p, const char *name, double dflt);
int op_param_set(op_params_t *p, const char *name, double v);

/* Evaluate a tensor's shape under params; 0 on success. */
int op_tensor_shape(const op_t *op, int t, const op_params_t *p, int64_t *shape,
                    char *err, size_t errlen);
/* The range an integer input is drawn from under params: 1 with *lo <= *hi,
 * 0 when the tensor has none (normal draw), -1 with err when an expression
 * fails or the range is empty. */
int op_tensor_int_range(const op_t *op, int t, const op_params_t *p, int64_t *lo, int64_t *hi,
                        char *err, size_t errlen);
/* Elements of tensor t (0 on error). */
int64_t op_tensor_numel(const op_t *op, int t, const op_params_t *p);
double op_flops(const op_t *op, const op_params_t *p);
double op_bytes(const op_t *op, const op_params_t *p, int task_dtype);
double op_tolerance(const op_t *op, int dtype);
int op_tensor_dtype(const op_t *op, int t, int task_dtype);

/* Validate params: every shape dimension evaluates to a positive integer,
 * sizes do not overflow, and the op's own check passes. */
int op_check_params(const op_t *op, const op_params_t *p, int task_dtype,
                    char *err, size_t errlen);

/* The sizes validation uses besides the task's: a ragged one (not a
 * multiple of any tile: the first "vary" parameter x -> x - x/8 - 3) and a
 * small one (that parameter at most 97, the others toggled between 1 and 2). */
void op_validation_params(const op_t *op, const op_params_t *p, op_params_t *ragged, op_params_t *small);

/* The op as JSON (for the task file, the LLM prompt and the worker). */
json_t *op_to_json(const op_t *op);

#endif
