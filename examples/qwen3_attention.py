"""Qwen3-4B's attention at prefill: causal, grouped-query (32 query heads
share 8 key/value heads), head dimension 128, scale 1/sqrt(128).

A problem in KernelBench's convention: `emile cook examples/qwen3_attention.py
--backend cuda --dtype bf16` (examples/qwen3_attention_cpu.json: a CPU size).
The tensors are laid out [batch, seq, heads, head_dim], the kernel ABI's
attention layout, and emile_op = "attention" matches the builtin attention op
(batch, seq, q_heads, kv_heads and head_dim read from the shapes, causal from
emile_params, scale the op's default 1/sqrt(head_dim)), so the builtin agent climbs the same ladder as for
the C task examples/qwen3_4b_prefill_cuda.json.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, q_heads: int, kv_heads: int):
        super().__init__()
        self.group = q_heads // kv_heads

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # [B, S, H, D] -> [B, H, S, D] for scaled_dot_product_attention.
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        k = k.repeat_interleave(self.group, dim=1)
        v = v.repeat_interleave(self.group, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(q.shape[-1]))
        return o.transpose(1, 2)


batch = 1
seq_len = 2048
q_heads = 32
kv_heads = 8
head_dim = 128

emile_op = "attention"
emile_params = {"causal": 1}          # scale: 1/sqrt(head_dim), the op's default
emile_vary = ["seq_len"]


def get_inputs():
    q = torch.randn(batch, seq_len, q_heads, head_dim)
    k = torch.randn(batch, seq_len, kv_heads, head_dim)
    v = torch.randn(batch, seq_len, kv_heads, head_dim)
    return [q, k, v]


def get_init_inputs():
    return [q_heads, kv_heads]
