"""triton_launch.py -- launch a Triton candidate from Python, as its
generated emile_kernel would: for Triton's interpreter (TRITON_INTERPRET=1,
CPU tensors: the CI checks of the ladder's numerics) and for JIT runs on a
GPU (a cross-check of the AOT build).  Never on the harness's timed path.

    from triton_launch import load, launch, render
    mod, L = load("kernels/attention/triton/t2_causal.py", {"BLOCK_M": 32})
    launch(mod, L, {"q": q, "k": k, "v": v, "o": o}, {"seq": 67, ...})

render() applies parameters as the builtin agent does (lang_render_python,
src/backend/lang.c): each `NAME = value` line at module level is rewritten.
"""
import os
import re
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import triton_decl as D  # noqa: E402


def render(text, params):
    for k, v in params.items():
        lit = repr(v) if not isinstance(v, str) else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        pat = re.compile(rf"^{re.escape(k)}[ \t]*(:[^=\n]*)?=(?!=).*$", re.M)
        if not pat.search(text):
            raise ValueError(f"the template assigns no module-level {k}")
        text = pat.sub(lambda _m: f"{k} = {lit}", text, count=1)
    return text


def load(path, params=None):
    """Check, render and import a candidate; returns (module, Launch)."""
    with open(path) as f:
        text = f.read()
    if params:
        text = render(text, params)
    name = os.path.basename(path)
    tree, checker = D.check_source(text, name)
    # A file of its own: Triton reads the kernel's source back by line.
    fd, tmp = tempfile.mkstemp(suffix="_" + name)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    mod = types.ModuleType("emile_candidate_" + re.sub(r"\W", "_", name))
    mod.__file__ = tmp
    exec(compile(tree, tmp, "exec"), mod.__dict__)
    D.check_reachable(checker, mod)
    return mod, D.read_launch(getattr(mod, D.DECL_NAME), None)


class _Dims:
    """shape/stride() of a tensor for eval_expr."""

    def __init__(self, t):
        self.shape = tuple(t.shape)
        self._strides = tuple(t.stride())

    def stride(self, i):
        return self._strides[i]


TORCH_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "fp64": "float64",
               "i32": "int32", "i64": "int64"}


def _interpreter_numpy_fix():
    """Triton 3.6's interpreter turns a scalar into an int with
    int(array_of_shape_1), which numpy >= 2.4 refuses ("only 0-dimensional
    arrays can be converted"): a `range(0, seq, BLOCK)` loop in a kernel
    fails under TRITON_INTERPRET=1.  Convert with .item() instead."""
    import triton.runtime.interpreter as I
    if getattr(I, "_emile_numpy_fix", False):
        return
    orig = I._patch_lang_tensor

    def patched(tensor, scope):
        orig(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))
    I._patch_lang_tensor = patched
    I._emile_numpy_fix = True


def launch(mod, L, tensors, params, check_types=True):
    """Evaluate the declaration on these torch tensors and parameters and
    launch the kernel (the current stream).  Raises ValueError where the
    generated entry point would return an error."""
    import torch
    import triton
    dims = {n: _Dims(t) for n, t in tensors.items()}
    consts = {k: v for k, v in L.constexprs.items() if not isinstance(v, str)}
    for e in L.assume:
        if D.eval_expr(e, params, dims, consts) == 0:
            raise ValueError(f"the kernel assumes {e.src}")
    args = []
    for a in L.args:
        if a.is_ptr:
            t = tensors[a.expr]
            if check_types and str(t.dtype) != "torch." + TORCH_DTYPE[a.pointee]:
                raise ValueError(f"tensor {a.expr} is {t.dtype}; the kernel was compiled for {a.pointee}")
            args.append(t)
        else:
            v = D.eval_expr(a.expr, params, dims, consts)
            if a.ty in ("fp32", "fp64"):
                args.append(float(v))
            else:
                if v != int(v):
                    raise ValueError(f"{a.name} = {a.expr.src} = {v} is not an integer")
                args.append(int(v))
    grid = tuple(int(D.eval_expr(g, params, dims, consts)) for g in L.grid)
    fn = getattr(mod, L.kernel)
    cx = {}
    for k, v in L.constexprs.items():
        import triton.language as tl
        cx[k] = getattr(tl, v) if isinstance(v, str) else v
    if any(g == 0 for g in grid):
        return
    if os.environ.get("TRITON_INTERPRET") == "1":
        _interpreter_numpy_fix()
        # Device-side tensor descriptors need an allocator for their scratch.
        triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8))
    else:
        triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    fn[grid](*args, **cx, num_warps=L.num_warps, num_stages=L.num_stages)
