#!/usr/bin/env python3
"""op_ladders_cuda.py -- check and time the decode ops' CUDA kernels: each
op's reference and every rung of the builtin agent's ladder at its defaults
(kernels/<op>/cuda/ladder.json; the GEMV family's rungs are shared files in
kernels/gemv/cuda/), on a GPU, through the kernel ABI (include/emile.h,
rebuilt here with ctypes) on torch tensors.

  1. numerics (--check, and before every timing): each kernel against an
     fp32 torch evaluation of the op on the same inputs, outputs poisoned
     with NaN first, at the Qwen3-4B shapes and at ragged ones (K not a
     multiple of 8: the rungs' scalar path; several tokens; a cache length
     below the cache size); error = max|out - ref| / max|ref|, bf16 bound
     2e-2; the argmax exact (or, where the two best logits are closer than
     the fp32 rounding of the sum, either of them);
  2. timing (unless --check): Qwen3-4B decode shapes (hidden 2560, 32/8
     heads of 128, SwiGLU 9728, vocab 151936; decode attention over caches
     of 1024 and 4096 positions), CUDA events around each call, the L2
     flushed (a 128 MB write) before each of --reps runs, median; bytes
     over time against the copy bandwidth measured here (a 1 GiB
     device-to-device copy, bytes read plus written) -- the floor of a
     bandwidth-bound op; beside torch's own (F.linear, i.e. cuBLAS; SDPA
     with enable_gqa for decode attention).

Prints a table per op and writes OUT/op_ladders.json and .md after every
op (a run cut short keeps what it measured).  Exit 0 when every kernel
passed its checks, 3 when one did not (the table says which), 1 on errors.

usage (repository root, GPU host):
  python3 bench/op_ladders_cuda.py [--lib-dir build/op-kernels] [--out DIR]
      [--ops decode_attention,qkv_proj,...] [--reps 30] [--check]
Kernels are taken from --lib-dir (NAME.so, as bench/gpu_session.sh
engine-build makes them: <op>_reference.so, gemv_rungN_*.so,
decode_attention_rungN_*.so) or built there with the harness's nvcc line.
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OPS = ["decode_attention", "qkv_proj", "o_proj", "gate_up", "down_proj", "lm_head"]
NVCC_FLAGS = ["-O3", "-arch=sm_90a", "-std=c++17", "-shared", "-Xcompiler", "-fPIC",
              "-cudart", "shared"]
SHAPE = dict(hidden=2560, q_heads=32, kv_heads=8, head_dim=128, inter=9728, vocab=151936)


# ---- which kernels ---------------------------------------------------------------
def kernel_sources(op):
    """[(name, source)] of op: its reference, then its ladder's rungs."""
    d = os.path.join(REPO, "kernels", op, "cuda")
    out = [(f"{op}_reference", os.path.join(d, "reference.cu"))]
    lad = json.load(open(os.path.join(d, "ladder.json")))
    for r in sorted(lad["rungs"], key=lambda r: r["rung"]):
        src = os.path.normpath(os.path.join(d, r["file"]))
        family = os.path.basename(os.path.dirname(os.path.dirname(src)))
        out.append((f"{family}_{r['id']}", src))
    return out


def so_path(lib_dir, name):
    return os.path.join(lib_dir, name + ".so")


def build_all(ops, lib_dir, rebuild):
    """Build every missing .so (in parallel: nvcc is slow on the big rungs)."""
    todo = {}
    for op in ops:
        for name, src in kernel_sources(op):
            so = so_path(lib_dir, name)
            if rebuild or not os.path.exists(so):
                todo[name] = (src, so)
    os.makedirs(lib_dir, exist_ok=True)

    def one(item):
        name, (src, so) = item
        cmd = [os.environ.get("NVCC", "nvcc")] + NVCC_FLAGS + \
            ["-I" + os.path.join(REPO, "include"), src, "-o", so]
        p = subprocess.run(cmd, capture_output=True, text=True)
        return name, p.returncode, p.stderr[-2000:]

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(todo)))) as ex:
        for name, rc, errtxt in ex.map(one, todo.items()):
            print(f"build {name}: {'ok' if rc == 0 else 'FAILED'}", flush=True)
            if rc:
                sys.stderr.write(errtxt)


# ---- the kernel ABI (include/emile.h), version 1 ----------------------------------
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
    def __init__(self, path):
        self.path = path
        self.lib = ctypes.CDLL(path)
        self.fn = self.lib.emile_kernel
        self.fn.argtypes = [ctypes.POINTER(EmileArgs)]
        self.fn.restype = ctypes.c_int


def abi_args(tensors, params):
    """EmileArgs over [(name, torch tensor)] and {name: value}; keeps the
    ctypes objects alive in the returned tuple."""
    import torch
    dt = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.int32: 4}
    ts = (EmileTensor * len(tensors))()
    names = []
    for i, (nm, t) in enumerate(tensors):
        names.append(nm.encode())
        ts[i].data = t.data_ptr()
        ts[i].name = names[-1]
        ts[i].dtype = dt[t.dtype]
        ts[i].ndim = t.dim()
        for d in range(t.dim()):
            ts[i].shape[d] = t.shape[d]
            ts[i].strides[d] = t.stride(d)
    pn = [k.encode() for k in params]
    ps = (EmileParam * len(params))(*[EmileParam(n, float(v)) for n, v in zip(pn, params.values())])
    a = EmileArgs(1, len(tensors), ts, len(params), ps, torch.cuda.current_stream().cuda_stream)
    return (a, ts, ps, names, pn)


# ---- the ops: inputs, outputs, an fp32 oracle, bytes --------------------------------
def make_problem(op, p, dtype, gen):
    """(inputs [(name, t)], outputs [(name, t)], params {}, oracle() -> {name: fp32},
    bytes moved at the least)."""
    import torch
    dev = "cuda"

    def rnd(*shape, std=1.0):
        return (torch.randn(*shape, generator=gen, device=dev) * std).to(dtype)

    el = torch.finfo(dtype).bits // 8
    if op == "decode_attention":
        Hq, Hkv, D, S, L = p["q_heads"], p["kv_heads"], p["head_dim"], p["seq"], p["kv_len"]
        q, k, v = rnd(Hq, D), rnd(S, Hkv, D), rnd(S, Hkv, D)
        ln = torch.tensor([L], dtype=torch.int32, device=dev)
        o = torch.empty(Hq, D, dtype=dtype, device=dev)

        def oracle():
            G = Hq // Hkv
            kk = k[:L].float().repeat_interleave(G, dim=1)          # [L, Hq, D]
            vv = v[:L].float().repeat_interleave(G, dim=1)
            s = torch.einsum("hd,jhd->hj", q.float(), kk) / math.sqrt(D)
            return {"o": torch.einsum("hj,jhd->hd", torch.softmax(s, dim=-1), vv)}
        return ([("q", q), ("k", k), ("v", v), ("kv_len", ln)], [("o", o)],
                dict(q_heads=Hq, kv_heads=Hkv, head_dim=D, seq=S), oracle,
                el * (2 * L * Hkv * D + 2 * Hq * D) + 4)
    n, H = p["n"], p["hidden"]
    x = rnd(n, H if op not in ("o_proj", "down_proj") else p["k"])
    if op == "qkv_proj":
        Hq, Hkv, D, R = p["q_heads"], p["kv_heads"], p["head_dim"], p["rope_rows"]
        M = (Hq + 2 * Hkv) * D
        w = rnd(M, H, std=0.02)
        qn, kn = rnd(D, std=0.5) + 1, rnd(D, std=0.5) + 1
        ang = torch.rand(R, D // 2, generator=gen, device=dev) * 6.283
        rope = torch.stack([torch.cos(ang), torch.sin(ang)], dim=-1).contiguous()
        pos = torch.tensor([p["pos"]], dtype=torch.int32, device=dev)
        outs = [("q", torch.empty(n, Hq, D, dtype=dtype, device=dev)),
                ("k", torch.empty(n, Hkv, D, dtype=dtype, device=dev)),
                ("v", torch.empty(n, Hkv, D, dtype=dtype, device=dev))]

        def oracle():
            y = (x.float() @ w.float().t()).to(dtype).float().view(n, Hq + 2 * Hkv, D)
            res = {}
            for name, lo, hi, nw in (("q", 0, Hq, qn), ("k", Hq, Hq + Hkv, kn)):
                h = y[:, lo:hi]
                h = h * torch.rsqrt((h * h).mean(-1, keepdim=True) + 1e-6) * nw.float()
                cs = rope[p["pos"]:p["pos"] + n]                     # [n, D/2, 2]
                c, s = cs[..., 0][:, None], cs[..., 1][:, None]
                a, b = h[..., :D // 2], h[..., D // 2:]
                res[name] = torch.cat([a * c - b * s, b * c + a * s], dim=-1)
            res["v"] = y[:, Hq + Hkv:]
            return res
        return ([("x", x), ("w", w), ("q_norm", qn), ("k_norm", kn), ("rope", rope),
                 ("pos", pos)], outs,
                dict(n=n, hidden=H, q_heads=Hq, kv_heads=Hkv, head_dim=D, rope_rows=R, eps=1e-6),
                oracle, el * (M * H + n * H + n * M) + 4 * n * D)
    if op in ("o_proj", "down_proj"):
        K = p["k"]
        w = rnd(H, K, std=0.02)
        y = torch.empty(n, H, dtype=torch.float32, device=dev)
        kname = "q_dim" if op == "o_proj" else "inter"
        return ([("x", x), ("w", w)], [("y", y)], {"n": n, "hidden": H, kname: K},
                lambda: {"y": x.float() @ w.float().t()}, el * (H * K + n * K) + 4 * n * H)
    if op == "gate_up":
        I = p["inter"]
        w = rnd(2 * I, H, std=0.02)
        h = torch.empty(n, I, dtype=dtype, device=dev)

        def oracle():
            gu = (x.float() @ w.float().t()).to(dtype).float()
            g, u = gu[:, :I], gu[:, I:]
            return {"h": g / (1 + torch.exp(-g)) * u}
        return ([("x", x), ("w", w)], [("h", h)], dict(n=n, hidden=H, inter=I), oracle,
                el * (2 * I * H + n * H + n * I))
    if op == "lm_head":
        V = p["vocab"]
        w = rnd(V, H, std=0.02)
        lg = torch.empty(n, V, dtype=torch.float32, device=dev)
        idx = torch.empty(n, dtype=torch.int32, device=dev)
        return ([("x", x), ("w", w)], [("logits", lg), ("idx", idx)],
                dict(n=n, hidden=H, vocab=V),
                lambda: {"logits": x.float() @ w.float().t()},
                el * (V * H + n * H) + 4 * n * V + 4 * n)
    raise ValueError(op)


def shapes(op, check):
    """(label, params) to run: the Qwen3-4B decode shape, and for the checks
    ragged ones."""
    s = SHAPE
    if op == "decode_attention":
        base = dict(q_heads=s["q_heads"], kv_heads=s["kv_heads"], head_dim=s["head_dim"])
        out = [("4B, cache 4096", dict(base, seq=4096, kv_len=4096)),
               ("4B, cache 1024 of 4096", dict(base, seq=4096, kv_len=1024))]
        if check:
            out += [("ragged 777 of 1000", dict(base, seq=1000, kv_len=777)),
                    ("1 key", dict(base, seq=64, kv_len=1)),
                    ("head_dim 64, G 2", dict(q_heads=16, kv_heads=8, head_dim=64, seq=999, kv_len=500)),
                    ("head_dim 256, G 8", dict(q_heads=16, kv_heads=2, head_dim=256, seq=513, kv_len=513))]
        return out
    K = {"o_proj": s["q_heads"] * s["head_dim"], "down_proj": s["inter"]}.get(op)
    base = dict(n=1, hidden=s["hidden"], q_heads=s["q_heads"], kv_heads=s["kv_heads"],
                head_dim=s["head_dim"], rope_rows=4096, pos=2100, inter=s["inter"],
                vocab=s["vocab"], k=K)
    out = [("4B decode", base)]
    if check:
        rag = dict(base, n=3, pos=17)
        if op in ("o_proj", "down_proj"):
            rag["k"] = K - K // 8 - 3
        else:
            rag["hidden"] = 2237
        if op == "lm_head":
            rag["vocab"] = 5003
        if op == "gate_up":
            rag["inter"] = 1001
        out += [("ragged K, 3 tokens", rag), ("4 tokens", dict(base, n=4))]
    return out


def check(kern, prob, dtype):
    """(ok, error, note) of one call against the fp32 oracle."""
    import torch
    ins, outs, params, oracle, _ = prob
    for _, t in outs:
        t.fill_(float("nan") if t.is_floating_point() else -7)
    a = abi_args(ins + outs, params)
    rc = kern.fn(ctypes.byref(a[0]))
    torch.cuda.synchronize()
    if rc != 0:
        return False, None, f"returned {rc}"
    ref = oracle()
    worst, note = 0.0, ""
    for name, t in outs:
        if name == "idx":
            continue
        r = ref[name]
        o = t.float()
        if not torch.isfinite(o).all():
            return False, math.inf, f"{name}: NaN/Inf or unwritten"
        err = ((o - r).abs().max() / r.abs().max().clamp_min(1e-30)).item()
        worst = max(worst, err)
    tol = 2e-2 if dtype is not torch.float32 else 1e-4
    ok = worst <= tol
    od = dict(outs)
    if "idx" in od:
        lg = ref["logits"]
        want = lg.argmax(-1)
        got = od["idx"].long()
        for t in range(lg.shape[0]):
            g = got[t].item()
            if g == want[t].item():
                continue
            top = lg[t].max().item()
            if not (0 <= g < lg.shape[1]) or top - lg[t, g].item() > 1e-5 * max(1.0, abs(top)):
                return False, worst, f"idx[{t}] = {g}, the largest logit is at {want[t].item()}"
            note = "an argmax tie within fp32 rounding"
    return ok, worst, note


def time_call(fn, reps, flush):
    import torch
    ts = []
    for _ in range(reps + 3):
        flush.zero_()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) * 1e3)
    return statistics.median(ts[3:])


def copy_bandwidth():
    import torch
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(10):
        b.copy_(a)
    e.record()
    torch.cuda.synchronize()
    return 2 * (1 << 30) * 10 / (s.elapsed_time(e) / 1e3) / 1e9


def torch_peer(op, prob, p):
    """A callable with torch's own implementation (the projections without
    their epilogues: a lower bound of torch's cost), or None."""
    import torch
    import torch.nn.functional as F
    ins = dict(prob[0])
    if op in ("o_proj", "down_proj", "lm_head", "gate_up", "qkv_proj"):
        x, w = ins["x"], ins["w"]
        return lambda: F.linear(x, w)
    if op == "decode_attention":
        q, k, v = ins["q"], ins["k"], ins["v"]
        L = p["kv_len"]
        qq = q[None, :, None, :]
        kk = k.permute(1, 0, 2)[None]
        vv = v.permute(1, 0, 2)[None]
        return lambda: F.scaled_dot_product_attention(qq, kk[:, :, :L], vv[:, :, :L], enable_gqa=True)
    return None


# ---- main --------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib-dir", default=os.path.join(REPO, "build", "op-kernels"))
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--check", action="store_true", help="numerics only, no timing")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--build-only", action="store_true", help="build the .so files and stop")
    a = ap.parse_args()
    ops = [o for o in a.ops.split(",") if o]
    for o in ops:
        if o not in OPS:
            sys.exit(f"unknown op {o} ({', '.join(OPS)})")
    build_all(ops, a.lib_dir, a.rebuild)
    if a.build_only:
        return 0
    import torch
    if not torch.cuda.is_available():
        sys.exit("op_ladders_cuda.py needs a GPU")
    os.makedirs(a.out, exist_ok=True)
    dtype = torch.bfloat16
    gen = torch.Generator(device="cuda").manual_seed(1234)
    res = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "device": torch.cuda.get_device_name(), "torch": torch.__version__, "ops": {}}
    if not a.check:
        res["copy_gbs"] = copy_bandwidth()
        print(f"copy bandwidth {res['copy_gbs']:.0f} GB/s (read + write)", flush=True)
    flush = torch.empty(128 << 20, dtype=torch.uint8, device="cuda")
    failed = []
    for op in ops:
        rows = []
        for name, src in kernel_sources(op):
            so = so_path(a.lib_dir, name)
            row = {"kernel": name, "source": os.path.relpath(src, REPO), "checks": []}
            rows.append(row)
            if not os.path.exists(so):
                row["error"] = "not built"
                failed.append(f"{op} {name}: not built")
                continue
            kern = Kernel(so)
            for label, p in shapes(op, True):
                prob = make_problem(op, p, dtype, gen)
                ok, err, note = check(kern, prob, dtype)
                row["checks"].append({"shape": label, "ok": ok, "error": err, "note": note})
                if not ok:
                    failed.append(f"{op} {name} {label}: error {err} {note}")
                print(f"{op:17s} {name:28s} {label:24s} {'ok' if ok else 'FAILED':6s} "
                      f"err {err if err is None else f'{err:.2e}'} {note}", flush=True)
            if a.check:
                continue
            for label, p in shapes(op, False):
                prob = make_problem(op, p, dtype, gen)
                args = abi_args(prob[0] + prob[1], prob[2])
                us = time_call(lambda: kern.fn(ctypes.byref(args[0])), a.reps, flush)
                gbs = prob[4] / (us * 1e-6) / 1e9
                row.setdefault("timing", []).append(
                    {"shape": label, "us": us, "gbs": gbs, "pct_copy": 100 * gbs / res["copy_gbs"]})
                print(f"{op:17s} {name:28s} {label:24s} {us:9.1f} us {gbs:7.0f} GB/s "
                      f"{100 * gbs / res['copy_gbs']:5.1f}% of copy", flush=True)
        if not a.check:
            peer = {"kernel": "torch (F.linear, no epilogue / SDPA)", "timing": []}
            for label, p in shapes(op, False):
                prob = make_problem(op, p, dtype, gen)
                fn = torch_peer(op, prob, p)
                if fn is None:
                    continue
                us = time_call(fn, a.reps, flush)
                gbs = prob[4] / (us * 1e-6) / 1e9
                peer["timing"].append({"shape": label, "us": us, "gbs": gbs,
                                       "pct_copy": 100 * gbs / res["copy_gbs"]})
                print(f"{op:17s} {'torch':28s} {label:24s} {us:9.1f} us {gbs:7.0f} GB/s", flush=True)
            rows.append(peer)
        res["ops"][op] = rows
        res["failed"] = failed
        json.dump(res, open(os.path.join(a.out, "op_ladders.json"), "w"), indent=1)
        open(os.path.join(a.out, "op_ladders.md"), "w").write(table(res))
    sys.stdout.write("\n" + table(res))
    return 3 if failed else 0


def table(res):
    lines = [f"Decode ops of Qwen3-4B (bf16), **device:** {res.get('device')}, "
             f"**date:** {res.get('date')}; copy bandwidth "
             f"{res.get('copy_gbs', 0):.0f} GB/s (read + write).", "",
             "| op | kernel | shape | us | GB/s | % of copy | checks |", "|---|---|---|---:|---:|---:|---|"]
    for op, rows in res["ops"].items():
        for r in rows:
            ck = r.get("checks", [])
            cks = ("all ok" if ck and all(c["ok"] for c in ck) else
                   ", ".join(f"{c['shape']} FAILED" for c in ck if not c["ok"]) or r.get("error", "-"))
            for t in r.get("timing") or [{"shape": "-"}]:
                lines.append(f"| {op} | {r['kernel']} | {t['shape']} | "
                             f"{t.get('us', float('nan')):.1f} | {t.get('gbs', float('nan')):.0f} | "
                             f"{t.get('pct_copy', float('nan')):.1f} | {cks} |")
    if res.get("failed"):
        lines += ["", "**Failed checks:**"] + [f"- {f}" for f in res["failed"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
