/*
 * breakdown.c -- per-op times of a Qwen3 step against each op's floor (see
 * breakdown.h).
 */
#include "engine/breakdown.h"

#include <math.h>
#include <string.h>

/* FLOPs and bytes of op over one call of phase (0: a prefill of S tokens,
 * 1: a decode step reading a cache of kv positions), the whole model. */
static void op_cost(const qwen3_config_t *c, int op, int phase, double S, double kv, int elem,
                    double *flops, double *bytes)
{
    double L = c->n_layers, H = c->hidden, D = c->head_dim, I = c->intermediate;
    double qd = (double)c->n_heads * D, kvd = (double)c->n_kv_heads * D, V = c->vocab;
    double n = phase ? 1 : S;
    *flops = *bytes = 0;
    switch (op) {
    case ENGINE_OP_QKV_PROJ:
        *flops = 2 * n * H * (qd + 2 * kvd) * L;
        *bytes = elem * ((qd + 2 * kvd) * (H + n) + n * H) * L;
        break;
    case ENGINE_OP_ATTENTION:       /* causal, the FlashAttention count */
        *flops = 2 * c->n_heads * S * S * D * L;
        *bytes = elem * (2 * S * qd + 2 * S * kvd) * L;
        break;
    case ENGINE_OP_DECODE_ATTENTION:
        *flops = 4 * c->n_heads * D * kv * L;
        *bytes = elem * (2 * kv * kvd + 2 * qd) * L;
        break;
    case ENGINE_OP_O_PROJ:
        *flops = 2 * n * H * qd * L;
        *bytes = (elem * (H * qd + n * qd) + 4 * n * H) * L;
        break;
    case ENGINE_OP_GATE_UP:
        *flops = 4 * n * I * H * L;
        *bytes = elem * (2 * I * H + n * H + n * I) * L;
        break;
    case ENGINE_OP_DOWN_PROJ:
        *flops = 2 * n * H * I * L;
        *bytes = (elem * (H * I + n * I) + 4 * n * H) * L;
        break;
    case ENGINE_OP_LM_HEAD:         /* the last position only, in both phases */
        *flops = 2 * V * H;
        *bytes = elem * (V * H + H) + 4 * V;
        break;
    default:
        break;
    }
}

void engine_breakdown_compute(const qwen3_config_t *c, const engine_profile_t *p,
                              const engine_ceilings_t *ceil, engine_breakdown_t *b)
{
    memset(b, 0, sizeof *b);
    b->prefill_tokens = p->prefill_tokens;
    b->kv_len = p->calls[1] ? p->kv_len_sum / (double)p->calls[1] : 0;
    for (int ph = 0; ph < 2; ph++) {
        b->calls[ph] = p->calls[ph];
        if (p->calls[ph] <= 0)
            continue;
        b->has[ph] = 1;
        double calls = (double)p->calls[ph], step = p->step_ms[ph] / calls, sum = 0;
        b->step_ms[ph] = step;
        for (int op = 0; op < ENGINE_OP_COUNT; op++) {
            engine_breakdown_row_t *r = &b->row[ph][op];
            r->ms = p->ms[ph][op] / calls;
            sum += r->ms;
            double flops, bytes;
            op_cost(c, op, ph, b->prefill_tokens, b->kv_len, ceil->elem, &flops, &bytes);
            if (r->ms > 0 && ceil->gbs > 0 && ceil->gflops > 0 && (flops > 0 || bytes > 0)) {
                double tb = bytes / (ceil->gbs * 1e9), tf = flops / (ceil->gflops * 1e9);
                r->floor_ms = (tb > tf ? tb : tf) * 1e3;
                r->of_floor = r->floor_ms / r->ms;
            }
        }
        /* what no op accounts for: the other sections, and on the cpu the
         * clock's own cost */
        b->row[ph][ENGINE_PROF_OTHER].ms = step - sum > 0 ? step - sum : 0;
        for (int op = 0; op < ENGINE_PROF_N; op++)
            b->row[ph][op].share = step > 0 ? b->row[ph][op].ms / step : 0;
    }
}

static const char *row_name(int op)
{
    return op == ENGINE_PROF_OTHER ? "other" : engine_op_name(op);
}

/* The rows a phase shows: the ops that ran in it, and other. */
static int shown(const engine_breakdown_t *b, int ph, int op)
{
    if (op == ENGINE_PROF_OTHER)
        return 1;
    if (op == ENGINE_OP_ATTENTION)
        return ph == 0;
    if (op == ENGINE_OP_DECODE_ATTENTION)
        return ph == 1;
    return b->row[ph][op].ms > 0 || ph == 1;
}

void engine_breakdown_print(FILE *out, const char *title, const engine_breakdown_t *b)
{
    for (int ph = 0; ph < 2; ph++) {
        if (!b->has[ph])
            continue;
        if (ph == 0)
            fprintf(out, "breakdown, %s: prefill of %d tokens, %.3f ms\n", title,
                    b->prefill_tokens, b->step_ms[0]);
        else
            fprintf(out, "breakdown, %s: decode, %.3f ms a step (mean of %ld steps, cache of "
                    "%.0f positions)\n", title, b->step_ms[1], b->calls[1], b->kv_len);
        fprintf(out, "  %-18s %10s %8s %10s %9s\n", "op", "ms", "share", "floor ms", "of floor");
        for (int op = 0; op < ENGINE_PROF_N; op++) {
            if (!shown(b, ph, op))
                continue;
            const engine_breakdown_row_t *r = &b->row[ph][op];
            fprintf(out, "  %-18s %10.4f %7.1f%%", row_name(op), r->ms, 100 * r->share);
            if (r->floor_ms > 0)
                fprintf(out, " %10.4f %8.1f%%\n", r->floor_ms, 100 * r->of_floor);
            else
                fprintf(out, " %10s %9s\n", "-", "-");
        }
    }
}

json_t *engine_breakdown_json(const engine_breakdown_t *b)
{
    json_t *j = json_object();
    for (int ph = 0; ph < 2; ph++) {
        if (!b->has[ph])
            continue;
        json_t *ops = json_object();
        for (int op = 0; op < ENGINE_PROF_N; op++) {
            if (!shown(b, ph, op))
                continue;
            const engine_breakdown_row_t *r = &b->row[ph][op];
            json_t *o = json_pack("{s:f, s:f}", "ms", r->ms, "share", r->share);
            if (r->floor_ms > 0) {
                json_object_set_new(o, "floor_ms", json_real(r->floor_ms));
                json_object_set_new(o, "of_floor", json_real(r->of_floor));
            }
            json_object_set_new(ops, row_name(op), o);
        }
        json_t *phase = json_pack("{s:I, s:f, s:o}", "calls", (json_int_t)b->calls[ph],
                                  "step_ms", b->step_ms[ph], "ops", ops);
        if (ph == 0)
            json_object_set_new(phase, "tokens", json_integer(b->prefill_tokens));
        else
            json_object_set_new(phase, "kv_len", json_real(b->kv_len));
        json_object_set_new(j, ph == 0 ? "prefill" : "decode", phase);
    }
    return j;
}

json_t *engine_profile_to_json(const engine_profile_t *p)
{
    json_t *ms = json_array();
    for (int ph = 0; ph < 2; ph++) {
        json_t *row = json_array();
        for (int op = 0; op < ENGINE_PROF_N; op++)
            json_array_append_new(row, json_real(p->ms[ph][op]));
        json_array_append_new(ms, row);
    }
    return json_pack("{s:o, s:[f,f], s:[I,I], s:f, s:i}", "ms", ms, "step_ms", p->step_ms[0],
                     p->step_ms[1], "calls", (json_int_t)p->calls[0], (json_int_t)p->calls[1],
                     "kv_len_sum", p->kv_len_sum, "prefill_tokens", p->prefill_tokens);
}

static int good(const json_t *v, double *out)
{
    if (!json_is_number(v))
        return 0;
    *out = json_number_value(v);
    return isfinite(*out) && *out >= 0;
}

int engine_profile_from_json(const json_t *j, engine_profile_t *p)
{
    memset(p, 0, sizeof *p);
    const json_t *ms = json_object_get(j, "ms"), *st = json_object_get(j, "step_ms");
    const json_t *calls = json_object_get(j, "calls");
    double v;
    if (json_array_size(ms) != 2 || json_array_size(st) != 2 || json_array_size(calls) != 2)
        return -1;
    for (int ph = 0; ph < 2; ph++) {
        const json_t *row = json_array_get(ms, (size_t)ph);
        if (json_array_size(row) != ENGINE_PROF_N)
            return -1;
        for (int op = 0; op < ENGINE_PROF_N; op++) {
            if (!good(json_array_get(row, (size_t)op), &v))
                return -1;
            p->ms[ph][op] = v;
        }
        if (!good(json_array_get(st, (size_t)ph), &p->step_ms[ph]) ||
            !good(json_array_get(calls, (size_t)ph), &v) || v > 1e9)
            return -1;
        p->calls[ph] = (long)v;
    }
    if (!good(json_object_get(j, "kv_len_sum"), &p->kv_len_sum) ||
        !good(json_object_get(j, "prefill_tokens"), &v) || v > 1e9)
        return -1;
    p->prefill_tokens = (int)v;
    return 0;
}
