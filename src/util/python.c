/* python.c -- see python.h. */
#include "util/python.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/paths.h"

const char *emile_python(char *buf, size_t n)
{
    const char *env = getenv("EMILE_PYTHON");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return buf;
    }
    emile_root_file("build/venv/bin/python3", buf, n);
    if (access(buf, X_OK) == 0)
        return buf;
    snprintf(buf, n, "python3");
    return buf;
}

const char *emile_python_path(char *buf, size_t n)
{
    const char *old = getenv("PYTHONPATH");
    char pkg[2048];
    emile_root_file("python", pkg, sizeof pkg);
    if (old && *old)
        snprintf(buf, n, "%s:%s", pkg, old);
    else
        snprintf(buf, n, "%s", pkg);
    return buf;
}
