"""RMSNorm with a learned weight over the hidden dimension, as in Qwen3:
y = x / sqrt(mean(x^2) + eps) * weight, row by row.

A problem in KernelBench's convention: `emile cook examples/rmsnorm.py`
(examples/rmsnorm_py_cpu.json: CPU sizes).  The weight is a parameter: it
reaches the kernel as the ABI's second tensor (after the forward's input x,
before the output), and the oracle draws it afresh for every input set
(a constructor's ones would let a kernel that ignores it pass).  emile_op
matches the builtin rmsnorm op (x, w -> y; rows, cols from the shapes, eps
from the constructor's argument of the same name).
"""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, hidden: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().pow(2).mean(-1, keepdim=True)
        y = x.float() * torch.rsqrt(var + self.eps)
        return self.weight * y.to(x.dtype)


tokens = 2048
hidden = 2560          # Qwen3-4B's hidden size
eps = 1e-6

emile_op = "rmsnorm"
emile_vary = ["tokens"]


def get_inputs():
    return [torch.randn(tokens, hidden)]


def get_init_inputs():
    return [hidden, eps]
