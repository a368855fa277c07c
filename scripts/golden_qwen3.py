#!/usr/bin/env python3
"""golden_qwen3.py -- golden data for the engine from independent implementations.

Run where torch and transformers (5.x) are installed (the GPU host; the tiny
models run on the CPU there, in float32, so the numbers do not depend on the
GPU):

    python scripts/golden_qwen3.py --out DIR [--tokenizer tokenizer.json[.gz]]
    python scripts/golden_qwen3.py --shape qwen3-4b --out DIR [--seed N]

Writes, under DIR (--shape tiny, the default):
  qwen3-tiny/          a small random Qwen3 (GQA, tied embeddings, RoPE theta
                       1e6) saved by transformers as one bf16 model.safetensors
                       + config.json, and golden.bin: its logits for a fixed
                       token sequence, computed in float32 from the bf16 weights
  qwen3-tiny-sharded/  another one (untied lm_head, theta 5e5), float32,
                       saved in several shards with model.safetensors.index.json
                       (not committed: the device tool returns at most 8 files;
                       tar $OUT to bring it back.  The C tests cover shards and
                       untied heads by re-writing qwen3-tiny instead.)
  tokenizer_ids.json   (with --tokenizer) token ids of tests/data/tokenizer/
                       texts.json from the `tokenizers` library, no special
                       tokens added

With --shape qwen3-4b (needs a GPU with ~40 GB free; issue 7's "4B logits
check"), under DIR/qwen3-4b/:
  config.json, model*.safetensors
                       the Qwen3-4B shape (36 layers, hidden 2560, 32 query
                       / 8 KV heads, head dim 128, SwiGLU 9728, tied
                       embeddings, vocab 151936, RoPE theta 1e6) with random
                       bf16 weights drawn on the GPU from --seed (4242 by
                       default; the same scheme as the tiny models, see
                       randomize), about 8 GB; reused when emile_random.json
                       says it was drawn with the same shape and seed
  emile_random.json    {shape, seed, scheme, torch, transformers}
  golden.bin           logits of a fixed 64-token sequence, computed in
                       float32 on the GPU (TF32 off, eager attention) from
                       the checkpoint as transformers reloads it
  golden_summary.json  transformers' own bf16 (sdpa) logits against that
                       golden: the scale of error a bf16 engine can expect
tests/gpu/engine_cuda_check.c --golden DIR/qwen3-4b compares the engine's GPU
path with golden.bin.  bench/engine_cuda.py uses the same checkpoint.

golden.bin, little-endian:
  char[4]  magic "EMGL"
  uint32   version (1)
  uint32   n_tokens, uint32 vocab
  int32    tokens[n_tokens]
  float32  logits[n_tokens][vocab]    (logits of every position)
"""
import argparse
import gzip
import json
import os
import struct
import sys

import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

MAGIC = b"EMGL"
VERSION = 1
SEED_4B = 4242
GOLDEN_TOKENS_4B = 64
SCHEME = "norms 1+0.2*N(0,1); embed N(0,1); matrices N(0,1)/sqrt(fan_in)"

# Qwen3-4B (the hub's config.json, less the sliding-window fields it leaves off)
SHAPE_4B = dict(
    vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
    num_attention_heads=32, num_key_value_heads=8, head_dim=128,
    max_position_embeddings=40960, rms_norm_eps=1e-6, tie_word_embeddings=True,
    hidden_act="silu", attention_bias=False, use_sliding_window=False,
    bos_token_id=151643, eos_token_id=151645,
)


def make_config(theta, tied, shape=None):
    kw = dict(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=tied,
        hidden_act="silu", attention_bias=False, use_sliding_window=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    ) if shape is None else dict(shape)
    # transformers 5 keeps theta in rope_parameters, 4.x at the top level.
    try:
        cfg = Qwen3Config(rope_parameters={"rope_type": "default", "rope_theta": theta}, **kw)
    except TypeError:
        cfg = Qwen3Config(rope_theta=theta, **kw)
    cfg._attn_implementation = "eager"
    return cfg


def randomize(model, seed, device=None):
    """Weights of order one (norms around 1, matrices with std 1/sqrt(fan_in),
    embeddings std 1) so that every part of the model moves the logits.
    device=None draws on the CPU (the tiny models); "cuda" draws on the GPU
    with a CUDA generator (the 4B shape: 4e9 draws), reproducible on one
    torch version and GPU architecture."""
    if device is None:
        g = torch.Generator().manual_seed(seed)
        rnd = lambda shape: torch.randn(shape, generator=g)  # noqa: E731
    else:
        g = torch.Generator(device=device).manual_seed(seed)
        rnd = lambda shape: torch.randn(shape, generator=g, device=device,  # noqa: E731
                                        dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(1.0 + 0.2 * rnd(p.shape))
            elif "embed_tokens" in name or name.startswith("lm_head"):
                p.copy_(rnd(p.shape))
            else:
                p.copy_(rnd(p.shape) / p.shape[1] ** 0.5)


def check_rope(model, theta, head_dim):
    inv = model.model.rotary_emb.inv_freq.double().cpu()
    want = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    err = (inv - want).abs().max().item()
    if err > 1e-6 * want.abs().max().item():
        sys.exit(f"rope theta not taken by transformers: inv_freq off by {err}")


def logits_of(model, tokens):
    with torch.no_grad():
        out = model(torch.tensor([tokens]), use_cache=False)
    return out.logits[0].float()


def write_golden(path, tokens, logits):
    n, v = logits.shape
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<III", VERSION, n, v))
        f.write(struct.pack(f"<{n}i", *tokens))
        f.write(logits.contiguous().numpy().astype("<f4").tobytes())


def build(outdir, name, seed, theta, tied, dtype, shard):
    torch.manual_seed(seed)
    cfg = make_config(theta, tied)
    model = Qwen3ForCausalLM(cfg).eval()
    randomize(model, seed)
    check_rope(model, theta, cfg.head_dim)
    # The golden logits come from the checkpoint as transformers reloads it,
    # in float32: exactly the weights the engine reads (bf16 -> f32 is exact).
    # (Not from the model in memory: .to(bfloat16) also rounds the RoPE
    # inv_freq buffer, which a fresh load recomputes in float32.)
    model = model.to(dtype)
    d = os.path.join(outdir, name)
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(d, **kw)
    again = Qwen3ForCausalLM.from_pretrained(d, dtype=torch.float32,
                                             attn_implementation="eager").eval()
    check_rope(again, theta, cfg.head_dim)
    mine, theirs = model.state_dict(), again.state_dict()
    compared = 0
    for k, v in mine.items():
        if "rotary" in k or k not in theirs:     # tied lm_head may be left out
            continue
        if not torch.equal(v.float(), theirs[k]):
            sys.exit(f"{name}: reloaded tensor {k} differs from the saved one")
        compared += 1
    if compared < len(list(again.parameters())):
        sys.exit(f"{name}: only {compared} tensors compared after reload")
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, cfg.vocab_size, (24,), generator=g).tolist()
    tokens[5] = tokens[3]          # a repeated token
    logits = logits_of(again, tokens)
    write_golden(os.path.join(d, "golden.bin"), tokens, logits)
    files = sorted(os.listdir(d))
    print(f"{name}: tokens {tokens}\n  logits max |x| {logits.abs().max().item():.3f}, "
          f"std {logits.std().item():.3f}; files {files}")
    print("  config:", open(os.path.join(d, "config.json")).read().replace("\n", " "))


def _marker(seed):
    return {"shape": "qwen3-4b", "seed": seed, "scheme": SCHEME, "dtype": "bfloat16"}


def checkpoint_matches(d, seed):
    """True when d holds a checkpoint that make_checkpoint_4b(d, seed) wrote."""
    try:
        m = json.load(open(os.path.join(d, "emile_random.json")))
    except (OSError, ValueError):
        return False
    want = _marker(seed)
    return (all(m.get(k) == v for k, v in want.items())
            and os.path.exists(os.path.join(d, "config.json"))
            and any(f.endswith(".safetensors") for f in os.listdir(d)))


def load_cuda(d, dtype, attn):
    """The checkpoint in d as transformers loads it, on the GPU."""
    try:
        m = Qwen3ForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation=attn,
                                             device_map="cuda")
    except Exception as e:         # e.g. device_map wanting accelerate
        print(f"  (from_pretrained with device_map: {type(e).__name__}: {e}; "
              "loading on the CPU, then moving)")
        m = Qwen3ForCausalLM.from_pretrained(d, dtype=dtype,
                                             attn_implementation=attn).to("cuda")
    return m.eval()


def make_checkpoint_4b(d, seed=SEED_4B, force=False):
    """The Qwen3-4B shape with random bf16 weights drawn on the GPU, saved
    by transformers into d (safetensors + config.json).  Reuses d when it
    already holds the same draw.  Returns True when it drew a new one."""
    if not force and checkpoint_matches(d, seed):
        print(f"qwen3-4b: reusing {d} (seed {seed})")
        return False
    import time
    t0 = time.time()
    os.makedirs(d, exist_ok=True)
    marker = os.path.join(d, "emile_random.json")
    if os.path.exists(marker):
        os.remove(marker)
    for f in os.listdir(d):          # a previous draw's shards
        if f.endswith(".safetensors") or f.endswith(".safetensors.index.json"):
            os.remove(os.path.join(d, f))
    torch.manual_seed(seed)
    cfg = make_config(1e6, True, SHAPE_4B)
    try:
        with torch.device("cuda"):
            model = Qwen3ForCausalLM(cfg).eval()
    except Exception as e:         # built on the CPU instead (slower), then moved
        print(f"  (building under torch.device('cuda'): {type(e).__name__}: {e})")
        model = Qwen3ForCausalLM(cfg).eval().to("cuda")
    randomize(model, seed, device="cuda")
    check_rope(model, 1e6, cfg.head_dim)
    model = model.to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(d)
    # every tensor as transformers reads it back equals the one drawn
    again = load_cuda(d, torch.float32, "eager")
    check_rope(again, 1e6, cfg.head_dim)
    mine, theirs = model.state_dict(), again.state_dict()
    compared = 0
    for k, v in mine.items():
        if "rotary" in k or k not in theirs:
            continue
        if not torch.equal(v.float(), theirs[k]):
            sys.exit(f"qwen3-4b: reloaded tensor {k} differs from the saved one")
        compared += 1
    if compared < len(list(again.parameters())):
        sys.exit(f"qwen3-4b: only {compared} tensors compared after reload")
    del model, again, mine, theirs
    torch.cuda.empty_cache()
    info = dict(_marker(seed), torch=torch.__version__, transformers=transformers.__version__,
                params=n_params, device=torch.cuda.get_device_name())
    json.dump(info, open(marker, "w"), indent=1)
    print(f"qwen3-4b: {n_params / 1e9:.3f}e9 parameters drawn (seed {seed}) and saved to {d} "
          f"in {time.time() - t0:.1f} s: {sorted(os.listdir(d))}")
    return True


def golden_tokens_4b(seed, n=GOLDEN_TOKENS_4B, vocab=SHAPE_4B["vocab_size"]):
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, vocab, (n,), generator=g).tolist()
    tokens[5] = tokens[3]          # a repeated token
    return tokens


def compare_logits(got, gold):
    """(max |got-gold| / max|gold|, rows whose argmax differs), as
    tests/gpu/engine_cuda_check.c measures it."""
    got, gold = got.double(), gold.double()
    if not torch.isfinite(got).all():
        return float("inf"), got.shape[0]
    mx = max(1.0, gold.abs().max().item())
    rel = (got - gold).abs().max().item() / mx
    diff = int((got.argmax(-1) != gold.argmax(-1)).sum().item())
    return rel, diff


def golden_4b(outdir, seed):
    """DIR/qwen3-4b: the checkpoint, golden.bin (float32 logits of a fixed
    token sequence) and golden_summary.json (transformers bf16 against it)."""
    d = os.path.join(outdir, "qwen3-4b")
    make_checkpoint_4b(d, seed)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    tokens = golden_tokens_4b(seed)
    ids = torch.tensor([tokens], device="cuda")
    m = load_cuda(d, torch.float32, "eager")
    check_rope(m, 1e6, m.config.head_dim)
    with torch.no_grad():
        gold = m(ids, use_cache=False).logits[0].float().cpu()
    del m
    torch.cuda.empty_cache()
    if not torch.isfinite(gold).all():
        sys.exit("qwen3-4b: the float32 golden logits are not finite")
    write_golden(os.path.join(d, "golden.bin"), tokens, gold)
    summary = {"tokens": tokens, "golden": "float32, eager attention, TF32 off",
               "max_abs_logit": gold.abs().max().item(), "logit_std": gold.std().item()}
    m = load_cuda(d, torch.bfloat16, "sdpa")
    with torch.no_grad():
        bf = m(ids, use_cache=False).logits[0].float().cpu()
    del m
    torch.cuda.empty_cache()
    rel, diff = compare_logits(bf, gold)
    summary["transformers_bf16_sdpa"] = {"max_err_rel": rel, "argmax_differ": diff}
    summary["device"] = torch.cuda.get_device_name()
    json.dump(summary, open(os.path.join(d, "golden_summary.json"), "w"), indent=1)
    print(f"qwen3-4b: golden.bin for {len(tokens)} tokens, logits max |x| "
          f"{summary['max_abs_logit']:.3f}, std {summary['logit_std']:.3f}; transformers bf16 "
          f"(sdpa) against it: max err {rel:.3g} of max |logit|, {diff} argmax differ")


def tokenize(tok_path, texts_path, out_path):
    from tokenizers import Tokenizer
    import tokenizers
    raw = gzip.open(tok_path, "rt", encoding="utf-8").read() if tok_path.endswith(".gz") \
        else open(tok_path, encoding="utf-8").read()
    tk = Tokenizer.from_str(raw)
    texts = json.load(open(texts_path, encoding="utf-8"))
    ids = [tk.encode(t, add_special_tokens=False).ids for t in texts]
    for t, i in zip(texts, ids):
        back = tk.decode(i, skip_special_tokens=False)
        if back != t and "\u0301" not in t:
            print(f"  note: decode does not round-trip {t!r} -> {back!r}")
    json.dump({"tokenizers": tokenizers.__version__, "texts": texts, "ids": ids},
              open(out_path, "w", encoding="utf-8"), ensure_ascii=False)
    print(f"tokenizer: {len(texts)} texts, {sum(map(len, ids))} ids -> {out_path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shape", choices=("tiny", "qwen3-4b"), default="tiny",
                    help="tiny: the CPU golden models (default); qwen3-4b: the 4B shape "
                         "on the GPU")
    ap.add_argument("--seed", type=int, default=SEED_4B,
                    help=f"seed of the 4B weights (default {SEED_4B})")
    ap.add_argument("--tokenizer")
    ap.add_argument("--texts", default="tests/data/tokenizer/texts.json")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    os.makedirs(a.out, exist_ok=True)
    if a.shape == "qwen3-4b":
        if not torch.cuda.is_available():
            sys.exit("--shape qwen3-4b needs a GPU")
        golden_4b(a.out, a.seed)
        return
    torch.set_num_threads(1)       # one summation order, run to run
    build(a.out, "qwen3-tiny", 1234, 1e6, True, torch.bfloat16, None)
    build(a.out, "qwen3-tiny-sharded", 4321, 5e5, False, torch.float32, "150KB")
    if a.tokenizer:
        tokenize(a.tokenizer, a.texts, os.path.join(a.out, "tokenizer_ids.json"))


if __name__ == "__main__":
    main()
