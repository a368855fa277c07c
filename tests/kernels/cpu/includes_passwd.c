/*
 * includes_passwd.c -- HARM (class: the compile log quotes files).  Includes
 * /etc/passwd: the compiler's diagnostics quote the offending lines, and
 * the compile log goes into the reply, the store and an LLM agent's
 * context.  Any file the compiler's user can read would do (~/.netrc, a
 * key in $HOME).
 *
 * Must be caught by: the compile sandbox's view of the file system
 * (Landlock: only the system and toolchain trees and the kernel's own
 * directory are readable): the include fails with the compiler's own
 * error, and no line of the file appears in the log.
 * Expected verdict: compile_error, the log free of "root:".
 */
#include "emile.h"
#include "/etc/passwd"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *args)
{
    (void)args;
    return 0;
}
