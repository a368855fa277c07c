import triton
import triton.language as tl


@triton.jit
def copy(X, Y, n, BLOCK: tl.constexpr):
    off = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + off, mask=off < n)
    tl.store(Y + off, tl.exp(x, 2.0), mask=off < n)


emile_launch = {"kernel": "copy", "args": [("X", "*fp32", "x"), ("Y", "*fp32", "y"), ("n", "i32", "n")],
                "constexprs": {"BLOCK": 100}, "grid": ("cdiv(n, 100)",)}
