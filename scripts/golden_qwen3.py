#!/usr/bin/env python3
"""golden_qwen3.py -- golden data for the engine from independent implementations.

Run where torch and transformers (5.x) are installed (the GPU host; the tiny
models run on the CPU there, in float32, so the numbers do not depend on the
GPU):

    python scripts/golden_qwen3.py --out DIR [--tokenizer tokenizer.json[.gz]]

Writes, under DIR:
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


def make_config(theta, tied):
    kw = dict(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=tied,
        hidden_act="silu", attention_bias=False, use_sliding_window=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    # transformers 5 keeps theta in rope_parameters, 4.x at the top level.
    try:
        cfg = Qwen3Config(rope_parameters={"rope_type": "default", "rope_theta": theta}, **kw)
    except TypeError:
        cfg = Qwen3Config(rope_theta=theta, **kw)
    cfg._attn_implementation = "eager"
    return cfg


def randomize(model, seed):
    """Weights of order one (norms around 1, matrices with std 1/sqrt(fan_in),
    embeddings std 1) so that every part of the model moves the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or name.startswith("lm_head"):
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)


def check_rope(model, theta, head_dim):
    inv = model.model.rotary_emb.inv_freq.double()
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
    ap.add_argument("--tokenizer")
    ap.add_argument("--texts", default="tests/data/tokenizer/texts.json")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    torch.set_num_threads(1)       # one summation order, run to run
    os.makedirs(a.out, exist_ok=True)
    build(a.out, "qwen3-tiny", 1234, 1e6, True, torch.bfloat16, None)
    build(a.out, "qwen3-tiny-sharded", 4321, 5e5, False, torch.float32, "150KB")
    if a.tokenizer:
        tokenize(a.tokenizer, a.texts, os.path.join(a.out, "tokenizer_ids.json"))


if __name__ == "__main__":
    main()
