/*
 * test_serve_api.c -- the JSON API of `emile serve`, in process: a server
 * on an ephemeral loopback port over a temporary store holding one run,
 * whose kernel source, label, reason and error all contain "<script>".
 *
 * Checked: status codes and JSON bodies of every read endpoint, the
 * security headers, that kernel text is only ever sent as JSON, text/plain
 * or escaped SVG, 4xx with a JSON error for bad JSON / wrong type / wrong
 * method / unknown paths / oversize bodies / keys in the agent config,
 * the token, Host and Origin checks, the embedded pages, and that the
 * server still answers after every bad request.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_test_client.h"
#include "serve/serve.h"
#include "store/store.h"

#define EVIL "</script><script>alert(1)</script>"

static const char ref_src[] =
    "#include \"emile.h\"\n"
    "/* " EVIL " */\n"
    "EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a) { (void)a; return 0; }\n";

typedef struct {
    char dir[256];
    char db[320];
    char examples[320];
    serve_t *srv;
    int port;
    int64_t run;
} fx_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static json_t *iteration(int iter, const char *status, double gflops)
{
    json_t *rep = json_pack("{s:f, s:f, s:f, s:f, s:[{s:s, s:s}]}", "intensity", 4.0 * (iter + 1),
                            "gflops", gflops, "peak_gflops", 100.0, "bandwidth_gbs", 20.0,
                            "diagnosis", "tag", "single_threaded", "detail", EVIL);
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:f, s:f, s:f, s:f}",
                     "iter", iter, "label", iter ? "v" EVIL : "reference", "reason", EVIL,
                     "source", ref_src, "lang", "c", "status", status,
                     "report", strcmp(status, "valid") == 0 ? rep : (json_decref(rep), json_null()),
                     "time_ms", 10.0 / (iter + 1), "gflops", gflops, "roofline_pct", gflops,
                     "speedup", 1.0 + iter);
}

/* A store with one run of three iterations (the second invalid). */
static void make_store(fx_t *f)
{
    store_t *s;
    assert_int_equal(store_open(f->db, 0, &s), 0);
    json_t *task = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "t " EVIL, "op", "attention",
                             "dtype", "f32", "backend", "cpu", "reference_source", ref_src);
    json_t *dev = json_pack("{s:s, s:{s:{s:f}, s:f}}", "backend", "cpu", "ceilings", "peak_gflops",
                            "f32", 100.0, "bandwidth_gbs", 20.0);
    assert_int_equal(store_run_create(s, task, "cpu", "builtin", dev, &f->run), 0);
    json_t *it0 = iteration(0, "valid", 10), *it1 = iteration(1, "invalid", 0),
           *it2 = iteration(2, "valid", 30);
    json_object_set_new(it1, "error", json_string("max_err too big " EVIL));
    assert_int_equal(store_iteration_add(s, f->run, it0), 0);
    assert_int_equal(store_iteration_add(s, f->run, it1), 0);
    assert_int_equal(store_iteration_add(s, f->run, it2), 0);
    assert_int_equal(store_run_set_best(s, f->run, 2), 0);
    assert_int_equal(store_run_set_status(s, f->run, "done", NULL), 0);
    json_decref(task);
    json_decref(dev);
    json_decref(it0);
    json_decref(it1);
    json_decref(it2);
    store_close(s);
}

static void make_examples(fx_t *f)
{
    snprintf(f->examples, sizeof f->examples, "%s/examples", f->dir);
    assert_int_equal(mkdir(f->examples, 0700), 0);
    char p[400];
    snprintf(p, sizeof p, "%s/ref.c", f->examples);
    FILE *fp = fopen(p, "w");
    fputs(ref_src, fp);
    fclose(fp);
    snprintf(p, sizeof p, "%s/small.json", f->examples);
    fp = fopen(p, "w");
    fputs("{\"name\":\"small cpu\",\"op\":\"attention\",\"params\":{\"batch\":1,\"seq\":32,"
          "\"q_heads\":2,\"kv_heads\":1,\"head_dim\":16,\"causal\":1},\"dtype\":\"f32\","
          "\"backend\":\"cpu\",\"reference\":\"ref.c\",\"target\":40,\"max_iters\":3}\n", fp);
    fclose(fp);
    snprintf(p, sizeof p, "%s/broken.json", f->examples);
    fp = fopen(p, "w");
    fputs("{\"op\":", fp);
    fclose(fp);
}

static int start(fx_t *f, const char *host, const char *token, size_t max_body)
{
    serve_config_t cfg;
    serve_config_init(&cfg);
    cfg.host = host;
    cfg.port = 0;
    cfg.token = token;
    cfg.store_path = f->db;
    cfg.emile_path = "/nonexistent/emile";
    cfg.examples_dir = f->examples;
    cfg.quiet = 1;
    cfg.stop_grace_s = 1;
    if (max_body)
        cfg.max_body = max_body;
    char err[512];
    int rc = serve_start(&cfg, &f->srv, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "serve_start: %s\n", err);
    f->port = rc == 0 ? serve_port(f->srv) : 0;
    return rc;
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/emile-serve-api-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/runs.db", f->dir);
    make_store(f);
    make_examples(f);
    if (start(f, "127.0.0.1", NULL, 4096) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    serve_stop(f->srv);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* The body as JSON, asserting it parses. */
static json_t *body_json(const http_resp_t *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    if (!j)
        fprintf(stderr, "not JSON (%s): %.200s\n", e.text, r->body);
    assert_non_null(j);
    return j;
}

/* Expect status and a JSON {"error": ...} containing want (if given). */
static void expect_error(http_resp_t *r, int status, const char *want)
{
    if (r->status != status)
        fprintf(stderr, "status %d, body %s\n", r->status, r->body);
    assert_int_equal(r->status, status);
    char ct[128];
    assert_int_equal(http_header(r, "Content-Type", ct, sizeof ct), 0);
    assert_string_equal(ct, "application/json");
    json_t *j = body_json(r);
    const char *e = json_string_value(json_object_get(j, "error"));
    assert_non_null(e);
    if (want && !strstr(e, want))
        fprintf(stderr, "error '%s' lacks '%s'\n", e, want);
    if (want)
        assert_non_null(strstr(e, want));
    json_decref(j);
    http_resp_free(r);
}

static void expect_alive(fx_t *f)
{
    http_resp_t r;
    assert_int_equal(http_get(f->port, "/api/health", &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    http_resp_free(&r);
}

static void test_runs_list(void **state)
{
    fx_t *f = *state;
    http_resp_t r;
    assert_int_equal(http_get(f->port, "/api/runs", &r), 0);
    assert_int_equal(r.status, 200);
    char h[512];
    assert_int_equal(http_header(&r, "X-Content-Type-Options", h, sizeof h), 0);
    assert_string_equal(h, "nosniff");
    assert_int_equal(http_header(&r, "Cache-Control", h, sizeof h), 0);
    assert_string_equal(h, "no-store");
    json_t *j = body_json(&r);
    json_t *runs = json_object_get(j, "runs");
    assert_int_equal(json_array_size(runs), 1);
    json_t *run = json_array_get(runs, 0);
    assert_int_equal(json_integer_value(json_object_get(run, "id")), f->run);
    assert_string_equal(json_string_value(json_object_get(run, "status")), "done");
    assert_int_equal(json_integer_value(json_object_get(run, "best_iter")), 2);
    assert_true(json_is_null(json_object_get(run, "job")));
    /* the list leaves the reference text out; the name survives intact */
    json_t *task = json_object_get(run, "task");
    assert_null(json_object_get(task, "reference_source"));
    assert_string_equal(json_string_value(json_object_get(task, "name")), "t " EVIL);
    json_decref(j);
    http_resp_free(&r);
}

static void test_run_get(void **state)
{
    fx_t *f = *state;
    http_resp_t r;
    char path[64];
    snprintf(path, sizeof path, "/api/runs/%lld", (long long)f->run);
    assert_int_equal(http_get(f->port, path, &r), 0);
    assert_int_equal(r.status, 200);
    char ct[128];
    http_header(&r, "Content-Type", ct, sizeof ct);
    assert_string_equal(ct, "application/json");
    json_t *j = body_json(&r);
    json_t *its = json_object_get(j, "iterations");
    assert_int_equal(json_array_size(its), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(its, i), "iter")), i);
    /* the source comes back byte for byte, <script> and all, as JSON */
    assert_string_equal(json_string_value(json_object_get(json_array_get(its, 2), "source")),
                        ref_src);
    assert_string_equal(json_string_value(json_object_get(json_array_get(its, 1), "status")),
                        "invalid");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(j, "run"), "status")), "done");
    json_decref(j);
    http_resp_free(&r);

    assert_int_equal(http_get(f->port, "/api/runs/999", &r), 0);
    expect_error(&r, 404, "no run 999");
    assert_int_equal(http_get(f->port, "/api/runs/0", &r), 0);
    expect_error(&r, 404, NULL);
    assert_int_equal(http_get(f->port, "/api/runs/abc", &r), 0);
    expect_error(&r, 404, NULL);
    assert_int_equal(http_get(f->port, "/api/runs/99999999999999999999999", &r), 0);
    expect_error(&r, 404, NULL);
    expect_alive(f);
}

static void test_run_svg_best_export(void **state)
{
    fx_t *f = *state;
    http_resp_t r;
    char path[96], h[256];
    snprintf(path, sizeof path, "/api/runs/%lld/svg", (long long)f->run);
    assert_int_equal(http_get(f->port, path, &r), 0);
    assert_int_equal(r.status, 200);
    http_header(&r, "Content-Type", h, sizeof h);
    assert_string_equal(h, "image/svg+xml");
    assert_non_null(strstr(r.body, "<svg"));
    /* one point per valid iteration (0 and 2), the best one marked */
    int points = 0;
    for (const char *p = r.body; (p = strstr(p, "<circle")); p++)
        points++;
    assert_int_equal(points, 2);
    assert_non_null(strstr(r.body, "point best"));
    assert_null(strstr(r.body, "<script"));
    http_resp_free(&r);

    snprintf(path, sizeof path, "/api/runs/%lld/best", (long long)f->run);
    assert_int_equal(http_get(f->port, path, &r), 0);
    assert_int_equal(r.status, 200);
    http_header(&r, "Content-Type", h, sizeof h);
    assert_string_equal(h, "text/plain; charset=utf-8");
    http_header(&r, "Content-Disposition", h, sizeof h);
    assert_non_null(strstr(h, "attachment"));
    assert_string_equal(r.body, ref_src);
    http_resp_free(&r);

    snprintf(path, sizeof path, "/api/runs/%lld/export", (long long)f->run);
    assert_int_equal(http_get(f->port, path, &r), 0);
    assert_int_equal(r.status, 200);
    http_header(&r, "Content-Disposition", h, sizeof h);
    assert_non_null(strstr(h, "emile-run-"));
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "iterations")), 3);
    assert_true(json_is_array(json_object_get(j, "messages")));
    json_decref(j);
    http_resp_free(&r);
}

static void test_bad_requests(void **state)
{
    fx_t *f = *state;
    http_resp_t r;
    assert_int_equal(http_post_json(f->port, "/api/cook", "{\"op\": ", &r), 0);
    expect_error(&r, 400, "bad JSON");
    assert_int_equal(http_post_json(f->port, "/api/cook", "[1,2]", &r), 0);
    expect_error(&r, 400, "object");
    assert_int_equal(http_post_json(f->port, "/api/cook", "", &r), 0);
    expect_error(&r, 400, NULL);
    assert_int_equal(http_post_json(f->port, "/api/cook", "{\"a\":1,\"a\":2}", &r), 0);
    expect_error(&r, 400, NULL);
    assert_int_equal(http_request(f->port, "POST", "/api/cook", "Content-Type: text/plain\r\n",
                                  "{}", 2, &r), 0);
    expect_error(&r, 415, NULL);
    assert_int_equal(http_post_json(f->port, "/api/cook",
                                    "{\"op\":\"attention\",\"reference\":\"/etc/passwd\"}", &r), 0);
    expect_error(&r, 400, "reference_source");
    assert_int_equal(http_post_json(f->port, "/api/cook",
                                    "{\"op\":\"attention\",\"reference_source\":\"x\","
                                    "\"agent\":\"openai\",\"agent_config\":{\"api_key\":\"sk-1\"}}",
                                    &r), 0);
    expect_error(&r, 400, "environment");
    assert_int_equal(http_post_json(f->port, "/api/cook",
                                    "{\"op\":\"no_such_op\",\"reference_source\":\"x\"}", &r), 0);
    expect_error(&r, 400, "bad task");
    assert_int_equal(http_post_json(f->port, "/api/cook",
                                    "{\"op\":\"attention\",\"reference_source\":\"x\","
                                    "\"frobnicate\":1}", &r), 0);
    expect_error(&r, 400, "frobnicate");
    assert_int_equal(http_get(f->port, "/api/cook", &r), 0);
    expect_error(&r, 405, "POST");
    assert_int_equal(http_get(f->port, "/api/nope", &r), 0);
    expect_error(&r, 404, NULL);
    assert_int_equal(http_post_json(f->port, "/api/runs/1/stop", NULL, &r), 0);
    expect_error(&r, 409, "not cooking");
    assert_int_equal(http_post_json(f->port, "/api/runs/999/resume", NULL, &r), 0);
    expect_error(&r, 404, NULL);
    assert_int_equal(http_post_json(f->port, "/api/jobs/5/stop", NULL, &r), 0);
    expect_error(&r, 404, NULL);
    /* not HTTP at all */
    const char junk[] = "\x01\x02 garbage \r\n\r\n";
    http_raw(f->port, junk, sizeof junk - 1, &r);
    assert_true(r.status == 0 || (r.status >= 400 && r.status < 500));
    http_resp_free(&r);
    expect_alive(f);
}

static void test_oversize_bodies(void **state)
{
    fx_t *f = *state;                        /* limit 4096 bytes */
    size_t n = 64 * 1024;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = 0;
    http_resp_t r;
    assert_int_equal(http_post_json(f->port, "/api/cook", big, &r), 0);
    expect_error(&r, 413, "limit");
    /* chunked: no length up front; 413 a little past the limit, the
     * connection cut far past it (the sender would not stop otherwise) */
    size_t cn = 4 * 8192 + 1024;
    char *chunked = malloc(cn);
    for (int pass = 0; pass < 2; pass++) {
        int chunks = pass == 0 ? 2 : 4;              /* 8 KiB, then 32 KiB */
        int size = pass == 0 ? 4096 : 8192;
        int k = snprintf(chunked, 512, "POST /api/cook HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                       "Content-Type: application/json\r\nConnection: close\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n", f->port);
        for (int c = 0; c < chunks; c++) {
            k += sprintf(chunked + k, "%x\r\n", size);
            memset(chunked + k, ' ', (size_t)size);
            k += size;
            k += sprintf(chunked + k, "\r\n");
        }
        k += sprintf(chunked + k, "0\r\n\r\n");
        int rc = http_raw(f->port, chunked, (size_t)k, &r);
        if (pass == 0) {
            assert_int_equal(rc, 0);
            expect_error(&r, 413, NULL);
        } else {
            assert_true(rc != 0 || r.status == 413);
            http_resp_free(&r);
        }
    }
    free(chunked);
    free(big);
    expect_alive(f);
}

static void test_host_and_origin(void **state)
{
    fx_t *f = *state;
    http_resp_t r;
    char raw[512];
    int k = snprintf(raw, sizeof raw, "GET /api/runs HTTP/1.1\r\nHost: evil.example:%d\r\n"
                                      "Connection: close\r\n\r\n", f->port);
    assert_int_equal(http_raw(f->port, raw, (size_t)k, &r), 0);
    expect_error(&r, 403, "loopback");
    assert_int_equal(http_request(f->port, "GET", "/api/runs", "Origin: http://evil.example\r\n",
                                  NULL, 0, &r), 0);
    expect_error(&r, 403, "cross-origin");
    char origin[128];
    snprintf(origin, sizeof origin, "Origin: http://127.0.0.1:%d\r\n", f->port);
    assert_int_equal(http_request(f->port, "GET", "/api/runs", origin, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

static void test_pages(void **state)
{
    fx_t *f = *state;
    http_resp_t r;
    char h[512];
    assert_int_equal(http_get(f->port, "/", &r), 0);
    assert_int_equal(r.status, 200);
    http_header(&r, "Content-Type", h, sizeof h);
    assert_string_equal(h, "text/html; charset=utf-8");
    assert_int_equal(http_header(&r, "Content-Security-Policy", h, sizeof h), 0);
    assert_non_null(strstr(h, "script-src 'self'"));
    assert_null(strstr(h, "unsafe-inline"));
    assert_non_null(strstr(r.body, "<html"));
    /* the page fetches nothing from elsewhere: no CDN, no web font */
    assert_null(strstr(r.body, "http://"));
    assert_null(strstr(r.body, "https://"));
    http_resp_free(&r);
    assert_int_equal(http_get(f->port, "/app.js", &r), 0);
    assert_int_equal(r.status, 200);
    http_header(&r, "Content-Type", h, sizeof h);
    assert_string_equal(h, "text/javascript; charset=utf-8");
    /* the page never turns data into markup */
    assert_null(strstr(r.body, "innerHTML"));
    http_resp_free(&r);
    assert_int_equal(http_get(f->port, "/../../etc/passwd", &r), 0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
    assert_int_equal(http_get(f->port, "/nope.html", &r), 0);
    expect_error(&r, 404, NULL);
    assert_int_equal(http_post_json(f->port, "/", "{}", &r), 0);
    expect_error(&r, 405, NULL);
}

static void test_examples_ops_taste(void **state)
{
    fx_t *f = *state;
    http_resp_t r;
    assert_int_equal(http_get(f->port, "/api/examples", &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *ex = json_object_get(j, "examples");
    assert_int_equal(json_array_size(ex), 2);          /* sorted: broken, small */
    assert_non_null(json_object_get(json_array_get(ex, 0), "error"));
    json_t *small = json_array_get(ex, 1);
    assert_string_equal(json_string_value(json_object_get(small, "name")), "small cpu");
    json_t *task = json_object_get(small, "task");
    assert_string_equal(json_string_value(json_object_get(task, "reference_source")), ref_src);
    assert_int_equal((int)json_number_value(json_object_get(json_object_get(task, "params"),
                                                            "seq")), 32);
    json_decref(j);
    http_resp_free(&r);

    assert_int_equal(http_get(f->port, "/api/ops", &r), 0);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    json_t *op0 = json_array_get(json_object_get(j, "ops"), 0);
    assert_string_equal(json_string_value(json_object_get(op0, "name")), "attention");
    assert_non_null(json_object_get(json_object_get(op0, "params"), "head_dim"));
    json_decref(j);
    http_resp_free(&r);

    /* The page's backend choices: the registry, the default first, each
     * with its languages (its default first). */
    assert_int_equal(http_get(f->port, "/api/backends", &r), 0);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    const json_t *bes = json_object_get(j, "backends");
    assert_int_equal(json_array_size(bes), 2);
    const json_t *b0 = json_array_get(bes, 0), *b1 = json_array_get(bes, 1);
    assert_string_equal(json_string_value(json_object_get(b0, "name")), "cpu");
    assert_true(json_is_true(json_object_get(b0, "default")));
    assert_string_equal(json_string_value(json_object_get(b0, "kind")), "host");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(b0, "langs"), 0), "tag")), "c");
    assert_string_equal(json_string_value(json_object_get(b1, "name")), "cuda");
    assert_true(json_is_false(json_object_get(b1, "default")));
    assert_string_equal(json_string_value(json_object_get(b1, "kind")), "gpu");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(b1, "langs"), 0), "tag")), "cu");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(b1, "langs"), 1), "name")),
                        "triton");
    json_decref(j);
    http_resp_free(&r);

    assert_int_equal(http_get(f->port, "/api/taste", &r), 0);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "engine")), "not built");
    assert_true(json_is_false(json_object_get(j, "available")));
    json_decref(j);
    http_resp_free(&r);
    assert_int_equal(http_post_json(f->port, "/api/taste", "{}", &r), 0);
    expect_error(&r, 501, "not built");
}

static void test_token(void **state)
{
    fx_t *f = *state;
    serve_stop(f->srv);
    assert_int_equal(start(f, "127.0.0.1", "bad token", 0), -1);   /* space */
    assert_int_equal(start(f, "127.0.0.1", "t0ken-for-tests", 0), 0);
    assert_string_equal(serve_token(f->srv), "t0ken-for-tests");
    http_resp_t r;
    assert_int_equal(http_get(f->port, "/api/runs", &r), 0);
    expect_error(&r, 401, "token");
    assert_int_equal(http_request(f->port, "GET", "/api/runs",
                                  "Authorization: Bearer t0ken-for-tesTs\r\n", NULL, 0, &r), 0);
    expect_error(&r, 401, NULL);
    assert_int_equal(http_get(f->port, "/api/runs?token=wrong", &r), 0);
    expect_error(&r, 401, NULL);
    /* refused before the body is read: an unauthorised upload costs nothing */
    assert_int_equal(http_post_json(f->port, "/api/cook", "{}", &r), 0);
    expect_error(&r, 401, NULL);
    assert_int_equal(http_request(f->port, "GET", "/api/runs",
                                  "Authorization: Bearer t0ken-for-tests\r\n", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    assert_int_equal(http_get(f->port, "/api/runs?token=t0ken-for-tests", &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    /* with a token any Host name is fine (a LAN name, a tunnel) */
    char raw[512];
    int k = snprintf(raw, sizeof raw, "GET /api/health HTTP/1.1\r\nHost: box.lan:%d\r\n"
                                      "Authorization: Bearer t0ken-for-tests\r\n"
                                      "Connection: close\r\n\r\n", f->port);
    assert_int_equal(http_raw(f->port, raw, (size_t)k, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    /* the page itself carries no data and loads without the token */
    assert_int_equal(http_get(f->port, "/", &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);

    /* Beyond loopback a token is generated when none is given. */
    serve_stop(f->srv);
    assert_int_equal(start(f, "0.0.0.0", NULL, 0), 0);
    const char *tok = serve_token(f->srv);
    assert_non_null(tok);
    assert_int_equal(strlen(tok), 32);
    assert_int_equal(http_get(f->port, "/api/runs", &r), 0);
    expect_error(&r, 401, NULL);
    char path[128];
    snprintf(path, sizeof path, "/api/runs?token=%s", tok);
    assert_int_equal(http_get(f->port, path, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

static void test_start_errors(void **state)
{
    fx_t *f = *state;
    serve_config_t cfg;
    serve_config_init(&cfg);
    cfg.port = f->port;                      /* taken by the fixture's server */
    cfg.store_path = f->db;
    cfg.quiet = 1;
    serve_t *s = NULL;
    char err[512] = "";
    assert_int_equal(serve_start(&cfg, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "cannot listen"));
    cfg.port = 0;
    cfg.host = "no.such.host.invalid";
    assert_int_equal(serve_start(&cfg, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "resolve"));
    cfg.host = "127.0.0.1";
    char bad[400];
    snprintf(bad, sizeof bad, "%s/no/such/dir/runs.db", f->dir);
    cfg.store_path = bad;
    assert_int_equal(serve_start(&cfg, &s, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
    expect_alive(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runs_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_svg_best_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_and_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_examples_ops_taste, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
