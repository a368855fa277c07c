import triton
import triton.language as tl


@triton.jit
def k(X):
    # Reaching Python's builtins through a module attribute: the front end
    # would call open() at compile time.
    tl.core.builtins.open("/etc/passwd")
    tl.store(X, 1.0)


emile_launch = {"kernel": "k", "args": [("X", "*fp32", "x")], "grid": (1,)}
