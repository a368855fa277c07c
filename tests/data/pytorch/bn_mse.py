"""BatchNorm1d in eval mode, then the mean squared error against a target:
a 0-d output (the loss) and a 0-d int64 buffer (num_batches_tracked), as in
KernelBench's loss and BatchNorm problems.  The kernel sees both as shape
[1]; the export's op takes and returns them 0-d
(tests/integration/pytorch_problems.sh, with ladders/bn_mse/cpu)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.bn = nn.BatchNorm1d(features, eps=eps)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 1.5)
        self.eval()

    def forward(self, x, target):
        return torch.mean((self.bn(x) - target) ** 2)


batch = 256
features = 1024
eps = 1e-5


def get_inputs():
    return [torch.randn(batch, features), torch.randn(batch, features)]


def get_init_inputs():
    return [features]
