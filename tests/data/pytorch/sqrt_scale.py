"""A parameter its constructor sets to ones, read under a square root: the
oracle redraws it around its value (every set), keeping its sign, so the
forward stays finite (tests/integration/pytorch_problems.sh; sqrt_scale.c is
the kernel)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.var = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x / torch.sqrt(self.var)


batch = 16
channels = 256


def get_inputs():
    return [torch.randn(batch, channels)]


def get_init_inputs():
    return [channels]
