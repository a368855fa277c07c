"""The trusted oracle of a task whose reference is a PyTorch problem file.

The worker starts `python3 -m emile.oracle --shm-fd N` on its own host (the
user's own code: never in a candidate's sandbox, never in the orchestrator)
and speaks JSON lines with it: one request on stdin, one reply on stdout.
Tensor bytes travel through the shared memory file whose descriptor N the
worker passed (a memfd it sized; the oracle maps it): an input set of a
large op is hundreds of megabytes, which a pipe would copy twice more
(docs/PYTORCH.md says why).  Anything the problem prints goes to stderr,
never into the protocol.

Requests (docs/PYTORCH.md has the replies):
  {"cmd":"load","source":TEXT,"filename":NAME,"device":"cpu"|"cuda",
   "dtype":"f32"|"f16"|"bf16"|null,"memory_limit_mb":M}
  {"cmd":"describe","seed":S,"tolerance":T}
  {"cmd":"fill","seed":S,"size":BYTES,"tensors":[{"shape":[..],"off":O,"bytes":B},..]}
  {"cmd":"floors","seeds":[S1,S2],"compile":true}
  {"cmd":"quit"}
Every reply has "ok"; a failed one has "error" (the problem's file and line
where Python gives one) and "kind": "problem" (the problem file cannot be an
oracle: bad input) or "internal".
"""
import argparse
import ctypes
import json
import mmap
import os
import random
import resource
import sys
import time
import traceback

import torch

from emile import flops as flop_count
from emile import problem as P
from emile import timing


def rel_error(a, b):
    """max |a-b| / (|b| + rms(b)), the harness's error (src/worker/numeric.c)."""
    a64, b64 = a.detach().double().cpu().flatten(), b.detach().double().cpu().flatten()
    if a64.numel() == 0:
        return 0.0
    if not bool(torch.isfinite(a64).all()):
        return float("inf")
    rms = float(b64.pow(2).mean().sqrt())
    return float(((a64 - b64).abs() / (b64.abs() + rms + 1e-30)).max())


def validation_constants(base, vary):
    """The ragged and small sets' constants, by src/task/op.c's rules
    (op_validation_params)."""
    ragged, small = dict(base), dict(base)
    if not vary:
        return ragged, small
    x = base[vary[0]]
    ragged[vary[0]] = x - x // 8 - 3 if x > 24 else x + 3
    small[vary[0]] = 97 if x > 97 else (x - 2 if x > 5 else x + 1)
    for v in vary[1:]:
        small[v] = 1 if base[v] >= 2 else 2
    return ragged, small


class Oracle:
    def __init__(self, shm_fd):
        self.shm_fd = shm_fd
        self.shm = None
        self.shm_size = 0
        self.problem = None
        self.exprs = None          # per ABI tensor, per dim: {"k","vars","b"} or None (literal)
        self.note = ""

    # ---- commands --------------------------------------------------------------

    def load(self, req):
        device = req.get("device") or "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise P.ProblemError("the task's backend is cuda, but this torch sees no GPU "
                                 f"(torch {torch.__version__})")
        # The oracle in fp32 means fp32: no TF32 in matrix products.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        mb = req.get("memory_limit_mb")
        if mb and device == "cpu":
            self._limit_memory(float(mb))
        self.problem = P.Problem(req["source"], req.get("filename") or "problem.py", device,
                                 req.get("dtype"))
        if req.get("constants"):
            self.problem.set_constants(req["constants"])
            self.problem.base = {k: self.problem.module.__dict__[k] for k in self.problem.base}
        return {"constants": self.problem.constants, "vary": self.problem.vary,
                "torch": torch.__version__}

    def _limit_memory(self, mb):
        """The reference may use the memory a candidate may (memory_limit_mb)
        beyond what Python and torch hold once imported: RLIMIT_DATA counts
        every private writable mapping, so a tensor too large fails to
        allocate instead of taking the machine's memory."""
        data_kb = 0
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmData:"):
                    data_kb = int(line.split()[1])
        limit = data_kb * 1024 + int(mb * 1048576)
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
        self.note = (f" (the reference may use memory_limit_mb = {mb:g} MB beyond Python and torch: "
                     "raise memory_limit_mb in the task, or make the sizes smaller)")

    def _abi(self, state, inputs, outs):
        """The ABI's tensors: inputs, then state_dict (state: as _run_set
        took it, before the forward), then outputs."""
        taken = set()
        entries = []
        for name, t in zip(self.problem.input_names(len(inputs)), inputs):
            entries.append({"name": P._ident(name, taken), "role": "input", "key": name, "t": t})
        for key, t, is_param in state:
            if t.dtype not in P.DTYPE_NAMES:
                raise P.ProblemError(f"{self.problem.filename}: the model's {key} is {t.dtype}, which the "
                                     "kernel ABI cannot carry")
            role = "parameter" if is_param else "buffer"
            entries.append({"name": P._ident(key, taken), "role": role, "key": key, "t": t})
        names = ["out"] if len(outs) == 1 else [f"out{i}" for i in range(len(outs))]
        for name, t in zip(names, outs):
            entries.append({"name": P._ident(name, taken), "role": "output", "key": name, "t": t})
        if len(entries) > P.ABI_MAX_TENSORS:
            raise P.ProblemError(f"{self.problem.filename}: the op has {len(entries)} tensors (inputs, "
                                 f"parameters, buffers and outputs); the kernel ABI carries at most "
                                 f"{P.ABI_MAX_TENSORS}")
        for e in entries:
            if e["t"].dim() > P.ABI_MAX_DIMS:
                raise P.ProblemError(f"{self.problem.filename}: {e['role']} {e['key']} has "
                                     f"{e['t'].dim()} dimensions (at most {P.ABI_MAX_DIMS})")
        return entries

    def _run_set(self, seed, copy_state=True):
        """Model, inputs, outputs and state of one set under seed.  The
        inputs and the state (key, tensor, is a parameter) are as they were
        before the forward, which may change them in place (an in-place
        activation on its input, a BatchNorm's running statistics in train
        mode): the kernel is given what the forward was given.  Where only
        the shapes are wanted (copy_state False), the state is not copied."""
        pr = self.problem
        model, init_args = pr.build_model(seed, self.note)
        inputs = pr.draw_inputs(seed ^ 0x1F1F, self.note)
        state = [(k, t.detach().clone() if copy_state else t.detach(), isinstance(t, torch.nn.Parameter))
                 for k, t in pr.state_tensors(model)]
        outs = pr.forward(model, inputs, self.note)
        return model, init_args, inputs, outs, state

    def _shapes(self, constants, seed):
        self.problem.set_constants(constants)
        try:
            _, _, inputs, outs, state = self._run_set(seed, copy_state=False)
            return [list(e["t"].shape) for e in self._abi(state, inputs, outs)]
        finally:
            self.problem.set_constants(self.problem.base)

    def _infer_exprs(self, base_shapes, seed):
        """Each dimension as an expression of the varied constants, found by
        drawing at other values of them (those validation will use, and
        each one alone at its small value) and fitting d = k*c + b (one
        constant) or d = k*c1*c2*... (several)."""
        pr = self.problem
        vary, base = pr.vary, pr.base
        ragged, small = validation_constants(base, vary)
        alone = []
        for v in vary:
            c = dict(base)
            c[v] = small[v] if small[v] != base[v] else ragged[v]
            alone.append(c)
        points = [(c, self._shapes(c, seed)) for c in [ragged, small] + alone]
        for c, shapes in points:
            if len(shapes) != len(base_shapes) or any(len(a) != len(b) for a, b in zip(shapes, base_shapes)):
                raise P.ProblemError(f"{pr.filename}: with {self._which(c)} the op has other tensors or ranks "
                                     "than at the problem's sizes: only dimensions may vary")
        exprs = []
        moved = set()
        for ti, shape in enumerate(base_shapes):
            row = []
            for d, d0 in enumerate(shape):
                deps = [v for v, (_, sh) in zip(vary, points[2:]) if sh[ti][d] != d0]
                moved.update(deps)
                row.append(self._fit(ti, d, d0, deps, points))
            exprs.append(row)
        for v in vary:
            if v not in moved:
                raise P.ProblemError(f"{pr.filename}: emile_vary names '{v}', but no tensor's shape changes "
                                     "with it")
        return exprs

    @staticmethod
    def _which(c):
        return ", ".join(f"{k} = {v}" for k, v in c.items())

    def _fit(self, ti, d, d0, deps, points):
        pr = self.problem
        base = pr.base
        if not deps:
            form = None
        elif len(deps) == 1:
            v = deps[0]
            c1, sh1 = next((c, sh) for c, sh in points[2:] if c[v] != base[v])
            k = (sh1[ti][d] - d0) / (c1[v] - base[v])
            b = d0 - k * base[v]
            form = {"k": k, "vars": [v], "b": b} if k == int(k) and b == int(b) else "bad"
        else:
            prod = 1
            for v in deps:
                prod *= base[v]
            k = d0 / prod
            form = {"k": k, "vars": deps, "b": 0} if k == int(k) else "bad"
        ok = form != "bad"
        if ok:
            for c, sh in points:
                if self._eval(form, c, d0) != sh[ti][d]:
                    ok = False
        if not ok:
            raise P.ProblemError(f"{pr.filename}: dimension {d} of tensor {ti} changes with "
                                 f"{', '.join(deps)} in a way Emile cannot express (k*c+b of one constant, "
                                 "or k*c1*c2*... of several): name fewer constants in emile_vary")
        return form

    @staticmethod
    def _eval(form, consts, literal):
        if form is None:
            return literal
        v = form["k"]
        for name in form["vars"]:
            v *= consts[name]
        return int(v + form["b"])

    @staticmethod
    def expr_text(form, literal):
        if form is None:
            return str(literal)
        k, b = int(form["k"]), int(form["b"])
        s = "*".join(form["vars"])
        if k != 1:
            s = f"{k}*{s}"
        if b:
            s = f"{s}{'+' if b > 0 else '-'}{abs(b)}"
        return s

    def describe(self, req):
        pr = self.problem
        seed = int(req.get("seed", 1))
        t0 = time.perf_counter()
        model, init_args, inputs, outs, state = self._run_set(seed)
        forward_s = time.perf_counter() - t0
        dtype = P.DTYPE_NAMES[pr.dtype] if pr.dtype else next(
            (P.DTYPE_NAMES[x.dtype] for x in list(inputs) + outs if x.is_floating_point() and x.dim()), "f32")
        # The task's tolerance when it sets one, else its dtype's default.
        tol = float(req.get("tolerance") or (req.get("tolerances") or {}).get(dtype) or 1e-4)
        structure = pr.last_structure      # for model_new.py
        for i, o in enumerate(outs):
            if o.is_floating_point() and not bool(torch.isfinite(o).all()):
                raise P.ProblemError(f"{pr.filename}: Model.forward left NaN or Inf in output {i}"
                                     f"{pr.redraw_note}")
        # The same inputs again: a reference that changes its answer cannot
        # be an oracle (the bound of a candidate's repeated run: tol / 4).
        outs2 = pr.forward(model, inputs, self.note)
        worst = 0.0
        for i, (a, b) in enumerate(zip(outs2, outs)):
            if a.shape != b.shape:
                raise P.ProblemError(f"{pr.filename}: Model.forward is not deterministic: output {i} has shape "
                                     f"{list(b.shape)}, then {list(a.shape)} on the same inputs")
            err = rel_error(a, b)
            worst = max(worst, err)
            if not (err <= tol / 4):
                raise P.ProblemError(
                    f"{pr.filename}: Model.forward is not deterministic: two calls on the same inputs differ "
                    f"by {err:.3g} in output {i} (bound {tol / 4:.3g}, a quarter of the tolerance); this "
                    "reference cannot be an oracle (dropout or another random op in forward? an atomic "
                    "reduction?)")
        # get_inputs() twice: the same shapes and dtypes, or no fixed op.
        again = pr.draw_inputs(seed ^ 0x2E2E, self.note)
        if [(tuple(x.shape), x.dtype) for x in again] != [(tuple(x.shape), x.dtype) for x in inputs]:
            first = [list(x.shape) for x in inputs]
            second = [list(x.shape) for x in again]
            raise P.ProblemError(f"{pr.filename}: get_inputs() returned different shapes or dtypes on two "
                                 f"calls ({first} then {second}): the sizes must come from the module's "
                                 "constants, not from the random draw")
        entries = self._abi(state, inputs, outs)
        base_shapes = [list(e["t"].shape) for e in entries]
        self.exprs = self._infer_exprs(base_shapes, seed) if pr.vary else [[None] * len(s) for s in base_shapes]
        n_flops, flops_how = flop_count.count(model, pr.call_args([x.clone() for x in inputs]))
        tensors = []
        for e, forms in zip(entries, self.exprs):
            t = e["t"]
            tensors.append({
                "name": e["name"], "role": e["role"], "key": e["key"],
                "shape": list(t.shape) if t.dim() else [1], "scalar": t.dim() == 0,
                "dtype": P.DTYPE_NAMES[t.dtype], "floating": t.is_floating_point(),
                "shape_expr": [self.expr_text(f, n) for f, n in zip(forms, t.shape)] if t.dim() else ["1"],
            })
        init_names = pr.init_arg_names(init_args)
        init = {n: (float(a) if isinstance(a, float) else int(a)) for n, a in zip(init_names, init_args)
                if type(a) in (int, float, bool)}
        tensor_bytes = sum(e["t"].numel() * e["t"].element_size() for e in entries)
        peak = (torch.cuda.max_memory_allocated() if pr.device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        return {
            "tensors": tensors, "constants": pr.base, "init_args": init, "vary": pr.vary,
            "structure": structure, "n_outputs": len(outs),
            "flops": n_flops, "flops_how": flops_how, "flops_expr": pr.flops_expr, "bytes_expr": pr.bytes_expr,
            "emile_op": pr.op, "emile_params": pr.op_params,
            "dtype": dtype,
            "determinism": {"max_err": worst, "bound": tol / 4},
            "memory": {"tensor_bytes": tensor_bytes, "peak_bytes": peak},
            "forward_s": forward_s, "torch": torch.__version__, "device": str(pr.device),
        }

    def _ensure_exprs(self, seed):
        """The fitted shape expressions, found once per process (a worker's
        oracle fills sets without having described the problem)."""
        if self.exprs is None and self.problem.vary:
            _, _, inputs, outs, state = self._run_set(seed, copy_state=False)
            base_shapes = [list(e["t"].shape) for e in self._abi(state, inputs, outs)]
            self.exprs = self._infer_exprs(base_shapes, seed)

    def _solve_constants(self, shapes):
        """The varied constants that give these shapes (from the fitted
        expressions); {} when nothing varies."""
        pr = self.problem
        found = {}
        if not pr.vary or self.exprs is None:
            return found
        for ti, row in enumerate(self.exprs):
            for d, form in enumerate(row):
                if form and len(form["vars"]) == 1 and ti < len(shapes) and d < len(shapes[ti]):
                    v = form["vars"][0]
                    x = (shapes[ti][d] - form["b"]) / form["k"]
                    if v not in found and x == int(x) and x >= 1:
                        found[v] = int(x)
        consts = dict(pr.base)
        consts.update(found)
        return consts

    def _map(self, size):
        if self.shm is not None and self.shm_size == size:
            return
        if self.shm is not None:
            self.shm.close()
        self.shm = mmap.mmap(self.shm_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.shm_size = size

    def fill(self, req):
        pr = self.problem
        want = req["tensors"]
        shapes = [list(w["shape"]) for w in want]
        self._ensure_exprs(int(req["seed"]))
        consts = self._solve_constants(shapes)
        if consts:
            pr.set_constants(consts)
        try:
            _, _, inputs, outs, state = self._run_set(int(req["seed"]))
            entries = self._abi(state, inputs, outs)
        finally:
            pr.set_constants(pr.base)
        if len(entries) != len(want):
            raise P.ProblemError(f"{pr.filename}: this set has {len(entries)} tensors where the task has "
                                 f"{len(want)}")
        self._map(int(req["size"]))
        for e, w in zip(entries, want):
            t = e["t"]
            got = list(t.shape) if t.dim() else [1]
            if got != list(w["shape"]):
                which = f" ({self._which({k: v for k, v in consts.items() if k in pr.vary})})" if pr.vary else ""
                raise P.ProblemError(f"{pr.filename}: {e['role']} {e['key']} has shape {got} in this set{which}, "
                                     f"where the task needs {list(w['shape'])}")
            if e["role"] == "output" and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise P.ProblemError(f"{pr.filename}: Model.forward left NaN or Inf in {e['key']}"
                                     f"{pr.redraw_note}")
            raw = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
            if raw.numel() != int(w["bytes"]):
                raise P.ProblemError(f"{pr.filename}: {e['key']} is {P.DTYPE_NAMES.get(t.dtype)} "
                                     f"({raw.numel()} bytes) where the task expects {w['bytes']} bytes")
            off = int(w["off"])
            dst = torch.frombuffer(self.shm, dtype=torch.uint8, count=raw.numel(), offset=off)
            dst.copy_(raw)
            del dst
        return {}

    def floors(self, req):
        pr = self.problem
        seeds = [int(s) for s in req.get("seeds", [1, 2])]
        rng = random.Random(seeds[0])
        model, _ = pr.build_model(seeds[0], self.note)
        sets = [pr.call_args(pr.draw_inputs(s ^ 0x1F1F, self.note)) for s in seeds]

        def eager(*xs):
            return model(*xs)
        try:
            out = {"eager": timing.time_forward(eager, sets, pr.device, rng)}
        except P.ProblemError:
            raise
        except BaseException as e:
            raise P.raised(e, pr.filename, "Model.forward (timed)", self.note) from None
        if req.get("compile", True):
            out["compile"] = self._compiled_floor(model, sets, rng)
        return out

    def _compiled_floor(self, model, sets, rng):
        try:
            t0 = time.perf_counter()
            compiled = torch.compile(model)
            with torch.no_grad():
                compiled(*sets[0])
                if self.problem.device.type == "cuda":
                    torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
            r = timing.time_forward(compiled, sets, self.problem.device, rng)
            r["compile_s"] = compile_s
            return r
        except BaseException as e:       # the compiler is not the user's fault
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return {"error": f"torch.compile failed: {type(e).__name__}: {msg[:300]}"}

    # ---- the loop ---------------------------------------------------------------

    def handle(self, req):
        cmd = req.get("cmd")
        if cmd == "load":
            return self.load(req)
        if self.problem is None:
            raise RuntimeError("load a problem first")
        if cmd == "describe":
            return self.describe(req)
        if cmd == "fill":
            return self.fill(req)
        if cmd == "floors":
            return self.floors(req)
        raise RuntimeError(f"unknown cmd {cmd!r} (load, describe, fill, floors, quit)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shm-fd", type=int, default=-1)
    args = ap.parse_args(argv)
    # This process holds every expected output: no process of the same user
    # (a candidate, when the worker is not root) may read /proc/PID/mem, as
    # the worker itself does (PR_SET_DUMPABLE = 4).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    # The protocol keeps fd 1's file; the problem's prints go to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    oracle = Oracle(args.shm_fd)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                proto.write('{"ok":true}\n')
                break
            reply = {"ok": True}
            reply.update(oracle.handle(req))
        except P.ProblemError as e:
            reply = {"ok": False, "kind": "problem", "error": str(e)}
        except BaseException as e:       # a bug of ours: say where
            tb = traceback.extract_tb(e.__traceback__)
            at = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
            reply = {"ok": False, "kind": "internal", "error": f"{type(e).__name__}: {e}{at}"}
        proto.write(json.dumps(reply, allow_nan=False, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
