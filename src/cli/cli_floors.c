/* cli_floors.c -- a PyTorch problem's run quotes its best kernel against
 * both floors its reference's iteration measured (report.floors: eager and
 * torch.compile), as the field quotes speedups. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_floors_line(const json_t *floors, double best_ms, char *buf, size_t n)
{
    double eager = json_number_value(json_object_get(floors, "eager_ms"));
    if (!floors || !(best_ms > 0) || !(eager > 0))
        return 0;
    int k = snprintf(buf, n, "vs PyTorch: %.2fx eager (%.4g ms)", eager / best_ms, eager);
    double comp = json_number_value(json_object_get(floors, "compile_ms"));
    const char *why = json_string_value(json_object_get(floors, "compile_error"));
    if (k > 0 && (size_t)k < n) {
        if (comp > 0)
            snprintf(buf + k, n - (size_t)k, ", %.2fx torch.compile (%.4g ms)", comp / best_ms, comp);
        else if (why)
            snprintf(buf + k, n - (size_t)k, "; no torch.compile floor (%.200s)", why);
        else
            snprintf(buf + k, n - (size_t)k, "; torch.compile not timed (compile_floor false)");
    }
    return 1;
}

int cli_floors_note(const json_t *history, const json_t *best, char *buf, size_t n)
{
    const json_t *ref = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(history, i, it) if (json_integer_value(json_object_get(it, "iter")) == 0) ref = it;
    const json_t *floors = json_object_get(json_object_get(ref, "report"), "floors");
    return cli_floors_line(floors, json_number_value(json_object_get(best, "time_ms")), buf, n);
}
