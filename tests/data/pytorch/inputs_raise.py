import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x * 2


n = 64


def get_inputs():
    shape = (n, n)
    raise ValueError(f"cannot draw {shape}")


def get_init_inputs():
    return []
