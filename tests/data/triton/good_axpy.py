"""A small valid Triton candidate: o = alpha * x + y over a vector."""
import triton
import triton.language as tl

BLOCK = 256


@triton.jit
def axpy(X, Y, O, n, alpha, BLOCK: tl.constexpr):
    off = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = off < n
    x = tl.load(X + off, mask=m)
    y = tl.load(Y + off, mask=m)
    tl.store(O + off, alpha * x + y, mask=m)


emile_launch = {
    "kernel": "axpy",
    "args": [("X", "*fp32:16", "x"), ("Y", "*fp32:16", "y"), ("O", "*fp32:16", "o"),
             ("n", "i32", "x.shape[0]"), ("alpha", "fp32", "alpha")],
    "constexprs": {"BLOCK": BLOCK},
    "grid": ("cdiv(x.shape[0], BLOCK)",),
    "num_warps": 4,
    "num_stages": 1,
}

if __name__ == "__main__":
    print("never run by the harness")
