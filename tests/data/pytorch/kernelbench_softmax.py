import torch
import torch.nn as nn

class Model(nn.Module):
    """
    Simple model that performs a Softmax activation (written here in
    KernelBench's style, with no emile_* names: Emile matches it to its
    builtin softmax op by its shapes and the op's float64 evaluation).
    """
    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)

batch_size = 256
dim = 4096

def get_inputs():
    x = torch.randn(batch_size, dim)
    return [x]

def get_init_inputs():
    return []  # No special initialization inputs needed
