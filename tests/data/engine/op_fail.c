/* An op kernel that reports failure: the engine must pass it on, naming
 * the op and the layer. */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    (void)a;
    return 9;
}
