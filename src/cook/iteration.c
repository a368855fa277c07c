/* iteration.c -- an iteration object (store.h) from a worker's reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cook/cook_internal.h"

double cook_num(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

int cook_iteration_valid(const json_t *it)
{
    const char *s = json_string_value(json_object_get(it, "status"));
    return s && strcmp(s, "valid") == 0;
}

static json_t *base(int iter, const char *label, const char *reason, const char *source,
                    const char *lang, const json_t *params, double elapsed_s)
{
    json_t *it = json_object();
    json_object_set_new(it, "iter", json_integer(iter));
    json_object_set_new(it, "label", json_string(label ? label : ""));
    json_object_set_new(it, "reason", json_string(reason ? reason : ""));
    json_object_set_new(it, "source", json_string(source ? source : ""));
    json_object_set_new(it, "lang", json_string(lang));
    json_object_set(it, "params", params ? (json_t *)params : json_null());
    json_object_set_new(it, "elapsed_s", json_real(elapsed_s));
    return it;
}

json_t *cook_iteration(int iter, const char *label, const char *reason, const char *source,
                       const char *lang, const json_t *params, const json_t *reply,
                       double elapsed_s, double ref_ms)
{
    json_t *it = base(iter, label, reason, source, lang, params, elapsed_s);
    const char *status = json_string_value(json_object_get(reply, "status"));
    json_object_set_new(it, "status", json_string(status ? status : "error"));
    json_t *e = json_object_get(reply, "error");
    json_object_set(it, "error", json_is_string(e) ? e : json_null());
    const char *log = json_string_value(json_object_get(json_object_get(reply, "compile"), "log"));
    json_object_set_new(it, "compile_log", json_string(log ? log : ""));
    /* Whether the outputs passed every check, apart from the verdict on
     * the timing (an "invalid" may be either). */
    json_t *vok = json_object_get(json_object_get(reply, "validation"), "ok");
    if (json_is_boolean(vok))
        json_object_set(it, "validated", vok);
    json_t *rep = json_object_get(reply, "report");
    json_object_set(it, "report", json_is_object(rep) ? rep : json_null());
    if (json_is_object(rep)) {
        double t = cook_num(json_object_get(rep, "time_ms"), "median");
        json_object_set_new(it, "time_ms", json_real(t));
        json_object_set_new(it, "gflops", json_real(cook_num(rep, "gflops")));
        json_object_set_new(it, "roofline_pct", json_real(cook_num(rep, "roofline_pct")));
        json_object_set_new(it, "speedup",
                            json_real(ref_ms > 0 && t > 0 ? ref_ms / t : (iter == 0 ? 1.0 : 0)));
    }
    return it;
}

json_t *cook_iteration_failed(int iter, const char *label, const char *reason, const char *source,
                              const char *lang, const json_t *params, const char *why,
                              double elapsed_s)
{
    json_t *it = base(iter, label, reason, source, lang, params, elapsed_s);
    json_object_set_new(it, "status", json_string("error"));
    json_object_set_new(it, "error", json_string(why));
    json_object_set_new(it, "compile_log", json_string(""));
    json_object_set_new(it, "report", json_null());
    return it;
}

/* The worker says "(see compile.log)" of a file in a directory it removes
 * as soon as it has answered; the log itself comes back in the reply and is
 * kept with the iteration.  Say where to read it. */
void cook_iteration_log_words(json_t *it, int64_t run)
{
    const char *status = json_string_value(json_object_get(it, "status"));
    const char *log = json_string_value(json_object_get(it, "compile_log"));
    if (!status || strcmp(status, "compile_error") != 0 || !log || !*log)
        return;
    const char *e = json_string_value(json_object_get(it, "error"));
    char words[1600];
    snprintf(words, sizeof words, "%s", e && *e ? e : "the kernel does not compile");
    static const char *const stale[] = {" (see compile.log)", "(see compile.log)"};
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        char *at = strstr(words, stale[i]);
        if (at) {
            size_t k = strlen(stale[i]);
            memmove(at, at + k, strlen(at + k) + 1);
            break;
        }
    }
    char out[1800];
    snprintf(out, sizeof out, "%s (the compiler's log: emile show %lld --iter %lld)", words,
             (long long)run, (long long)json_integer_value(json_object_get(it, "iter")));
    json_object_set_new(it, "error", json_string(out));
}
