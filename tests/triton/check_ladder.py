#!/usr/bin/env python3
"""check_ladder.py -- the Triton attention ladder (kernels/attention/triton),
checked on a machine without a GPU:

  compile    every rung, at its defaults with the task's head dim and dtype
             (bf16 and f16 at head dim 128, bf16 at 64), compiles to a cubin
             for sm_90 through python/emile/triton_aot.py, uses the tensor
             cores (HGMMA in the SASS where cuobjdump is at hand) and does
             not spill; on the top rungs (the ones the agent tunes) every
             single-parameter step from the defaults compiles too, or fails
             only for shared memory;
  numerics   every rung, at its defaults and with small blocks (several
             query and key blocks, ragged tails), matches fp32 attention
             computed by torch under TRITON_INTERPRET=1: causal and not,
             GQA and MHA, ragged sequence lengths, batch 2; fp16 (Triton
             3.6's interpreter computes bf16 dots wrongly: 2e10 errors on a
             16x16 product, so bf16 runs only on the GPU).

usage: check_ladder.py [compile|numerics] (both by default)
Prints one line per check and "N passed, N failed"; exit 1 on a failure.
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python", "emile"))
LADDER = os.path.join(ROOT, "kernels", "attention", "triton")
TOL = 2e-2          # the bench's bf16 bound; fp16 results sit near 1e-3


def manifest():
    with open(os.path.join(LADDER, "ladder.json")) as f:
        return json.load(f)


def defaults(rung, head_dim=128, dtype="bf16"):
    p = {}
    for spec in rung["params"]:
        if spec.get("from_task") == "head_dim":
            p[spec["name"]] = head_dim
        elif spec.get("from_task") == "dtype":
            p[spec["name"]] = dtype
        elif "default" in spec:
            p[spec["name"]] = spec["default"]
    return p


def cuobjdump():
    import triton
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    return path if os.access(path, os.X_OK) else None


def check_compile(results):
    from triton_launch import render
    import triton_aot
    tool = cuobjdump()
    work = tempfile.mkdtemp(prefix="emile-ladder-")
    for rung in manifest()["rungs"]:
        with open(os.path.join(LADDER, rung["file"])) as f:
            text = f.read()
        cases = [(defaults(rung, hd, dt), True) for hd, dt in ((128, "bf16"), (128, "f16"), (64, "bf16"))]
        base = defaults(rung)
        # The agent tunes the best rung: every step from the top rungs' defaults.
        for spec in rung["params"] if rung["rung"] >= 4 else []:
            for v in spec.get("values", []):
                if v != spec.get("default"):
                    cases.append((dict(base, **{spec["name"]: v}), False))
        for params, must in cases:
            src = os.path.join(work, rung["file"])
            with open(src, "w") as f:
                f.write(render(text, params))
            out = os.path.join(work, "k.so")
            label = f"compile {rung['id']} " + " ".join(f"{k}={v}" for k, v in params.items())
            import io
            import contextlib
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = triton_aot.main([src, "-o", out, "-I", os.path.join(ROOT, "include"), "--arch", "90",
                                      "--cubin-only"])
            msg = err.getvalue().strip()
            if rc != 0:
                ok = not must and "out of resource: shared memory" in msg
                results.append((ok, label + ("  (shared memory: expected for this step)" if ok else "\n  " + msg)))
                continue
            note = ""
            if tool and must:
                cubin = out[:-3] + ".cubin"
                ru = subprocess.run([tool, "-res-usage", cubin], capture_output=True, text=True).stdout
                sass = subprocess.run([tool, "-sass", cubin], capture_output=True, text=True).stdout
                m = re.search(r"REG:(\d+) STACK:(\d+)", ru)
                hg = sass.count("HGMMA")
                note = f"  regs {m.group(1)} stack {m.group(2)} HGMMA {hg}" if m else ""
                if not m or int(m.group(2)) > 0 or hg == 0:
                    results.append((False, label + note + " (expected no stack and HGMMA)"))
                    continue
            results.append((True, label + note))


def torch_ref(q, k, v, causal, scale):
    import torch
    B, S, Hq, D = q.shape
    G = Hq // k.shape[2]
    qf = q.float().transpose(1, 2)
    kf = k.float().repeat_interleave(G, 2).transpose(1, 2)
    vf = v.float().repeat_interleave(G, 2).transpose(1, 2)
    s = qf @ kf.transpose(-1, -2) * scale
    if causal:
        s = s.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), float("-inf"))
    return (s.softmax(-1) @ vf).transpose(1, 2)


def check_numerics(results):
    import torch
    from triton_launch import load, launch
    shapes = [  # B, S, Hq, Hkv, D
        (2, 67, 4, 2, 64),
        (1, 33, 2, 2, 32),
    ]
    for rung in manifest()["rungs"]:
        small = {"BLOCK_M": 32, "BLOCK_N": 16}
        for blocks in ({}, small):
            for (B, S, Hq, Hkv, D) in shapes if blocks else shapes[:1]:
                for causal in (1, 0) if D == 64 else (1,):
                    params = dict(defaults(rung, D, "f16"), **blocks)
                    if "GQA_PACK" in params and (Hq // Hkv) % params["GQA_PACK"]:
                        params["GQA_PACK"] = 1
                    g = torch.Generator().manual_seed(S * 10 + causal)
                    q = torch.randn(B, S, Hq, D, generator=g).half()
                    k = torch.randn(B, S, Hkv, D, generator=g).half()
                    v = torch.randn(B, S, Hkv, D, generator=g).half()
                    o = torch.full_like(q, float("nan"))
                    label = (f"numerics {rung['id']} B{B} S{S} Hq{Hq} Hkv{Hkv} D{D} "
                             f"{'causal' if causal else 'full'} " + " ".join(f"{k_}={v_}" for k_, v_ in params.items()
                                                                            if k_ not in ("HEAD_DIM", "DTYPE")))
                    try:
                        mod, L = load(os.path.join(LADDER, rung["file"]), params)
                        launch(mod, L, {"q": q, "k": k, "v": v, "o": o},
                               dict(batch=B, seq=S, q_heads=Hq, kv_heads=Hkv, head_dim=D, causal=causal,
                                    scale=1 / math.sqrt(D)))
                    except Exception as e:  # the check fails, with the reason
                        results.append((False, f"{label}: {type(e).__name__}: {str(e)[:300]}"))
                        continue
                    ref = torch_ref(q, k, v, causal, 1 / math.sqrt(D))
                    of = o.float()
                    err = float("inf") if not torch.isfinite(of).all() else \
                        ((of - ref).abs().max() / ref.abs().max()).item()
                    results.append((err <= TOL, f"{label}: error {err:.2e}"))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "all"
    if mode == "all":
        # Separate processes: TRITON_INTERPRET is read when kernels are defined.
        rc = 0
        passed = failed = 0
        for m in ("compile", "numerics"):
            env = dict(os.environ)
            env.pop("TRITON_INTERPRET", None)
            if m == "numerics":
                env["TRITON_INTERPRET"] = "1"
            r = subprocess.run([sys.executable, "-B", __file__, m], env=env, capture_output=True, text=True)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr[-3000:] if r.returncode else "")
            mm = re.search(r"^(\d+) passed, (\d+) failed", r.stdout, re.M)
            if mm:
                passed += int(mm.group(1))
                failed += int(mm.group(2))
            if r.returncode != 0:
                rc = 1
                if not mm:
                    failed += 1
        print(f"{passed} passed, {failed} failed")
        return rc
    results = []
    if mode == "numerics":
        check_numerics(results)
    else:
        check_compile(results)
    for ok, line in results:
        print(("ok   " if ok else "FAIL ") + line, flush=True)
    bad = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - bad} passed, {bad} failed")
    return 1 if bad or not results else 0


if __name__ == "__main__":
    sys.exit(main())
