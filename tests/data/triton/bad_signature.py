import triton
import triton.language as tl


@triton.jit
def copy(X, Y, n, stride, BLOCK: tl.constexpr):
    off = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(Y + off * stride, tl.load(X + off * stride, mask=off < n), mask=off < n)


# The declaration forgets the kernel's `stride` parameter.
emile_launch = {"kernel": "copy", "args": [("X", "*fp32", "x"), ("Y", "*fp32", "y"), ("n", "i32", "n")],
                "constexprs": {"BLOCK": 128}, "grid": ("cdiv(n, 128)",)}
