/*
 * expr.h -- arithmetic expressions over named parameters, used for tensor
 * shapes, FLOP and byte counts of ops (builtin and user-defined alike).
 *
 * Grammar (C-like precedence):  e := t ('?' e ':' e)?
 *   comparisons == != < <= > >=, && ||, + -, * / %, unary - !, ^ (power,
 *   right-assoc), numbers (1e6, 0.5), identifiers (parameters), calls
 *   min(a,b) max(a,b) sqrt(x) ceil(x) floor(x) log2(x) abs(x), parentheses.
 */
#ifndef EMILE_EXPR_H
#define EMILE_EXPR_H

#include <stddef.h>

/* Returns the value of a parameter: 0 and *found=1 when known. */
typedef int (*expr_lookup_fn)(void *ctx, const char *name, double *value);

/* Evaluate text; 0 on success, -1 with a message naming the problem. */
int expr_eval(const char *text, expr_lookup_fn lookup, void *ctx, double *out,
              char *err, size_t errlen);

#endif
