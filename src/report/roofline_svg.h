/*
 * roofline_svg.h -- the roofline plot of a run as a standalone SVG document
 * (no external fonts, stylesheets or scripts), for the report directory and
 * the web UI.
 */
#ifndef EMILE_REPORT_ROOFLINE_SVG_H
#define EMILE_REPORT_ROOFLINE_SVG_H

#include <jansson.h>
#include <stddef.h>

/* Draw the roofline of a run.
 *
 * device:     the device object of PROTOCOL.md (may be NULL): its
 *             ceilings.bandwidth_gbs and ceilings.peak_gflops[dtype],
 *             falling back to "f32", then to the first valid iteration's
 *             report (peak_gflops, bandwidth_gbs).
 * iterations: array of store.h iteration objects, in any order; NULL draws
 *             the ceilings alone.  Each valid iteration with a positive
 *             intensity and GFLOP/s becomes one <circle class="point"> at
 *             (intensity, gflops) labelled with its iter number (class
 *             "point best" for best_iter), joined in iter order by a path;
 *             other iterations are left out.  Each number is placed in the
 *             first spot around its point where it covers no point, no
 *             other number and no roof label, farther out with a leader
 *             line when the points crowd (the best's first, always shown;
 *             another with no free spot is left to its point's tooltip).
 * best_iter:  the iteration to highlight; negative for none.
 * dtype:      "f32", "bf16", ...; NULL means "f32".
 *
 * Log-log axes with decade ticks, ranges chosen from the points and the
 * ridge with padding, y in GFLOP/s or TFLOP/s (from a 1000 GFLOP/s roof
 * on).  The same input gives the same bytes.  Every text from the input is
 * XML-escaped.  Returns a malloc'd NUL-terminated document, or NULL with a
 * message in err when iterations is not an array or memory runs out. */
char *roofline_svg(const json_t *device, const json_t *iterations, int best_iter,
                   const char *dtype, char *err, size_t errlen);

#endif
