/* paths.c -- see paths.h. */
#include "paths.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

const char *emile_self_path(void)
{
    static char self[PATH_MAX];
    if (!self[0]) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0)
            n = 0;
        self[n] = 0;
    }
    return self;
}

const char *emile_root(void)
{
    static char root[PATH_MAX];
    if (root[0])
        return root;
    const char *env = getenv("EMILE_ROOT");
    if (env && *env) {
        snprintf(root, sizeof root, "%s", env);
        return root;
    }
    char tmp[PATH_MAX], probe[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s", emile_self_path());
    char *dir = dirname(tmp);              /* .../build */
    char up[PATH_MAX];
    snprintf(up, sizeof up, "%s", dir);
    for (int depth = 0; depth < 3; depth++) {
        snprintf(probe, sizeof probe, "%s/include/emile.h", up);
        if (fs_exists(probe)) {
            snprintf(root, sizeof root, "%s", up);
            return root;
        }
        char *d = dirname(up);
        memmove(up, d, strlen(d) + 1);
    }
    if (!getcwd(root, sizeof root))
        snprintf(root, sizeof root, ".");
    return root;
}

const char *emile_runner_path(void)
{
    static char runner[PATH_MAX];
    if (runner[0])
        return runner;
    const char *env = getenv("EMILE_RUNNER");
    if (env && *env) {
        snprintf(runner, sizeof runner, "%s", env);
        return runner;
    }
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", emile_self_path());
    snprintf(runner, sizeof runner, "%s/emile-runner", dirname(tmp));
    return runner;
}

const char *emile_cache_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0])
        return dir;
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && *x)
        snprintf(dir, sizeof dir, "%s/emile", x);
    else
        snprintf(dir, sizeof dir, "%s/.cache/emile", home && *home ? home : "/tmp");
    fs_mkdir_p(dir, 0755);
    return dir;
}

const char *emile_root_file(const char *rel, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", emile_root(), rel);
    return buf;
}
