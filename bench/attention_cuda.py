#!/usr/bin/env python3
"""attention_cuda.py -- validate and time the CUDA attention kernels of Emile.

Loads every kernel shared object built by bench/build_cuda_kernels.sh through
the kernel ABI (include/emile.h, rebuilt here with ctypes), on torch tensors:

  1. correctness suite, every kernel: small and ragged shapes (S not a
     multiple of any tile), causal and not, GQA and MHA, bf16 and fp16,
     head_dim 64, 128 and 256; outputs poisoned with NaN first; error against
     torch fp32 math on the same inputs;
  2. per benchmark shape (causal GQA bf16, Hq=32, Hkv=8, D=128): every kernel
     is checked against the naive reference (kernels/attention/cuda/reference.cu)
     and against torch fp32 math, then timed with CUDA events (warm-up, median
     of many reps, L2 flushed before each rep by writing a 256 MB buffer),
     beside torch SDPA (FLASH_ATTENTION and CUDNN_ATTENTION backends) and
     flex_attention (torch.compile, causal block mask).

Errors are max|out - ref| / max|ref| (scaled by the reference's magnitude).
FLOPs for causal = 4*B*Hq*S*S*D/2.  Prints a table and writes JSON to --out.

usage: python3 bench/attention_cuda.py --lib-dir build/attn_cuda --out $OUT
         [--shapes 1x1024,1x2048,...] [--only REGEX] [--no-flex] [--no-suite]
"""
import argparse
import ctypes
import datetime
import glob
import json
import math
import os
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# ---- the kernel ABI (include/emile.h), version 1 ---------------------------
EMILE_ABI_VERSION = 1
DT = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


class EmileTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("name", ctypes.c_char_p),
                ("dtype", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * 8), ("strides", ctypes.c_int64 * 8)]


class EmileParam(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_double)]


class EmileArgs(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_int32), ("n_tensors", ctypes.c_int32),
                ("tensors", ctypes.POINTER(EmileTensor)), ("n_params", ctypes.c_int32),
                ("params", ctypes.POINTER(EmileParam)), ("stream", ctypes.c_void_p)]


class Kernel:
    """One built .so; call(q, k, v, o, causal) launches it on the current stream."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)[:-3]
        self.lib = ctypes.CDLL(path)
        self.fn = self.lib.emile_kernel
        self.fn.argtypes = [ctypes.POINTER(EmileArgs)]
        self.fn.restype = ctypes.c_int
        self._cache = {}

    def args(self, q, k, v, o, causal):
        key = (q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), causal,
               torch.cuda.current_stream().cuda_stream)
        if key in self._cache:
            return self._cache[key]
        ts = (EmileTensor * 4)()
        for i, (nm, t) in enumerate((("q", q), ("k", k), ("v", v), ("o", o))):
            ts[i].data = t.data_ptr()
            ts[i].name = nm.encode()
            ts[i].dtype = DT[t.dtype]
            ts[i].ndim = 4
            for d in range(4):
                ts[i].shape[d] = t.shape[d]
                ts[i].strides[d] = t.stride(d)
        B, S, Hq, D = q.shape
        vals = [("batch", B), ("seq", S), ("q_heads", Hq), ("kv_heads", k.shape[2]),
                ("head_dim", D), ("causal", 1 if causal else 0), ("scale", 1.0 / math.sqrt(D))]
        ps = (EmileParam * len(vals))()
        for i, (nm, val) in enumerate(vals):
            ps[i].name = nm.encode()
            ps[i].value = float(val)
        a = EmileArgs(EMILE_ABI_VERSION, 4, ts, len(vals), ps,
                      torch.cuda.current_stream().cuda_stream)
        keep = (a, ts, ps)
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[key] = keep
        return keep

    def call(self, q, k, v, o, causal):
        a = self.args(q, k, v, o, causal)[0]
        rc = self.fn(ctypes.byref(a))
        if rc != 0:
            raise RuntimeError(f"{self.name}: emile_kernel returned {rc}")


# ---- references -------------------------------------------------------------
def torch_ref(q, k, v, causal, heads_per_chunk=None):
    """fp32 math on the same inputs, chunked over heads: [B,S,Hq,D] -> fp32."""
    B, S, Hq, D = q.shape
    Hkv = k.shape[2]
    G = Hq // Hkv
    out = torch.empty(B, S, Hq, D, dtype=torch.float32, device=q.device)
    if heads_per_chunk is None:
        heads_per_chunk = max(1, min(Hq, (1 << 31) // (S * S * 4)))
    mask = None
    if causal:
        mask = torch.ones(S, S, dtype=torch.bool, device=q.device).triu_(1)
    for b in range(B):
        for h0 in range(0, Hq, heads_per_chunk):
            hs = list(range(h0, min(Hq, h0 + heads_per_chunk)))
            qh = q[b, :, hs].float().transpose(0, 1)                       # [h,S,D]
            kh = k[b, :, [h // G for h in hs]].float().transpose(0, 1)
            vh = v[b, :, [h // G for h in hs]].float().transpose(0, 1)
            s = torch.matmul(qh, kh.transpose(1, 2)) * (1.0 / math.sqrt(D))
            if mask is not None:
                s.masked_fill_(mask, float("-inf"))
            s = torch.softmax(s, dim=-1)
            out[b, :, hs] = torch.matmul(s, vh).transpose(0, 1)
            del s
    return out


def scaled_err(out, ref):
    """max|out-ref| / max|ref|; inf when out holds a NaN/inf."""
    o = out.float()
    if not torch.isfinite(o).all():
        return float("inf")
    return ((o - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def make_inputs(B, S, Hq, Hkv, D, dtype, seed, packed=False):
    """Random normal inputs; packed=True gives strided views of one fused
    [B, S, Hq + 2 Hkv, D] qkv buffer (what an engine's QKV projection makes)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    if packed:
        qkv = torch.randn(B, S, Hq + 2 * Hkv, D, device="cuda", dtype=torch.float32, generator=g).to(dtype)
        return qkv[:, :, :Hq], qkv[:, :, Hq:Hq + Hkv], qkv[:, :, Hq + Hkv:]
    q = torch.randn(B, S, Hq, D, device="cuda", dtype=torch.float32, generator=g).to(dtype)
    k = torch.randn(B, S, Hkv, D, device="cuda", dtype=torch.float32, generator=g).to(dtype)
    v = torch.randn(B, S, Hkv, D, device="cuda", dtype=torch.float32, generator=g).to(dtype)
    return q, k, v


def run_kernel(kern, q, k, v, causal):
    o = torch.full(q.shape, float("nan"), dtype=q.dtype, device=q.device)
    kern.call(q, k, v, o, causal)
    torch.cuda.synchronize()
    return o


# ---- timing -------------------------------------------------------------------
_FLUSH = None


def time_fn(fn, min_reps=10, max_reps=100, budget_s=0.6):
    """Median ms over reps; L2 flushed (256 MB write) before each rep."""
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.empty(64 * 1024 * 1024, dtype=torch.float32, device="cuda")
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    est = time.perf_counter() - t0
    reps = int(max(min_reps, min(max_reps, budget_s / max(est, 1e-6))))
    if est > 0.5:
        reps = 3
    for _ in range(2):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        _FLUSH.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    ts = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
    return statistics.median(ts), ts[0], ts[-1], reps


# ---- peers --------------------------------------------------------------------
def sdpa_fn(backend, q, k, v, causal):
    from torch.nn.attention import sdpa_kernel, SDPBackend
    be = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}[backend]
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    note = "enable_gqa"

    def f_gqa():
        with sdpa_kernel(be):
            return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, enable_gqa=True)
    try:
        out = f_gqa()
        torch.cuda.synchronize()
        return f_gqa, out.transpose(1, 2), note
    except Exception:
        G = q.shape[2] // k.shape[2]
        ke = kt.repeat_interleave(G, dim=1)
        ve = vt.repeat_interleave(G, dim=1)
        note = "kv expanded to Hq heads (enable_gqa unsupported)"

        def f_exp():
            with sdpa_kernel(be):
                return F.scaled_dot_product_attention(qt, ke, ve, is_causal=causal)
        out = f_exp()
        torch.cuda.synchronize()
        return f_exp, out.transpose(1, 2), note


_FLEX = {}


def flex_fn(q, k, v, causal):
    from torch.nn.attention.flex_attention import flex_attention, create_block_mask
    if "fn" not in _FLEX:
        _FLEX["fn"] = torch.compile(flex_attention, dynamic=False)
    S = q.shape[1]

    def causal_mask(b, h, qi, kv):
        return qi >= kv
    bm = create_block_mask(causal_mask, B=None, H=None, Q_LEN=S, KV_LEN=S) if causal else None
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def f():
        return _FLEX["fn"](qt, kt, vt, block_mask=bm, enable_gqa=True)
    out = f()
    torch.cuda.synchronize()
    return f, out.transpose(1, 2), "torch.compile(flex_attention), causal block mask"


# ---- main -----------------------------------------------------------------------
SUITE = [
    # B, S, Hq, Hkv, D, causal, dtype[, packed qkv views]
    (2, 300, 8, 2, 128, True, torch.bfloat16),
    (2, 700, 8, 2, 128, True, torch.bfloat16, True),
    (1, 515, 4, 1, 128, False, torch.float16, True),
    (2, 300, 8, 2, 128, False, torch.bfloat16),
    (1, 1000, 4, 4, 64, True, torch.bfloat16),
    (1, 777, 8, 1, 128, True, torch.float16),
    (1, 129, 6, 3, 64, False, torch.float16),
    (3, 64, 4, 2, 128, True, torch.bfloat16),
    (1, 1, 4, 2, 128, True, torch.bfloat16),
    (1, 333, 8, 2, 256, True, torch.bfloat16),
    (2, 200, 4, 1, 256, False, torch.float16),
    (1, 517, 8, 2, 64, True, torch.float16),
]
TOL = {torch.bfloat16: 2e-2, torch.float16: 4e-3}


def rung_of(name):
    m = re.match(r"(reference|rung\d+)", name)
    return m.group(1) if m else name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib-dir", default="build/attn_cuda")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shapes", default="1x1024,1x2048,1x4096,1x8192,4x2048,1x16384")
    ap.add_argument("--only", default=None, help="regex on kernel names")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--no-suite", action="store_true")
    ap.add_argument("--naive-max-seq", type=int, default=8192)
    ap.add_argument("--slow-max-seq", type=int, default=8192,
                    help="largest S at which rungs 1-2 are timed")
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.cuda.get_device_name()
    print(f"device: {dev}; torch {torch.__version__}; {datetime.datetime.now().isoformat()}", flush=True)

    paths = sorted(glob.glob(os.path.join(args.lib_dir, "*.so")))
    kernels = {}
    for p in paths:
        nm = os.path.basename(p)[:-3]
        if args.only and not re.search(args.only, nm) and nm != "reference":
            continue
        try:
            kernels[nm] = Kernel(p)
        except OSError as e:
            print(f"cannot load {p}: {e}")
    if "reference" not in kernels:
        print("no reference.so in", args.lib_dir)
    result = {"device": dev, "torch": torch.__version__,
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(sys.argv), "suite": {}, "shapes": []}

    # 1. correctness suite
    bad = set()
    if not args.no_suite:
        print("\n== correctness suite (error vs torch fp32 math, NaN-poisoned outputs)", flush=True)
        for ci, spec in enumerate(SUITE):
            B, S, Hq, Hkv, D, causal, dt = spec[:7]
            packed = len(spec) > 7 and spec[7]
            q, k, v = make_inputs(B, S, Hq, Hkv, D, dt, 1000 + ci, packed)
            ref = torch_ref(q, k, v, causal)
            case = (f"B{B} S{S} Hq{Hq} Hkv{Hkv} D{D} {'causal' if causal else 'full'} {str(dt)[6:]}"
                    + (" packed-qkv" if packed else ""))
            line, unsup = [], 0
            for nm, kern in kernels.items():
                try:
                    o = run_kernel(kern, q, k, v, causal)
                    e = scaled_err(o, ref)
                    o2 = run_kernel(kern, q, k, v, causal)   # race check: same inputs, same bits?
                    same = bool(torch.equal(o, o2))
                    ok = e <= TOL[dt] and same
                    status = f"{e:.1e}" + ("" if same else " NONDET")
                except RuntimeError as ex:
                    ok, status = None, f"unsupported ({ex})"
                    unsup += 1
                result["suite"].setdefault(nm, {})[case] = status
                if ok is False:
                    bad.add(nm)
                    line.append(f"{nm}: FAIL {status}")
            print(f"{case}: {len(kernels) - len(line) - unsup} ok, {unsup} unsupported"
                  + ("; " + "; ".join(line) if line else ""), flush=True)
        if bad:
            print("FAILED suite:", sorted(bad))

    # 2. benchmark shapes
    Hq, Hkv, D, dt, causal = 32, 8, 128, torch.bfloat16, True
    for shp in args.shapes.split(","):
        B, S = (int(x) for x in shp.split("x"))
        flops = 4 * B * Hq * S * S * D / 2
        print(f"\n== B={B} S={S} Hq={Hq} Hkv={Hkv} D={D} causal bf16  ({flops / 1e9:.1f} GFLOP)", flush=True)
        q, k, v = make_inputs(B, S, Hq, Hkv, D, dt, S * 7 + B)
        ref = torch_ref(q, k, v, causal)
        naive = None
        entry = {"B": B, "S": S, "Hq": Hq, "Hkv": Hkv, "D": D, "causal": causal,
                 "dtype": "bf16", "gflop": flops / 1e9, "results": {}}
        if "reference" in kernels and S <= args.naive_max_seq:
            naive = run_kernel(kernels["reference"], q, k, v, causal).float()
            entry["naive_vs_torch"] = scaled_err(naive, ref)

        def record(nm, fn, out, note=None, timeit=True):
            r = {"err_vs_torch": scaled_err(out, ref)}
            if naive is not None:
                r["err_vs_naive"] = scaled_err(out, naive)
            r["valid"] = r["err_vs_torch"] <= TOL[dt]
            if note:
                r["note"] = note
            if timeit:
                med, mn, mx, reps = time_fn(fn)
                r.update(ms=med, ms_min=mn, ms_max=mx, reps=reps, tflops=flops / med / 1e9)
            entry["results"][nm] = r
            t = f"{r['tflops']:8.1f} TFLOP/s {r['ms']:9.4f} ms" if timeit else " " * 32
            print(f"  {nm:58s} {t}  err {r['err_vs_torch']:.1e}"
                  + (f" / naive {r['err_vs_naive']:.1e}" if 'err_vs_naive' in r else "")
                  + ("" if r["valid"] else "  INVALID"), flush=True)

        for nm, kern in kernels.items():
            if nm == "reference" and S > args.naive_max_seq:
                continue
            if re.match(r"rung[12]_", nm) and S > args.slow_max_seq:
                continue
            try:
                o = torch.full(q.shape, float("nan"), dtype=dt, device="cuda")
                fn = (lambda kern=kern, o=o: kern.call(q, k, v, o, causal))
                fn()
                torch.cuda.synchronize()
                record(nm, fn, o)
            except RuntimeError as ex:
                print(f"  {nm}: {ex}")
        for be in ("flash", "cudnn"):
            try:
                fn, out, note = sdpa_fn(be, q, k, v, causal)
                record(f"torch_sdpa_{be}", fn, out, note)
            except Exception as ex:
                print(f"  torch_sdpa_{be}: {type(ex).__name__}: {str(ex)[:200]}")
        if not args.no_flex:
            try:
                fn, out, note = flex_fn(q, k, v, causal)
                record("torch_flex_attention", fn, out, note)
            except Exception as ex:
                print(f"  flex_attention: {type(ex).__name__}: {str(ex)[:200]}")
        result["shapes"].append(entry)
        del q, k, v, ref, naive
        torch.cuda.empty_cache()
        with open(os.path.join(args.out, "attention_cuda.json"), "w") as f:
            json.dump(result, f, indent=1)

    # summary: best variant per rung, peers
    print("\n== summary: TFLOP/s (best valid variant per rung), causal GQA bf16 Hq=32 Hkv=8 D=128")
    cols = [f"{e['B']}x{e['S']}" for e in result["shapes"]]
    rows = {}
    for e in result["shapes"]:
        for nm, r in e["results"].items():
            if "tflops" not in r or not r["valid"]:
                continue
            key = rung_of(nm) if nm.startswith(("rung", "reference")) else nm
            cur = rows.setdefault(key, {}).get(f"{e['B']}x{e['S']}")
            if cur is None or r["tflops"] > cur[0]:
                rows[key][f"{e['B']}x{e['S']}"] = (r["tflops"], nm)
    print(f"{'kernel':24s}" + "".join(f"{c:>10s}" for c in cols))
    for key in sorted(rows):
        print(f"{key:24s}" + "".join(f"{rows[key][c][0]:10.1f}" if c in rows[key] else f"{'-':>10s}" for c in cols))
    result["summary"] = {k: {c: {"tflops": v[0], "variant": v[1]} for c, v in d.items()} for k, d in rows.items()}
    print("\nbest variants:")
    for key in sorted(rows):
        if key.startswith("rung"):
            print(f"  {key}: " + ", ".join(f"{c}={rows[key][c][1].split('__', 1)[-1] if '__' in rows[key][c][1] else 'defaults'}" for c in cols if c in rows[key]))
    with open(os.path.join(args.out, "attention_cuda.json"), "w") as f:
        json.dump(result, f, indent=1)
    if bad:
        print("suite failures:", sorted(bad))


if __name__ == "__main__":
    main()
