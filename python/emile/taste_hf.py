"""One side of the Tasting Room's PyTorch tasting: transformers' Qwen3,
greedy, on a prompt of token ids, with `sdpa` attention or with an Emile
kernel registered as an attention implementation through transformers'
AttentionInterface.  `emile taste --hf` (src/taste/taste_hf.c) runs this
twice, one process per side, and compares.

The kernel is untrusted code.  Before loading it this process confines
itself with Emile's own sandbox, loaded through ctypes from
build/libemile-confine.so (src/taste/taste_hf_confine.c): the same steps, in
the same order, as the C engine's child (src/taste/taste_confine.h): a new
network namespace and the uid of nobody when root, the allow-listed
environment, not dumpable, no core files, killed with its parent; then the
runner's seccomp filter (no processes, no exec, no network sockets, no opens
for writing on the cpu, nothing that changes the file system).  The model
and the tokenizer are read before.  Both sides confine themselves the same
way, so they are timed under the same conditions.

The kernel takes the prefill's attention (query and key lengths equal, no
padding mask: the ABI's attention op, causal); decode steps (one query
against the cache) go to sdpa on both sides, as the C engine swaps only its
prefill slot.

The report is one JSON line on fd 3: {"role", "attention", "ttft_ms",
"decode_tok_s", "tokens", "ids", "device_name", "kernel_calls"} or
{"error": TEXT}; a forbidden system call is reported by the sandbox's
SIGSYS handler on the same fd as {"forbidden": NAME, "nr": N}.
"""
import argparse
import ctypes
import json
import os
import sys
import time

SHAPES = {   # src/engine/qwen3_config.c's named shapes
    "qwen3-4b": dict(num_hidden_layers=36, hidden_size=2560, num_attention_heads=32, num_key_value_heads=8,
                     intermediate_size=9728, head_dim=128, vocab_size=151936, max_position_embeddings=40960),
    "qwen3-0.6b": dict(num_hidden_layers=28, hidden_size=1024, num_attention_heads=16, num_key_value_heads=8,
                       intermediate_size=3072, head_dim=128, vocab_size=151936, max_position_embeddings=40960),
    "tiny": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, head_dim=16, vocab_size=512, max_position_embeddings=256),
}


def report(fd, obj):
    os.write(fd, (json.dumps(obj) + "\n").encode())


class Confine:
    """Emile's sandbox, from build/libemile-confine.so."""

    def __init__(self, lib_path):
        self.lib = ctypes.CDLL(lib_path)
        for name in ("emile_py_confine_identity", "emile_py_confine_filter", "emile_py_confine_loaded"):
            getattr(self.lib, name).restype = ctypes.c_int

    def _call(self, name, *args):
        err = ctypes.create_string_buffer(1024)
        if getattr(self.lib, name)(*args, err, ctypes.c_size_t(len(err))) != 0:
            raise RuntimeError(err.value.decode(errors="replace"))

    def identity(self, parent):
        self._call("emile_py_confine_identity", ctypes.c_int(parent))

    # device: a torch.device; any but the cpu is a GPU, whose driver needs
    # its own filter (src/taste/taste_confine.h).
    def filter(self, device, report_fd):
        self._call("emile_py_confine_filter", ctypes.c_int(device.type != "cpu"), ctypes.c_int(report_fd))

    def loaded(self, device):
        self._call("emile_py_confine_loaded", ctypes.c_int(device.type != "cpu"))


def build_model(args, torch, transformers, dtype, device):
    if args.hf:
        model = transformers.AutoModelForCausalLM.from_pretrained(args.hf, dtype=dtype)
    else:
        cfg = transformers.Qwen3Config(rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True,
                                       **SHAPES[args.hf_random])
        torch.manual_seed(args.seed)
        old = torch.get_default_dtype()
        torch.set_default_dtype(dtype)         # drawn in the run's dtype: 8 GB, not 16, for the 4B
        try:
            model = transformers.Qwen3ForCausalLM(cfg)
        finally:
            torch.set_default_dtype(old)
    model.config._attn_implementation = "sdpa"
    return model.to(device).eval()


def attention_with_kernel(kernel, dtype_name, counter, torch):
    """An attention function of transformers' interface: the kernel on a
    causal prefill, sdpa otherwise."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from emile.torch_op import KernelOp

    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        b, hq, s, d = query.shape
        hkv, t = key.shape[1], key.shape[2]
        if attention_mask is not None or s != t or s < 2 or dropout:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, **kwargs)
        params = {"batch": b, "seq": s, "q_heads": hq, "kv_heads": hkv, "head_dim": d, "causal": 1,
                  "scale": scaling if scaling is not None else d ** -0.5}
        q, k, v = (x.transpose(1, 2).contiguous() for x in (query, key, value))   # [B, S, H, D]
        o = torch.empty_like(q)
        kernel.launch([q, k, v], [o], params)
        counter[0] += 1
        return o, None

    return attention


ATTENTION_SPEC = {
    "name": "attention", "params": {},
    "tensors": [{"name": n, "shape": [], "dtype": None, "output": n == "o"} for n in ("q", "k", "v", "o")],
}


def generate(model, ids, max_new, device, torch, stop_id):
    """Greedy; (ttft_s, decode_tok_s, tokens) as the C engine counts them:
    TTFT from the start to the first token chosen, decode tok/s = (n-1) /
    the time from the first token to the last."""
    from transformers import DynamicCache

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        x = torch.tensor([ids], device=device)
        sync()
        t0 = time.perf_counter()
        out = model(input_ids=x, past_key_values=cache, use_cache=True)
        tok = int(out.logits[0, -1].argmax())
        t1 = time.perf_counter()
        tokens = [tok]
        while len(tokens) < max_new and tok != stop_id:
            out = model(input_ids=torch.tensor([[tok]], device=device), past_key_values=cache, use_cache=True)
            tok = int(out.logits[0, -1].argmax())
            tokens.append(tok)
        t2 = time.perf_counter()
    n = len(tokens)
    return t1 - t0, (n - 1) / (t2 - t1) if n > 1 and t2 > t1 else 0.0, tokens


def main(argv=None):
    ap = argparse.ArgumentParser(description="one side of emile taste --hf")
    ap.add_argument("--hf")
    ap.add_argument("--hf-random")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--stop", type=int, default=-1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--kernel", help="the kernel .so (none: sdpa)")
    ap.add_argument("--label", default="sdpa")
    ap.add_argument("--role", default="reference")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--report-fd", type=int, default=3)
    ap.add_argument("--confine", help="build/libemile-confine.so (none: no sandbox)")
    ap.add_argument("--parent", type=int, default=0)
    args = ap.parse_args(argv)
    fd = args.report_fd
    try:
        import torch
        import transformers
        from transformers import AttentionInterface
        try:
            from transformers import AttentionMaskInterface
            from transformers.masking_utils import sdpa_mask
        except ImportError:
            AttentionMaskInterface = None
        device = torch.device(args.device)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        torch.backends.cuda.matmul.allow_tf32 = False
        with open(args.prompt_ids) as f:
            ids = [int(t) for t in f.read().split()]
        # A checkpoint is read before the uid drop (its files may be the
        # user's alone) and moved to the device after it; random weights are
        # drawn on the device itself, after the drop: on the GPU host the
        # 4B's transformers sides hit a 70 s limit (stop 24), most likely
        # in these 4 billion draws on its CPU.
        model = build_model(args, torch, transformers, dtype, "cpu") if args.hf else None
        confine = Confine(args.confine) if args.confine else None
        if confine:
            confine.identity(args.parent)
        if model is None:
            with torch.device(device):    # the device is touched after the uid drop, as the runner does
                model = build_model(args, torch, transformers, dtype, device)
        model = model.to(device)
        device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        if confine:
            confine.filter(device, fd)
        counter = [0]
        if args.kernel:
            from emile.torch_op import KernelOp
            spec = json.loads(json.dumps(ATTENTION_SPEC))
            for t in spec["tensors"]:
                t["dtype"] = "bf16" if device.type == "cuda" else "f32"
            spec["backend"] = "cuda" if device.type == "cuda" else "cpu"
            kernel = KernelOp(spec, args.kernel)
            AttentionInterface.register("emile", attention_with_kernel(kernel, spec["tensors"][0]["dtype"],
                                                                      counter, torch))
            if AttentionMaskInterface is not None:
                AttentionMaskInterface.register("emile", sdpa_mask)
            model.config._attn_implementation = "emile"
        if confine:
            confine.loaded(device)
        for _ in range(args.warmup):
            generate(model, ids, 1, device, torch, args.stop)
        counter[0] = 0
        ttft, tok_s, tokens = generate(model, ids, args.max_new, device, torch, args.stop)
        if args.kernel and counter[0] == 0:
            raise RuntimeError("the kernel was never called: transformers did not route the prefill's "
                               "attention to it")
        report(fd, {"role": args.role, "attention": args.label, "ttft_ms": ttft * 1e3, "decode_tok_s": tok_s,
                    "tokens": len(tokens), "ids": tokens, "device_name": device_name,
                    "kernel_calls": counter[0], "prompt_tokens": len(ids)})
    except BaseException as e:       # the parent says it; a traceback goes to stderr
        import traceback
        traceback.print_exc()
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        report(fd, {"error": f"{type(e).__name__}: {msg[:600]}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
