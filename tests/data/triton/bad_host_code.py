import os
import triton
import triton.language as tl

print(open("/etc/passwd").read())


@triton.jit
def k(X):
    tl.store(X, 1.0)


emile_launch = {"kernel": "k", "args": [("X", "*fp32", "x")], "grid": (1,)}
