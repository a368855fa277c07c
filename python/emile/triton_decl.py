"""triton_decl.py -- read a Triton candidate without running its Python.

A Triton candidate is one .py file: its @triton.jit kernel(s), constants, and
`emile_launch`, a dict literal that says how the harness's emile_kernel entry
point launches the kernel (docs/TRITON.md):

    emile_launch = {
        "kernel": "attn_fwd",                  # the @triton.jit function launched
        "args": [                              # its parameters, in order, but constexprs
            ("Q", "*bf16:16", "q"),            # (name, Triton type[:16], expression)
            ("stride_qs", "i32", "q.stride[1]"),
            ("sm_scale", "fp32", "scale"),
        ],
        "constexprs": {"BLOCK_M": BLOCK_M},    # every tl.constexpr parameter without a default
        "grid": ("cdiv(seq, BLOCK_M)", "batch * q_heads", 1),
        "num_warps": 4, "num_stages": 2,
        "assume": ["head_dim == 128"],         # checked on every call (else an error code)
    }

Expressions are Python syntax over the op's parameters (batch, seq, ...),
tensor attributes (q.shape[i], q.stride[i] in elements, q.ndim), the
constexprs, numbers, + - * / // % **, comparisons, and/or/not, `a if c else
b`, and cdiv/min/max/abs.  One parse serves two evaluators: expr_to_c (the
generated C wrapper) and eval_expr (the Python launcher of the interpreter
tests), so both compute the same grid and arguments.

check_source() admits only imports of triton and math, @triton.jit functions
(their bodies may reach only triton.language and math), constant assignments
and the declaration; nothing at module level computes anything else, so
importing the checked file runs none of the candidate's own code.  The
compile sandbox is the boundary; this check is depth, and it turns the usual
mistakes (an autotuner, host code at module level) into clear errors.
"""
import ast
import math
import re

ALLOWED_MODULES = ("triton", "math")
DECL_NAME = "emile_launch"
FUNCS = ("cdiv", "min", "max", "abs")
# Triton type -> (C type, PTX parameter type).  Pointers are void*.
SCALARS = {
    "i32": ("int32_t", "u32"), "i64": ("int64_t", "u64"),
    "u32": ("uint32_t", "u32"), "u64": ("uint64_t", "u64"),
    "fp32": ("float", "f32"), "fp64": ("double", "f64"),
}
# Pointee -> the ABI's dtype code (include/emile.h), checked on every call.
POINTEES = {"fp32": 0, "fp16": 1, "bf16": 2, "fp64": 3, "i32": 4, "i64": 5}
DTYPE_NAMES = ["f32", "f16", "bf16", "f64", "i32", "i64"]


class CandidateError(Exception):
    """A problem in the candidate's own text.  str() is the message a user
    sees: file:line:col, the problem, and the offending source line."""


def _where(name, text, node, msg):
    line = getattr(node, "lineno", 0) or 0
    col = (getattr(node, "col_offset", 0) or 0) + 1
    src = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
    out = f"{name}:{line}:{col}: error: {msg}"
    if src.strip():
        out += f"\n    {src.rstrip()}\n    {' ' * (col - 1)}^"
    return CandidateError(out)


def _describe(node):
    names = {ast.For: "a for loop", ast.While: "a while loop", ast.With: "a with block",
             ast.Try: "a try block", ast.ClassDef: "a class", ast.Expr: "an expression statement",
             ast.If: "an if statement", ast.AugAssign: "an augmented assignment",
             ast.Delete: "a del statement", ast.Global: "a global statement",
             ast.AsyncFunctionDef: "an async function", ast.Assert: "an assert", ast.Raise: "a raise"}
    return names.get(type(node), type(node).__name__)


# ---- the module-level whitelist ------------------------------------------------
def _module_root(name):
    return name.split(".")[0]


class _Checker:
    def __init__(self, name, text):
        self.name, self.text = name, text
        self.modules = {}      # alias -> full module name
        self.triton_names = {}  # alias -> "triton.X" for `from triton import X`
        self.consts = set()
        self.jit = []          # FunctionDef nodes

    def err(self, node, msg):
        return _where(self.name, self.text, node, msg)

    def imports(self, node):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _module_root(a.name) not in ALLOWED_MODULES:
                    raise self.err(node, f"import of '{a.name}': a Triton candidate imports only triton and math")
                alias = a.asname or a.name.split(".")[0]
                self.modules[alias] = a.name if a.asname else a.name.split(".")[0]
        else:
            mod = node.module or ""
            if mod != "__future__" and _module_root(mod) not in ALLOWED_MODULES:
                raise self.err(node, f"import from '{mod}': a Triton candidate imports only triton and math")
            for a in node.names:
                if a.name == "*":
                    raise self.err(node, "'import *' hides what the kernel uses: name what you import")
                self.modules[a.asname or a.name] = f"{mod}.{a.name}"

    def dotted(self, node):
        """'triton.jit' for an Attribute/Name chain, with the root alias resolved."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        root = self.modules.get(node.id, node.id)
        return ".".join([root] + parts[::-1])

    def decorator(self, d):
        target = d.func if isinstance(d, ast.Call) else d
        full = self.dotted(target)
        if full in ("triton.jit", "triton.runtime.jit.jit"):
            if isinstance(d, ast.Call):
                for kw in d.keywords:
                    self.constant(kw.value)
            return
        if full and full.split(".")[-1] in ("autotune", "heuristics"):
            raise self.err(d, f"@{full} is not allowed: the harness compiles and times one configuration "
                              "(give num_warps and num_stages in emile_launch; the agent tunes)")
        raise self.err(d, f"decorator '{ast.unparse(d)}': only @triton.jit is allowed")

    def constant(self, node):
        """A value computed from literals and earlier constants only."""
        if isinstance(node, ast.Constant):
            return
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            for e in node.elts:
                self.constant(e)
            return
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if k is None:
                    raise self.err(node, "'**' in a constant: write the entries out")
                self.constant(k)
                self.constant(v)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            return self.constant(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div,
                                                                ast.FloorDiv, ast.Mod)):
            self.constant(node.left)
            return self.constant(node.right)
        if isinstance(node, ast.Name) and (node.id in self.consts or node.id in ("True", "False", "None")):
            return
        if isinstance(node, ast.Attribute) and self.dotted(node) and self.dotted(node).startswith(
                ("triton.language.", "math.")) and not node.attr.startswith("_"):
            return           # tl.bfloat16, math.pi
        if isinstance(node, ast.Call) and self.dotted(node.func) in ("triton.language.constexpr",
                                                                     "triton.language.core.constexpr"):
            for a in node.args:
                self.constant(a)
            if node.keywords:
                raise self.err(node, "tl.constexpr takes one value")
            return
        raise self.err(node, f"'{ast.unparse(node)}' is not a constant: module-level values are literals, "
                             "earlier constants, arithmetic on them, or tl.constexpr(value)")

    def annotation(self, node):
        if node is None or isinstance(node, ast.Constant):
            return
        full = self.dotted(node)
        if not full or not full.startswith(("triton.language", "triton.")):
            raise self.err(node, f"annotation '{ast.unparse(node)}': use tl.constexpr or a tl type")

    def function(self, node):
        if not node.decorator_list:
            raise self.err(node, f"function '{node.name}' is not @triton.jit: host code does not run "
                                 "(the launch is declared in emile_launch)")
        for d in node.decorator_list:
            self.decorator(d)
        a = node.args
        for arg in a.posonlyargs + a.args + a.kwonlyargs:
            self.annotation(arg.annotation)
        for dflt in a.defaults + [x for x in a.kw_defaults if x is not None]:
            self.constant(dflt)
        if a.vararg or a.kwarg:
            raise self.err(node, f"'{node.name}' takes *args/**kwargs: give each parameter a name")
        self.annotation(node.returns)
        self.jit.append(node)

    def statement(self, node):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return self.imports(node)
        if isinstance(node, ast.FunctionDef):
            return self.function(node)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
                node.value.value, str):
            return
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = []
            for t in targets:
                if isinstance(t, ast.Tuple) and all(isinstance(e, ast.Name) for e in t.elts) and \
                        isinstance(node.value, ast.Tuple) and len(node.value.elts) == len(t.elts):
                    names += [e.id for e in t.elts]
                elif isinstance(t, ast.Name):
                    names.append(t.id)
                else:
                    raise self.err(node, "assign module-level constants to plain names")
            if node.value is None:
                raise self.err(node, "a module-level annotation needs a value")
            if isinstance(node, ast.AnnAssign):
                self.annotation(node.annotation)
            self.constant(node.value)
            self.consts.update(names)
            return
        raise self.err(node, f"{_describe(node)} at module level: a Triton candidate holds only imports of "
                             "triton and math, @triton.jit functions, constants and the emile_launch "
                             "declaration")


def _is_main_guard(node):
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    t = node.test
    return (isinstance(t.left, ast.Name) and t.left.id == "__name__" and len(t.ops) == 1
            and isinstance(t.ops[0], ast.Eq) and isinstance(t.comparators[0], ast.Constant)
            and t.comparators[0].value == "__main__")


def check_source(text, name="kernel.py"):
    """Parse and check a candidate.  Returns (tree, checker) with any
    `if __name__ == "__main__":` block removed; raises CandidateError."""
    try:
        tree = ast.parse(text, filename=name)
    except SyntaxError as e:
        line = e.lineno or 0
        col = e.offset or 1
        msg = f"{name}:{line}:{col}: error: {e.msg}"
        if e.text and e.text.strip():
            msg += f"\n    {e.text.rstrip()}\n    {' ' * (col - 1)}^"
        raise CandidateError(msg) from None
    tree.body = [s for s in tree.body if not _is_main_guard(s)]
    c = _Checker(name, text)
    for s in tree.body:
        c.statement(s)
    if DECL_NAME not in c.consts:
        raise CandidateError(f"{name}: error: no '{DECL_NAME}' declaration: the file must say how its kernel "
                             "is launched (see docs/TRITON.md)")
    for f in c.jit:
        _check_jit_body(c, f)
    return tree, c


_DUNDER = re.compile(r"^__.*__$")


def _check_jit_body(c, fn):
    """Inside a kernel: no dunder attributes, no getattr/hasattr, and every
    module reached through an attribute chain is triton.language or math
    (triton.language.extra.* included); resolved on the real modules later
    by check_reachable()."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and _DUNDER.match(node.attr):
            raise c.err(node, f"'{ast.unparse(node)}': dunder attributes are not allowed in a kernel")
        if isinstance(node, ast.Name) and _DUNDER.match(node.id) and node.id != "__name__":
            raise c.err(node, f"'{node.id}' is not allowed in a kernel")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr",
                                                                                             "hasattr"):
            raise c.err(node, f"{node.func.id}() is not allowed in a kernel: name the attribute")


def check_reachable(c, module):
    """After import: every attribute chain in a kernel body that starts at a
    module must stay inside triton.language or math."""
    import types
    for fn in c.jit:
        for node in ast.walk(fn):
            if not isinstance(node, ast.Attribute):
                continue
            chain, n = [], node
            while isinstance(n, ast.Attribute):
                chain.append(n.attr)
                n = n.value
            if not isinstance(n, ast.Name) or n.id not in c.modules:
                continue
            obj = getattr(module, n.id, None)
            for attr in reversed(chain):
                if isinstance(obj, types.ModuleType):
                    mn = obj.__name__
                    if not (mn == "math" or mn == "triton" or mn.startswith("triton.language")):
                        raise c.err(node, f"'{ast.unparse(node)}' reaches module {mn}: a kernel uses only "
                                          "triton.language and math")
                obj = getattr(obj, attr, None)
                if obj is None:
                    break
            if isinstance(obj, types.ModuleType) and not (obj.__name__ == "math"
                                                          or obj.__name__.startswith("triton.language")):
                raise c.err(node, f"'{ast.unparse(node)}' is module {obj.__name__}: a kernel uses only "
                                  "triton.language and math")
            if (len(chain) == 1 and c.modules.get(n.id) == "triton"
                    and chain[0] not in ("jit", "cdiv", "next_power_of_2", "language")):
                raise c.err(node, f"'{ast.unparse(node)}': a kernel uses triton.language (tl.*), not "
                                  f"triton.{chain[0]}")


# ---- expressions -----------------------------------------------------------------
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**"}
_CMPOPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


class Expr:
    """One checked expression: its source, its tree, the names it uses."""

    def __init__(self, src, tree, params, tensors):
        self.src, self.tree, self.params, self.tensors = src, tree, params, tensors


def parse_expr(src, where, constexprs, tensor_names):
    """Check an expression of the declaration; raise ValueError naming it."""
    if isinstance(src, bool):
        src = str(int(src))
    if isinstance(src, (int, float)):
        src = repr(src)
    if not isinstance(src, str):
        raise ValueError(f"{where}: expected an expression (a string or a number), got {src!r}")
    try:
        tree = ast.parse(src.strip(), mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"{where}: '{src}' is not an expression: {e.msg}") from None
    params, tensors = set(), set()

    def walk(n):
        if isinstance(n, ast.Constant):
            if isinstance(n.value, bool) or not isinstance(n.value, (int, float)):
                raise ValueError(f"{where}: '{src}': only numbers are allowed, not {n.value!r}")
            return
        if isinstance(n, ast.Name):
            if n.id not in constexprs:
                params.add(n.id)
            return
        if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS:
            walk(n.left)
            walk(n.right)
            return
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd, ast.Not)):
            return walk(n.operand)
        if isinstance(n, ast.BoolOp):
            for v in n.values:
                walk(v)
            return
        if isinstance(n, ast.Compare) and all(type(o) in _CMPOPS for o in n.ops):
            walk(n.left)
            for v in n.comparators:
                walk(v)
            return
        if isinstance(n, ast.IfExp):
            walk(n.test)
            walk(n.body)
            walk(n.orelse)
            return
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in FUNCS and not n.keywords:
            want = 1 if n.func.id == "abs" else 2
            if len(n.args) != want:
                raise ValueError(f"{where}: '{src}': {n.func.id}() takes {want} argument(s)")
            for a in n.args:
                walk(a)
            return
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Attribute) and n.value.attr in (
                "shape", "stride") and isinstance(n.value.value, ast.Name):
            t = n.value.value.id
            idx = n.slice
            if not (isinstance(idx, ast.Constant) and isinstance(idx.value, int) and 0 <= idx.value < 8):
                raise ValueError(f"{where}: '{src}': a dimension index is a literal 0..7")
            tensors.add(t)
            return
        if isinstance(n, ast.Attribute) and n.attr == "ndim" and isinstance(n.value, ast.Name):
            tensors.add(n.value.id)
            return
        raise ValueError(f"{where}: '{src}': '{ast.unparse(n)}' is not allowed (numbers, op parameters, "
                         "t.shape[i], t.stride[i], t.ndim, constexprs, arithmetic, comparisons, "
                         "and/or/not, a if c else b, cdiv/min/max/abs)")
    walk(tree)
    return Expr(src, tree, params, tensors)


def expr_to_c(e, name_of):
    """C (double arithmetic) for a checked expression.  name_of(kind, x)
    gives the C spelling of a parameter ("param", name), a constexpr
    ("const", name) or a tensor field ("tensor", (t, field, index))."""
    def c(n):
        if isinstance(n, ast.Constant):
            return f"{float(n.value)!r}"
        if isinstance(n, ast.Name):
            kind = "const" if name_of("is_const", n.id) else "param"
            return name_of(kind, n.id)
        if isinstance(n, ast.BinOp):
            a, b = c(n.left), c(n.right)
            op = _BINOPS[type(n.op)]
            if op == "//":
                return f"floor(({a}) / ({b}))"
            if op == "%":
                return f"em_mod({a}, {b})"
            if op == "**":
                return f"pow({a}, {b})"
            return f"(({a}) {op} ({b}))"
        if isinstance(n, ast.UnaryOp):
            op = {ast.USub: "-", ast.UAdd: "+", ast.Not: "!"}[type(n.op)]
            return f"({op}({c(n.operand)}))" if op != "!" else f"(double)(!({c(n.operand)}))"
        if isinstance(n, ast.BoolOp):
            op = " && " if isinstance(n.op, ast.And) else " || "
            return "(double)(" + op.join(f"(({c(v)}) != 0)" for v in n.values) + ")"
        if isinstance(n, ast.Compare):
            parts, left = [], c(n.left)
            for o, r in zip(n.ops, n.comparators):
                rc = c(r)
                parts.append(f"(({left}) {_CMPOPS[type(o)]} ({rc}))")
                left = rc
            return "(double)(" + " && ".join(parts) + ")"
        if isinstance(n, ast.IfExp):
            return f"(({c(n.test)}) != 0 ? ({c(n.body)}) : ({c(n.orelse)}))"
        if isinstance(n, ast.Call):
            args = [c(a) for a in n.args]
            f = n.func.id
            if f == "cdiv":
                return f"ceil(({args[0]}) / ({args[1]}))"
            if f == "abs":
                return f"fabs({args[0]})"
            return f"f{f}({args[0]}, {args[1]})"
        if isinstance(n, ast.Subscript):
            return name_of("tensor", (n.value.value.id, n.value.attr, n.slice.value))
        if isinstance(n, ast.Attribute):
            return name_of("tensor", (n.value.id, "ndim", 0))
        raise AssertionError(ast.dump(n))
    return c(e.tree)


def eval_expr(e, params, tensors, constexprs):
    """Python evaluation with the same semantics as expr_to_c (doubles).
    tensors: name -> object with .shape and .stride() (torch) or strides
    in elements."""
    def v(n):
        if isinstance(n, ast.Constant):
            return float(n.value)
        if isinstance(n, ast.Name):
            if n.id in constexprs:
                return float(constexprs[n.id])
            if n.id not in params:
                raise KeyError(f"'{e.src}': the op has no parameter '{n.id}'")
            return float(params[n.id])
        if isinstance(n, ast.BinOp):
            a, b = v(n.left), v(n.right)
            op = _BINOPS[type(n.op)]
            return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                    "/": lambda: a / b if b else math.copysign(math.inf, a) if a else math.nan,
                    "//": lambda: math.floor(a / b) if b else math.nan,
                    "%": lambda: a - b * math.floor(a / b) if b else math.nan,
                    "**": lambda: a ** b}[op]()
        if isinstance(n, ast.UnaryOp):
            x = v(n.operand)
            return -x if isinstance(n.op, ast.USub) else x if isinstance(n.op, ast.UAdd) else float(not x)
        if isinstance(n, ast.BoolOp):
            vals = [v(x) != 0 for x in n.values]
            return float(all(vals) if isinstance(n.op, ast.And) else any(vals))
        if isinstance(n, ast.Compare):
            left, ok = v(n.left), True
            for o, r in zip(n.ops, n.comparators):
                rv = v(r)
                ok = ok and {"==": left == rv, "!=": left != rv, "<": left < rv, "<=": left <= rv,
                             ">": left > rv, ">=": left >= rv}[_CMPOPS[type(o)]]
                left = rv
            return float(ok)
        if isinstance(n, ast.IfExp):
            return v(n.body) if v(n.test) != 0 else v(n.orelse)
        if isinstance(n, ast.Call):
            a = [v(x) for x in n.args]
            f = n.func.id
            return {"cdiv": lambda: float(math.ceil(a[0] / a[1])), "abs": lambda: abs(a[0]),
                    "min": lambda: min(a), "max": lambda: max(a)}[f]()
        if isinstance(n, ast.Subscript):
            t = tensors[n.value.value.id]
            i = n.slice.value
            if n.value.attr == "shape":
                return float(t.shape[i]) if i < len(t.shape) else 0.0
            return float(t.stride(i)) if i < len(t.shape) else 0.0
        if isinstance(n, ast.Attribute):
            return float(len(tensors[n.value.id].shape))
        raise AssertionError(ast.dump(n))
    return v(e.tree)


# ---- the declaration -------------------------------------------------------------
class Arg:
    def __init__(self, name, ty, expr, align16):
        self.name, self.ty, self.expr, self.align16 = name, ty, expr, align16

    @property
    def is_ptr(self):
        return self.ty.startswith("*")

    @property
    def pointee(self):
        return self.ty[1:]


class Launch:
    """The checked declaration."""

    def __init__(self):
        self.kernel = None
        self.args = []
        self.constexprs = {}
        self.grid = []
        self.num_warps = 4
        self.num_stages = 3
        self.assume = []
        self.tensor_names = set()


DECL_KEYS = {"kernel", "args", "constexprs", "grid", "num_warps", "num_stages", "assume"}


# The ABI's dtype names as Triton's: a template writes "*" + DTYPE with the
# task's dtype ("bf16", "f16", "f32").
ALIASES = {"f16": "fp16", "f32": "fp32", "f64": "fp64"}


def parse_type(ty, where):
    if not isinstance(ty, str):
        raise ValueError(f"{where}: the type must be a string like '*bf16', 'i32' or 'fp32'")
    base, _, hint = ty.partition(":")
    ptr = base.startswith("*")
    base = ("*" if ptr else "") + ALIASES.get(base.lstrip("*"), base.lstrip("*"))
    if hint not in ("", "16"):
        raise ValueError(f"{where}: type '{ty}': the only hint is ':16' (divisible by 16)")
    if base.startswith("*"):
        if base[1:] not in POINTEES:
            raise ValueError(f"{where}: pointer type '{base}' (pointers: "
                             + ", ".join("*" + p for p in POINTEES) + ")")
    elif base not in SCALARS:
        raise ValueError(f"{where}: type '{base}' (scalars: {', '.join(SCALARS)})")
    return base, hint == "16"


def read_launch(decl, tensor_names):
    """Check the emile_launch dict (already evaluated: literals only).
    tensor_names: names usable as tensors (the op's, or any identifier when
    None: the op is not known at compile time, so any name that is not a
    constexpr is looked up at run time, tensor first)."""
    if not isinstance(decl, dict):
        raise ValueError(f"{DECL_NAME} must be a dict")
    unknown = set(decl) - DECL_KEYS
    if unknown:
        raise ValueError(f"{DECL_NAME} has unknown key(s) {sorted(unknown)} (keys: {sorted(DECL_KEYS)})")
    L = Launch()
    L.kernel = decl.get("kernel")
    if not isinstance(L.kernel, str):
        raise ValueError(f"{DECL_NAME}['kernel'] must name the @triton.jit function to launch")
    ce = decl.get("constexprs", {})
    if not isinstance(ce, dict) or not all(isinstance(k, str) for k in ce):
        raise ValueError(f"{DECL_NAME}['constexprs'] must be a dict of name -> value")
    for k, val in ce.items():
        if isinstance(val, bool):
            val = int(val)
        if not isinstance(val, (int, float, str)) or (isinstance(val, str) and not re.match(r"^[\w.]+$", val)):
            raise ValueError(f"{DECL_NAME}['constexprs']['{k}']: a number (or a dtype name), got {val!r}")
        L.constexprs[k] = val
    args = decl.get("args")
    if not isinstance(args, (list, tuple)) or not args:
        raise ValueError(f"{DECL_NAME}['args'] must list the kernel's parameters as (name, type, expression)")
    # Tensors: names of pointer arguments' expressions, plus known op tensors.
    tnames = set(tensor_names or ())
    for i, a in enumerate(args):
        if not isinstance(a, (list, tuple)) or len(a) != 3 or not isinstance(a[0], str):
            raise ValueError(f"{DECL_NAME}['args'][{i}]: expected (name, type, expression), got {a!r}")
        if a[1:2] and isinstance(a[1], str) and a[1].startswith("*"):
            if not isinstance(a[2], str) or not a[2].isidentifier():
                raise ValueError(f"{DECL_NAME}['args'][{i}] ({a[0]}): a pointer's expression names a tensor "
                                 f"of the op (e.g. \"q\"), got {a[2]!r}")
            if tensor_names is not None and a[2] not in tensor_names:
                raise ValueError(f"{DECL_NAME}['args'][{i}] ({a[0]}): '{a[2]}' is not a tensor of the op "
                                 f"({', '.join(sorted(tensor_names))})")
            tnames.add(a[2])
    L.tensor_names = tnames
    seen = set()
    for i, (name, ty, ex) in enumerate(args):
        where = f"{DECL_NAME}['args'][{i}] ({name})"
        if name in seen:
            raise ValueError(f"{where}: parameter given twice")
        seen.add(name)
        base, a16 = parse_type(ty, where)
        if base.startswith("*"):
            L.args.append(Arg(name, base, ex, a16))
        else:
            L.args.append(Arg(name, base, parse_expr(ex, where, L.constexprs, tnames), a16))
    grid = decl.get("grid")
    if isinstance(grid, (int, str)):
        grid = (grid,)
    if not isinstance(grid, (list, tuple)) or not 1 <= len(grid) <= 3:
        raise ValueError(f"{DECL_NAME}['grid'] must be 1 to 3 expressions")
    grid = list(grid) + [1] * (3 - len(grid))
    L.grid = [parse_expr(g, f"{DECL_NAME}['grid'][{i}]", L.constexprs, tnames) for i, g in enumerate(grid)]
    for key, lo, hi in (("num_warps", 1, 32), ("num_stages", 1, 8)):
        val = decl.get(key, getattr(L, key))
        if not isinstance(val, int) or isinstance(val, bool) or not lo <= val <= hi:
            raise ValueError(f"{DECL_NAME}['{key}'] must be an integer in [{lo}, {hi}], got {val!r}")
        if key == "num_warps" and val & (val - 1):
            raise ValueError(f"{DECL_NAME}['num_warps'] must be a power of two, got {val}")
        setattr(L, key, val)
    assume = decl.get("assume", [])
    if isinstance(assume, str):
        assume = [assume]
    if not isinstance(assume, (list, tuple)):
        raise ValueError(f"{DECL_NAME}['assume'] must be a list of expressions")
    L.assume = [parse_expr(a, f"{DECL_NAME}['assume'][{i}]", L.constexprs, tnames) for i, a in enumerate(assume)]
    return L


def match_signature(L, fn_args, fn_constexpr, fn_defaults, kernel):
    """The declaration against the kernel's parameters: every non-constexpr
    parameter in `args`, in order; every constexpr without a default in
    `constexprs`; nothing else.  Raises ValueError naming the first
    difference."""
    sig = f"{kernel}({', '.join(fn_args)})"
    runtime = [a for a in fn_args if a not in fn_constexpr]
    given = [a.name for a in L.args]
    for a in given:
        if a not in fn_args:
            raise ValueError(f"the launch declaration gives '{a}', which is not a parameter of {sig}")
        if a in fn_constexpr:
            raise ValueError(f"the launch declaration gives '{a}' in 'args', but {kernel} declares it "
                             "tl.constexpr: give it in 'constexprs'")
    for a in L.constexprs:
        if a not in fn_args:
            raise ValueError(f"the launch declaration gives constexpr '{a}', which is not a parameter of {sig}")
        if a not in fn_constexpr:
            raise ValueError(f"the launch declaration gives '{a}' in 'constexprs', but {kernel} does not "
                             "declare it tl.constexpr: give it in 'args'")
    for a in runtime:
        if a not in given:
            raise ValueError(f"the launch declaration does not give parameter '{a}' of {sig}")
    if given != runtime:
        raise ValueError(f"the launch declaration lists {kernel}'s parameters in another order: "
                         f"{', '.join(given)} (the kernel: {', '.join(runtime)})")
    for a in fn_constexpr:
        if a not in L.constexprs and a not in fn_defaults:
            raise ValueError(f"the launch declaration does not give constexpr '{a}' of {sig}")


def dtype_name(code):
    return DTYPE_NAMES[code] if 0 <= code < len(DTYPE_NAMES) else f"dtype {code}"
