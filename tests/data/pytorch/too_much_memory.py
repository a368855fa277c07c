import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x + 1


n = 1 << 28          # 1 GiB of f32 per input


def get_inputs():
    return [torch.randn(n)]


def get_init_inputs():
    return []
