"""A forward that changes its input in place (y = 2x + 1, as x.mul_(2).add_(1)):
the kernel must be given the input the forward read, not what it left
(tests/integration/pytorch_problems.sh; inplace_affine.c is right,
inplace_copy.c copies its input, which matched while the oracle handed the
kernel the input after the forward)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x.mul_(2).add_(1)


rows = 64
cols = 256


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []
