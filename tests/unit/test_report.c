/*
 * test_report.c -- the report writers: roofline SVG, Markdown report,
 * profile table and the live iteration line, on a sample run written here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report/iteration_line.h"
#include "report/report_md.h"
#include "report/report_util.h"
#include "report/roofline_svg.h"
#include "report/textbuf.h"

/* A cpu attention run: B=1 S=512 Hq=8 Hkv=2 D=64 causal, f32.
 * flops 268435456, bytes 2621440, intensity 102.4; the device's ridge is
 * 150.2 / 18.3 = 8.208 FLOP/byte, so every point is compute-bound with a
 * roofline of 150.2 GFLOP/s.  Iterations: 0 reference 50 ms, 1 a tiled
 * kernel whose label tries to inject a script, 2 a compile error with a
 * long log, 3 the best (5 ms), 4 a wrong answer, 5 valid but slower. */
static const char *RUN_JSON =
    "{\"id\": 7, \"created\": \"2025-01-02T03:04:05Z\", \"status\": \"done\","
    " \"backend\": \"cpu\", \"agent\": \"builtin\", \"best_iter\": 3,"
    " \"note\": \"target not reached\", \"n_iters\": 6,"
    " \"task\": {\"name\": \"cpu attention\", \"op\": \"attention\","
    "   \"params\": {\"batch\": 1, \"seq\": 512, \"q_heads\": 8, \"kv_heads\": 2,"
    "              \"head_dim\": 64, \"causal\": 1, \"scale\": 0.125},"
    "   \"dtype\": \"f32\", \"backend\": \"cpu\", \"target_pct\": 80,"
    "   \"max_iters\": 6},"
    " \"device\": {\"backend\": \"cpu\", \"name\": \"Xeon <Test> & Co (2 cores)\","
    "   \"ceilings\": {\"peak_gflops\": {\"f32\": 150.2, \"f64\": 75.0},"
    "                 \"bandwidth_gbs\": 18.3, \"measured\": true,"
    "                 \"measured_at\": \"2025-01-02T03:00:00Z\"}}}";

static const char *ITERS_JSON =
    "["
    "{\"iter\": 0, \"label\": \"reference\", \"reason\": \"the reference\","
    " \"status\": \"valid\", \"error\": null, \"source\": \"int f(void);\\n\","
    " \"lang\": \"c\", \"time_ms\": 50.0, \"gflops\": 5.369, \"roofline_pct\": 3.575,"
    " \"speedup\": 1.0,"
    " \"report\": {\"time_ms\": {\"median\": 50.0, \"min\": 49.0, \"max\": 52.0},"
    "   \"gflops\": 5.369, \"intensity\": 102.4, \"roofline_pct\": 3.575,"
    "   \"diagnosis\": [{\"tag\": \"single_threaded\", \"detail\": \"1 of 2 cores\"},"
    "                   {\"tag\": \"scalar_code\", \"detail\": \"no SIMD\"}]}},"
    "{\"iter\": 1, \"label\": \"tiled <script>alert(1)</script>\","
    " \"reason\": \"tile | the loop\", \"status\": \"valid\","
    " \"time_ms\": 20.0, \"gflops\": 13.42, \"roofline_pct\": 8.937,"
    " \"report\": {\"gflops\": 13.42, \"intensity\": 102.4, \"roofline_pct\": 8.937,"
    "   \"diagnosis\": [{\"tag\": \"single_threaded\", \"detail\": \"\"}]}},"
    "{\"iter\": 2, \"label\": \"vectorized\", \"reason\": \"use SIMD\","
    " \"status\": \"compile_error\", \"error\": \"compile failed: 2 errors\","
    " \"compile_log\": \"k.c:12:5: error: 'x' undeclared\\nL2\\nL3\\nL4\\nL5\\nL6\\n"
    "L7\\nL8\\nL9\\nL10\\nL11\\nL12\\nL13 must not appear\\nL14\\n\","
    " \"report\": null, \"time_ms\": null, \"gflops\": null},"
    "{\"iter\": 3, \"label\": \"omp 2 threads + simd\","
    " \"reason\": \"parallelise over heads, vectorise the dot products\","
    " \"status\": \"valid\", \"lang\": \"c\","
    " \"source\": \"/* ```not a fence``` */\\nint emile_kernel(void);\","
    " \"time_ms\": 5.0, \"gflops\": 53.69, \"roofline_pct\": 35.75, \"speedup\": 10.0,"
    " \"report\": {\"backend\": \"cpu\","
    "   \"time_ms\": {\"median\": 5.0, \"min\": 4.9, \"max\": 5.3, \"mean\": 5.05,"
    "                \"stdev\": 0.1, \"p10\": 4.95, \"p90\": 5.2, \"reps\": 20,"
    "                \"warmup\": 3},"
    "   \"flops\": 268435456, \"bytes\": 2621440, \"gflops\": 53.69, \"gbs\": 0.5243,"
    "   \"intensity\": 102.4, \"peak_gflops\": 150.2, \"bandwidth_gbs\": 18.3,"
    "   \"ridge\": 8.208, \"bound\": \"compute\", \"roofline_gflops\": 150.2,"
    "   \"roofline_pct\": 35.75, \"pct_peak_flops\": 35.75, \"pct_bandwidth\": 2.865,"
    "   \"parallelism\": 1.97, \"max_err\": 3.1e-7,"
    "   \"kernels\": [{\"name\": \"attn_fwd\", \"grid\": [64, 8, 1], \"block\": 128,"
    "                 \"registers\": 96, \"occupancy\": 0.5}],"
    "   \"counters\": {\"dram_bytes\": 3000000, \"ipc\": 1.25},"
    "   \"diagnosis\": [{\"tag\": \"compute_bound\","
    "                    \"detail\": \"above the ridge, 36% of peak\"}]}},"
    "{\"iter\": 4, \"label\": \"bigger tiles\", \"reason\": \"fewer passes\","
    " \"status\": \"invalid\","
    " \"error\": \"validation: max_err 3.1e-02 > tol 1e-04 at seq=509\\nsecond line\","
    " \"report\": null},"
    "{\"iter\": 5, \"label\": \"blocked\", \"reason\": \"block the keys: EMILE_BK 32 -> 64\","
    " \"status\": \"valid\", \"time_ms\": 6.25, \"gflops\": 42.95,"
    " \"roofline_pct\": 28.6,"
    " \"report\": {\"gflops\": 42.95, \"intensity\": 102.4, \"roofline_pct\": 28.6}}"
    "]";

typedef struct fixture {
    json_t *run;
    json_t *iters;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    json_error_t e;
    f->run = json_loads(RUN_JSON, 0, &e);
    if (!f->run)
        fprintf(stderr, "run: %s at %d\n", e.text, e.position);
    f->iters = json_loads(ITERS_JSON, 0, &e);
    if (!f->iters)
        fprintf(stderr, "iters: %s at %d\n", e.text, e.position);
    *state = f;
    return f->run && f->iters ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    json_decref(f->run);
    json_decref(f->iters);
    free(f);
    return 0;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ------------------------------------------------------------ textbuf */

static void test_textbuf(void **state)
{
    (void)state;
    textbuf_t b;
    textbuf_init(&b);
    /* Nothing appended is "", not NULL. */
    char *s = textbuf_finish(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    /* A table cell: one line, pipes and HTML defused, cut on a character. */
    char cell[300];
    memset(cell, 'a', 199);
    strcpy(cell + 199, "\xc3\xa9tail");     /* U+00E9 straddles byte 200 */
    textbuf_md_cell(&b, "  x |\n y <b>&  ", 0);
    textbuf_putc(&b, '#');
    textbuf_md_cell(&b, cell, 200);
    s = textbuf_finish(&b);
    assert_non_null(s);
    assert_true(strncmp(s, "x \\| y &lt;b>&amp;#", 19) == 0);
    assert_int_equal(strlen(s), 19 + 199 + 3);
    assert_string_equal(s + 19 + 199, "...");
    free(s);

    /* Words stay readable as text: an arrow, a lone ampersand, a
     * comparison; what could open HTML or an entity does not. */
    textbuf_init(&b);
    textbuf_md_cell(&b, "EMILE_BK 32 -> 64 & more, a < b, <img src=x>, &lt; x\\y", 0);
    s = textbuf_finish(&b);
    assert_string_equal(s, "EMILE_BK 32 -> 64 & more, a &lt; b, &lt;img src=x>, &amp;lt; "
                           "x\\\\y");
    free(s);
    /* Code spans are literal (Markdown would show an entity in one as
     * written), but a pipe still may not end the cell; a backtick run
     * that never closes is a plain backtick. */
    textbuf_init(&b);
    textbuf_md_cell(&b, "use `q->k[i] < n && a|b`, ``x ` y`` and ` alone <b>", 0);
    s = textbuf_finish(&b);
    assert_string_equal(s, "use `q->k[i] < n && a\\|b`, ``x ` y`` and ` alone &lt;b>");
    free(s);

    /* First line: blanks skipped, cut with "..." inside the limit. */
    char line[16];
    assert_int_equal(text_first_line("\n\n  hello world  \nnext", line, sizeof line, 0), 11);
    assert_string_equal(line, "hello world");
    assert_int_equal(text_first_line("abcdefghijklmnopqrstuvwxyz", line, sizeof line, 10), 10);
    assert_string_equal(line, "abcdefg...");
    assert_int_equal(text_first_line(NULL, line, sizeof line, 0), 0);
    assert_string_equal(line, "");

    /* Head of a log: lines kept, control bytes defused, the rest "...". */
    textbuf_head(&b, "\na\x1b[1m\nb\nc\n", 2, 0);
    s = textbuf_finish(&b);
    assert_string_equal(s, "a?[1m\nb\n...\n");
    free(s);

    /* A failed allocation is sticky and reported once, at the end. */
    textbuf_puts(&b, "kept?");
    textbuf_repeat(&b, 'x', (size_t)-1);
    assert_true(b.failed);
    textbuf_puts(&b, "more");
    assert_null(textbuf_finish(&b));
    assert_null(b.s);
}

/* ---------------------------------------------------------------- XML */

/* A strict-enough XML check: one root <svg>, every tag closed in order,
 * attributes quoted and free of '<', every '&' a known entity.  Returns 0
 * when well formed, else -1 with the reason in why. */
static int xml_check(const char *s, char *why, size_t n)
{
    char stack[64][32];
    int depth = 0, roots = 0;
    const char *p = s;
    while (*p) {
        if (*p == '&') {
            static const char *ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
            int ok = 0;
            for (size_t i = 0; i < 5; i++)
                ok |= strncmp(p, ents[i], strlen(ents[i])) == 0;
            if (!ok) {
                snprintf(why, n, "bad entity at %.20s", p);
                return -1;
            }
            p++;
            continue;
        }
        if (*p != '<') {
            if (depth == 0 && !(*p == ' ' || *p == '\n')) {
                snprintf(why, n, "text outside the root at %.20s", p);
                return -1;
            }
            p++;
            continue;
        }
        if (strncmp(p, "<?", 2) == 0) {
            p = strstr(p, "?>");
            if (!p) {
                snprintf(why, n, "unclosed <?");
                return -1;
            }
            p += 2;
            continue;
        }
        if (p[1] == '/') {
            const char *q = p + 2;
            size_t len = strcspn(q, ">");
            if (depth == 0 || strlen(stack[depth - 1]) != len ||
                strncmp(stack[depth - 1], q, len) != 0) {
                snprintf(why, n, "mismatched close at %.30s", p);
                return -1;
            }
            depth--;
            p = q + len + 1;
            continue;
        }
        const char *q = p + 1;
        size_t len = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:");
        if (len == 0 || len >= 32) {
            snprintf(why, n, "bad tag name at %.30s", p);
            return -1;
        }
        char name[32];
        memcpy(name, q, len);
        name[len] = '\0';
        q += len;
        /* Attributes up to '>' with quoted values. */
        while (*q && *q != '>' && !(q[0] == '/' && q[1] == '>')) {
            if (*q == '"') {
                const char *end = strchr(q + 1, '"');
                if (!end) {
                    snprintf(why, n, "unclosed quote in <%s>", name);
                    return -1;
                }
                for (const char *c = q + 1; c < end; c++) {
                    if (*c == '<') {
                        snprintf(why, n, "'<' in an attribute of <%s>", name);
                        return -1;
                    }
                }
                q = end + 1;
                continue;
            }
            if (*q == '<') {
                snprintf(why, n, "'<' inside <%s>", name);
                return -1;
            }
            q++;
        }
        if (!*q) {
            snprintf(why, n, "unterminated <%s>", name);
            return -1;
        }
        if (depth == 0)
            roots++;
        if (*q == '/') {
            p = q + 2;
            continue;
        }
        if (depth == 64) {
            snprintf(why, n, "too deep");
            return -1;
        }
        snprintf(stack[depth++], sizeof stack[0], "%s", name);
        p = q + 1;
    }
    if (depth != 0) {
        snprintf(why, n, "%d tags left open (<%s>)", depth, stack[depth - 1]);
        return -1;
    }
    if (roots != 1) {
        snprintf(why, n, "%d root elements", roots);
        return -1;
    }
    return 0;
}

/* The value of attribute attr in the tag that starts at tag. */
static double attr_num(const char *tag, const char *attr)
{
    char key[32];
    snprintf(key, sizeof key, " %s=\"", attr);
    const char *end = strchr(tag, '>');
    const char *a = strstr(tag, key);
    if (!a || (end && a > end))
        return NAN;
    return strtod(a + strlen(key), NULL);
}

/* The <circle> of iteration iter, or NULL. */
static const char *circle_of(const char *svg, int iter)
{
    char key[48];
    snprintf(key, sizeof key, "data-iter=\"%d\"", iter);
    for (const char *p = strstr(svg, "<circle"); p; p = strstr(p + 1, "<circle")) {
        const char *end = strchr(p, '>');
        const char *k = strstr(p, key);
        if (k && end && k < end)
            return p;
    }
    return NULL;
}

/* The checker itself must catch what it claims to catch. */
static void test_xml_check_rejects(void **state)
{
    (void)state;
    char why[128];
    assert_int_equal(xml_check("<svg><g></g></svg>", why, sizeof why), 0);
    assert_int_equal(xml_check("<svg><g></svg>", why, sizeof why), -1);
    assert_int_equal(xml_check("<svg><text>a < b</text></svg>", why, sizeof why), -1);
    assert_int_equal(xml_check("<svg a=\"x<y\"/>", why, sizeof why), -1);
    assert_int_equal(xml_check("<svg>&nbsp;</svg>", why, sizeof why), -1);
    assert_int_equal(xml_check("<svg/><svg/>", why, sizeof why), -1);
}

static void test_svg_well_formed(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    char *svg = roofline_svg(json_object_get(f->run, "device"), f->iters, 3, "f32",
                             err, sizeof err);
    assert_non_null(svg);
    char why[128] = "";
    int rc = xml_check(svg, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "svg: %s\n", why);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    /* Standalone: nothing fetched from elsewhere. */
    assert_null(strstr(svg, "href"));
    assert_null(strstr(svg, "@import"));
    assert_null(strstr(svg, "<script"));
    free(svg);
}

static void test_svg_points_and_best(void **state)
{
    fixture_t *f = *state;
    char err[256];
    char *svg = roofline_svg(json_object_get(f->run, "device"), f->iters, 3, "f32",
                             err, sizeof err);
    assert_non_null(svg);
    /* Valid iterations 0, 1, 3, 5: one circle each; 2 and 4 left out. */
    assert_int_equal(count(svg, "<circle"), 4);
    assert_non_null(circle_of(svg, 0));
    assert_non_null(circle_of(svg, 1));
    assert_non_null(circle_of(svg, 3));
    assert_non_null(circle_of(svg, 5));
    assert_null(circle_of(svg, 2));
    assert_null(circle_of(svg, 4));
    /* Exactly the best carries the highlight class. */
    assert_int_equal(count(svg, "class=\"point best\""), 1);
    const char *best = circle_of(svg, 3);
    assert_true(strncmp(best, "<circle class=\"point best\"", 26) == 0);
    assert_true(strncmp(circle_of(svg, 0), "<circle class=\"point\"", 21) == 0);
    /* The path joins the four points in iteration order. */
    const char *path = strstr(svg, "<polyline class=\"path\"");
    assert_non_null(path);
    const char *pts = strstr(path, "points=\"");
    assert_non_null(pts);
    size_t spaces = 0;
    for (const char *c = pts + 8; *c != '"'; c++)
        spaces += *c == ' ';
    assert_int_equal(spaces, 3);
    /* Each point is labelled with its number. */
    assert_non_null(strstr(svg, ">5</text>"));
    assert_non_null(strstr(svg, "best: iter 3"));
    free(svg);
}

static void test_svg_escapes(void **state)
{
    fixture_t *f = *state;
    char err[256];
    char *svg = roofline_svg(json_object_get(f->run, "device"), f->iters, 3, "f32",
                             err, sizeof err);
    assert_non_null(svg);
    assert_null(strstr(svg, "<script"));
    assert_null(strstr(svg, "<Test>"));
    assert_non_null(strstr(svg, "tiled &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(svg, "Xeon &lt;Test&gt; &amp; Co (2 cores)"));
    free(svg);

    /* Control bytes and broken UTF-8 would make the XML ill-formed. */
    /* (jansson refuses bad UTF-8 in json_pack; a store might not.) */
    json_t *it = json_pack("[{s:i, s:s, s:f, s:f}]", "iter", 0, "status", "valid",
                           "gflops", 1.0, "intensity", 1.0);
    assert_non_null(it);
    json_object_set_new(json_array_get(it, 0), "label",
                        json_string_nocheck("bad\x01\xff\xc3(\"q'"));
    svg = roofline_svg(NULL, it, 0, "f32", err, sizeof err);
    assert_non_null(svg);
    char why[128];
    assert_int_equal(xml_check(svg, why, sizeof why), 0);
    assert_non_null(strstr(svg, "bad?" "?" "?(&quot;q&#39;"));
    free(svg);
    json_decref(it);
}

static void test_svg_ceilings(void **state)
{
    fixture_t *f = *state;
    char err[256];
    char *svg = roofline_svg(json_object_get(f->run, "device"), f->iters, 3, "f32",
                             err, sizeof err);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "class=\"roof memory\""));
    assert_non_null(strstr(svg, "class=\"roof compute\""));
    assert_non_null(strstr(svg, "18.30 GB/s"));
    assert_non_null(strstr(svg, "150.2 GFLOP/s"));
    assert_non_null(strstr(svg, "ridge 8.208 FLOP/byte"));
    assert_non_null(strstr(svg, "performance (GFLOP/s)"));
    assert_non_null(strstr(svg, "ceilings measured on this device"));
    /* The compute roof is drawn at the y of 150.2 and the ridge at x 8.208:
     * check them against two points placed there. */
    json_t *probe = json_pack("[{s:i,s:s,s:f,s:f},{s:i,s:s,s:f,s:f}]",
                              "iter", 0, "status", "valid", "gflops", 150.2,
                              "intensity", 102.4,
                              "iter", 1, "status", "valid", "gflops", 1.0,
                              "intensity", 150.2 / 18.3);
    /* Same ranges as the fixture: points at 102.4 already fix them. */
    char *svg2 = roofline_svg(json_object_get(f->run, "device"), probe, -1, "f32",
                              err, sizeof err);
    assert_non_null(svg2);
    const char *roof = strstr(svg2, "class=\"roof compute\"");
    const char *ridge = strstr(svg2, "<line class=\"ridge\"");
    assert_non_null(roof);
    assert_non_null(ridge);
    assert_true(fabs(attr_num(roof, "y1") - attr_num(circle_of(svg2, 0), "cy")) < 0.11);
    assert_true(fabs(attr_num(ridge, "x1") - attr_num(circle_of(svg2, 1), "cx")) < 0.11);
    assert_int_equal(count(svg2, "class=\"point best\""), 0);
    free(svg2);
    json_decref(probe);
    free(svg);
}

/* The ink box of a point label as the writer must have reckoned it: the
 * generous 12 px sans-serif metrics of roofline_svg.c (digits 7.7 px,
 * bold 8.4 px; 9.5 px above the baseline, 3 below). */
typedef struct { double x0, y0, x1, y1; } tbox_t;

static tbox_t label_box(const char *tag)
{
    const char *gt = strchr(tag, '>');
    size_t n = strcspn(gt + 1, "<");
    const char *bold = strstr(tag, "font-weight=\"bold\"");
    double w = (double)n * (bold && bold < gt ? 8.4 : 7.7);
    double x = attr_num(tag, "x"), y = attr_num(tag, "y");
    const char *anchor = strstr(tag, "text-anchor=\"");
    anchor = anchor && anchor < gt ? anchor + 13 : "start";     /* SVG's default */
    double x0 = strncmp(anchor, "end", 3) == 0 ? x - w
              : strncmp(anchor, "middle", 6) == 0 ? x - w / 2 : x;
    return (tbox_t){x0, y - 9.5, x0 + w, y + 3.0};
}

static int tboxes_meet(tbox_t a, tbox_t b)
{
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

/* A real run: every iteration at the same intensity (same op, same FLOP
 * and byte counts), performances close together below the roof, the best
 * one among them, one touching the roof's label.  No two point labels
 * may overlap, none may cover a point or the roof and ridge labels, all
 * stay in the plot; the best is labelled, and most of the others. */
static void test_svg_labels_do_not_collide(void **state)
{
    fixture_t *f = *state;
    json_t *its = json_array();
    const int n = 14;
    for (int i = 0; i < n; i++)
        json_array_append_new(its, json_pack("{s:i, s:s, s:f, s:f}", "iter", i, "status",
                                             "valid", "intensity", 102.4 * (1 + 0.01 * (i % 3)),
                                             "gflops", i == n - 1 ? 146.0 : 30.0 + 3.0 * i));
    char err[256];
    char *svg = roofline_svg(json_object_get(f->run, "device"), its, 9, "f32", err,
                             sizeof err);
    assert_non_null(svg);
    tbox_t boxes[64];
    int iters[64], k = 0, best_labelled = 0;
    for (const char *p = strstr(svg, "<text class=\"point-label"); p;
         p = strstr(p + 1, "<text class=\"point-label")) {
        assert_true(k < 64);
        boxes[k] = label_box(p);
        iters[k] = atoi(strchr(p, '>') + 1);
        best_labelled |= iters[k] == 9 && strncmp(p, "<text class=\"point-label best\"", 30) == 0;
        k++;
    }
    assert_true(best_labelled);
    if (k < n - 3)
        fail_msg("only %d of %d points labelled", k, n);
    /* obstacles: every disc, the compute roof's and the ridge's labels */
    tbox_t others[64];
    int m = 0;
    for (const char *p = strstr(svg, "<circle"); p; p = strstr(p + 1, "<circle")) {
        double cx = attr_num(p, "cx"), cy = attr_num(p, "cy"), r = attr_num(p, "r");
        others[m++] = (tbox_t){cx - r, cy - r, cx + r, cy + r};
    }
    assert_int_equal(m, n);
    const char *roof = strstr(svg, "<text class=\"roof-label compute\"");
    assert_non_null(roof);
    const char *gt = strchr(roof, '>');
    double rw = (double)strcspn(gt + 1, "<") * 7.7;
    others[m++] = (tbox_t){attr_num(roof, "x") - rw, attr_num(roof, "y") - 9.5,
                           attr_num(roof, "x"), attr_num(roof, "y") + 3.0};
    for (int i = 0; i < k; i++) {
        assert_true(boxes[i].x0 >= 90 && boxes[i].x1 <= 680 && boxes[i].y0 >= 70 &&
                    boxes[i].y1 <= 480);
        for (int j = i + 1; j < k; j++)
            if (tboxes_meet(boxes[i], boxes[j]))
                fail_msg("labels %d and %d overlap", iters[i], iters[j]);
        for (int j = 0; j < m; j++)
            if (tboxes_meet(boxes[i], others[j]))
                fail_msg("label %d covers %s %d", iters[i], j < n ? "point" : "the roof label",
                         j);
    }
    char why[128];
    assert_int_equal(xml_check(svg, why, sizeof why), 0);
    free(svg);
    json_decref(its);
}

static void test_svg_log_scale(void **state)
{
    (void)state;
    /* Points a decade apart on both axes: equal steps in pixels, x rising,
     * y falling on the page as GFLOP/s rises. */
    json_t *its = json_array();
    double xs[4] = {1, 10, 100, 1000}, ys[4] = {2, 20, 200, 2000};
    for (int i = 0; i < 4; i++)
        json_array_append_new(its, json_pack("{s:i,s:s,s:f,s:f}", "iter", i,
                                             "status", "valid", "intensity", xs[i],
                                             "gflops", ys[i]));
    json_t *dev = json_pack("{s:s,s:{s:{s:f},s:f}}", "name", "gpu", "ceilings",
                            "peak_gflops", "bf16", 5000.0, "bandwidth_gbs", 100.0);
    char err[256];
    char *svg = roofline_svg(dev, its, 3, "bf16", err, sizeof err);
    assert_non_null(svg);
    double cx[4], cy[4];
    for (int i = 0; i < 4; i++) {
        const char *c = circle_of(svg, i);
        assert_non_null(c);
        cx[i] = attr_num(c, "cx");
        cy[i] = attr_num(c, "cy");
    }
    for (int i = 1; i < 4; i++) {
        assert_true(cx[i] > cx[i - 1]);
        assert_true(cy[i] < cy[i - 1]);
        assert_true(fabs((cx[i] - cx[i - 1]) - (cx[1] - cx[0])) < 0.25);
        assert_true(fabs((cy[i] - cy[i - 1]) - (cy[1] - cy[0])) < 0.25);
    }
    /* A 5000 GFLOP/s roof switches the unit to TFLOP/s; decades labelled. */
    assert_non_null(strstr(svg, "performance (TFLOP/s)"));
    assert_non_null(strstr(svg, "5.000 TFLOP/s peak (bf16)"));
    assert_non_null(strstr(svg, "class=\"tick x\""));
    assert_non_null(strstr(svg, ">1000</text>"));
    assert_non_null(strstr(svg, ">0.1</text>"));
    /* Same input, same bytes. */
    char *again = roofline_svg(dev, its, 3, "bf16", err, sizeof err);
    assert_non_null(again);
    assert_string_equal(svg, again);
    free(again);
    free(svg);
    json_decref(its);
    json_decref(dev);
}

static void test_svg_fallbacks(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    /* bf16 asked, only f32 known: the f32 roof, said so. */
    char *svg = roofline_svg(json_object_get(f->run, "device"), f->iters, 3, "bf16",
                             err, sizeof err);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "150.2 GFLOP/s peak (f32)"));
    assert_non_null(strstr(svg, "no bf16 ceiling"));
    free(svg);
    /* No device: ceilings from the reports (iter 3 carries them). */
    svg = roofline_svg(NULL, f->iters, -1, NULL, err, sizeof err);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "18.30 GB/s"));
    assert_non_null(strstr(svg, "unknown device"));
    free(svg);
    /* No iterations: the ceilings alone, still well formed. */
    svg = roofline_svg(json_object_get(f->run, "device"), NULL, -1, "f32",
                       err, sizeof err);
    assert_non_null(svg);
    char why[128];
    assert_int_equal(xml_check(svg, why, sizeof why), 0);
    assert_int_equal(count(svg, "<circle"), 0);
    free(svg);
    /* Not an array: an error, named. */
    json_t *bad = json_object();
    svg = roofline_svg(NULL, bad, -1, "f32", err, sizeof err);
    assert_null(svg);
    assert_non_null(strstr(err, "not an array"));
    json_decref(bad);
}

/* ------------------------------------------------------------ Markdown */

static void test_markdown_table(void **state)
{
    fixture_t *f = *state;
    char err[256];
    char *md = report_markdown(f->run, f->iters, err, sizeof err);
    assert_non_null(md);
    assert_true(strncmp(md, "# Emile run 7: cpu attention\n", 29) == 0);
    assert_non_null(strstr(md, "Status: **done** (target not reached)"));
    assert_non_null(strstr(md, "| parameters | batch=1, seq=512, q_heads=8, kv_heads=2, "
                               "head_dim=64, causal=1, scale=0.125 |"));
    assert_non_null(strstr(md, "| target | 80% of roofline |"));
    assert_non_null(strstr(md, "| budget | 6 iterations after the reference (6 recorded) |"));
    assert_non_null(strstr(md, "| peak f32 | 150.2 GFLOP/s |"));
    assert_non_null(strstr(md, "| bandwidth | 18.30 GB/s |"));
    assert_non_null(strstr(md, "| ridge (f32) | 8.208 FLOP/byte |"));
    assert_non_null(strstr(md, "| name | Xeon &lt;Test> & Co (2 cores) |"));
    /* The rows, numbers and speedups over iteration 0 (50 ms). */
    assert_non_null(strstr(md, "| 0 | reference | valid | 50.00 | 5.369 | 3.6 | 1.00x | "
                               "single_threaded, scalar_code | the reference |\n"));
    assert_non_null(strstr(md, "| 1 | tiled &lt;script>alert(1)&lt;/script> | valid "
                               "| 20.00 | 13.42 | 8.9 | 2.50x | single_threaded | "
                               "tile \\| the loop |\n"));
    assert_non_null(strstr(md, "| 2 | vectorized | compile_error | - | - | - | - |  | "
                               "use SIMD |\n"));
    assert_non_null(strstr(md, "| **3** (best) | omp 2 threads + simd | valid | 5.000 | "
                               "53.69 | 35.8 | 10.00x | compute_bound | parallelise over "
                               "heads, vectorise the dot products |\n"));
    assert_non_null(strstr(md, "| 5 | blocked | valid | 6.250 | 42.95 | 28.6 | 8.00x |  | "
                               "block the keys: EMILE_BK 32 -> 64 |\n"));
    assert_null(strstr(md, "<script"));
    free(md);
}

static void test_markdown_best_and_failures(void **state)
{
    fixture_t *f = *state;
    char err[256];
    char *md = report_markdown(f->run, f->iters, err, sizeof err);
    assert_non_null(md);
    assert_non_null(strstr(md, "## Best kernel: iteration 3 (omp 2 threads + simd)\n"));
    assert_non_null(strstr(md, "- median time 5.000 ms, 53.69 GFLOP/s, 35.8% of roofline, "
                               "10.00x the reference's speed\n"));
    /* The full profile, as the terminal shows it. */
    assert_non_null(strstr(md, "### Profile\n\n```text\ntime          median 5.000 ms"));
    assert_non_null(strstr(md, "  compute_bound  above the ridge, 36% of peak\n"));
    /* The source holds ``` so its fence is longer. */
    assert_non_null(strstr(md, "### Source\n\n````c\n/* ```not a fence``` */\n"
                               "int emile_kernel(void);\n````\n"));
    /* Failures: error line, and the head of the compile log only. */
    assert_non_null(strstr(md, "### Iteration 2: compile_error (vectorized)\n"));
    assert_non_null(strstr(md, "```text\ncompile failed: 2 errors\n```"));
    assert_non_null(strstr(md, "k.c:12:5: error: 'x' undeclared\nL2\n"));
    assert_non_null(strstr(md, "L12\n...\n```"));
    assert_null(strstr(md, "L13"));
    assert_non_null(strstr(md, "### Iteration 4: invalid (bigger tiles)\n"));
    assert_non_null(strstr(md, "validation: max_err 3.1e-02 > tol 1e-04 at seq=509\n"
                               "second line\n"));
    assert_null(strstr(md, "### Iteration 5"));
    free(md);
}

static void test_markdown_edge_cases(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    /* No best_iter recorded: the fastest valid iteration is the best. */
    json_t *run = json_deep_copy(f->run);
    json_object_set_new(run, "best_iter", json_null());
    char *md = report_markdown(run, f->iters, err, sizeof err);
    assert_non_null(md);
    assert_non_null(strstr(md, "## Best kernel: iteration 3"));
    assert_non_null(strstr(md, "| **3** (best) |"));
    free(md);
    /* Nothing at all recorded yet. */
    md = report_markdown(run, NULL, err, sizeof err);
    assert_non_null(md);
    assert_non_null(strstr(md, "No iterations recorded."));
    assert_non_null(strstr(md, "No iteration was valid."));
    free(md);
    json_decref(run);
    /* A bare run object still gives a report. */
    json_t *bare = json_object();
    md = report_markdown(bare, NULL, err, sizeof err);
    assert_non_null(md);
    assert_non_null(strstr(md, "No device recorded."));
    free(md);
    json_decref(bare);
    /* Wrong shapes are errors with a message. */
    json_t *arr = json_array();
    assert_null(report_markdown(arr, NULL, err, sizeof err));
    assert_non_null(strstr(err, "not an object"));
    err[0] = '\0';
    assert_null(report_markdown(f->run, f->run, err, sizeof err));
    assert_non_null(strstr(err, "not an array"));
    json_decref(arr);
}

static void test_profile_table(void **state)
{
    fixture_t *f = *state;
    const json_t *r = json_object_get(json_array_get(f->iters, 3), "report");
    char *t = report_profile_table(r);
    assert_non_null(t);
    assert_non_null(strstr(t, "time          median 5.000 ms   min 4.900 ms   max 5.300 ms\n"));
    /* (5.3 - 4.9) / 5 = 8%; 0.1 / 5 = 2%. */
    assert_non_null(strstr(t, "spread 8.0% (max-min)/median, stdev 2.0%, "
                              "p10-p90 4.950 ms-5.200 ms, 20 reps after 3 warm-up\n"));
    assert_non_null(strstr(t, "throughput    53.69 GFLOP/s   0.5243 GB/s   "
                              "(268.4 MFLOP, 2.621 MB a call)\n"));
    assert_non_null(strstr(t, "intensity     102.4 FLOP/byte   ridge 8.208 FLOP/byte   "
                              "bound: compute\n"));
    assert_non_null(strstr(t, "ceilings      35.8% of peak 150.2 GFLOP/s   2.9% of "
                              "bandwidth 18.30 GB/s\n"));
    assert_non_null(strstr(t, "roofline      35.8% of the 150.2 GFLOP/s attainable"));
    assert_non_null(strstr(t, "parallelism   1.97"));
    assert_non_null(strstr(t, "max error     3.10e-07\n"));
    assert_non_null(strstr(t, "  attn_fwd  grid 64x8x1  block 128  registers 96  "
                              "occupancy 0.5000\n"));
    assert_non_null(strstr(t, "counters\n  dram_bytes  3000000\n  ipc         1.250\n"));
    assert_non_null(strstr(t, "diagnosis\n  compute_bound  above the ridge, 36% of peak\n"));
    free(t);

    /* A sparse report: no made-up lines, no "nan". */
    json_t *sparse = json_pack("{s:f}", "gflops", 2500.0);
    t = report_profile_table(sparse);
    assert_non_null(t);
    assert_non_null(strstr(t, "throughput    2.500 TFLOP/s   - GB/s\n"));
    assert_non_null(strstr(t, "diagnosis     -\n"));
    assert_null(strstr(t, "nan"));
    assert_null(strstr(t, "time"));
    free(t);
    json_decref(sparse);
    assert_null(report_profile_table(NULL));
}

/* ------------------------------------------------------ iteration line */

static void test_line_valid(void **state)
{
    fixture_t *f = *state;
    char buf[256];
    int n = iteration_line(buf, sizeof buf, json_array_get(f->iters, 3), 50.0);
    assert_int_equal(n, (int)strlen(buf));
    assert_string_equal(buf, "   3    5.000 ms  53.69 GFLOP/s     35.8%    10.00x  "
                             "compute_bound             omp 2 threads + simd");
    char head[256];
    iteration_line_header(head, sizeof head);
    assert_string_equal(head, "iter        time           perf  roofline   speedup  "
                              "diagnosis                 change");
    /* The columns line up with the header's. */
    assert_int_equal(strstr(buf, "omp 2") - buf, strstr(head, "change") - head);
    n = iteration_line(buf, sizeof buf, json_array_get(f->iters, 0), 50.0);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "   50.00 ms  5.369 GFLOP/s      3.6%     1.00x  "
                                "single_threaded,scalar_code  reference"));
}

static void test_line_units(void **state)
{
    (void)state;
    char buf[256];
    json_t *it = json_pack("{s:i,s:s,s:f,s:f,s:f,s:s}", "iter", 12, "status", "valid",
                           "time_ms", 0.5, "gflops", 2500.0, "roofline_pct", 91.25,
                           "label", "wgmma");
    iteration_line(buf, sizeof buf, it, 2.0);
    assert_non_null(strstr(buf, "  12    500.0 us  2.500 TFLOP/s     91.2%     4.00x"));
    json_object_set_new(it, "time_ms", json_real(1500.0));
    json_object_set_new(it, "gflops", json_real(999.4));
    iteration_line(buf, sizeof buf, it, 3000.0);
    assert_non_null(strstr(buf, "   1.500 s  999.4 GFLOP/s"));
    assert_non_null(strstr(buf, "2.00x"));
    /* Rounding never shows 1000 of a unit. */
    json_object_set_new(it, "gflops", json_real(999.97));
    iteration_line(buf, sizeof buf, it, 0);
    assert_non_null(strstr(buf, "1.000 TFLOP/s"));
    /* No reference time: the stored speedup. */
    json_object_set_new(it, "speedup", json_real(3.5));
    iteration_line(buf, sizeof buf, it, NAN);
    assert_non_null(strstr(buf, "3.50x"));
    json_decref(it);

    char num[32];
    rep_fmt_sig(num, sizeof num, 9.99996, 4);
    assert_string_equal(num, "10.00");
    rep_fmt_sig(num, sizeof num, 0.012345, 3);
    assert_string_equal(num, "0.0123");
    rep_fmt_sig(num, sizeof num, 123456.0, 4);
    assert_string_equal(num, "123456");
    rep_fmt_time(num, sizeof num, 0.000087);
    assert_string_equal(num, "87.00 ns");
}

static void test_line_invalid(void **state)
{
    fixture_t *f = *state;
    char buf[256], head[256];
    iteration_line_header(head, sizeof head);
    int n = iteration_line(buf, sizeof buf, json_array_get(f->iters, 4), 50.0);
    assert_true(n > 0);
    assert_true(strncmp(buf, "   4  invalid       validation: max_err 3.1e-02 > tol "
                             "1e-04 at seq=509", 70) == 0);
    assert_null(strstr(buf, "second line"));
    assert_null(strstr(buf, " ms"));
    assert_int_equal(strstr(buf, "bigger tiles") - buf, strstr(head, "change") - head);
    n = iteration_line(buf, sizeof buf, json_array_get(f->iters, 2), 50.0);
    assert_non_null(strstr(buf, "   2  compile_error compile failed: 2 errors"));

    /* A long error is cut with "..." and keeps the line bounded. */
    char longerr[400];
    memset(longerr, 'e', sizeof longerr - 1);
    longerr[sizeof longerr - 1] = '\0';
    json_t *it = json_pack("{s:i,s:s,s:s,s:s}", "iter", 9, "status", "crashed",
                           "error", longerr, "label", "\x1b[31mred\x1b[0m");
    n = iteration_line(buf, sizeof buf, it, 1.0);
    assert_true(n < 160);
    assert_non_null(strstr(buf, "eee..."));
    assert_non_null(strstr(buf, "   9  crashed"));
    /* No escape byte reaches the terminal. */
    assert_null(strchr(buf, '\x1b'));
    assert_non_null(strstr(buf, "?[31mred?[0m"));
    json_decref(it);
}

static void test_line_missing_fields(void **state)
{
    (void)state;
    char buf[256];
    json_t *empty = json_object();
    int n = iteration_line(buf, sizeof buf, empty, 1.0);
    assert_int_equal(n, (int)strlen(buf));
    assert_true(strncmp(buf, "   ?  unknown", 13) == 0);
    json_decref(empty);

    json_t *bare = json_pack("{s:i,s:s}", "iter", 7, "status", "valid");
    n = iteration_line(buf, sizeof buf, bare, 1.0);
    assert_string_equal(buf, "   7           -              -         -         -");
    json_decref(bare);

    /* Wrong types are treated as missing. */
    json_t *odd = json_pack("{s:s,s:s,s:s,s:i,s:s}", "iter", "x", "status", "valid",
                            "time_ms", "fast", "label", 5, "report", "none");
    n = iteration_line(buf, sizeof buf, odd, 1.0);
    assert_true(n > 0);
    assert_string_equal(buf, "   ?           -              -         -         -");
    json_decref(odd);

    assert_int_equal(iteration_line(NULL, 10, bare, 1.0), -1);
    assert_int_equal(iteration_line(buf, 0, bare, 1.0), -1);
    buf[0] = 'x';
    assert_int_equal(iteration_line(buf, sizeof buf, NULL, 1.0), -1);
    assert_string_equal(buf, "");
    /* A small buffer truncates, NUL-terminated. */
    json_t *it = json_pack("{s:i,s:s,s:f}", "iter", 1, "status", "valid", "time_ms", 2.0);
    n = iteration_line(buf, 12, it, 1.0);
    assert_int_equal(n, 11);
    assert_string_equal(buf, "   1    2.0");
    json_decref(it);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_textbuf),
        cmocka_unit_test(test_xml_check_rejects),
        cmocka_unit_test(test_svg_well_formed),
        cmocka_unit_test(test_svg_points_and_best),
        cmocka_unit_test(test_svg_escapes),
        cmocka_unit_test(test_svg_ceilings),
        cmocka_unit_test(test_svg_labels_do_not_collide),
        cmocka_unit_test(test_svg_log_scale),
        cmocka_unit_test(test_svg_fallbacks),
        cmocka_unit_test(test_markdown_table),
        cmocka_unit_test(test_markdown_best_and_failures),
        cmocka_unit_test(test_markdown_edge_cases),
        cmocka_unit_test(test_profile_table),
        cmocka_unit_test(test_line_valid),
        cmocka_unit_test(test_line_units),
        cmocka_unit_test(test_line_invalid),
        cmocka_unit_test(test_line_missing_fields),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
