"""A mask registered with persistent=False (state_dict leaves it out): the
kernel still receives it, after the state_dict's tensors, and ModelNew
passes it (tests/integration/pytorch_problems.sh)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, cols):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, cols))
        self.register_buffer("mask", (torch.arange(cols) % 3 != 0).float(), persistent=False)

    def forward(self, x):
        return x * self.scale * self.mask


rows = 64
cols = 96


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return [cols]
