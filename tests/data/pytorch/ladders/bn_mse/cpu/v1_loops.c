/* bn_mse.py's op: mean over (b, f) of (bn(x)[b, f] - target[b, f])^2 with
 * the BatchNorm in eval mode (running statistics), in double; the loss is
 * the one element of "out". */
#include <math.h>
#include <stdint.h>
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    const emile_tensor_t *x = emile_tensor(args, "x"), *t = emile_tensor(args, "target"),
                         *g = emile_tensor(args, "bn_weight"), *b = emile_tensor(args, "bn_bias"),
                         *m = emile_tensor(args, "bn_running_mean"), *v = emile_tensor(args, "bn_running_var"),
                         *n = emile_tensor(args, "bn_num_batches_tracked"), *o = emile_tensor(args, "out");
    if (!x || !t || !g || !b || !m || !v || !n || !o || x->dtype != EMILE_DTYPE_F32 || x->ndim != 2 ||
        o->ndim != 1 || o->shape[0] != 1 || n->ndim != 1 || n->shape[0] != 1)
        return EMILE_ERR_ARGS;
    const int64_t rows = x->shape[0], cols = x->shape[1];
    const double eps = emile_param(args, "eps", 1e-5);
    const float *xs = x->data, *ts = t->data, *gs = g->data, *bs = b->data, *ms = m->data, *vs = v->data;
    double sum = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double y = (xs[r * cols + c] - ms[c]) / sqrt(vs[c] + eps) * gs[c] + bs[c];
            double d = y - ts[r * cols + c];
            sum += d * d;
        }
    *(float *)o->data = (float)(sum / (double)(rows * cols));
    return 0;
}
