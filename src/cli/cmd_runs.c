/* cmd_runs.c -- `emile runs`, `emile show RUN`, `emile export RUN DIR`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/lang.h"
#include "cli.h"
#include "cli/export_torch.h"
#include "report/iteration_line.h"
#include "report/report_md.h"
#include "report/roofline_svg.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/paths.h"
#include "sandbox/sandbox.h"

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("%s\n", s ? s : "null");
    free(s);
}

int cmd_runs(int argc, char **argv)
{
    cli_common_t c;
    store_t *s;
    if (cli_parse(argc, argv, NULL, &c, 0) != 0)
        return 2;
    int open_rc = cli_open_store(&c, CLI_STORE_LIST, &s);
    if (open_rc != 0)
        return open_rc;
    json_t *runs = NULL;
    if (!s) {
        /* No store yet: nothing cooked, and listing creates nothing. */
        runs = json_array();
    } else if (store_runs_list(s, 0, &runs) != 0) {
        fprintf(stderr, "emile: %s\n", store_errmsg(s));
        store_close(s);
        return 1;
    }
    if (c.json) {
        print_json(runs);
    } else if (json_array_size(runs) == 0) {
        printf("no runs yet (emile cook TASK.json)\n");
    } else {
        printf("%5s  %-8s  %-9s  %-8s  %5s  %10s  %9s  %s\n", "run", "status", "op", "backend", "iters", "best ms",
               "roofline", "created");
        size_t i;
        json_t *r;
        json_array_foreach(runs, i, r) {
            const json_t *task = json_object_get(r, "task");
            const json_t *op = json_object_get(task, "op");
            const char *opname = json_is_string(op) ? json_string_value(op) : json_string_value(json_object_get(op, "name"));
            const json_t *best = json_object_get(r, "best");
            char bms[32] = "-", roof[32] = "-";
            if (json_is_object(best)) {
                snprintf(bms, sizeof bms, "%.4g", num(best, "time_ms"));
                snprintf(roof, sizeof roof, "%.1f%%", num(best, "roofline_pct"));
            }
            printf("%5lld  %-8s  %-9s  %-8s  %5lld  %10s  %9s  %s\n", (long long)json_integer_value(json_object_get(r, "id")),
                   json_string_value(json_object_get(r, "status")), opname ? opname : "?",
                   json_string_value(json_object_get(r, "backend")),
                   (long long)json_integer_value(json_object_get(r, "n_iters")), bms, roof,
                   json_string_value(json_object_get(r, "created")));
        }
    }
    json_decref(runs);
    store_close(s);
    return 0;
}

static int load_run(const cli_common_t *c, store_t **s, long long *run, json_t **rj, json_t **its)
{
    char *end = NULL;
    *run = c->n_positional >= 1 ? strtoll(c->positional[0], &end, 10) : 0;
    if (*run <= 0 || (end && *end)) {
        fprintf(stderr, "emile: give a run number (emile runs lists them)\n");
        return 2;
    }
    int open_rc = cli_open_store(c, CLI_STORE_READ, s);
    if (open_rc != 0)
        return open_rc;
    if (store_run_get(*s, *run, rj) != 0 || store_iterations(*s, *run, its) != 0) {
        fprintf(stderr, "emile: %s\n", store_errmsg(*s));
        store_close(*s);
        return 1;
    }
    return 0;
}

/* Text from a compiler or an agent on the terminal: control bytes (ESC
 * above all) shown as '?', lines and tabs kept. */
static void print_defanged(const char *label, const char *text)
{
    if (!text || !*text)
        return;
    printf("%s", label);
    for (const char *p = text; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        putchar((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f ? '?' : ch);
    }
    if (text[strlen(text) - 1] != '\n')
        putchar('\n');
}

/* `emile show RUN --iter N`: one iteration in full -- its words, the
 * compiler's log (kept with the iteration: the worker's files are gone),
 * a re-measure, workers lost on the way.  --json: the object. */
static int show_iteration(const cli_common_t *c, long long run, const json_t *its)
{
    const json_t *it = NULL;
    size_t i;
    json_t *x;
    json_array_foreach(its, i, x)
        if (json_integer_value(json_object_get(x, "iter")) == c->iter)
            it = x;
    if (!it) {
        fprintf(stderr, "emile: run %lld has no iteration %d (it has 0..%zu)\n", run, c->iter,
                json_array_size(its) ? json_array_size(its) - 1 : 0);
        return 1;
    }
    if (c->json) {
        print_json(it);
        return 0;
    }
    const char *st = json_string_value(json_object_get(it, "status"));
    printf("run %lld, iteration %d: %s\n", run, c->iter, st ? st : "?");
    char line[1024];
    iteration_line_header(line, sizeof line);
    printf("%s\n", line);
    iteration_line(line, sizeof line, it, num(json_array_get(its, 0), "time_ms"));
    printf("%s\n", line);
    print_defanged("label: ", json_string_value(json_object_get(it, "label")));
    print_defanged("why: ", json_string_value(json_object_get(it, "reason")));
    print_defanged("error: ", json_string_value(json_object_get(it, "error")));
    if (json_is_integer(json_object_get(it, "worker")))
        printf("worker: %lld\n", (long long)json_integer_value(json_object_get(it, "worker")));
    const json_t *rm = json_object_get(it, "remeasure");
    if (json_is_object(rm)) {
        char *t = json_dumps(rm, JSON_COMPACT | JSON_SORT_KEYS);
        printf("measured again: %s\n", t ? t : "");
        free(t);
    }
    json_array_foreach(json_object_get(it, "lost"), i, x)
        print_defanged("lost a worker: ", json_string_value(json_object_get(x, "error")));
    const char *log = json_string_value(json_object_get(it, "compile_log"));
    if (log && *log)
        print_defanged("compiler's log:\n", log);
    const char *src = json_string_value(json_object_get(it, "source"));
    size_t lines = 0;
    for (const char *p = src; p && *p; p++)
        lines += *p == '\n';
    printf("source: %zu lines (emile show %lld --iter %d --json has it)\n", lines, run, c->iter);
    return 0;
}

int cmd_show(int argc, char **argv)
{
    cli_common_t c;
    store_t *s;
    long long run;
    json_t *rj, *its;
    if (cli_parse(argc, argv, NULL, &c, 0) != 0)
        return 2;
    int rc = load_run(&c, &s, &run, &rj, &its);
    if (rc)
        return rc;
    if (c.iter >= 0) {
        rc = show_iteration(&c, run, its);
    } else if (c.json) {
        json_object_set(rj, "iterations", its);
        print_json(rj);
    } else {
        printf("run %lld  %s  %s\n", run, json_string_value(json_object_get(rj, "status")),
               json_string_value(json_object_get(rj, "note")) ? json_string_value(json_object_get(rj, "note")) : "");
        char line[1024];
        iteration_line_header(line, sizeof line);
        printf("%s\n", line);
        double ref = num(json_array_get(its, 0), "time_ms");
        size_t i;
        json_t *it;
        json_array_foreach(its, i, it) {
            iteration_line(line, sizeof line, it, ref);
            printf("%s\n", line);
        }
        const json_t *best = NULL;
        json_array_foreach(its, i, it) if (json_integer_value(json_object_get(it, "iter")) ==
                                           json_integer_value(json_object_get(rj, "best_iter"))) best = it;
        if (best && cli_floors_note(its, best, line, sizeof line))
            printf("%s\n", line);
    }
    json_decref(rj);
    json_decref(its);
    store_close(s);
    return rc;
}

/* Each export writes into DIR and notes the path in written; the list is
 * printed once everything is there (never a header before a failure). */
static int write_text(const char *dir, const char *name, const char *text, json_t *written)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!text || fs_write_file(path, text, strlen(text)) != 0) {
        fprintf(stderr, "emile: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    json_array_append_new(written, json_string(path));
    return 0;
}

/* write_text for a document made here: NULL is its maker's failure, said
 * in why (not the file's: errno means nothing then). */
static int write_made(const char *dir, const char *name, const char *text, const char *why, json_t *written)
{
    if (!text) {
        fprintf(stderr, "emile: cannot make %s/%s: %s\n", dir, name, why);
        return -1;
    }
    return write_text(dir, name, text, written);
}

/* build.sh beside the source: the command that builds it, from there. */
static int write_build_script(const char *dir, const lang_t *lg, const char *src_name, json_t *written)
{
    char *argv[64], buf[8192], line[8192], text[8400];
    if (lg->compile_argv(src_name, "best.so", ".", argv, 64, buf, sizeof buf) != 0)
        return -1;
    lang_argv_line(argv, line, sizeof line);
    snprintf(text, sizeof text, "#!/bin/sh\n# Builds %s (%s) into best.so, as emile's worker does.\nset -e\n"
             "cd \"$(dirname \"$0\")\"\n%s\n", src_name, lg->title, line);
    return write_text(dir, "build.sh", text, written);
}

/* Build the best kernel's shared object here, in the sandbox. */
static int build_so(const char *dir, const lang_t *lg, const char *src_name, json_t *written)
{
    char src[4096], so[4096], inc[4096], *argv[64], buf[8192];
    snprintf(src, sizeof src, "%.3900s/%s", dir, src_name);
    snprintf(so, sizeof so, "%.3900s/best.so", dir);
    snprintf(inc, sizeof inc, "%s/include", emile_root());
    if (lg->compile_argv(src, so, inc, argv, 64, buf, sizeof buf) != 0)
        return -1;
    const char *backend = lg->title;
    sandbox_limits_t l;
    sandbox_limits_default(&l);
    l.drop_uid = -1;
    l.wall_s = 300;
    l.mem_bytes = 0;
    l.fsize_bytes = (size_t)512 << 20;
    int st, to;
    char *log = NULL, err[512];
    if (sandbox_run(dir, argv, &l, &st, &to, &log, NULL, err, sizeof err) != 0 || to || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0) {
        fprintf(stderr, "emile: could not build best.so here (%s): %.300s\n", backend, log ? log : err);
        free(log);
        return -1;
    }
    free(log);
    char cmdlog[4200];
    snprintf(cmdlog, sizeof cmdlog, "%s/.cmd.log", dir);
    unlink(cmdlog);
    json_array_append_new(written, json_string(so));
    return 0;
}

/* The iteration to export: the run's best, except that a PyTorch
 * reference (iteration 0 of a .py task) is no kernel: then the fastest
 * valid candidate, slower than the reference or not. */
static const json_t *export_choice(const json_t *rj, const json_t *its)
{
    json_t *best_j = json_object_get(rj, "best_iter");
    const char *lang = json_string_value(json_object_get(json_object_get(rj, "task"), "reference_lang"));
    int python = lang && strcmp(lang, "py") == 0;
    const json_t *best = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(its, i, it) {
        long long iter = json_integer_value(json_object_get(it, "iter"));
        const char *st = json_string_value(json_object_get(it, "status"));
        if (!python) {
            if (json_is_integer(best_j) && iter == json_integer_value(best_j))
                best = it;
        } else if (iter > 0 && st && strcmp(st, "valid") == 0 && num(it, "time_ms") > 0 &&
                   (!best || num(it, "time_ms") < num(best, "time_ms"))) {
            best = it;
        }
    }
    return best;
}

int cmd_export(int argc, char **argv)
{
    cli_common_t c;
    store_t *s;
    long long run;
    json_t *rj, *its;
    if (cli_parse(argc, argv, NULL, &c, 0) != 0)
        return 2;
    if (c.n_positional != 2) {
        fprintf(stderr, "emile: usage: emile export RUN DIR\n");
        return 2;
    }
    int rc = load_run(&c, &s, &run, &rj, &its);
    if (rc)
        return rc;
    char dir_abs[4096];
    const char *dir = c.positional[1];
    struct stat st;
    rc = 1;
    json_t *best_j = json_object_get(rj, "best_iter");
    const json_t *best = export_choice(rj, its);
    json_t *written = json_array();
    if (!best) {
        fprintf(stderr, "emile: run %lld has no valid kernel to export\n", run);
    } else if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "emile: %s exists and is not a directory (export writes a directory of files)\n", dir);
        rc = 2;
    } else if (fs_mkdir_p(dir, 0755) != 0) {
        fprintf(stderr, "emile: cannot create %s: %s\n", dir, strerror(errno));
    } else {
        /* The build runs in the directory: give it an absolute path. */
        if (realpath(dir, dir_abs))
            dir = dir_abs;
        long long best_iter = json_integer_value(json_object_get(best, "iter"));
        const char *lang = json_string_value(json_object_get(best, "lang"));
        const char *backend = json_string_value(json_object_get(rj, "backend"));
        if (!backend)
            backend = backend_default()->name;
        const lang_t *lg = lang_for(backend, lang, NULL, 0);
        if (!lg)
            lg = lang_for(backend, NULL, NULL, 0);
        char src_name[32];
        snprintf(src_name, sizeof src_name, "best%s", lg ? lg->src_ext : ".c");
        char md_err[512] = "out of memory", err[512] = "out of memory";
        char *md = report_markdown(rj, its, md_err, sizeof md_err);
        char *svg = roofline_svg(json_object_get(rj, "device"), its, (int)json_integer_value(best_j),
                                 json_string_value(json_object_get(json_object_get(rj, "task"), "dtype")), err, sizeof err);
        json_t *all = json_deep_copy(rj);
        json_object_set(all, "iterations", its);
        char *js = json_dumps(all, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(all);
        char hdr[4096], hdst[4096], so[4200];
        emile_root_file("include/emile.h", hdr, sizeof hdr);
        snprintf(hdst, sizeof hdst, "%.3900s/emile.h", dir);
        static const char svg_link[] = "\n![roofline](roofline.svg)\n";
        if (md) {
            size_t len = strlen(md);
            char *grown = realloc(md, len + sizeof svg_link);
            if (grown) {
                memcpy(grown + len, svg_link, sizeof svg_link);
                md = grown;
            } else {
                free(md);
                md = NULL;
                snprintf(md_err, sizeof md_err, "out of memory");
            }
        }
        rc = write_text(dir, src_name, json_string_value(json_object_get(best, "source")), written) ||
             write_made(dir, "report.md", md, md_err, written) ||
             write_made(dir, "report.json", js, "out of memory", written) ||
             write_made(dir, "roofline.svg", svg, err, written);
        if (rc == 0 && fs_copy_file(hdr, hdst) != 0) {
            fprintf(stderr, "emile: cannot copy %s to %s: %s\n", hdr, hdst, strerror(errno));
            rc = 1;
        }
        if (rc == 0)
            json_array_append_new(written, json_string(hdst));
        if (rc == 0 && lg)
            write_build_script(dir, lg, src_name, written);
        int built = rc == 0 && lg && build_so(dir, lg, src_name, written) == 0;
        if (rc == 0 && !built)
            fprintf(stderr, "emile: the source and reports are exported; build best.so on a %s machine "
                            "(and copy it into the package as kernel.so)\n", backend);
        snprintf(so, sizeof so, "%.4000s/best.so", dir);
        if (rc == 0 && export_torch(dir, rj, best, run, built ? so : NULL, written) != 0)
            rc = 1;
        if (rc == 0) {
            char pkg[128];
            export_torch_package_name(json_object_get(rj, "task"), pkg, sizeof pkg);
            printf("exported run %lld (%s: iteration %lld) to %s:\n", run,
                   best_iter == json_integer_value(best_j) ? "best" : "best kernel", best_iter, dir);
            size_t i;
            json_t *p;
            json_array_foreach(written, i, p) printf("  %s\n", json_string_value(p));
            printf("PyTorch: import %s (from %s) registers torch.ops.emile.%s\n", pkg, dir, pkg + 6);
        }
        free(md);
        free(svg);
        free(js);
    }
    json_decref(written);
    json_decref(rj);
    json_decref(its);
    store_close(s);
    return rc == 2 ? 2 : rc ? 1 : 0;
}
