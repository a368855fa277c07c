import triton
import triton.language as tl


@triton.autotune(configs=[triton.Config({"BLOCK": 128}), triton.Config({"BLOCK": 256})], key=["n"])
@triton.jit
def copy(X, Y, n, BLOCK: tl.constexpr):
    off = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(Y + off, tl.load(X + off, mask=off < n), mask=off < n)


emile_launch = {"kernel": "copy", "args": [("X", "*fp32", "x"), ("Y", "*fp32", "y"), ("n", "i32", "n")],
                "grid": ("cdiv(n, 128)",)}
