"""Rung 5: GQA packing on rung 4.

Idea: a program holds the GQA_PACK query heads that share one kv head, at
BLOCK_M / GQA_PACK positions each (row r: head h0 + r // (BLOCK_M/GQA_PACK),
position p0 + r % (BLOCK_M/GQA_PACK)), so every K/V tile brought in by TMA
feeds GQA_PACK heads: GQA_PACK times less K/V traffic from L2 per flop, and
under a causal mask the diagonal (masked) band is BLOCK_M / GQA_PACK keys
wide instead of BLOCK_M.  Q is gathered and O scattered with plain loads
and stores (once per program); K and V stream through tensor descriptors
as in rung 4; query blocks run longest first.

Parameters (the builtin agent rewrites these assignments): BLOCK_M, BLOCK_N,
NUM_WARPS, NUM_STAGES, GQA_PACK; HEAD_DIM and DTYPE come from the task.
"""
import triton
import triton.language as tl

BLOCK_M = 128
BLOCK_N = 64
NUM_WARPS = 8
NUM_STAGES = 3
GQA_PACK = 2
HEAD_DIM = 128
DTYPE = "bf16"


@triton.jit
def _attn_blocks(acc, l_i, m_i, q, k_desc, v_desc, pos, seq, causal, lo, hi, qk_scale,
                 BLOCK_N: tl.constexpr, MASKED: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in tl.range(lo, hi, BLOCK_N):
        k = k_desc.load([start_n, 0])
        s = tl.dot(q, k.T) * qk_scale
        if MASKED:
            cols = start_n + offs_n
            s = tl.where((cols[None, :] < seq) & ((causal == 0) | (pos[:, None] >= cols[None, :])), s,
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
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, GQA_PACK: tl.constexpr):
    BLOCK_P: tl.constexpr = BLOCK_M // GQA_PACK          # positions per program
    hp = tl.program_id(0)
    start_p = tl.program_id(1)
    if causal != 0:
        start_p = tl.num_programs(1) - 1 - start_p      # longest query blocks first
    packs = q_heads // GQA_PACK
    b = (hp // packs).to(tl.int64)
    h0 = (hp % packs) * GQA_PACK
    kvh = h0 // group
    rows = tl.arange(0, BLOCK_M)
    pos = start_p * BLOCK_P + rows % BLOCK_P
    head = h0 + rows // BLOCK_P
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(Q + b * sqb + head[:, None] * sqh + pos[:, None] * sqs + offs_d[None, :],
                mask=pos[:, None] < seq, other=0.0)
    k_desc = tl.make_tensor_descriptor(K + b * skb + kvh * skh, shape=[seq, HEAD_DIM], strides=[sks, 1],
                                       block_shape=[BLOCK_N, HEAD_DIM])
    v_desc = tl.make_tensor_descriptor(V + b * svb + kvh * svh, shape=[seq, HEAD_DIM], strides=[svs, 1],
                                       block_shape=[BLOCK_N, HEAD_DIM])
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if causal != 0:
        lo = start_p * BLOCK_P // BLOCK_N * BLOCK_N
        hi = tl.minimum(start_p * BLOCK_P + BLOCK_P, seq)
    else:
        lo = seq // BLOCK_N * BLOCK_N
        hi = seq
    acc, l_i, m_i = _attn_blocks(acc, l_i, m_i, q, k_desc, v_desc, pos, seq, causal, 0, lo, qk_scale,
                                 BLOCK_N, False)
    acc, l_i, m_i = _attn_blocks(acc, l_i, m_i, q, k_desc, v_desc, pos, seq, causal, lo, hi, qk_scale,
                                 BLOCK_N, True)
    acc = acc / l_i[:, None]
    tl.store(O + b * sob + head[:, None] * soh + pos[:, None] * sos + offs_d[None, :],
             acc.to(O.dtype.element_ty), mask=pos[:, None] < seq)


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
    "constexprs": {"BLOCK_M": BLOCK_M, "BLOCK_N": BLOCK_N, "HEAD_DIM": HEAD_DIM, "GQA_PACK": GQA_PACK},
    "grid": ("batch * q_heads // GQA_PACK", "cdiv(seq, BLOCK_M // GQA_PACK)", 1),
    "num_warps": NUM_WARPS,
    "num_stages": NUM_STAGES,
    "assume": ["head_dim == HEAD_DIM", "q_heads % kv_heads == 0", "(q_heads // kv_heads) % GQA_PACK == 0",
               "q.stride[3] == 1 and k.stride[3] == 1 and v.stride[3] == 1 and o.stride[3] == 1"],
}
