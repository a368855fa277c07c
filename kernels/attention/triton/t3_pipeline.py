"""Rung 3: software-pipelined flash attention.

Idea: rung 2, with what Triton's software pipeliner needs to overlap loads
with the tensor cores: every pointer declared 16-byte aligned and every
stride divisible by 16 elements (':16' in the declaration, checked on each
call), so K and V tiles stream through shared memory with cp.async,
NUM_STAGES - 1 tiles in flight while one is multiplied.  Rungs 1 and 2
make the same loads without the hints: Triton cannot prove them aligned,
issues plain loads and waits for each tile.  Each stage costs
2 * BLOCK_N * HEAD_DIM * 2 bytes of shared memory.

Parameters (the builtin agent rewrites these assignments): BLOCK_M, BLOCK_N,
NUM_WARPS, NUM_STAGES; HEAD_DIM and DTYPE come from the task.
"""
import triton
import triton.language as tl

BLOCK_M = 128
BLOCK_N = 64
NUM_WARPS = 8
NUM_STAGES = 3
HEAD_DIM = 128
DTYPE = "bf16"


@triton.jit
def _attn_blocks(acc, l_i, m_i, q, k_base, v_base, sks, svs, offs_m, seq, causal, lo, hi, qk_scale,
                 BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, MASKED: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        if MASKED:
            kt = tl.load(k_base + cols[None, :] * sks + offs_d[:, None], mask=cols[None, :] < seq, other=0.0)
        else:
            kt = tl.load(k_base + cols[None, :] * sks + offs_d[:, None])
        s = tl.dot(q, kt) * qk_scale
        if MASKED:
            s = tl.where((cols[None, :] < seq) & ((causal == 0) | (offs_m[:, None] >= cols[None, :])), s,
                         float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.math.exp2(m_i - m_new)
        p = tl.math.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        if MASKED:
            v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :], mask=cols[:, None] < seq, other=0.0)
        else:
            v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :])
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def attn_fwd(Q, K, V, O, sqb, sqs, sqh, skb, sks, skh, svb, svs, svh, sob, sos, soh,
             seq, q_heads, group, causal, qk_scale,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr):
    start_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // q_heads).to(tl.int64)
    h = bh % q_heads
    kvh = h // group
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqs + offs_d[None, :],
                mask=offs_m[:, None] < seq, other=0.0)
    k_base = K + b * skb + kvh * skh
    v_base = V + b * svb + kvh * svh
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if causal != 0:
        lo = start_m * BLOCK_M                      # keys left of the block: all visible
        hi = tl.minimum(lo + BLOCK_M, seq)
    else:
        lo = seq // BLOCK_N * BLOCK_N               # whole key blocks
        hi = seq
    acc, l_i, m_i = _attn_blocks(acc, l_i, m_i, q, k_base, v_base, sks, svs, offs_m, seq, causal, 0, lo, qk_scale,
                                 BLOCK_N, HEAD_DIM, False)
    acc, l_i, m_i = _attn_blocks(acc, l_i, m_i, q, k_base, v_base, sks, svs, offs_m, seq, causal, lo, hi, qk_scale,
                                 BLOCK_N, HEAD_DIM, True)
    acc = acc / l_i[:, None]
    tl.store(O + b * sob + h * soh + offs_m[:, None] * sos + offs_d[None, :], acc.to(O.dtype.element_ty),
             mask=offs_m[:, None] < seq)


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
    "grid": ("cdiv(seq, BLOCK_M)", "batch * q_heads", 1),
    "num_warps": NUM_WARPS,
    "num_stages": NUM_STAGES,
    "assume": ["head_dim == HEAD_DIM", "q_heads % kv_heads == 0", "BLOCK_M % BLOCK_N == 0",
               "q.stride[3] == 1 and k.stride[3] == 1 and v.stride[3] == 1 and o.stride[3] == 1"],
}
