"""A forward that returns a tensor and a Python number: the error names the
element that is not a tensor (tests/integration/pytorch_problems.sh)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x * 2, 0.5


rows = 8
cols = 16


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []
