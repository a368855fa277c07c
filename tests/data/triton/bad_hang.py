import triton
import triton.language as tl


@triton.jit
def spin(X, n):
    # The front end unrolls a static range: a hundred million iterations
    # keep the compiler busy until the sandbox's wall limit.
    acc = 0.0
    for i in tl.static_range(100000000):
        acc += i
    tl.store(X, acc)


emile_launch = {"kernel": "spin", "args": [("X", "*fp32", "x"), ("n", "i32", "n")], "grid": (1,)}
