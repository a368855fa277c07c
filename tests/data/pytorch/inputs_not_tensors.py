import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x, k):
        return x * k


def get_inputs():
    return [torch.randn(8, 8), "3"]      # a number is taken (scalar_mul.py); a string is not


def get_init_inputs():
    return []
