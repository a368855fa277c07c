"""A KernelBench-style problem file, loaded and named in the kernel ABI's order.

A problem file defines `class Model(nn.Module)` (its forward is the op),
`get_inputs()` (the forward's input tensors) and, optionally,
`get_init_inputs()` (the constructor's arguments), with the sizes as
module-level constants that get_inputs() reads when it is called.  Emile
adds a few optional module-level names of its own:

  emile_vary   = ["seq_len", "batch_size"]  constants validation may change: the
                 first is made ragged (x -> x - x//8 - 3) and small (<= 97), the
                 others are set to 1 or 2 in the small set (batch-like)
  emile_op     = "attention"   the builtin op this problem computes (its tensors
                 in the ABI's order, its parameters solved from the shapes), so
                 the builtin agent's ladder for that op applies
  emile_params = {"causal": 1}  the builtin op's parameters that no shape gives
  emile_flops  = "4*batch_size*dim"  FLOPs of one call (a number, or an expression
                 of the constants); default: counted with torch.utils.flop_counter
  emile_bytes  = "..."          bytes of one call; default: every tensor once

The kernel ABI's tensors are the forward's inputs (named after the forward's
parameters), then the model's parameters and buffers in state_dict order
(dots become underscores), then the outputs ("out", or "out0", "out1", ...).
"""
import inspect
import keyword
import math
import os
import random
import re
import sys
import traceback
import types

import torch

DTYPE_NAMES = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16",
    torch.float64: "f64", torch.int32: "i32", torch.int64: "i64",
}
DTYPES = {v: k for k, v in DTYPE_NAMES.items()}
ABI_MAX_TENSORS = 16    # OP_MAX_TENSORS in src/task/op.h
ABI_MAX_DIMS = 8        # EMILE_MAX_DIMS in include/emile.h
ABI_MAX_PARAMS = 32     # OP_MAX_PARAMS
NAME_MAX = 31           # op_tensor_t.name[32]


class ProblemError(Exception):
    """The problem file cannot be an oracle; the message names the file and,
    where Python gives one, the line."""


def _line_in(exc, filename):
    """The last line of `filename` in exc's traceback, or None."""
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        line = exc.lineno
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def _is_oom(exc):
    text = str(exc)
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or \
        "out of memory" in text.lower() or "CUDA out of memory" in text


def raised(exc, filename, what, memory_note=""):
    """A ProblemError for exception exc raised by `what` in the problem."""
    line = _line_in(exc, filename)
    loc = f"{filename}:{line}" if line else filename
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if _is_oom(exc):
        return ProblemError(f"{loc}: {what} ran out of memory ({type(exc).__name__}: {msg[:300]}){memory_note}")
    return ProblemError(f"{loc}: {what} raised {type(exc).__name__}: {msg[:500]}")


def _ident(name, taken):
    """A C identifier of at most NAME_MAX characters, unique among taken."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name) or "t"
    if s[0].isdigit():
        s = "t_" + s
    s = s[:NAME_MAX]
    base, k = s, 2
    while s in taken:
        suffix = f"_{k}"
        s = base[:NAME_MAX - len(suffix)] + suffix
        k += 1
    taken.add(s)
    return s


def dtype_name(t):
    return DTYPE_NAMES.get(t.dtype)


class Problem:
    """One loaded problem file, on one device, cast to one floating dtype."""

    def __init__(self, source, filename, device="cpu", dtype=None):
        self.filename = filename
        self.redraw_note = ""
        self.py_scalars = {}          # input position -> int or float (draw_inputs)
        self.device = torch.device(device)
        self.module = types.ModuleType("emile_problem")
        self.module.__file__ = filename
        folder = os.path.dirname(os.path.abspath(filename))
        if os.path.isdir(folder) and folder not in sys.path:
            sys.path.append(folder)      # the problem's own helper modules
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as e:
            raise ProblemError(f"{filename}:{e.lineno}: syntax error: {e.msg}") from None
        try:
            exec(code, self.module.__dict__)
        except BaseException as e:       # SystemExit too: a file must not end us
            raise raised(e, filename, "the file") from None
        ns = self.module.__dict__
        model = ns.get("Model")
        if not (isinstance(model, type) and issubclass(model, torch.nn.Module)):
            what = "no class Model" if model is None else "Model is not a torch.nn.Module subclass"
            raise ProblemError(f"{filename}: {what} (KernelBench's convention: class Model(nn.Module) "
                               "whose forward is the op, get_inputs() and get_init_inputs())")
        if not callable(ns.get("get_inputs")):
            raise ProblemError(f"{filename}: no function get_inputs() (it returns the forward's input "
                               "tensors, drawn at the sizes of the module's constants)")
        if "get_init_inputs" in ns and not callable(ns["get_init_inputs"]):
            raise ProblemError(f"{filename}: get_init_inputs is not a function")
        self.Model = model
        self.constants = {k: v for k, v in ns.items() if self._is_constant(k, v)}
        self.vary = self._string_list("emile_vary")
        for v in self.vary:
            if v not in self.constants:
                raise ProblemError(f"{filename}: emile_vary names '{v}', which is not a module-level "
                                   f"integer constant (constants: {', '.join(sorted(self.constants)) or 'none'})")
            if not isinstance(self.constants[v], int):
                raise ProblemError(f"{filename}: emile_vary names '{v}', which is not an integer")
        self.op = ns.get("emile_op")
        if self.op is not None and not isinstance(self.op, str):
            raise ProblemError(f"{filename}: emile_op must be the name of a builtin op (e.g. \"attention\")")
        self.op_params = ns.get("emile_params") or {}
        if not isinstance(self.op_params, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) for k, v in self.op_params.items()):
            raise ProblemError(f"{filename}: emile_params must map parameter names to numbers")
        self.flops_expr = self._expr("emile_flops")
        self.bytes_expr = self._expr("emile_bytes")
        self.dtype = DTYPES[dtype] if dtype else None
        self.base = dict(self.constants)

    # ---- the module's names ---------------------------------------------------

    @staticmethod
    def _is_constant(k, v):
        return (not k.startswith("_") and not k.startswith("emile_") and k.isidentifier() and
                not keyword.iskeyword(k) and len(k) <= NAME_MAX and
                type(v) in (int, float, bool) and math.isfinite(float(v)))

    def _string_list(self, name):
        v = self.module.__dict__.get(name)
        if v is None:
            return []
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise ProblemError(f"{self.filename}: {name} must be a list of constant names")
        return list(v)

    def _expr(self, name):
        v = self.module.__dict__.get(name)
        if v is None:
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return repr(v)
        if isinstance(v, str) and v.strip():
            return v.strip()
        raise ProblemError(f"{self.filename}: {name} must be a number or an expression of the constants")

    def set_constants(self, values):
        """Set module-level constants (get_inputs reads them when called)."""
        for k, v in values.items():
            if k not in self.base:
                raise ProblemError(f"{self.filename}: no module-level constant '{k}' to set")
            self.module.__dict__[k] = type(self.base[k])(v)

    # ---- drawing a set ------------------------------------------------------------

    def init_inputs(self):
        f = self.module.__dict__.get("get_init_inputs")
        if f is None:
            return []
        try:
            r = f()
        except BaseException as e:
            raise raised(e, self.filename, "get_init_inputs()") from None
        if not isinstance(r, (list, tuple)):
            raise ProblemError(f"{self.filename}: get_init_inputs() returned a {type(r).__name__}, "
                               "not a list of the constructor's arguments")
        return list(r)

    def init_arg_names(self, args):
        """The constructor's parameter names for args (positional)."""
        try:
            params = [p for p in inspect.signature(self.Model.__init__).parameters.values()][1:]
        except (TypeError, ValueError):
            params = []
        names = []
        for i, _ in enumerate(args):
            if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY, params[i].POSITIONAL_OR_KEYWORD):
                names.append(params[i].name)
            else:
                names.append(f"init{i}")
        return names

    def seed(self, seed):
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            import numpy
            numpy.random.seed(seed % (2 ** 32))
        except ImportError:
            pass

    def build_model(self, seed, memory_note=""):
        """Model(*get_init_inputs()) under seed, on the device, floating
        parameters in the task's dtype.  A floating parameter its constructor
        left at one value (a norm's ones, a zero bias) is redrawn around that
        value, so that a kernel that ignores it cannot pass: zero plus
        N(0, 0.5^2); any other value c times U(0.75, 1.25), which keeps its
        sign (a forward may take the square root of a scale its constructor
        set to ones)."""
        self.seed(seed)
        args = self.init_inputs()
        try:
            model = self.Model(*args)
        except BaseException as e:
            raise raised(e, self.filename, "Model(*get_init_inputs())", memory_note) from None
        try:
            model = model.to(self.device)
            if self.dtype is not None:
                model = model.to(self.dtype)
        except BaseException as e:
            raise raised(e, self.filename, f"moving the model to {self.device}", memory_note) from None
        gen = torch.Generator(device="cpu").manual_seed(seed ^ 0x5EED)
        redrawn = []
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.is_floating_point() and p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                    c = float(p.flatten()[0])
                    if c == 0:
                        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * 0.5
                        p.add_(noise.to(p.device, p.dtype))
                    else:
                        u = torch.rand(p.shape, generator=gen, dtype=torch.float32) * 0.5 + 0.75
                        p.mul_(u.to(p.device, p.dtype))
                    redrawn.append(f"{name} (all {c:g})")
        self.redraw_note = (f" (Emile redrew the parameters its constructor left at one value, so that a kernel "
                            f"that ignores them cannot pass: {', '.join(redrawn[:4])}, each 0 + N(0, 0.25) or "
                            "c * U(0.75, 1.25); is the forward defined for those?)") if redrawn else ""
        return model, args

    def draw_inputs(self, seed, memory_note=""):
        """get_inputs() under seed, checked, on the device, floating tensors
        in the task's dtype."""
        self.seed(seed)
        try:
            r = self.module.__dict__["get_inputs"]()
        except BaseException as e:
            raise raised(e, self.filename, "get_inputs()", memory_note) from None
        if not isinstance(r, (list, tuple)):
            raise ProblemError(f"{self.filename}: get_inputs() returned a {type(r).__name__}, not a list "
                               "of tensors")
        out = []
        self.py_scalars = {}
        for i, x in enumerate(r):
            if type(x) in (int, float):
                # A number (KernelBench's `s = 3.14`): a 0-d tensor to the
                # kernel (f32 or i64, shape [1] in the ABI), the number
                # itself to the forward (call_args).  A float is redrawn
                # around its value for every set, as a constant parameter
                # is (build_model), so that a kernel cannot hard-code it; an
                # int may be a size or a dim, and stays.
                if type(x) is float:
                    g = torch.Generator(device="cpu").manual_seed((seed ^ 0x5CA1) + i)
                    u = float(torch.rand((), generator=g))
                    x = x * (0.75 + 0.5 * u) if x != 0 else u - 0.5
                self.py_scalars[i] = type(x)
                x = torch.tensor(x, dtype=torch.float32 if type(x) is float else torch.int64)
                out.append(x.to(self.device))
                continue
            if not isinstance(x, torch.Tensor):
                raise ProblemError(f"{self.filename}: get_inputs() returned a {type(x).__name__} at position "
                                   f"{i}: every input must be a torch.Tensor or a number (the kernel ABI passes "
                                   "tensors; the constructor's arguments go in get_init_inputs())")
            if x.dtype not in DTYPE_NAMES:
                raise ProblemError(f"{self.filename}: input {i} of get_inputs() is {x.dtype}, which the kernel "
                                   "ABI cannot carry (f32, f16, bf16, f64, i32, i64)")
            if x.dim() > ABI_MAX_DIMS:
                raise ProblemError(f"{self.filename}: input {i} of get_inputs() has {x.dim()} dimensions "
                                   f"(the kernel ABI carries at most {ABI_MAX_DIMS})")
            try:
                x = x.to(self.device)
                if self.dtype is not None and x.is_floating_point():
                    x = x.to(self.dtype)
            except BaseException as e:
                raise raised(e, self.filename, f"moving input {i} to {self.device}", memory_note) from None
            out.append(x.contiguous())
        if not out:
            raise ProblemError(f"{self.filename}: get_inputs() returned no tensors")
        return out

    def call_args(self, inputs):
        """The forward's arguments for drawn inputs: the numbers get_inputs()
        gave back as numbers (of the value the kernel sees)."""
        return [self.py_scalars[i](x.item()) if i in self.py_scalars else x for i, x in enumerate(inputs)]

    def forward(self, model, inputs, memory_note=""):
        """model(*inputs) without autograd; the outputs as a list of dense tensors."""
        try:
            with torch.no_grad():
                r = model(*self.call_args([x.clone() for x in inputs]))     # the inputs stay as drawn
        except BaseException as e:
            raise raised(e, self.filename, "Model.forward", memory_note) from None
        self.last_structure = self.structure(r)
        return self.outputs_of(r)

    def outputs_of(self, r):
        if isinstance(r, torch.Tensor):
            outs = [r]
        elif isinstance(r, (list, tuple)) and r and all(isinstance(x, torch.Tensor) for x in r):
            outs = list(r)
        elif isinstance(r, (list, tuple)) and r:
            i, x = next((i, x) for i, x in enumerate(r) if not isinstance(x, torch.Tensor))
            raise ProblemError(f"{self.filename}: Model.forward returned a {type(r).__name__} whose element {i} "
                               f"is a {type(x).__name__}: the kernel ABI's outputs are tensors (return "
                               f"torch.tensor(...) for a number, or leave it out)")
        else:
            raise ProblemError(f"{self.filename}: Model.forward returned a {type(r).__name__}: the kernel "
                               "ABI's outputs are tensors (return a tensor or a tuple of tensors)")
        for i, x in enumerate(outs):
            if x.dtype not in DTYPE_NAMES:
                raise ProblemError(f"{self.filename}: output {i} of Model.forward is {x.dtype}, which the "
                                   "kernel ABI cannot carry")
        return [x.detach().contiguous() for x in outs]

    @staticmethod
    def structure(r):
        return "tensor" if isinstance(r, torch.Tensor) else type(r).__name__

    def state_tensors(self, model):
        """(key, tensor) of the state_dict, in its order, then the buffers
        it leaves out (registered with persistent=False: a mask, a table
        the forward reads all the same)."""
        sd = model.state_dict(keep_vars=True)
        return ([(k, v) for k, v in sd.items() if isinstance(v, torch.Tensor)] +
                [(k, v) for k, v in model.named_buffers() if k not in sd])

    def input_names(self, n):
        try:
            params = list(inspect.signature(self.Model.forward).parameters.values())[1:]
        except (TypeError, ValueError):
            params = []
        names = []
        for i in range(n):
            p = params[i] if i < len(params) else None
            if p is not None and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            else:
                names.append(f"in{i}")
        return names
