"""An Emile kernel as a PyTorch operator: torch.ops.emile.<name>.

`emile export RUN DIR` copies this file, unchanged, as DIR/emile_<name>/
__init__.py beside op.json (the op's tensors, shapes and parameters) and
kernel.so (the best kernel, built for the run's backend).  Importing the
package loads the kernel and registers it with torch.library.custom_op, with
a fake implementation so torch.compile traces through it:

    import emile_softmax                    # registers torch.ops.emile.softmax
    y = torch.ops.emile.softmax(x)          # cpu tensors, or cuda ones

Each call checks the tensors' dtypes, devices and shapes (the op's shape
expressions, with the parameters that a dimension names alone read from the
inputs), allocates the outputs, passes dense descriptors to the kernel's
emile_kernel entry point (include/emile.h), on cuda the current stream, and
raises on a non-zero return.  The checks and the descriptors are worked out
once per signature (the inputs' shapes, strides, dtypes and devices) and
kept: a call seen before costs a dictionary lookup, the outputs' allocation
and the data pointers (on an H100 the first version's ~0.13 ms of Python a
call made an 81 us attention kernel slower than the torch SDPA it
replaced).  `call` runs the kernel without torch's dispatcher (the
exported ModelNew uses it outside torch.compile where `direct` allows).  Only torch and ctypes are
needed: the package works without Emile installed.

emile.taste_hf loads kernels through the same KernelOp class.
"""
import ast
import ctypes
import functools
import json
import operator
import os

import torch

__all__ = ["KernelOp", "load", "op", "call", "direct"]

DTYPE_CODES = {"f32": 0, "f16": 1, "bf16": 2, "f64": 3, "i32": 4, "i64": 5}
TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
                "f64": torch.float64, "i32": torch.int32, "i64": torch.int64}
ABI_VERSION = 1
MAX_DIMS = 8


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("name", ctypes.c_char_p), ("dtype", ctypes.c_int32),
                ("ndim", ctypes.c_int32), ("shape", ctypes.c_int64 * MAX_DIMS),
                ("strides", ctypes.c_int64 * MAX_DIMS)]


class _Param(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_double)]


class _Args(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_int32), ("n_tensors", ctypes.c_int32),
                ("tensors", ctypes.POINTER(_Tensor)), ("n_params", ctypes.c_int32),
                ("params", ctypes.POINTER(_Param)), ("stream", ctypes.c_void_p)]


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Mod: operator.mod, ast.Pow: operator.pow,
           ast.BitXor: operator.pow}      # '^' is power in Emile's expressions


@functools.lru_cache(maxsize=512)
def _parse(expr):
    return ast.parse(str(expr), mode="eval")


def _eval(expr, params):
    """An op shape expression (src/task/expr.h; the subset shapes use)."""
    if isinstance(expr, (int, float)):
        return expr

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return n.value
        if isinstance(n, ast.Name):
            return params[n.id]
        if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS:
            return _BINOPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("min", "max"):
            return {"min": min, "max": max}[n.func.id](*(ev(a) for a in n.args))
        raise ValueError(f"unsupported shape expression {expr!r}")
    return ev(_parse(expr))


class KernelOp:
    """A kernel .so and its op description (op.json's dict)."""

    def __init__(self, spec, so_path):
        self.spec = spec
        self.name = spec["name"]
        self.lib = ctypes.CDLL(os.path.abspath(so_path))
        self.fn = self.lib.emile_kernel
        self.fn.argtypes = [ctypes.POINTER(_Args)]
        self.fn.restype = ctypes.c_int
        self.inputs = [t for t in spec["tensors"] if not t.get("output")]
        self.scalar_inputs = any(t.get("scalar") for t in self.inputs)
        self.outputs = [t for t in spec["tensors"] if t.get("output")]
        self._names = {t["name"]: t["name"].encode() for t in spec["tensors"]}
        self._pnames = {k: k.encode() for k in spec["params"]}
        self._plans = {}
        self._launch_plans = {}

    def params_for(self, inputs):
        """The task's parameters, those a dimension names alone read from the inputs."""
        p = dict(self.spec["params"])
        for t, x in zip(self.inputs, inputs):
            for e, n in zip(t["shape"], x.shape):
                if isinstance(e, str) and e.isidentifier() and e in p:
                    p[e] = n
        return p

    def output_shapes(self, params):
        return [[int(_eval(e, params)) for e in t["shape"]] for t in self.outputs]

    def check(self, inputs):
        if len(inputs) != len(self.inputs):
            raise TypeError(f"emile.{self.name} takes {len(self.inputs)} tensors "
                            f"({', '.join(t['name'] for t in self.inputs)}), got {len(inputs)}")
        params = self.params_for(inputs)
        device = inputs[0].device
        for t, x in zip(self.inputs, inputs):
            want = TORCH_DTYPES[t["dtype"]]
            if x.dtype != want:
                raise TypeError(f"emile.{self.name}: {t['name']} is {x.dtype}; the kernel was built for {want}")
            if x.device != device:
                raise ValueError(f"emile.{self.name}: {t['name']} is on {x.device}, {self.inputs[0]['name']} "
                                 f"on {device}")
            shape = [int(_eval(e, params)) for e in t["shape"]]
            if list(x.shape) != shape:
                raise ValueError(f"emile.{self.name}: {t['name']} has shape {list(x.shape)}, the op wants "
                                 f"{shape} ({', '.join(f'{k}={v:g}' for k, v in params.items())})")
        if device.type != ("cuda" if self.spec["backend"] == "cuda" else "cpu"):
            raise ValueError(f"emile.{self.name}: the kernel was built for {self.spec['backend']}, the "
                             f"tensors are on {device}")
        return params

    def tensors(self, inputs):
        """The inputs with a number where a "scalar" input is (get_inputs'
        `s = 3.14`) made a 0-d tensor of its dtype, on the device of the
        first tensor: the registered op's schema takes tensors."""
        if not self.scalar_inputs:
            return inputs
        dev = next((x.device for x in inputs if isinstance(x, torch.Tensor)), torch.device("cpu"))
        return [torch.tensor(x, dtype=TORCH_DTYPES[t["dtype"]], device=dev)
                if t.get("scalar") and isinstance(x, (int, float)) else x
                for t, x in zip(self.inputs, inputs)] + list(inputs[len(self.inputs):])

    def empty_outputs(self, inputs, params, for_kernel=False):
        """The outputs as the caller gets them (a "scalar" one 0-d), or
        as the kernel writes them (shape [1])."""
        dev = inputs[0].device
        return [torch.empty([] if t.get("scalar") and not for_kernel else s, dtype=TORCH_DTYPES[t["dtype"]],
                            device=dev)
                for t, s in zip(self.outputs, self.output_shapes(params))]

    def __call__(self, *inputs):
        # A "scalar" tensor is 0-d in PyTorch (a loss, a BatchNorm's
        # num_batches_tracked) and shape [1] to the kernel.
        if self.scalar_inputs:
            inputs = [x.reshape(1) if t.get("scalar") and isinstance(x, torch.Tensor) and x.dim() == 0 else x
                      for t, x in zip(self.inputs, self.tensors(inputs))] + list(inputs[len(self.inputs):])
        # The signature: everything the checks and the descriptors depend
        # on (the strides: a non-contiguous input is copied, and its copy's
        # strides are the plan's).
        key = tuple((x.shape, x.stride(), x.dtype, x.device) if isinstance(x, torch.Tensor) else None
                    for x in inputs)
        plan = self._plans.get(key)
        if plan is None:
            params = self.check(inputs)      # raises, naming the problem
            plan = _Plan(self, [x.contiguous() for x in inputs], params)
            if len(self._plans) < 256:       # a bound for callers of ever new shapes
                self._plans[key] = plan
        outs = plan.run(self, inputs)
        if any(t.get("scalar") for t in self.outputs):
            outs = [o.reshape(()) if t.get("scalar") else o for t, o in zip(self.outputs, outs)]
        return outs

    def launch(self, xs, outs, params):
        """The kernel on dense tensors the caller checked and allocated."""
        key = (tuple((x.shape, x.stride(), x.dtype, x.device) for x in list(xs) + list(outs)),
               tuple(params.items()))
        plan = self._launch_plans.get(key)
        if plan is None:
            plan = _Plan(self, xs, params, outs)
            if len(self._launch_plans) < 256:
                self._launch_plans[key] = plan
        plan.launch(self, list(xs), list(outs))


class _Plan:
    """One signature's descriptors, parameters and output shapes, filled
    once; a call copies the template and sets the data pointers (a copy, so
    that calls from several threads never share one)."""

    def __init__(self, op, xs, params, outs=None):
        if outs is None:
            outs = op.empty_outputs(xs, params, for_kernel=True)
        self.device = xs[0].device
        self.cuda = xs[0].is_cuda
        self.out_shapes = [(list(o.shape), o.dtype) for o in outs]
        n = len(xs) + len(outs)
        self.Tensors = _Tensor * n
        self.tensors = self.Tensors()
        for i, (t, x) in enumerate(zip(op.inputs + op.outputs, list(xs) + list(outs))):
            d = self.tensors[i]
            d.name = op._names[t["name"]]
            d.dtype = DTYPE_CODES[t["dtype"]]
            d.ndim = x.dim()
            for k in range(x.dim()):
                d.shape[k] = x.shape[k]
                d.strides[k] = x.stride(k)
        self.ps = (_Param * len(params))()
        for i, (k, v) in enumerate(params.items()):
            self.ps[i].name = op._pnames.get(k) or k.encode()
            self.ps[i].value = float(v)
        self.n_params = len(params)

    def run(self, op, inputs):
        xs = [x.contiguous() for x in inputs]
        outs = [torch.empty(s, dtype=dt, device=self.device) for s, dt in self.out_shapes]
        self.launch(op, xs, outs)
        return outs

    def launch(self, op, xs, outs):
        tensors = self.Tensors()
        ctypes.memmove(tensors, self.tensors, ctypes.sizeof(tensors))
        for d, x in zip(tensors, xs + outs):
            d.data = x.data_ptr()
        if self.cuda:
            dev = self.device.index if self.device.index is not None else torch.cuda.current_device()
            stream = torch.cuda.current_stream(dev).cuda_stream
            args = _Args(ABI_VERSION, len(tensors), tensors, self.n_params, self.ps, stream)
            if torch.cuda.current_device() == dev:
                rc = op.fn(ctypes.byref(args))
            else:
                with torch.cuda.device(dev):
                    rc = op.fn(ctypes.byref(args))
        else:
            args = _Args(ABI_VERSION, len(tensors), tensors, self.n_params, self.ps, None)
            rc = op.fn(ctypes.byref(args))
        if rc != 0:
            raise RuntimeError(f"emile.{op.name}: the kernel returned {rc} (it does not support this "
                               "call: a dtype, a size or a limit; see its source)")


def direct(tensors):
    """Whether `call` may stand in for the registered op on these tensors:
    not while torch.jit traces (it would record only the outputs'
    allocation), not for tensor subclasses or the meta device (fake and
    meta tensors have no data: the registered op's fake answers them), not
    when autograd would want a graph (the op has no derivative either, but
    the dispatcher says so).  torch.compile is the caller's test: dynamo
    folds torch.compiler.is_compiling(), not this."""
    if torch.jit.is_tracing():
        return False
    grad = torch.is_grad_enabled()
    for t in tensors:
        if type(t) not in (torch.Tensor, torch.nn.Parameter) or t.device.type == "meta" \
                or (grad and t.requires_grad):
            return False
    return True


def _schema(spec):
    ins = ", ".join(f"Tensor {t['name']}" for t in spec["tensors"] if not t.get("output"))
    n_out = sum(1 for t in spec["tensors"] if t.get("output"))
    outs = "Tensor" if n_out == 1 else "(" + ", ".join(["Tensor"] * n_out) + ")"
    return f"({ins}) -> {outs}"


def load(folder):
    """Load folder/op.json and folder/kernel.so and register torch.ops.emile.<name>."""
    with open(os.path.join(folder, "op.json")) as f:
        spec = json.load(f)
    kernel = KernelOp(spec, os.path.join(folder, spec.get("kernel", "kernel.so")))
    single = len(kernel.outputs) == 1

    def impl(*inputs):
        outs = kernel(*inputs)
        return outs[0] if single else tuple(outs)

    def fake(*inputs):
        outs = kernel.empty_outputs(inputs, kernel.params_for(inputs))
        return outs[0] if single else tuple(outs)

    registered = torch.library.custom_op(f"emile::{spec['name']}", impl, mutates_args=(),
                                         schema=_schema(spec))
    registered.register_fake(fake)
    return kernel, registered, impl


if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "op.json")):
    # call: the op without torch's dispatcher (eager code; torch.compile
    # needs op, whose fake implementation it traces)
    kernel, op, call = load(os.path.dirname(os.path.abspath(__file__)))
