"""A user-defined op (no emile_op): two inputs, a parameter, a buffer, two
outputs, a constructor argument and a varied constant.  Its ABI tensors are
x, y, bias, scale (state_dict order), out0, out1; its parameters the module's
constants (rows, features) and the constructor's argument (features)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(features))          # redrawn by the oracle: a constant
        self.register_buffer("scale", torch.linspace(0.5, 2.0, features))

    def forward(self, x, y):
        s = x * self.scale + y + self.bias
        return s, s.sum(dim=1)


rows = 2000
features = 512
emile_vary = ["rows"]


def get_inputs():
    return [torch.randn(rows, features), torch.randn(rows, features)]


def get_init_inputs():
    return [features]
