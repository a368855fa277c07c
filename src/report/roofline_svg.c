/*
 * roofline_svg.c -- the roofline plot as a standalone SVG.
 *
 * Everything is drawn with presentation attributes (no <style>, no fonts
 * beyond the generic sans-serif) so the file renders the same in a browser,
 * in rsvg-convert and inline in the web UI; class names are hooks for the UI
 * and the tests.  Positions are computed here rather than clipped by the
 * renderer, so what is outside the plot is simply not drawn.
 */
#include "roofline_svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_util.h"
#include "textbuf.h"

/* Page and plot frame, in pixels. */
#define SVG_W 920.0
#define SVG_H 560.0
#define PLOT_L 90.0
#define PLOT_R 680.0
#define PLOT_T 70.0
#define PLOT_B 480.0
#define LEGEND_X 700.0

#define C_MEMORY "#2b6cb0"
#define C_COMPUTE "#c05621"
#define C_POINT "#4a5568"
#define C_BEST "#e53e3e"
#define C_PATH "#a0aec0"

typedef struct point {
    int iter;
    double x, y;          /* FLOP/byte, GFLOP/s */
    const json_t *it;
} point_t;

/* An axis-aligned box in page pixels: a label's ink, a point's disc. */
typedef struct box {
    double x0, y0, x1, y1;
} box_t;

/* The boxes already taken on the plot, that a point's label must not
 * cover: the roof labels, every point, the labels placed so far. */
typedef struct taken {
    box_t *b;
    size_t n, cap;
} taken_t;

/* Text metrics of the 12 px sans-serif labels, generous (DejaVu Sans,
 * the widest of the usual fallbacks: digits 0.64 em, bold 0.70 em), so
 * that boxes that do not meet here do not meet when rendered. */
#define LABEL_CHAR_W 7.7
#define LABEL_CHAR_W_BOLD 8.4
#define LABEL_ASCENT 9.5
#define LABEL_DESCENT 3.0

typedef struct ceilings {
    double peak;          /* GFLOP/s, 0 when unknown */
    double bw;            /* GB/s, 0 when unknown */
    double ridge;         /* FLOP/byte, 0 unless both are known */
    char peak_dtype[16];  /* which dtype the roof belongs to */
    char asked[16];       /* the dtype the caller asked for */
    int fell_back;        /* the asked dtype had no ceiling: f32's is shown */
    int measured;         /* 1 measured, 0 nominal, -1 not said */
} ceilings_t;

/* A log10 axis: value range [lo, hi] in decades, drawn from p0 to p1. */
typedef struct axis {
    double lo, hi;
    double p0, p1;
} axis_t;

static double axis_pos(const axis_t *a, double v)
{
    double t = (log10(v) - a->lo) / (a->hi - a->lo);
    if (t < 0)
        t = 0;
    if (t > 1)
        t = 1;
    return a->p0 + t * (a->p1 - a->p0);
}

static int positive(double v)
{
    return isfinite(v) && v > 0;
}

/* The valid iterations that can sit on a log-log plot, in iter order. */
static int collect_points(const json_t *iterations, point_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t total = json_array_size(iterations);
    if (total == 0)
        return 0;
    point_t *pts = calloc(total, sizeof *pts);
    if (!pts)
        return -1;
    size_t k = 0, i;
    const json_t *it;
    json_array_foreach(iterations, i, it) {
        if (!rep_iter_valid(it))
            continue;
        double x = rep_iter_intensity(it), y = rep_iter_gflops(it);
        if (!positive(x) || !positive(y))
            continue;
        pts[k].iter = rep_iter_num(it);
        pts[k].x = x;
        pts[k].y = y;
        pts[k].it = it;
        k++;
    }
    /* Insertion sort: stable, and the store already gives iter order. */
    for (size_t a = 1; a < k; a++) {
        point_t p = pts[a];
        size_t b = a;
        while (b > 0 && pts[b - 1].iter > p.iter) {
            pts[b] = pts[b - 1];
            b--;
        }
        pts[b] = p;
    }
    *out = pts;
    *n = k;
    return 0;
}

static void find_ceilings(const json_t *device, const char *dtype,
                          const point_t *pts, size_t n, ceilings_t *c)
{
    memset(c, 0, sizeof *c);
    c->measured = -1;
    snprintf(c->peak_dtype, sizeof c->peak_dtype, "%s", dtype);
    snprintf(c->asked, sizeof c->asked, "%s", dtype);
    const json_t *peaks = rep_get(device, "ceilings.peak_gflops");
    double v = rep_num(peaks, dtype);
    if (!positive(v) && strcmp(dtype, "f32") != 0) {
        v = rep_num(peaks, "f32");
        if (positive(v)) {
            c->fell_back = 1;
            snprintf(c->peak_dtype, sizeof c->peak_dtype, "f32");
        }
    }
    if (positive(v))
        c->peak = v;
    v = rep_num(device, "ceilings.bandwidth_gbs");
    if (positive(v))
        c->bw = v;
    const json_t *m = rep_get(device, "ceilings.measured");
    if (json_is_boolean(m))
        c->measured = json_is_true(m);
    /* Without a device object the reports still carry the ceilings they
     * were measured against (for the task's dtype). */
    for (size_t i = 0; i < n && (c->peak == 0 || c->bw == 0); i++) {
        const json_t *r = json_object_get(pts[i].it, "report");
        if (c->peak == 0 && positive(rep_num(r, "peak_gflops")))
            c->peak = rep_num(r, "peak_gflops");
        if (c->bw == 0 && positive(rep_num(r, "bandwidth_gbs")))
            c->bw = rep_num(r, "bandwidth_gbs");
    }
    if (c->peak > 0 && c->bw > 0)
        c->ridge = c->peak / c->bw;
}

/* Decade range [lo, hi] (on half decades) holding vmin..vmax, at least two
 * decades wide so there are always two labelled ticks, at most twelve so a
 * stray value cannot squash the plot. */
static void choose_range(double vmin, double vmax, double *lo, double *hi)
{
    double l = floor(2 * log10(vmin)) / 2, h = ceil(2 * log10(vmax)) / 2;
    if (h - l < 2) {
        double mid = (l + h) / 2;
        double nl = floor(2 * (mid - 1)) / 2;
        h = fmax(h, nl + 2);
        l = nl;
    }
    if (h - l > 12)
        l = h - 12;
    *lo = l;
    *hi = h;
}

/* A decade's tick label, in the axis unit: "0.01", "1", "1000", "1e+08". */
static void tick_label(char *buf, size_t n, int k)
{
    if (k >= 0 && k <= 6)
        snprintf(buf, n, "%.0f", pow(10, k));
    else if (k < 0 && k >= -4)
        snprintf(buf, n, "%.*f", -k, pow(10, k));
    else
        snprintf(buf, n, "1e%+d", k);
}

static void grid(textbuf_t *b, const axis_t *ax, const axis_t *ay)
{
    textbuf_puts(b, "<g class=\"grid\">\n");
    /* Minor ticks first so the decades draw over them. */
    for (int k = (int)floor(ax->lo); k <= (int)ceil(ax->hi); k++)
        for (int m = 2; m <= 9; m++) {
            double l = k + log10(m);
            if (l <= ax->lo || l >= ax->hi)
                continue;
            double x = axis_pos(ax, m * pow(10, k));
            textbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                           "stroke=\"#f0f0f0\"/>\n", x, PLOT_T, x, PLOT_B);
        }
    for (int k = (int)floor(ay->lo); k <= (int)ceil(ay->hi); k++)
        for (int m = 2; m <= 9; m++) {
            double l = k + log10(m);
            if (l <= ay->lo || l >= ay->hi)
                continue;
            double y = axis_pos(ay, m * pow(10, k));
            textbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                           "stroke=\"#f0f0f0\"/>\n", PLOT_L, y, PLOT_R, y);
        }
    for (int k = (int)ceil(ax->lo); k <= (int)floor(ax->hi); k++) {
        double x = axis_pos(ax, pow(10, k));
        char lab[32];
        tick_label(lab, sizeof lab, k);
        textbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"#d0d0d0\"/>\n", x, PLOT_T, x, PLOT_B + 5);
        textbuf_printf(b, "<text class=\"tick x\" x=\"%.1f\" y=\"%.1f\" "
                       "text-anchor=\"middle\">%s</text>\n", x, PLOT_B + 19, lab);
    }
    for (int k = (int)ceil(ay->lo); k <= (int)floor(ay->hi); k++) {
        double y = axis_pos(ay, pow(10, k));
        char lab[32];
        tick_label(lab, sizeof lab, k);
        textbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"#d0d0d0\"/>\n", PLOT_L - 5, y, PLOT_R, y);
        textbuf_printf(b, "<text class=\"tick y\" x=\"%.1f\" y=\"%.1f\" "
                       "text-anchor=\"end\">%s</text>\n", PLOT_L - 8, y + 4, lab);
    }
    textbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                   "fill=\"none\" stroke=\"#555\"/>\n",
                   PLOT_L, PLOT_T, PLOT_R - PLOT_L, PLOT_B - PLOT_T);
    textbuf_puts(b, "</g>\n");
}

static void axis_titles(textbuf_t *b, const char *yunit)
{
    textbuf_printf(b, "<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"middle\" font-size=\"13\">arithmetic intensity "
                   "(FLOP/byte)</text>\n", (PLOT_L + PLOT_R) / 2, PLOT_B + 42);
    textbuf_printf(b, "<text class=\"axis-title\" transform=\"translate(%.1f,%.1f) "
                   "rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">"
                   "performance (%s)</text>\n", PLOT_L - 58, (PLOT_T + PLOT_B) / 2,
                   yunit);
}

static int boxes_meet(const box_t *a, const box_t *b)
{
    return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

static void taken_add(taken_t *t, box_t b)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 32;
        box_t *nb = realloc(t->b, cap * sizeof *nb);
        if (!nb)
            return;            /* out of memory: labels may overlap, nothing worse */
        t->b = nb;
        t->cap = cap;
    }
    t->b[t->n++] = b;
}

/* The ink box of a text of n characters with its baseline at y, anchored
 * at x as text-anchor says ("start", "middle", "end"). */
static box_t text_box(double x, double y, size_t n, double char_w, const char *anchor)
{
    double w = (double)n * char_w;
    double x0 = strcmp(anchor, "end") == 0 ? x - w : strcmp(anchor, "middle") == 0 ? x - w / 2 : x;
    box_t b = {x0, y - LABEL_ASCENT, x0 + w, y + LABEL_DESCENT};
    return b;
}

/* The two ceilings, the ridge and their value labels.  scale converts
 * GFLOP/s into the y unit. */
static void roofs(textbuf_t *b, const ceilings_t *c, const axis_t *ax,
                  const axis_t *ay, double scale, const char *yunit, taken_t *taken)
{
    double xlo = pow(10, ax->lo), xhi = pow(10, ax->hi);
    double ylo = pow(10, ay->lo) * scale, yhi = pow(10, ay->hi) * scale;
    char num[48];
    if (c->bw > 0) {
        /* The slope y = bw * x, from where it enters the plot to the ridge
         * (or to where it leaves the plot when there is no compute roof). */
        double xs = fmax(xlo, ylo / c->bw);
        double xe = fmin(xhi, yhi / c->bw);
        if (c->ridge > 0)
            xe = fmin(xe, c->ridge);
        if (xs < xe) {
            double x0 = axis_pos(ax, xs), y0 = axis_pos(ay, c->bw * xs / scale);
            double x1 = axis_pos(ax, xe), y1 = axis_pos(ay, c->bw * xe / scale);
            textbuf_printf(b, "<line class=\"roof memory\" x1=\"%.1f\" y1=\"%.1f\" "
                           "x2=\"%.1f\" y2=\"%.1f\" stroke=\"" C_MEMORY "\" "
                           "stroke-width=\"2.5\"/>\n", x0, y0, x1, y1);
            /* Label along the slope, at its middle, turned to match it. */
            double angle = atan2(y1 - y0, x1 - x0) * 180 / M_PI;
            rep_fmt_sig(num, sizeof num, c->bw, 4);
            textbuf_printf(b, "<text class=\"roof-label memory\" transform=\""
                           "translate(%.1f,%.1f) rotate(%.1f)\" x=\"0\" y=\"-7\" "
                           "text-anchor=\"middle\" fill=\"" C_MEMORY "\">%s GB/s"
                           "</text>\n", (x0 + x1) / 2, (y0 + y1) / 2, angle, num);
        }
    }
    if (c->peak > 0 && c->peak >= ylo && c->peak <= yhi) {
        double xs = c->ridge > 0 ? fmax(xlo, c->ridge) : xlo;
        if (xs < xhi) {
            double y = axis_pos(ay, c->peak / scale);
            textbuf_printf(b, "<line class=\"roof compute\" x1=\"%.1f\" y1=\"%.1f\" "
                           "x2=\"%.1f\" y2=\"%.1f\" stroke=\"" C_COMPUTE "\" "
                           "stroke-width=\"2.5\"/>\n", axis_pos(ax, xs), y, PLOT_R, y);
            rep_fmt_sig(num, sizeof num, c->peak / scale, 4);
            /* Above the line unless that would leave the plot. */
            double ty = y - PLOT_T > 18 ? y - 7 : y + 16;
            taken_add(taken, text_box(PLOT_R - 6, ty, strlen(num) + strlen(yunit) +
                                      strlen(c->peak_dtype) + 9, LABEL_CHAR_W, "end"));
            textbuf_printf(b, "<text class=\"roof-label compute\" x=\"%.1f\" "
                           "y=\"%.1f\" text-anchor=\"end\" fill=\"" C_COMPUTE "\">"
                           "%s %s peak (", PLOT_R - 6, ty, num, yunit);
            textbuf_xml(b, c->peak_dtype);
            textbuf_puts(b, ")</text>\n");
        }
    }
    if (c->ridge > 0 && c->ridge >= xlo && c->ridge <= xhi &&
        c->peak >= ylo && c->peak <= yhi) {
        double x = axis_pos(ax, c->ridge), y = axis_pos(ay, c->peak / scale);
        textbuf_printf(b, "<line class=\"ridge\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                       "y2=\"%.1f\" stroke=\"#718096\" stroke-dasharray=\"5 4\"/>\n",
                       x, y, x, PLOT_B);
        textbuf_printf(b, "<path class=\"ridge-marker\" d=\"M%.1f %.1fl6 6l-6 6l-6 -6z\" "
                       "fill=\"#718096\"/>\n", x, y - 6);
        rep_fmt_sig(num, sizeof num, c->ridge, 4);
        taken_add(taken, text_box(x + 5, PLOT_B - 7, strlen(num) + 16, LABEL_CHAR_W, "start"));
        textbuf_printf(b, "<text class=\"ridge-label\" x=\"%.1f\" y=\"%.1f\" "
                       "fill=\"#4a5568\">ridge %s FLOP/byte</text>\n",
                       x + 5, PLOT_B - 7, num);
    }
}

/* The tooltip line of one point. */
static void point_title(textbuf_t *b, const point_t *p)
{
    char perf[48], x[48], pct[48];
    rep_fmt_flops(perf, sizeof perf, p->y);
    rep_fmt_sig(x, sizeof x, p->x, 4);
    rep_fmt_sig(pct, sizeof pct, rep_iter_roofline_pct(p->it), 3);
    textbuf_printf(b, "<title>iter %d", p->iter);
    const char *label = rep_str(p->it, "label");
    if (label && *label) {
        textbuf_puts(b, ": ");
        textbuf_xml(b, label);
    }
    textbuf_printf(b, " - %s at %s FLOP/byte, %s%% of roofline</title>", perf, x, pct);
}

/* The label of point p (radius r, at page x, y) in the first free spot
 * around it: the eight directions just off its disc, then farther out
 * (with a leader line back to it).  A free spot is inside the plot and
 * meets nothing taken.  must: when no spot is free, the one that covers
 * least (the best point is always labelled); otherwise no label (its
 * tooltip still names it).  The label's box is then taken. */
static void point_label(textbuf_t *b, const point_t *p, double x, double y, double r,
                        int best, taken_t *taken)
{
    static const struct { int dx, dy; const char *anchor; } dirs[] = {
        {1, -1, "start"}, {1, 1, "start"}, {-1, -1, "end"}, {-1, 1, "end"},
        {1, 0, "start"}, {-1, 0, "end"}, {0, -1, "middle"}, {0, 1, "middle"},
    };
    static const double gaps[] = {2, 10, 20, 32};
    char text[16];
    snprintf(text, sizeof text, "%d", p->iter);
    double cw = best ? LABEL_CHAR_W_BOLD : LABEL_CHAR_W;
    box_t plot = {PLOT_L + 2, PLOT_T + 2, PLOT_R - 2, PLOT_B - 2};
    double best_cover = INFINITY, tx = 0, ty = 0;
    const char *anchor = NULL;
    double gap = 0;
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0] && best_cover > 0; g++)
        for (size_t d = 0; d < sizeof dirs / sizeof dirs[0] && best_cover > 0; d++) {
            double off = r + gaps[g];
            double lx = x + dirs[d].dx * off;
            /* above: the box's bottom off the disc; below: its top; level:
             * centred on the point */
            double ly = dirs[d].dy < 0 ? y - off - LABEL_DESCENT
                      : dirs[d].dy > 0 ? y + off + LABEL_ASCENT
                      : y + (LABEL_ASCENT - LABEL_DESCENT) / 2;
            box_t lb = text_box(lx, ly, strlen(text), cw, dirs[d].anchor);
            if (lb.x0 < plot.x0 || lb.x1 > plot.x1 || lb.y0 < plot.y0 || lb.y1 > plot.y1)
                continue;
            double cover = 0;
            for (size_t k = 0; k < taken->n; k++)
                if (boxes_meet(&lb, &taken->b[k]))
                    cover += (fmin(lb.x1, taken->b[k].x1) - fmax(lb.x0, taken->b[k].x0)) *
                             (fmin(lb.y1, taken->b[k].y1) - fmax(lb.y0, taken->b[k].y0));
            if (cover < best_cover) {
                best_cover = cover;
                tx = lx;
                ty = ly;
                anchor = dirs[d].anchor;
                gap = gaps[g];
            }
        }
    if (!anchor || (best_cover > 0 && !best))
        return;
    box_t lb = text_box(tx, ty, strlen(text), cw, anchor);
    taken_add(taken, lb);
    if (gap > gaps[0]) {
        /* from the disc's edge to the nearest point of the label's box */
        double nx = fmin(fmax(x, lb.x0), lb.x1), ny = fmin(fmax(y, lb.y0), lb.y1);
        double len = hypot(nx - x, ny - y);
        if (len > r)
            textbuf_printf(b, "<line class=\"leader\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                           "y2=\"%.1f\" stroke=\"" C_PATH "\" stroke-width=\"1\"/>\n",
                           x + (nx - x) * r / len, y + (ny - y) * r / len, nx, ny);
    }
    textbuf_printf(b, "<text class=\"point-label%s\" x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"%s\"%s>%s</text>\n", best ? " best" : "", tx, ty, anchor,
                   best ? " font-weight=\"bold\" fill=\"" C_BEST "\"" : "", text);
}

static void points(textbuf_t *b, const point_t *pts, size_t n, int best_iter,
                   const axis_t *ax, const axis_t *ay, double scale, taken_t *taken)
{
    if (n > 1) {
        textbuf_puts(b, "<polyline class=\"path\" fill=\"none\" stroke=\"" C_PATH "\" "
                        "stroke-width=\"1.5\" stroke-dasharray=\"4 3\" points=\"");
        for (size_t i = 0; i < n; i++)
            textbuf_printf(b, "%s%.1f,%.1f", i ? " " : "", axis_pos(ax, pts[i].x),
                           axis_pos(ay, pts[i].y / scale));
        textbuf_puts(b, "\"/>\n");
    }
    /* The best last, so nothing covers it; every disc is taken before any
     * label is placed, so no label hides a point. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            int best = pts[i].iter == best_iter;
            if (best != pass)
                continue;
            double x = axis_pos(ax, pts[i].x), y = axis_pos(ay, pts[i].y / scale);
            double r = best ? 7 : 4.5;
            textbuf_printf(b, "<circle class=\"%s\" data-iter=\"%d\" cx=\"%.1f\" "
                           "cy=\"%.1f\" r=\"%s\" fill=\"%s\" stroke=\"%s\" "
                           "stroke-width=\"1.5\">", best ? "point best" : "point",
                           pts[i].iter, x, y, best ? "7" : "4.5",
                           best ? C_BEST : C_POINT, best ? "#742a2a" : "#fff");
            point_title(b, &pts[i]);
            textbuf_puts(b, "</circle>\n");
            box_t disc = {x - r - 1, y - r - 1, x + r + 1, y + r + 1};
            taken_add(taken, disc);
        }
    /* Labels: the best's first, then the others in iteration order. */
    for (int pass = 1; pass >= 0; pass--)
        for (size_t i = 0; i < n; i++) {
            int best = pts[i].iter == best_iter;
            if (best != pass)
                continue;
            point_label(b, &pts[i], axis_pos(ax, pts[i].x), axis_pos(ay, pts[i].y / scale),
                        best ? 7 : 4.5, best, taken);
        }
}

static void title(textbuf_t *b, const json_t *device, const char *dtype,
                  const point_t *pts, size_t n, size_t total, int best_iter)
{
    const char *name = rep_str(device, "name");
    textbuf_printf(b, "<text class=\"title\" x=\"%.1f\" y=\"30\" font-size=\"17\" "
                   "font-weight=\"bold\">Roofline: ", PLOT_L);
    textbuf_xml(b, name && *name ? name : "unknown device");
    textbuf_puts(b, ", ");
    textbuf_xml(b, dtype);
    textbuf_puts(b, "</text>\n");
    textbuf_printf(b, "<text class=\"subtitle\" x=\"%.1f\" y=\"52\" fill=\"#4a5568\">",
                   PLOT_L);
    textbuf_printf(b, "%zu valid of %zu iteration%s plotted", n, total,
                   total == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++)
        if (pts[i].iter == best_iter) {
            char perf[48], pct[48];
            rep_fmt_flops(perf, sizeof perf, pts[i].y);
            rep_fmt_sig(pct, sizeof pct, rep_iter_roofline_pct(pts[i].it), 3);
            textbuf_printf(b, "; best: iter %d at %s, %s%% of roofline",
                           pts[i].iter, perf, pct);
        }
    textbuf_puts(b, "</text>\n");
}

/* The legend box, right of the plot: one row per thing drawn (a sample,
 * then its words), then notes on where the ceilings come from. */
static void legend(textbuf_t *b, const ceilings_t *c, int have_best, int best_iter,
                   const char *yunit, double scale)
{
    double x = LEGEND_X, y = PLOT_T + 10;
    char num[48];
    textbuf_puts(b, "<g class=\"legend\">\n");
    /* Size the box to the rows that follow. */
    int rows = 2 + (c->bw > 0) + (c->peak > 0) + (c->ridge > 0) + have_best;
    int notes = (c->measured >= 0) + c->fell_back;
    textbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                   "fill=\"#fafafa\" stroke=\"#ccc\"/>\n", x - 8, PLOT_T - 8,
                   SVG_W - x, rows * 24.0 + notes * 16.0 + 6);
    if (c->bw > 0) {
        rep_fmt_sig(num, sizeof num, c->bw, 4);
        textbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"" C_MEMORY "\" stroke-width=\"2.5\"/>\n",
                       x, y, x + 22, y - 8);
        textbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">memory %s GB/s</text>\n",
                       x + 30, y, num);
        y += 24;
    }
    if (c->peak > 0) {
        rep_fmt_sig(num, sizeof num, c->peak / scale, 4);
        textbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"" C_COMPUTE "\" stroke-width=\"2.5\"/>\n",
                       x, y - 4, x + 22, y - 4);
        textbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">compute %s %s (", x + 30, y,
                       num, yunit);
        textbuf_xml(b, c->peak_dtype);
        textbuf_puts(b, ")</text>\n");
        y += 24;
    }
    if (c->ridge > 0) {
        rep_fmt_sig(num, sizeof num, c->ridge, 4);
        textbuf_printf(b, "<path d=\"M%.1f %.1fl6 6l-6 6l-6 -6z\" fill=\"#718096\"/>\n",
                       x + 11, y - 10);
        textbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">ridge %s FLOP/byte</text>\n",
                       x + 30, y, num);
        y += 24;
    }
    /* Rounded squares, not circles: a <circle> is an iteration. */
    textbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" rx=\"4.5\" "
                   "fill=\"" C_POINT "\"/>\n", x + 6.5, y - 8.5);
    textbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">valid iteration (number)</text>\n",
                   x + 30, y);
    y += 24;
    if (have_best) {
        textbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\" "
                       "rx=\"7\" fill=\"" C_BEST "\" stroke=\"#742a2a\"/>\n",
                       x + 4, y - 11);
        textbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">best: iter %d</text>\n",
                       x + 30, y, best_iter);
        y += 24;
    }
    textbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                   "stroke=\"" C_PATH "\" stroke-width=\"1.5\" "
                   "stroke-dasharray=\"4 3\"/>\n", x, y - 4, x + 22, y - 4);
    textbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">path in iteration order</text>\n",
                   x + 30, y);
    y += 24;
    if (c->measured >= 0) {
        textbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" "
                       "fill=\"#4a5568\">%s</text>\n", x, y - 4,
                       c->measured ? "ceilings measured on this device"
                                   : "ceilings nominal (not measured)");
        y += 16;
    }
    if (c->fell_back) {
        textbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" "
                       "fill=\"#4a5568\">no ", x, y - 4);
        textbuf_xml(b, c->asked);
        textbuf_puts(b, " ceiling: the f32 roof is shown</text>\n");
    }
    textbuf_puts(b, "</g>\n");
}

char *roofline_svg(const json_t *device, const json_t *iterations, int best_iter,
                   const char *dtype, char *err, size_t errlen)
{
    if (iterations && !json_is_array(iterations)) {
        snprintf(err, errlen, "iterations is not an array");
        return NULL;
    }
    if (!dtype || !*dtype)
        dtype = "f32";
    point_t *pts;
    size_t n;
    if (collect_points(iterations, &pts, &n) != 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ceilings_t c;
    find_ceilings(device, dtype, pts, n, &c);

    /* Unit: TFLOP/s once the roof (or the best point) reaches 1000 GFLOP/s. */
    double ref = c.peak;
    for (size_t i = 0; i < n; i++)
        ref = fmax(ref, pts[i].y);
    double scale = ref >= 1000 ? 1000 : 1;
    const char *yunit = scale > 1 ? "TFLOP/s" : "GFLOP/s";

    /* Ranges: the points with a factor of 2 around them, the ridge with
     * about a decade either side, the roof with room above it and two
     * decades of slope below it. */
    double xmin = INFINITY, xmax = 0, ymin = INFINITY, ymax = 0;
    for (size_t i = 0; i < n; i++) {
        xmin = fmin(xmin, pts[i].x / 2);
        xmax = fmax(xmax, pts[i].x * 2);
        ymin = fmin(ymin, pts[i].y / scale / 2);
        ymax = fmax(ymax, pts[i].y / scale * 1.6);
    }
    if (c.ridge > 0) {
        xmin = fmin(xmin, c.ridge / 8);
        xmax = fmax(xmax, c.ridge * 8);
    }
    if (c.peak > 0) {
        ymin = fmin(ymin, c.peak / scale / 100);
        ymax = fmax(ymax, c.peak / scale * 1.6);
    }
    if (!(xmax > 0)) {
        xmin = 0.1;
        xmax = 1000;
    }
    if (!(ymax > 0)) {
        ymin = 0.1;
        ymax = 1000;
    }
    axis_t ax = {0, 0, PLOT_L, PLOT_R}, ay = {0, 0, PLOT_B, PLOT_T};
    choose_range(xmin, xmax, &ax.lo, &ax.hi);
    choose_range(ymin, ymax, &ay.lo, &ay.hi);

    int have_best = 0;
    for (size_t i = 0; i < n; i++)
        have_best |= pts[i].iter == best_iter && best_iter >= 0;

    textbuf_t b;
    textbuf_init(&b);
    textbuf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                   "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" "
                   "font-size=\"12\" fill=\"#1a202c\">\n", SVG_W, SVG_H, SVG_W, SVG_H);
    textbuf_puts(&b, "<title>Roofline: ");
    textbuf_xml(&b, rep_str(device, "name") ? rep_str(device, "name") : "unknown device");
    textbuf_puts(&b, ", ");
    textbuf_xml(&b, dtype);
    textbuf_puts(&b, "</title>\n");
    textbuf_printf(&b, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n",
                   SVG_W, SVG_H);
    grid(&b, &ax, &ay);
    axis_titles(&b, yunit);
    textbuf_puts(&b, "<g class=\"roofline\">\n");
    taken_t taken = {NULL, 0, 0};
    roofs(&b, &c, &ax, &ay, scale, yunit, &taken);
    textbuf_puts(&b, "</g>\n<g class=\"points\">\n");
    points(&b, pts, n, best_iter, &ax, &ay, scale, &taken);
    free(taken.b);
    textbuf_puts(&b, "</g>\n");
    title(&b, device, dtype, pts, n, json_array_size(iterations), best_iter);
    legend(&b, &c, have_best, best_iter, yunit, scale);
    textbuf_puts(&b, "</svg>\n");
    free(pts);

    char *out = textbuf_finish(&b);
    if (!out)
        snprintf(err, errlen, "out of memory");
    return out;
}
