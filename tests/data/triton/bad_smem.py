import triton
import triton.language as tl

BM, BN, BK = 256, 256, 128


@triton.jit
def matmul(A, B, C, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pm, pn = tl.program_id(0), tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        a = tl.load(A + rm[:, None] * K + (k + rk)[None, :])
        b = tl.load(B + (k + rk)[:, None] * N + rn[None, :])
        acc += tl.dot(a, b)
    tl.store(C + rm[:, None] * N + rn[None, :], acc)


# 4 stages of 256x128 + 128x256 bf16 tiles: 512 KB of shared memory.
emile_launch = {
    "kernel": "matmul",
    "args": [("A", "*bf16:16", "a"), ("B", "*bf16:16", "b"), ("C", "*fp32:16", "c"),
             ("M", "i32", "m"), ("N", "i32", "n"), ("K", "i32", "k")],
    "constexprs": {"BM": BM, "BN": BN, "BK": BK},
    "grid": ("cdiv(m, BM)", "cdiv(n, BN)"),
    "num_warps": 8,
    "num_stages": 4,
}
