/* An attention kernel that reports failure: the engine must pass it on. */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    (void)a;
    return 7;
}
