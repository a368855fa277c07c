/* device_facts.c -- see device_facts.h. */
#include "device_facts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/ncu.h"
#include "backend/occupancy.h"
#include "kernel_env.h"
#include "util/fs.h"

json_t *device_launch_report(eval_state_t *e, const json_t *static_kernels)
{
    char out[4096];
    json_t *arr = json_array();
    if (runner_cmd(&e->cand, out, sizeof out, -1, "launches", "") != RUNNER_OK)
        return arr;
    char *save = NULL, *tok = strtok_r(out, " ", &save);
    int n = tok ? atoi(tok) : 0;
    occ_device_t od;
    occ_device_for_cc((int)json_integer_value(json_object_get(e->w->device, "compute_capability")),
                      (int)json_integer_value(json_object_get(e->w->device, "sms")), &od);
    for (int i = 0; i < n && i < 8; i++) {
        char *name = strtok_r(NULL, " ", &save);
        long long v[11];
        int ok = name != NULL;
        for (int k = 0; k < 11 && ok; k++) {
            char *t = strtok_r(NULL, " ", &save);
            ok = t != NULL;
            v[k] = ok ? strtoll(t, NULL, 10) : 0;
        }
        if (!ok)
            break;
        json_t *k = json_object();
        json_object_set_new(k, "name", json_string(name));
        json_object_set_new(k, "grid", json_pack("[III]", v[0], v[1], v[2]));
        json_object_set_new(k, "block", json_pack("[III]", v[3], v[4], v[5]));
        json_object_set_new(k, "dynamic_smem", json_integer(v[6]));
        json_object_set_new(k, "static_smem", json_integer(v[7]));
        json_object_set_new(k, "local", json_integer(v[8]));
        json_object_set_new(k, "registers", json_integer(v[9]));
        if (v[10])
            json_object_set_new(k, "stream", json_string(v[10] == 1 ? "other" : "legacy default"));
        long long threads = v[3] * v[4] * v[5], blocks = v[0] * v[1] * v[2];
        occ_result_t r;
        if (occ_compute(&od, (int)threads, (int)v[9], (int)(v[6] + v[7]), blocks, &r) == 0) {
            json_object_set_new(k, "blocks_per_sm", json_integer(r.blocks_per_sm));
            json_object_set_new(k, "occupancy", json_real(r.occupancy));
            json_object_set_new(k, "limiter", json_string(r.limiter));
            json_object_set_new(k, "waves", json_real(r.waves));
        }
        size_t j;
        json_t *sk;
        json_array_foreach(static_kernels, j, sk) {
            const char *sn = json_string_value(json_object_get(sk, "name"));
            if (sn && strcmp(sn, name) == 0) {
                const char *keys[] = {"hmma", "hgmma", "ldmatrix", "tma", "stack"};
                for (size_t q = 0; q < 5; q++)
                    if (json_object_get(sk, keys[q]))
                        json_object_set(k, keys[q], json_object_get(sk, keys[q]));
            }
        }
        json_array_append_new(arr, k);
    }
    return arr;
}

/* Hardware counters: one more run of the validated kernel on the task's
 * timing inputs, under Nsight Compute.  ncu injects code that talks to its
 * host process, so this run has no seccomp filter and keeps the network
 * namespace off; it keeps the other limits and the unprivileged user. */
json_t *device_counters(eval_state_t *e, const char *dir, const char *so)
{
    json_t *c = NULL;
    char err[1024] = "";
    if (!(e->b->caps & BACKEND_CAP_COUNTERS)) {
        return json_pack("{sbss}", "available", 0, "why",
                         e->b->no_counters_why ? e->b->no_counters_why : "this backend has no hardware counters");
    }
    sandbox_limits_t l;
    kernel_runner_limits(e->t, e->b, e->w->cand_uid, &l);
    l.isolate_net = 0;
    l.wall_s = e->t->time_limit_s * 10 + 60;   /* ncu replays each kernel many times */
    l.fsize_bytes = (size_t)16 << 20;
    const char *wrap[] = {ncu_path(), "--csv", "--metrics", ncu_metrics(), "--target-processes", "all", NULL};
    runner_t r;
    int rc = runner_start_wrapped(&r, e->b, dir, so, e->w->layout.total, &l, wrap, 1);
    const slot_layout_t *sl = &e->w->layout.slots[SLOT_TIMING];
    char *line = rc == RUNNER_OK ? layout_bind_line(&e->w->layout, SLOT_TIMING, "") : NULL;
    if (rc == RUNNER_OK)
        rc = line ? runner_cmd(&r, NULL, 0, 0, "bind", line + strlen("bind  ")) : RUNNER_ERR;
    free(line);
    if (rc == RUNNER_OK) {
        /* The timing set's pristine inputs, outputs poisoned: never a byte
         * of the reference's. */
        memcpy(r.arena + sl->begin, e->w->sets[SET_TIMING].pristine, sl->end - sl->begin);
        for (int k = 0; k < sl->n_tensors; k++)
            if (sl->is_out[k])
                memset(r.arena + sl->off[k], 0xff, sl->bytes[k]);
        char args[64];
        snprintf(args, sizeof args, "%zu %zu", sl->begin, sl->end - sl->begin);
        rc = runner_cmd(&r, NULL, 0, 0, "upload", args);
    }
    run_result_t res;
    if (rc == RUNNER_OK)
        rc = runner_prep(&r, SLOT_TIMING, 0);
    if (rc == RUNNER_OK)
        rc = runner_run(&r, SLOT_TIMING, &res);
    if (rc != RUNNER_OK)
        snprintf(err, sizeof err, "%.1000s", r.msg);
    /* quit, and let ncu print its report before it exits */
    if (r.proc.ctl >= 0)
        send(r.proc.ctl, "quit\n", 5, MSG_NOSIGNAL);
    for (int i = 0; i < 600 && !r.proc.exited; i++) {
        int st;
        if (waitpid(r.proc.pid, &st, WNOHANG) == r.proc.pid) {
            r.proc.exited = 1;
            r.proc.status = st;
        } else {
            usleep(100000);
        }
    }
    char *log = fs_read_file(r.proc.log_path, (size_t)16 << 20, NULL);
    runner_stop(&r);
    if (log && ncu_parse_csv(log, &c, err + strlen(err), sizeof err - strlen(err)) == 0) {
        json_object_set_new(c, "available", json_true());
        json_object_set_new(c, "tool", json_string(ncu_path()));
    } else {
        c = json_pack("{sbss}", "available", 0, "why", err[0] ? err : "ncu did not run (is it installed?)");
    }
    free(log);
    return c;
}

