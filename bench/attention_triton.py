#!/usr/bin/env python3
"""attention_triton.py -- the Triton attention ladder beside its peers, in one run.

Builds every Triton rung of kernels/attention/triton (and a few tuning
variants) with the harness's own build step (python/emile/triton_aot.py:
cubin + generated emile_kernel wrapper + nvcc), and CUDA rung 7
(kernels/attention/cuda/rung7_wgmma.cu) with the harness's nvcc command, in
parallel; loads each .so through the kernel ABI (bench/attention_cuda.py's
ctypes structs), and then, in one process on one GPU:

  1. a correctness suite on every .so: ragged and small shapes, causal and
     not, GQA and MHA, bf16 and fp16, outputs poisoned with NaN; error
     against torch fp32 math;
  2. at each Qwen3-4B prefill shape (causal GQA bf16, Hq=32, Hkv=8, D=128;
     B x S = 1x1024 1x2048 1x4096 1x8192 4x2048 1x16384): every Triton
     variant, CUDA rung 7, torch SDPA's flash and cuDNN backends and
     flex_attention (torch.compile, causal block mask), each checked against
     torch fp32 math and timed with CUDA events (warm-up, median of reps,
     L2 flushed by a 256 MB write before each rep: attention_cuda.time_fn);
     the default t4 rung also through Triton's JIT launcher (the same kernel
     without the AOT wrapper) to show the wrapper costs nothing.

Results are written to $OUT/attention_triton.json after every shape (a run
cut short keeps what it measured); a table of TFLOP/s (best valid variant
per rung) closes the run.  FLOPs for causal = 4*B*Hq*S*S*D/2.

usage: python3 bench/attention_triton.py [--out DIR] [--shapes 1x1024,...]
         [--only REGEX] [--no-flex] [--no-suite] [--no-cuda] [--jobs N]
Budget: about 3-4 minutes on an H100 (builds ~1 min on 16 cores, flex
compiles ~10 s per shape).
"""
import argparse
import concurrent.futures as cf
import datetime
import json
import math
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "python", "emile"))
sys.dont_write_bytecode = True

import torch  # noqa: E402
import attention_cuda as AC  # noqa: E402  (the ABI structs, references, timing, peers)
from triton_launch import render  # noqa: E402

LADDER = os.path.join(ROOT, "kernels", "attention", "triton")
# Variants beyond each rung's defaults (name suffix -> parameters).
VARIANTS = {
    "t3_pipeline": [{"BLOCK_N": 128, "NUM_STAGES": 2}],
    "t4_tma": [{"BLOCK_N": 128, "NUM_STAGES": 2}, {"BLOCK_M": 64, "NUM_WARPS": 4}, {"NUM_STAGES": 4}],
    "t5_gqa": [{"GQA_PACK": 4}, {"GQA_PACK": 4, "BLOCK_N": 128, "NUM_STAGES": 2}],
}


def ladder():
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


def variant_name(rid, extra):
    return rid if not extra else rid + "__" + "_".join(f"{k}{v}" for k, v in extra.items())


def build_triton(rung, extra, out_dir, dtype, nvcc):
    """Render a rung with parameters and build it as the worker does."""
    name = variant_name(rung["id"], extra) + ("" if dtype == "bf16" else "_" + dtype)
    with open(os.path.join(LADDER, rung["file"])) as f:
        text = render(f.read(), dict(defaults(rung, 128, dtype), **extra))
    src = os.path.join(out_dir, name + ".py")
    with open(src, "w") as f:
        f.write(text)
    so = os.path.join(out_dir, name + ".so")
    cmd = [sys.executable, "-B", os.path.join(ROOT, "python", "emile", "triton_aot.py"), src, "-o", so,
           "-I", os.path.join(ROOT, "include"), "--arch", "90", "--nvcc", nvcc]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    return name, so if r.returncode == 0 else None, (r.stdout + r.stderr).strip(), time.time() - t0


def build_cuda(name, src, out_dir, nvcc):
    so = os.path.join(out_dir, name + ".so")
    cmd = [nvcc, "-O3", "-std=c++17", "-arch=sm_90a", "-shared", "-Xcompiler", "-fPIC", "-cudart", "shared",
           "-I" + os.path.join(ROOT, "include"), src, "-o", so]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    return name, so if r.returncode == 0 else None, (r.stdout + r.stderr).strip()[-2000:], time.time() - t0


def build_all(args, out_dir):
    nvcc = os.environ.get("EMILE_NVCC") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc")
                                            else "nvcc")
    jobs = []
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        for rung in ladder()["rungs"]:
            for extra in [{}] + VARIANTS.get(rung["id"], []):
                if args.only and not re.search(args.only, variant_name(rung["id"], extra)):
                    continue
                jobs.append(ex.submit(build_triton, rung, extra, out_dir, "bf16", nvcc))
            if not args.no_suite and (not args.only or re.search(args.only, rung["id"])):
                jobs.append(ex.submit(build_triton, rung, {}, out_dir, "f16", nvcc))
        if not args.no_cuda:
            jobs.append(ex.submit(build_cuda, "cuda_rung7_wgmma",
                                  os.path.join(ROOT, "kernels", "attention", "cuda", "rung7_wgmma.cu"), out_dir, nvcc))
        built = {}
        for j in jobs:
            name, so, log, secs = j.result()
            print(f"build {name}: {'ok' if so else 'FAILED'} in {secs:.1f} s"
                  + ("" if so else "\n  " + log.replace("\n", "\n  ")), flush=True)
            if so:
                built[name] = so
    return built


SUITE = [  # B, S, Hq, Hkv, D, causal, dtype[, packed qkv views]
    (2, 300, 8, 2, 128, True, torch.bfloat16),
    (2, 700, 8, 2, 128, True, torch.bfloat16, True),
    (1, 515, 4, 1, 128, False, torch.float16, True),
    (2, 300, 8, 2, 128, False, torch.bfloat16),
    (1, 777, 8, 1, 128, True, torch.float16),
    (3, 64, 4, 2, 128, True, torch.bfloat16),
    (1, 1, 4, 2, 128, True, torch.bfloat16),
]


def family(name):
    m = re.match(r"(t\d+_[a-z0-9]+|cuda_rung7_wgmma)", name)
    return m.group(1) if m else name


def jit_fn(q, k, v, o, causal):
    """The default t4 rung through Triton's own JIT launcher (triton_launch)."""
    from triton_launch import load, launch
    rung = next(r for r in ladder()["rungs"] if r["id"] == "t4_tma")
    mod, L = load(os.path.join(LADDER, rung["file"]), defaults(rung, q.shape[3], "bf16"))
    B, S, Hq, D = q.shape
    params = dict(batch=B, seq=S, q_heads=Hq, kv_heads=k.shape[2], head_dim=D, causal=int(causal),
                  scale=1 / math.sqrt(D))
    t = {"q": q, "k": k, "v": v, "o": o}
    return lambda: launch(mod, L, t, params)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="1x1024,1x2048,1x4096,1x8192,4x2048,1x16384")
    ap.add_argument("--only", default=None, help="regex on Triton variant names")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--no-suite", action="store_true")
    ap.add_argument("--no-cuda", action="store_true", help="skip CUDA rung 7")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 4)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "attn_triton"))
    args = ap.parse_args()
    os.makedirs(args.build_dir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.cuda.get_device_name()
    import triton
    print(f"device: {dev}; torch {torch.__version__}; triton {triton.__version__}; "
          f"{datetime.datetime.now().isoformat()}", flush=True)
    t0 = time.time()
    built = build_all(args, args.build_dir)
    print(f"builds: {len(built)} in {time.time() - t0:.0f} s", flush=True)
    kernels = {n: AC.Kernel(p) for n, p in sorted(built.items())}
    result = {"device": dev, "torch": torch.__version__, "triton": triton.__version__,
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
              "suite": {}, "shapes": []}
    out_path = os.path.join(args.out, "attention_triton.json")

    def save():
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1)

    bad = set()
    if not args.no_suite:
        print("\n== correctness suite (error vs torch fp32 math, NaN-poisoned outputs)", flush=True)
        for ci, spec in enumerate(SUITE):
            B, S, Hq, Hkv, D, causal, dt = spec[:7]
            packed = len(spec) > 7 and spec[7]
            q, k, v = AC.make_inputs(B, S, Hq, Hkv, D, dt, 2000 + ci, packed)
            ref = AC.torch_ref(q, k, v, causal)
            case = (f"B{B} S{S} Hq{Hq} Hkv{Hkv} D{D} {'causal' if causal else 'full'} {str(dt)[6:]}"
                    + (" packed-qkv" if packed else ""))
            fails, unsup = [], 0
            for nm, kern in kernels.items():
                want_f16 = nm.endswith("_f16")
                if nm.startswith("t") and want_f16 != (dt == torch.float16):
                    continue
                try:
                    o = AC.run_kernel(kern, q, k, v, causal)
                    e = AC.scaled_err(o, ref)
                    same = bool(torch.equal(o, AC.run_kernel(kern, q, k, v, causal)))
                    ok = e <= AC.TOL[dt] and same
                    status = f"{e:.1e}" + ("" if same else " NONDET")
                except RuntimeError as ex:
                    ok, status = None, f"unsupported ({ex})"
                    unsup += 1
                result["suite"].setdefault(nm, {})[case] = status
                if ok is False:
                    bad.add(nm)
                    fails.append(f"{nm}: FAIL {status}")
            print(f"{case}: {unsup} unsupported" + ("; " + "; ".join(fails) if fails else "; all ok"), flush=True)
        save()

    Hq, Hkv, D, dt, causal = 32, 8, 128, torch.bfloat16, True
    for shp in args.shapes.split(","):
        B, S = (int(x) for x in shp.split("x"))
        flops = 4 * B * Hq * S * S * D / 2
        print(f"\n== B={B} S={S} Hq={Hq} Hkv={Hkv} D={D} causal bf16  ({flops / 1e9:.1f} GFLOP)", flush=True)
        q, k, v = AC.make_inputs(B, S, Hq, Hkv, D, dt, S * 7 + B)
        ref = AC.torch_ref(q, k, v, causal)
        entry = {"B": B, "S": S, "Hq": Hq, "Hkv": Hkv, "D": D, "causal": causal, "dtype": "bf16",
                 "gflop": flops / 1e9, "results": {}}

        def record(nm, fn, out, note=None):
            r = {"err_vs_torch": AC.scaled_err(out, ref)}
            r["valid"] = r["err_vs_torch"] <= AC.TOL[dt]
            if note:
                r["note"] = note
            med, mn, mx, reps = AC.time_fn(fn)
            r.update(ms=med, ms_min=mn, ms_max=mx, reps=reps, tflops=flops / med / 1e9)
            entry["results"][nm] = r
            print(f"  {nm:52s} {r['tflops']:8.1f} TFLOP/s {r['ms']:9.4f} ms  err {r['err_vs_torch']:.1e}"
                  + ("" if r["valid"] else "  INVALID"), flush=True)

        for nm, kern in kernels.items():
            if nm.endswith("_f16"):
                continue
            try:
                o = torch.full(q.shape, float("nan"), dtype=dt, device="cuda")
                fn = (lambda kern=kern, o=o: kern.call(q, k, v, o, causal))
                fn()
                torch.cuda.synchronize()
                record(nm, fn, o)
            except RuntimeError as ex:
                print(f"  {nm}: {ex}", flush=True)
        if "t4_tma" in kernels:
            try:
                o = torch.full(q.shape, float("nan"), dtype=dt, device="cuda")
                fn = jit_fn(q, k, v, o, causal)
                fn()
                torch.cuda.synchronize()
                record("t4_tma (Triton JIT launch)", fn, o, "the same kernel launched by Triton's JIT")
            except Exception as ex:
                print(f"  t4 JIT: {type(ex).__name__}: {str(ex)[:200]}", flush=True)
        for be in ("flash", "cudnn"):
            try:
                fn, out, note = AC.sdpa_fn(be, q, k, v, causal)
                record(f"torch_sdpa_{be}", fn, out, note)
            except Exception as ex:
                print(f"  torch_sdpa_{be}: {type(ex).__name__}: {str(ex)[:200]}", flush=True)
        if not args.no_flex:
            try:
                fn, out, note = AC.flex_fn(q, k, v, causal)
                record("torch_flex_attention", fn, out, note)
            except Exception as ex:
                print(f"  flex_attention: {type(ex).__name__}: {str(ex)[:200]}", flush=True)
        result["shapes"].append(entry)
        del q, k, v, ref
        torch.cuda.empty_cache()
        save()

    print("\n== summary: TFLOP/s (best valid variant per rung), causal GQA bf16 Hq=32 Hkv=8 D=128")
    cols = [f"{e['B']}x{e['S']}" for e in result["shapes"]]
    rows = {}
    for e in result["shapes"]:
        c = f"{e['B']}x{e['S']}"
        for nm, r in e["results"].items():
            if "tflops" not in r or not r["valid"]:
                continue
            key = family(nm) if " " not in nm else nm
            cur = rows.setdefault(key, {}).get(c)
            if cur is None or r["tflops"] > cur[0]:
                rows[key][c] = (r["tflops"], nm)
    print(f"{'kernel':30s}" + "".join(f"{c:>10s}" for c in cols))
    for key in sorted(rows):
        print(f"{key:30s}" + "".join(f"{rows[key][c][0]:10.1f}" if c in rows[key] else f"{'-':>10s}" for c in cols))
    result["summary"] = {k: {c: {"tflops": v[0], "variant": v[1]} for c, v in d.items()} for k, d in rows.items()}
    print("\nbest variants:")
    for key in sorted(rows):
        if key.startswith("t"):
            print(f"  {key}: " + ", ".join(f"{c}={rows[key][c][1]}" for c in cols if c in rows[key]))
    if bad:
        print("suite failures:", sorted(bad))
    save()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
