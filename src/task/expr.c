/* expr.c -- recursive-descent evaluator for expr.h.  Evaluates directly while
 * parsing: expressions are short and evaluated a handful of times per task. */
#include "expr.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s;
    size_t pos;
    expr_lookup_fn lookup;
    void *ctx;
    char *err;
    size_t errlen;
    int failed;
    int skip;      /* > 0 inside a branch that is not taken: parse, don't judge */
    int depth;     /* nesting, bounded so hostile input cannot blow the stack */
} parser_t;

static double parse_ternary(parser_t *p);

static void fail(parser_t *p, const char *msg)
{
    if (p->skip > 0 && strstr(msg, "zero"))
        return;
    if (!p->failed && p->err)
        snprintf(p->err, p->errlen, "expression \"%s\": %s at offset %zu", p->s, msg, p->pos);
    p->failed = 1;
}

static void skip_ws(parser_t *p)
{
    while (isspace((unsigned char)p->s[p->pos]))
        p->pos++;
}

static int accept(parser_t *p, const char *tok)
{
    skip_ws(p);
    size_t n = strlen(tok);
    if (strncmp(p->s + p->pos, tok, n) == 0) {
        p->pos += n;
        return 1;
    }
    return 0;
}

static double parse_call(parser_t *p, const char *name)
{
    double args[2] = {0, 0};
    int nargs = 0;
    if (!accept(p, ")")) {
        do {
            if (nargs == 2) { fail(p, "too many arguments"); return 0; }
            args[nargs++] = parse_ternary(p);
        } while (!p->failed && accept(p, ","));
        if (!accept(p, ")")) { fail(p, "expected ')'"); return 0; }
    }
    struct { const char *name; int n; } fns[] = {
        {"min", 2}, {"max", 2}, {"sqrt", 1}, {"ceil", 1}, {"floor", 1},
        {"log2", 1}, {"abs", 1}, {"cdiv", 2}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        if (strcmp(name, fns[i].name) != 0)
            continue;
        if (nargs != fns[i].n) { fail(p, "wrong number of arguments"); return 0; }
        switch (i) {
        case 0: return fmin(args[0], args[1]);
        case 1: return fmax(args[0], args[1]);
        case 2: return sqrt(args[0]);
        case 3: return ceil(args[0]);
        case 4: return floor(args[0]);
        case 5: return log2(args[0]);
        case 6: return fabs(args[0]);
        case 7:
            if (args[1] == 0) { fail(p, "cdiv by zero"); return 0; }   /* the caller goes on when skipping */
            return ceil(args[0] / args[1]);
        }
    }
    fail(p, "unknown function");
    return 0;
}

static double parse_primary(parser_t *p)
{
    skip_ws(p);
    const char *c = p->s + p->pos;
    if (*c == '(') {
        p->pos++;
        double v = parse_ternary(p);
        if (!accept(p, ")"))
            fail(p, "expected ')'");
        return v;
    }
    if (isdigit((unsigned char)*c) || *c == '.') {
        char *end;
        double v = strtod(c, &end);
        if (end == c) { fail(p, "bad number"); return 0; }
        p->pos += (size_t)(end - c);
        return v;
    }
    if (isalpha((unsigned char)*c) || *c == '_') {
        char name[64];
        size_t n = 0;
        while ((isalnum((unsigned char)c[n]) || c[n] == '_') && n < sizeof name - 1) {
            name[n] = c[n];
            n++;
        }
        name[n] = 0;
        p->pos += n;
        if (accept(p, "("))
            return parse_call(p, name);
        double v = 0;
        if ((!p->lookup || p->lookup(p->ctx, name, &v) != 0) && p->skip == 0) {
            if (!p->failed && p->err)
                snprintf(p->err, p->errlen, "expression \"%s\": unknown parameter '%s'", p->s, name);
            p->failed = 1;
            return 0;
        }
        return v;
    }
    fail(p, *c ? "unexpected character" : "unexpected end");
    return 0;
}

static double parse_unary(parser_t *p)
{
    if (++p->depth > 200) {
        fail(p, "nested too deeply");
        p->depth--;
        return 0;
    }
    double v;
    if (accept(p, "-")) v = -parse_unary(p);
    else if (accept(p, "+")) v = parse_unary(p);
    else if (accept(p, "!")) v = parse_unary(p) == 0 ? 1 : 0;
    else v = parse_primary(p);
    p->depth--;
    return v;
}

static double parse_power(parser_t *p)
{
    double base = parse_unary(p);
    if (accept(p, "^"))
        return pow(base, parse_power(p));
    return base;
}

static double parse_mul(parser_t *p)
{
    double v = parse_power(p);
    for (;;) {
        if (accept(p, "*")) v *= parse_power(p);
        else if (accept(p, "/")) {
            double d = parse_power(p);
            if (d == 0) {
                fail(p, "division by zero");   /* ignored in a branch not taken */
                if (p->failed) return 0;
                v = 0;
                continue;
            }
            v /= d;
        } else if (accept(p, "%")) {
            double d = parse_power(p);
            if (d == 0) {
                fail(p, "modulo by zero");
                if (p->failed) return 0;
                v = 0;
                continue;
            }
            v = fmod(v, d);
        } else return v;
    }
}

static double parse_add(parser_t *p)
{
    double v = parse_mul(p);
    for (;;) {
        if (accept(p, "+")) v += parse_mul(p);
        else if (accept(p, "-")) v -= parse_mul(p);
        else return v;
    }
}

static double parse_cmp(parser_t *p)
{
    double v = parse_add(p);
    for (;;) {
        if (accept(p, "==")) v = v == parse_add(p);
        else if (accept(p, "!=")) v = v != parse_add(p);
        else if (accept(p, "<=")) v = v <= parse_add(p);
        else if (accept(p, ">=")) v = v >= parse_add(p);
        else if (accept(p, "<")) v = v < parse_add(p);
        else if (accept(p, ">")) v = v > parse_add(p);
        else return v;
    }
}

static double parse_and(parser_t *p)
{
    double v = parse_cmp(p);
    while (accept(p, "&&")) {
        int taken = v != 0;
        p->skip += !taken;
        double r = parse_cmp(p);
        p->skip -= !taken;
        v = (v != 0 && r != 0);
    }
    return v;
}

static double parse_or(parser_t *p)
{
    double v = parse_and(p);
    while (accept(p, "||")) {
        int taken = v == 0;
        p->skip += !taken;
        double r = parse_and(p);
        p->skip -= !taken;
        v = (v != 0 || r != 0);
    }
    return v;
}

static double parse_ternary(parser_t *p)
{
    if (++p->depth > 200) {
        fail(p, "nested too deeply");
        p->depth--;
        return 0;
    }
    double c = parse_or(p);
    if (accept(p, "?")) {
        p->skip += c == 0;
        double a = parse_ternary(p);
        p->skip -= c == 0;
        if (!accept(p, ":")) { fail(p, "expected ':'"); return 0; }
        p->skip += c != 0;
        double b = parse_ternary(p);
        p->skip -= c != 0;
        p->depth--;
        return c != 0 ? a : b;
    }
    p->depth--;
    return c;
}

int expr_eval(const char *text, expr_lookup_fn lookup, void *ctx, double *out,
              char *err, size_t errlen)
{
    if (!text) {
        if (err) snprintf(err, errlen, "missing expression");
        return -1;
    }
    parser_t p = {text, 0, lookup, ctx, err, errlen, 0, 0, 0};
    double v = parse_ternary(&p);
    skip_ws(&p);
    if (!p.failed && p.s[p.pos] != 0)
        fail(&p, "trailing characters");
    if (!p.failed && !isfinite(v))
        fail(&p, "result is not finite");
    if (p.failed)
        return -1;
    *out = v;
    return 0;
}
