#!/usr/bin/env python3
"""check_adversarial.py -- does each adversarial CUDA kernel misbehave the way
its top comment says?  (A check of the test kernels themselves, independent of
the harness; tests/gpu/run_gpu_suite.sh checks the harness against them.)

Each kernel is built with the harness's nvcc line and run in its own Python
process (a trap or an illegal address kills the CUDA context; a hang is killed
by the timeout) on a small attention problem; the child prints one JSON line:
rc of emile_kernel, error vs torch fp32 math right after the caller's stream is
synchronised, the same after a device-wide sync and a pause, NaN counts, and
any CUDA exception.

usage: python3 tests/kernels/cuda/check_adversarial.py [--timeout 20] [NAME ...]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

# name -> (dtype, what must be seen)
EXPECT = {
    "well_behaved": ("bf16", "valid at once"),
    "side_stream": ("bf16", "NaN right after the stream sync, valid after a device sync"),
    "persisting_l2": ("bf16", "valid (only the stream attribute is wrong)"),
    "tf32_reduced": ("f32", "error > 1e-4 on f32 (reduced precision)"),
    "illegal_address": ("bf16", "CUDA error (illegal address)"),
    "trap": ("bf16", "CUDA error (trap)"),
    "never_ends": ("bf16", "timeout"),
    "alloc_all_memory": ("bf16", "valid, and a later allocation fails"),
    "skip_half_rows": ("bf16", "NaN rows"),
    "zeros": ("bf16", "wrong (zeros)"),
    "cache_replay": ("bf16", "valid on call 1, wrong on call 2 with new inputs"),
    "deferred": ("bf16", "NaN right after the stream sync, valid after a device sync"),
    "steals_answers": ("bf16", "valid on call 1 (computed), NaN on calls 2-3 (nothing to steal here)"),
    "forges_event_timing": ("bf16", "valid (only the runner's timer is forged)"),
    "lingers_after_return": ("bf16", "NaN in the second half right after the stream sync, valid after a device sync"),
    "reads_other_context": ("bf16", "CUDA error (illegal address) or NaN: computes nothing"),
    "host_sockets": ("bf16", "valid outside the sandbox (here it may reach the host: the sandbox's job, run_gpu_suite.sh)"),
}


def child(so, dtype_name):
    import math
    import torch
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from attention_cuda import Kernel, torch_ref, scaled_err, make_inputs
    dt = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype_name]
    B, S, Hq, Hkv, D = 1, 512, 8, 2, 128
    kern = Kernel(so)
    out = {}
    q, k, v = make_inputs(B, S, Hq, Hkv, D, dt, 7)
    ref = torch_ref(q, k, v, True)
    o = torch.full(q.shape, float("nan"), dtype=dt, device="cuda")
    try:
        kern.call(q, k, v, o, True)
        out["rc"] = 0
    except RuntimeError as e:
        out["rc"] = str(e)
    try:
        torch.cuda.current_stream().synchronize()
        out["nan_after_stream_sync"] = int(torch.isnan(o.float()).sum().item())
        out["err_after_stream_sync"] = scaled_err(o, ref)
        time.sleep(0.5)
        torch.cuda.synchronize()
        out["nan_after_device_sync"] = int(torch.isnan(o.float()).sum().item())
        out["err_after_device_sync"] = scaled_err(o, ref)
        # second call on fresh inputs (cache_replay)
        q2, k2, v2 = make_inputs(B, S, Hq, Hkv, D, dt, 8)
        ref2 = torch_ref(q2, k2, v2, True)
        o2 = torch.full(q.shape, float("nan"), dtype=dt, device="cuda")
        kern.call(q2, k2, v2, o2, True)
        torch.cuda.synchronize()
        out["err_second_call_new_inputs"] = scaled_err(o2, ref2)
        try:
            x = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
            del x
            out["later_alloc_256MB"] = "ok"
        except RuntimeError as e:
            out["later_alloc_256MB"] = "failed: " + str(e)[:80]
    except Exception as e:
        out["cuda_error"] = f"{type(e).__name__}: {str(e)[:160]}"
    for k_, v_ in list(out.items()):
        if isinstance(v_, float) and (math.isinf(v_) or math.isnan(v_)):
            out[k_] = str(v_)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--child", nargs=2, metavar=("SO", "DTYPE"))
    ap.add_argument("names", nargs="*", help="only these kernels (default: all)")
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    tmp = tempfile.mkdtemp()
    results = {}
    for name, (dt, want) in EXPECT.items():
        if a.names and name not in a.names:
            continue
        src = os.path.join(HERE, name + ".cu")
        so = os.path.join(tmp, name + ".so")
        b = subprocess.run(["nvcc", "-O3", "-arch=sm_90a", "-std=c++17", "-shared", "-Xcompiler", "-fPIC",
                            "-cudart", "shared", "-I" + os.path.join(ROOT, "include"), src, "-o", so],
                           capture_output=True, text=True)
        if b.returncode:
            results[name] = {"build": "FAILED", "log": b.stderr[-300:]}
        else:
            t0 = time.time()
            try:
                r = subprocess.run([sys.executable, __file__, "--child", so, dt], capture_output=True, text=True,
                                   timeout=a.timeout)
                line = (r.stdout.strip().splitlines() or [""])[-1]
                try:
                    results[name] = json.loads(line)
                except ValueError:
                    results[name] = {"exit": r.returncode, "stderr": r.stderr[-300:]}
            except subprocess.TimeoutExpired:
                results[name] = {"timeout": a.timeout}
            results[name]["seconds"] = round(time.time() - t0, 1)
        print(f"{name:18s} want: {want}\n{'':18s} got:  {json.dumps(results[name])}", flush=True)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "adversarial_check.json"), "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
