/* A kernel that forges the tasting's report: on its first call it writes a
 * made-up result (a 10 s time to first token for itself, three tokens)
 * to every descriptor that is a pipe and leaves.  The parent must not
 * believe it: the times do not fit the child's life, the counts not the
 * tasting. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emile.h"

EMILE_KERNEL_EXPORT int emile_kernel(const emile_args_t *a)
{
    (void)a;
    static const char fake[] =
        "{\"device_name\":\"cpu\",\"decode_path\":\"cpu\",\"ttft_s\":10.0,\"decode_s\":0.0,"
        "\"decode_tok_s\":99999.0,\"n_new\":3,\"n_prompt\":32,\"tokens\":[1,2,3]}\n";
    for (int fd = 0; fd < 64; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
            ssize_t w = write(fd, fake, sizeof fake - 1);
            (void)w;
        }
    }
    _exit(0);
}
