"""Rung 4: TMA loads and longest-first scheduling.

Idea: rung 3's pipelined loop, with Q, K and V read and O written through
tensor descriptors (tl.make_tensor_descriptor: Hopper's TMA copy engine;
one descriptor per tile stream, made on the device in Triton's global
scratch, which the generated entry point allocates on the stream), so the
loads cost no address arithmetic or load instructions in the math warps
and ragged rows are zero-filled/clipped by the hardware.  The grid is
(batch x query heads, query blocks) with the query blocks reversed: the
hardware dispatches blocks in order, so under a causal mask the longest
query blocks start first and the last wave holds the shortest (the tail
effect of rungs 1-3 at short sequences).

Parameters (the builtin agent rewrites these assignments): BLOCK_M, BLOCK_N,
NUM_WARPS, NUM_STAGES; HEAD_DIM and DTYPE come from the task.  Defaults
BLOCK_M 64 and NUM_WARPS 4: the best variant of bench/attention_triton.py at
5 of the 6 Qwen3-4B shapes (H100, 2026-12-06: 218-451 TFLOP/s), where an
H100 cook that started from 128 and 8 reached 173-297.
"""
import triton
import triton.language as tl

BLOCK_M = 64
BLOCK_N = 64
NUM_WARPS = 4
NUM_STAGES = 3
HEAD_DIM = 128
DTYPE = "bf16"


@triton.jit
def _attn_blocks(acc, l_i, m_i, q, k_desc, v_desc, offs_m, seq, causal, lo, hi, qk_scale,
                 BLOCK_N: tl.constexpr, MASKED: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in tl.range(lo, hi, BLOCK_N):
        k = k_desc.load([start_n, 0])
        s = tl.dot(q, k.T) * qk_scale
        if MASKED:
            cols = start_n + offs_n
            s = tl.where((cols[None, :] < seq) & ((causal == 0) | (offs_m[:, None] >= cols[None, :])), s,
                         float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.math.exp2(m_i - m_new)
        p = tl.math.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = v_desc.load([start_n, 0])
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def attn_fwd(Q, K, V, O, sqb, sqs, sqh, skb, sks, skh, svb, svs, svh, sob, sos, soh,
             seq, q_heads, group, causal, qk_scale,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr):
    bh = tl.program_id(0)
    start_m = tl.program_id(1)
    if causal != 0:
        start_m = tl.num_programs(1) - 1 - start_m      # longest query blocks first
    b = (bh // q_heads).to(tl.int64)
    h = bh % q_heads
    kvh = h // group
    q_desc = tl.make_tensor_descriptor(Q + b * sqb + h * sqh, shape=[seq, HEAD_DIM], strides=[sqs, 1],
                                       block_shape=[BLOCK_M, HEAD_DIM])
    k_desc = tl.make_tensor_descriptor(K + b * skb + kvh * skh, shape=[seq, HEAD_DIM], strides=[sks, 1],
                                       block_shape=[BLOCK_N, HEAD_DIM])
    v_desc = tl.make_tensor_descriptor(V + b * svb + kvh * svh, shape=[seq, HEAD_DIM], strides=[svs, 1],
                                       block_shape=[BLOCK_N, HEAD_DIM])
    o_desc = tl.make_tensor_descriptor(O + b * sob + h * soh, shape=[seq, HEAD_DIM], strides=[sos, 1],
                                       block_shape=[BLOCK_M, HEAD_DIM])
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q = q_desc.load([start_m * BLOCK_M, 0])
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if causal != 0:
        lo = start_m * BLOCK_M
        hi = tl.minimum(lo + BLOCK_M, seq)
    else:
        lo = seq // BLOCK_N * BLOCK_N
        hi = seq
    acc, l_i, m_i = _attn_blocks(acc, l_i, m_i, q, k_desc, v_desc, offs_m, seq, causal, 0, lo, qk_scale, BLOCK_N, False)
    acc, l_i, m_i = _attn_blocks(acc, l_i, m_i, q, k_desc, v_desc, offs_m, seq, causal, lo, hi, qk_scale, BLOCK_N, True)
    acc = acc / l_i[:, None]
    o_desc.store([start_m * BLOCK_M, 0], acc.to(O.dtype.element_ty))


emile_launch = {
    "kernel": "attn_fwd",
    "args": [
        ("Q", "*" + DTYPE + ":16", "q"), ("K", "*" + DTYPE + ":16", "k"),
        ("V", "*" + DTYPE + ":16", "v"), ("O", "*" + DTYPE + ":16", "o"),
        ("sqb", "i64:16", "q.stride[0]"), ("sqs", "i32:16", "q.stride[1]"), ("sqh", "i32:16", "q.stride[2]"),
        ("skb", "i64:16", "k.stride[0]"), ("sks", "i32:16", "k.stride[1]"), ("skh", "i32:16", "k.stride[2]"),
        ("svb", "i64:16", "v.stride[0]"), ("svs", "i32:16", "v.stride[1]"), ("svh", "i32:16", "v.stride[2]"),
        ("sob", "i64:16", "o.stride[0]"), ("sos", "i32:16", "o.stride[1]"), ("soh", "i32:16", "o.stride[2]"),
        ("seq", "i32", "seq"), ("q_heads", "i32", "q_heads"), ("group", "i32", "q_heads // kv_heads"),
        ("causal", "i32", "causal != 0"), ("qk_scale", "fp32", "scale * 1.4426950408889634"),
    ],
    "constexprs": {"BLOCK_M": BLOCK_M, "BLOCK_N": BLOCK_N, "HEAD_DIM": HEAD_DIM},
    "grid": ("batch * q_heads", "cdiv(seq, BLOCK_M)", 1),
    "num_warps": NUM_WARPS,
    "num_stages": NUM_STAGES,
    "assume": ["head_dim == HEAD_DIM", "q_heads % kv_heads == 0", "BLOCK_M % BLOCK_N == 0",
               "q.stride[3] == 1 and k.stride[3] == 1 and v.stride[3] == 1 and o.stride[3] == 1"],
}
