/*
 * test_oracle_python.c -- the worker's client of the PyTorch oracle
 * (src/worker/oracle_python.c) against the real python/emile/oracle.py: a
 * problem's inputs land at the layout's offsets and its expected outputs are
 * the model's, computed here again from those inputs; the same seed draws the
 * same set and another seed another; a shape the task does not have, a
 * problem that prints on stdout, one that hangs and a missing interpreter
 * each end as they must.  Needs Python with torch (build/venv): skipped,
 * saying so, where there is none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "emile_test.h"
#include "task/op.h"
#include "util/clock.h"
#include "util/python.h"
#include "worker/layout.h"
#include "worker/oracle_python.h"

/* out = x + y * w, w a parameter the constructor fills with 0.5, 1.5, ...
 * (not one value, so the oracle keeps it as drawn). */
static const char PROBLEM[] =
    "import torch\n"
    "import torch.nn as nn\n"
    "print('a problem that talks on stdout')\n"
    "class Model(nn.Module):\n"
    "    def __init__(self, n):\n"
    "        super().__init__()\n"
    "        self.w = nn.Parameter(torch.arange(n, dtype=torch.float32) + 0.5)\n"
    "    def forward(self, x, y):\n"
    "        print('forward talks too')\n"
    "        return x + y * self.w\n"
    "rows = 5\n"
    "n = 7\n"
    "def get_inputs():\n"
    "    return [torch.randn(rows, n), torch.randn(rows, n)]\n"
    "def get_init_inputs():\n"
    "    return [n]\n";

static const char OP_JSON[] =
    "{\"name\":\"fma\",\"params\":{\"rows\":5,\"n\":7},\"flops\":\"2*rows*n\","
    "\"tensors\":[{\"name\":\"x\",\"shape\":[\"rows\",\"n\"]},{\"name\":\"y\",\"shape\":[\"rows\",\"n\"]},"
    "{\"name\":\"w\",\"shape\":[\"n\"]},{\"name\":\"out\",\"shape\":[\"rows\",\"n\"],\"output\":true}]}";

static int have_torch(void)
{
    char py[1024], cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", emile_python(py, sizeof py));
    return system(cmd) == 0;
}

static void make_layout(arena_layout_t *a, op_t *op, double rows)
{
    char err[256];
    json_t *j = json_loads(OP_JSON, 0, NULL);
    assert_int_equal(op_from_json(j, op, err, sizeof err), 0);
    json_decref(j);
    op_params_t p = op->defaults;
    op_param_set(&p, "rows", rows);
    memset(a, 0, sizeof *a);
    assert_int_equal(layout_add_slot(a, "task", op, &p, EMILE_DTYPE_F32, err, sizeof err), 0);
}

static int start(oracle_python_t *o, const char *src, char *err, size_t n)
{
    return oracle_python_start(o, src, "fma.py", "cpu", NULL, NULL, 1024, 120, err, n);
}

static void fill_lands_at_offsets(void **state)
{
    (void)state;
    if (!have_torch())
        skip();
    oracle_python_t o;
    char err[2048];
    assert_int_equal(start(&o, PROBLEM, err, sizeof err), ORACLE_PY_OK);
    arena_layout_t a;
    op_t op;
    make_layout(&a, &op, 5);
    const slot_layout_t *sl = &a.slots[0];
    uint8_t *arena = malloc(a.total), *again = malloc(a.total);
    memset(arena, 0xAB, a.total);
    void *expected[OP_MAX_TENSORS] = {0}, *expected2[OP_MAX_TENSORS] = {0};
    assert_int_equal(oracle_python_fill(&o, sl, 12345, arena, 0, expected, 60, err, sizeof err), ORACLE_PY_OK);
    const float *x = (const float *)(arena + sl->off[0]), *y = (const float *)(arena + sl->off[1]);
    const float *w = (const float *)(arena + sl->off[2]), *out = expected[3];
    for (int c = 0; c < 7; c++)
        assert_true(w[c] == (float)c + 0.5f);
    double sx = 0;
    for (int i = 0; i < 35; i++) {
        assert_true(out[i] == x[i] + y[i] * w[i % 7]);
        sx += x[i] * x[i];
    }
    assert_true(sx > 5 && sx < 200);                       /* randn, not zeros */
    /* The guards and the output's own region are untouched. */
    for (size_t b = sl->off[0] - LAYOUT_GUARD; b < sl->off[0]; b++)
        assert_int_equal(arena[b], 0xAB);
    assert_int_equal(arena[sl->off[3]], 0xAB);
    /* The same seed draws the same set, another seed another. */
    memset(again, 0xAB, a.total);
    assert_int_equal(oracle_python_fill(&o, sl, 12345, again, 0, expected2, 60, err, sizeof err), ORACLE_PY_OK);
    assert_memory_equal(arena + sl->off[0], again + sl->off[0], sl->bytes[0]);
    assert_memory_equal(expected[3], expected2[3], sl->bytes[3]);
    assert_int_equal(oracle_python_fill(&o, sl, 777, again, 0, expected2, 60, err, sizeof err), ORACLE_PY_OK);
    assert_memory_not_equal(arena + sl->off[0], again + sl->off[0], sl->bytes[0]);
    for (int k = 0; k < OP_MAX_TENSORS; k++) {
        free(expected[k]);
        free(expected2[k]);
    }
    free(arena);
    free(again);
    op_free(&op);
    oracle_python_stop(&o);
    assert_int_equal(o.pid, 0);
}

static void shape_the_task_lacks(void **state)
{
    (void)state;
    if (!have_torch())
        skip();
    oracle_python_t o;
    char err[2048];
    assert_int_equal(start(&o, PROBLEM, err, sizeof err), ORACLE_PY_OK);
    arena_layout_t a;
    op_t op;
    make_layout(&a, &op, 9);        /* the problem has no varied constant: rows stays 5 */
    uint8_t *arena = calloc(1, a.total);
    void *expected[OP_MAX_TENSORS] = {0};
    assert_int_equal(oracle_python_fill(&o, &a.slots[0], 1, arena, 0, expected, 60, err, sizeof err),
                     ORACLE_PY_PROBLEM);
    assert_contains(err, "fma.py: input x has shape [5, 7] in this set");
    assert_contains(err, "where the task needs [9, 7]");
    for (int k = 0; k < OP_MAX_TENSORS; k++)
        free(expected[k]);
    free(arena);
    op_free(&op);
    oracle_python_stop(&o);
}

static void hang_is_cut_off(void **state)
{
    (void)state;
    if (!have_torch())
        skip();
    /* get_inputs() sleeps for ten minutes first. */
    const char *ret = strstr(PROBLEM, "    return [torch.randn(rows, n)");
    char src[2048];
    snprintf(src, sizeof src, "%.*s    import time; time.sleep(600)\n%s", (int)(ret - PROBLEM), PROBLEM, ret);
    oracle_python_t o;
    char err[2048];
    assert_int_equal(start(&o, src, err, sizeof err), ORACLE_PY_OK);
    arena_layout_t a;
    op_t op;
    make_layout(&a, &op, 5);
    uint8_t *arena = calloc(1, a.total);
    void *expected[OP_MAX_TENSORS] = {0};
    double t0 = clock_mono_s();
    assert_int_equal(oracle_python_fill(&o, &a.slots[0], 1, arena, 0, expected, 2, err, sizeof err),
                     ORACLE_PY_FAILED);
    assert_true(clock_mono_s() - t0 < 10);
    assert_contains(err, "gave no answer within 2 s");
    pid_t pid = o.pid;
    /* Killed, and once all its threads are gone its stdin has no reader
     * (the pipe's write end polls POLLERR).  Stopping it then, a polite
     * quit written first, must not raise SIGPIPE at this process (it once
     * did, when CI was slow enough for the kill to finish first). */
    struct pollfd pf = {o.to_fd, POLLOUT, 0};
    for (int i = 0; i < 500 && !(pf.revents & POLLERR); i++) {
        usleep(10000);
        assert_int_equal(poll(&pf, 1, 0), 1);
    }
    assert_true(pf.revents & POLLERR);
    oracle_python_stop(&o);
    assert_int_equal(kill(pid, 0), -1);                  /* gone, reaped */
    free(arena);
    op_free(&op);
}

static void missing_interpreter(void **state)
{
    (void)state;
    char *old = getenv("EMILE_PYTHON") ? strdup(getenv("EMILE_PYTHON")) : NULL;
    setenv("EMILE_PYTHON", "/nonexistent/python3", 1);
    oracle_python_t o;
    char err[2048];
    assert_int_equal(start(&o, PROBLEM, err, sizeof err), ORACLE_PY_MISSING);
    assert_contains(err, "'/nonexistent/python3' cannot be run");
    if (old)
        setenv("EMILE_PYTHON", old, 1);
    else
        unsetenv("EMILE_PYTHON");
    free(old);
}

static void problem_error_at_load(void **state)
{
    (void)state;
    if (!have_torch())
        skip();
    oracle_python_t o;
    char err[2048];
    assert_int_equal(start(&o, "import torch\nx = 1 / 0\n", err, sizeof err), ORACLE_PY_PROBLEM);
    assert_contains(err, "fma.py:2: the file raised ZeroDivisionError");
    assert_int_equal(o.pid, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fill_lands_at_offsets),
        cmocka_unit_test(shape_the_task_lacks),
        cmocka_unit_test(hang_is_cut_off),
        cmocka_unit_test(missing_interpreter),
        cmocka_unit_test(problem_error_at_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
