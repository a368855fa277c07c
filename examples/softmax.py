"""Softmax over the last dimension of a [batch_size, dim] activation.

A problem in KernelBench's convention: `emile cook examples/softmax.py`
(examples/softmax_cpu.json: the same problem at CPU sizes).  The emile_*
names are optional: emile_op matches the builtin softmax op (tensors x -> y,
parameters rows = batch_size and cols = dim, read from the shapes), so the
builtin agent's softmax ladder applies; emile_vary lets validation draw a
ragged and a small batch.
"""
import torch
import torch.nn as nn


class Model(nn.Module):
    """y = softmax(x) along dim 1."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)


batch_size = 4096
dim = 4096

emile_op = "softmax"
emile_vary = ["batch_size"]


def get_inputs():
    x = torch.randn(batch_size, dim)
    return [x]


def get_init_inputs():
    return []
