"""A user-defined op (no emile_op, so no builtin ladder) whose eager time
is noisy on purpose: half of its forwards sleep 4 ms, half 0.2 ms.  Its
first timing is tagged noisy_timing and measured again: each re-measure
must be a new measurement.  The builtin agent has no ladder for it and
stops after the reference."""
import random
import time

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        time.sleep(0.004 if random.random() < 0.5 else 0.0002)
        return x * 2.0


rows = 64
cols = 64


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return []
