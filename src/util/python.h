/* python.h -- the Python interpreter Emile's thin PyTorch layer (python/emile)
 * runs in: $EMILE_PYTHON, else build/venv/bin/python3 under the emile root
 * when it is there (scripts/setup.sh makes it), else python3 on PATH.  The
 * package needs no installation: its children get PYTHONPATH=<root>/python. */
#ifndef EMILE_PYTHON_H
#define EMILE_PYTHON_H

#include <stddef.h>

/* The interpreter to exec (a path, or "python3" for a PATH search). */
const char *emile_python(char *buf, size_t n);
/* "<root>/python" followed by ":" and the old $PYTHONPATH when set, for
 * setenv("PYTHONPATH", ...) in a child before exec. */
const char *emile_python_path(char *buf, size_t n);

#endif
