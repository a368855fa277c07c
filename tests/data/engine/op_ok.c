/* An op kernel that does nothing and succeeds: for counting what an engine
 * (the fake GPU library of test_taste_cuda.c) was asked to call. */
#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    (void)a;
    return 0;
}
