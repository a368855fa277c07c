/* ncu.c -- see ncu.h. */
#include "ncu.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda_inspect.h"

static const char *const stall_metrics[] = {
    "long_scoreboard", "short_scoreboard", "barrier", "mio_throttle", "math_pipe_throttle", "wait",
    "lg_throttle", "not_selected", "dispatch_stall", "no_instruction", "membar", "tex_throttle", "drain",
    "imc_miss", "branch_resolving", "sleeping"};

const char *ncu_metrics(void)
{
    static char buf[4096];
    if (buf[0])
        return buf;
    size_t off = (size_t)snprintf(buf, sizeof buf, "%s",
                                  "dram__bytes_read.sum,dram__bytes_write.sum,"
                                  "sm__warps_active.avg.pct_of_peak_sustained_active,"
                                  "sm__throughput.avg.pct_of_peak_sustained_elapsed,"
                                  "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,"
                                  "gpu__time_duration.sum");
    for (size_t i = 0; i < sizeof stall_metrics / sizeof stall_metrics[0]; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, ",smsp__warp_issue_stalled_%s_per_warp_active.pct",
                                stall_metrics[i]);
    return buf;
}

const char *ncu_path(void)
{
    static char path[1024];
    const char *e = getenv("EMILE_NCU");
    if (e && *e)
        return e;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", cuda_nvcc());
    if (strchr(tmp, '/')) {
        snprintf(path, sizeof path, "%s/ncu", dirname(tmp));
        if (access(path, X_OK) == 0)
            return path;
    }
    return "ncu";
}

/* Split one CSV line into fields (quotes removed); returns count. */
static int csv_fields(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        if (*p == '"') {
            p++;
            f[n++] = p;
            while (*p && *p != '"')
                p++;
            if (*p)
                *p++ = 0;
            if (*p == ',')
                p++;
        } else {
            f[n++] = p;
            while (*p && *p != ',')
                p++;
            if (*p)
                *p++ = 0;
        }
    }
    return n;
}

static double parse_number(const char *s)
{
    char buf[64];
    size_t k = 0;
    for (; *s && k < sizeof buf - 1; s++)
        if (*s != ',' && *s != ' ')
            buf[k++] = *s;
    buf[k] = 0;
    return strtod(buf, NULL);
}

int ncu_parse_csv(const char *text, json_t **out, char *err, size_t n)
{
    if (strstr(text, "ERR_NVGPUCTRPERM")) {
        snprintf(err, n, "ncu is not permitted to read the GPU's performance counters on this host "
                         "(ERR_NVGPUCTRPERM: run as root or set NVreg_RestrictProfilingToAdminUsers=0)");
        return -1;
    }
    char *copy = strdup(text);
    int idx_kernel = -1, idx_name = -1, idx_unit = -1, idx_value = -1, idx_id = -1;
    json_t *kernels = json_object();
    json_t *order = json_array();
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] != '"')
            continue;
        char *f[64];
        int nf = csv_fields(line, f, 64);
        if (idx_name < 0) {
            for (int i = 0; i < nf; i++) {
                if (!strcmp(f[i], "Kernel Name")) idx_kernel = i;
                else if (!strcmp(f[i], "Metric Name")) idx_name = i;
                else if (!strcmp(f[i], "Metric Unit")) idx_unit = i;
                else if (!strcmp(f[i], "Metric Value")) idx_value = i;
                else if (!strcmp(f[i], "ID")) idx_id = i;
            }
            continue;
        }
        if (idx_kernel >= nf || idx_value >= nf || idx_name >= nf)
            continue;
        char key[512];
        snprintf(key, sizeof key, "%s#%s", idx_id >= 0 ? f[idx_id] : "0", f[idx_kernel]);
        json_t *k = json_object_get(kernels, key);
        if (!k) {
            k = json_object();
            json_object_set_new(k, "name", json_string(f[idx_kernel]));
            json_object_set_new(k, "metrics", json_object());
            json_object_set_new(kernels, key, k);
            json_array_append(order, k);
        }
        double v = parse_number(f[idx_value]);
        const char *unit = idx_unit >= 0 && idx_unit < nf ? f[idx_unit] : "";
        /* Normalise byte units to bytes. */
        if (!strcmp(unit, "Kbyte")) v *= 1e3;
        else if (!strcmp(unit, "Mbyte")) v *= 1e6;
        else if (!strcmp(unit, "Gbyte")) v *= 1e9;
        else if (!strcmp(unit, "KB")) v *= 1024;
        else if (!strcmp(unit, "MB")) v *= 1048576;
        else if (!strcmp(unit, "GB")) v *= 1073741824.0;
        else if (!strcmp(unit, "usecond")) v *= 1e3;   /* to ns */
        else if (!strcmp(unit, "msecond")) v *= 1e6;
        json_object_set_new(json_object_get(k, "metrics"), f[idx_name], json_real(v));
    }
    free(copy);
    json_decref(kernels);
    if (json_array_size(order) == 0) {
        json_decref(order);
        snprintf(err, n, "ncu produced no metrics (%.200s)", text);
        return -1;
    }
    json_t *r = json_object();
    double rd = 0, wr = 0, best_score = -1;
    const json_t *main_k = NULL;
    size_t i;
    json_t *k;
    json_array_foreach(order, i, k) {
        const json_t *m = json_object_get(k, "metrics");
        double kr = json_number_value(json_object_get(m, "dram__bytes_read.sum"));
        double kw = json_number_value(json_object_get(m, "dram__bytes_write.sum"));
        rd += kr;
        wr += kw;
        double score = json_number_value(json_object_get(m, "gpu__time_duration.sum"));
        if (score <= 0)
            score = kr + kw;
        if (score > best_score) {
            best_score = score;
            main_k = k;
        }
    }
    json_object_set_new(r, "kernels", order);
    json_object_set_new(r, "dram_read_bytes", json_real(rd));
    json_object_set_new(r, "dram_write_bytes", json_real(wr));
    json_object_set_new(r, "dram_bytes", json_real(rd + wr));
    const json_t *m = json_object_get(main_k, "metrics");
    json_object_set_new(r, "main_kernel", json_string(json_string_value(json_object_get(main_k, "name"))));
    json_object_set_new(r, "achieved_occupancy_pct",
                        json_real(json_number_value(json_object_get(m, "sm__warps_active.avg.pct_of_peak_sustained_active"))));
    json_object_set_new(r, "sm_throughput_pct",
                        json_real(json_number_value(json_object_get(m, "sm__throughput.avg.pct_of_peak_sustained_elapsed"))));
    json_object_set_new(r, "tensor_pipe_pct",
                        json_real(json_number_value(json_object_get(
                            m, "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active"))));
    /* Top three stall reasons of the main kernel. */
    json_t *stalls = json_array();
    int used[sizeof stall_metrics / sizeof stall_metrics[0]] = {0};
    for (int top = 0; top < 3; top++) {
        int bi = -1;
        double bv = 0;
        for (size_t s = 0; s < sizeof stall_metrics / sizeof stall_metrics[0]; s++) {
            char name[128];
            snprintf(name, sizeof name, "smsp__warp_issue_stalled_%s_per_warp_active.pct", stall_metrics[s]);
            double v = json_number_value(json_object_get(m, name));
            if (!used[s] && v > bv) {
                bv = v;
                bi = (int)s;
            }
        }
        if (bi < 0)
            break;
        used[bi] = 1;
        json_array_append_new(stalls, json_pack("{sssf}", "reason", stall_metrics[bi], "pct", bv));
    }
    json_object_set_new(r, "top_stalls", stalls);
    *out = r;
    return 0;
}
