"""Says it is the builtin softmax, computes a log-softmax: the float64 check
of the op must refuse it as a reference."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.log_softmax(x, dim=1)


rows = 64
cols = 128
emile_op = "softmax"


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []
