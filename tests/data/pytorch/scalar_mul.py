"""KernelBench's matrix-scalar multiplication (level 1, problem 5) at a
small size: get_inputs() gives a number beside the tensor.  The kernel
gets it as a 0-d f32 tensor (shape [1] in the ABI), the forward as the
number, ModelNew takes the number (tests/integration/pytorch_problems.sh,
with ladders/scalar_mul/cpu).  The forward goes row by row in Python, so
that the reference stays below the CPU's measured bandwidth (A * s at once
read cached data at 111% of it, and a cook stops at its target before
trying the ladder)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, s: float) -> torch.Tensor:
        return torch.stack([row * s for row in A])


M = 1024
N = 1024


def get_inputs():
    A = torch.randn(M, N)
    s = 3.14
    return [A, s]


def get_init_inputs():
    return []
