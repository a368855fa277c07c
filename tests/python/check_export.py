"""Checks an `emile export` of a run whose reference is a PyTorch problem, from
a fresh Python process, as a user would use it:

  python3 tests/python/check_export.py DIR [--tolerance T] [--device cpu|cuda]
          [--dtype f32|bf16|f16] [--time]

1. DIR/model_new.py imports (it registers torch.ops.emile.<op> from
   DIR/emile_<op>/), ModelNew and Model are built under the same seed, as
   KernelBench's evaluation builds them, and agree on fresh get_inputs()
   within the tolerance (the harness's metric: max |a-b| / (|b| + rms(b)));
2. torch.compile(ModelNew, fullgraph=True) traces the op (its fake
   implementation) and gives the same outputs;
3. the op refuses a tensor of the wrong dtype with a TypeError naming it.
With --time, both are timed (median of 20 after 3 warm-ups) and printed.
Prints one "ok"/"not ok" line per check; exit 0 when all passed.
"""
import argparse
import importlib.util
import os
import sys
import time

import torch


def rel_error(a, b):
    if a.shape != b.shape:
        return float("inf")
    a, b = a.detach().double().cpu().flatten(), b.detach().double().cpu().flatten()
    rms = b.pow(2).mean().sqrt()
    return float(((a - b).abs() / (b.abs() + rms + 1e-30)).max())


def outputs(r):
    return [r] if isinstance(r, torch.Tensor) else list(r)


def median_ms(fn, inputs, device):
    for _ in range(3):
        fn(*inputs)
    times = []
    for _ in range(20):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def is_t(x):
    return isinstance(x, torch.Tensor)


def on(xs, device, dtype):
    """get_inputs()'s values on the device, floating tensors in dtype; a
    number (KernelBench's `s = 3.14`) stays a number."""
    xs = [x.to(device) if is_t(x) else x for x in xs]
    return [x.to(dtype) if dtype and is_t(x) and x.is_floating_point() else x for x in xs]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--time", action="store_true")
    a = ap.parse_args()
    fails = 0

    def check(name, cond, detail=""):
        nonlocal fails
        print(("ok - " if cond else "not ok - ") + name + (f" ({detail})" if detail else ""))
        fails += 0 if cond else 1

    spec = importlib.util.spec_from_file_location("model_new", os.path.join(a.dir, "model_new.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16, None: None}[a.dtype]

    def build(cls):
        torch.manual_seed(42)
        m = cls(*mod.get_init_inputs()).to(a.device)
        return m.to(dtype) if dtype else m

    ref, new = build(mod.Model), build(mod.ModelNew)
    with torch.no_grad():
        for p in ref.parameters():          # a constructor's ones would hide an ignored weight
            p.add_(torch.randn_like(p) * 0.5)
        new.load_state_dict(ref.state_dict())
    torch.manual_seed(7)
    inputs = on(mod.get_inputs(), a.device, dtype)
    def fresh(xs):                 # each model its own copies: a forward may change them in place
        return [x.clone() if is_t(x) else x for x in xs]

    with torch.no_grad():
        want, got = outputs(ref(*fresh(inputs))), outputs(new(*fresh(inputs)))
    errs = [rel_error(g, w) for g, w in zip(got, want)]
    check("ModelNew matches Model within the tolerance", len(got) == len(want) and max(errs) <= a.tolerance,
          f"error {max(errs):.3g}, tolerance {a.tolerance:g}")
    compiled = torch.compile(new, fullgraph=True)
    with torch.no_grad():
        cgot = outputs(compiled(*inputs))
    cerr = max(rel_error(g, w) for g, w in zip(cgot, want))
    check("torch.compile(ModelNew, fullgraph=True) traces the op and matches", cerr <= a.tolerance,
          f"error {cerr:.3g}")
    # The op keeps a plan per signature: the same call again, a strided
    # view of the same values and (where the problem lets a size vary) a
    # second size must each get their own right answer.
    with torch.no_grad():
        again = outputs(new(*inputs))
    check("a second call with the same signature gives the same outputs",
          all(torch.equal(a2, g) for a2, g in zip(again, got)))
    strided = [x.transpose(0, -1).contiguous().transpose(0, -1) if is_t(x) and x.dim() >= 2 else x for x in inputs]
    if any(is_t(x) and not x.is_contiguous() for x in strided):
        with torch.no_grad():
            serr = max(rel_error(g, w) for g, w in zip(outputs(new(*strided)), want))
        check("non-contiguous inputs (copied to dense) give the same answer", serr <= a.tolerance, f"error {serr:.3g}")
    vary = getattr(mod, "emile_vary", None) or []
    if vary and isinstance(getattr(mod, vary[0], None), int) and getattr(mod, vary[0]) > 1:
        old = getattr(mod, vary[0])
        setattr(mod, vary[0], max(1, old // 2 - 1))
        torch.manual_seed(8)
        other = on(mod.get_inputs(), a.device, dtype)
        setattr(mod, vary[0], old)
        with torch.no_grad():
            oerr = max(rel_error(g, w) for g, w in zip(outputs(new(*other)), outputs(ref(*other))))
        check(f"a second size ({vary[0]} {old} -> {max(1, old // 2 - 1)}) after the first gives its own answer",
              oerr <= a.tolerance, f"error {oerr:.3g}")
    # Where the kernel cannot run directly, ModelNew goes through the
    # registered op: meta tensors get the fake implementation's shapes, and
    # torch.jit.trace records the op, not just the outputs' allocation.
    meta = [x.to("meta") if is_t(x) else x for x in inputs]
    with torch.no_grad():
        mout = outputs(build(mod.ModelNew).to("meta")(*meta))
    check("on meta tensors ModelNew gives the outputs' shapes (the registered op's fake)",
          [list(m.shape) for m in mout] == [list(w.shape) for w in want] and all(m.device.type == "meta" for m in mout))
    if all(is_t(x) for x in inputs):
        with torch.no_grad():
            traced = torch.jit.trace(new, tuple(inputs), check_trace=False)
            terr = max(rel_error(g, w) for g, w in zip(outputs(traced(*inputs)), want))
        check("torch.jit.trace records the op (the traced module matches)",
              "emile::" in str(traced.graph) and terr <= a.tolerance, f"error {terr:.3g}")
    else:
        print("skip - torch.jit.trace (get_inputs() gives a number, which tracing does not take)")
    wrong = [x.double() if is_t(x) and x.is_floating_point() else x for x in inputs]
    try:
        with torch.no_grad():
            new(*wrong)
        check("a float64 input is refused", False, "no error")
    except TypeError as e:
        check("a float64 input is refused with a TypeError naming the kernel's dtype", "built for" in str(e), str(e))
    if a.time:
        with torch.no_grad():
            t_ref = median_ms(ref, inputs, a.device)
            t_new = median_ms(new, inputs, a.device)
        print(f"time: Model {t_ref:.4g} ms, ModelNew {t_new:.4g} ms, {t_ref / t_new:.2f}x "
              f"({a.device}, {a.dtype or 'the problem dtype'})")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
