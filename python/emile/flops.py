"""FLOPs of one forward, from the reference itself.

torch.utils.flop_counter counts matrix products, convolutions and attention
(two FLOPs per multiply-add, as the field counts them).  scaled_dot_product_
attention is counted on its math path (the fused CPU/GPU paths have no
formula registered in some versions), so causal attention counts the full
S x S product: a problem that wants the FlashAttention convention (halved
when causal) says so with emile_op = "attention" or emile_flops.

Everything else a forward does (elementwise ops, reductions, softmax, norms)
is not in the counter; when the counter finds no FLOPs at all, one FLOP per
element of every floating-point operation is counted instead (its largest
operand), an estimate that keeps the roofline meaningful: for a memory-bound
op the share of the roofline is the share of the bandwidth whatever the FLOP
count, as long as it is positive.  emile_flops overrides both.
"""
import torch
from torch.utils._python_dispatch import TorchDispatchMode

_FREE = {  # no arithmetic: layout, copies, allocation
    "view", "_unsafe_view", "reshape", "expand", "permute", "transpose", "t", "clone", "copy_",
    "contiguous", "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like",
    "full", "full_like", "fill_", "zero_", "detach", "alias", "slice", "select", "unsqueeze",
    "squeeze", "cat", "stack", "split", "split_with_sizes", "chunk", "narrow", "as_strided",
    "_to_copy", "to", "lift_fresh", "index_select", "gather", "scatter", "arange", "new_empty",
    "new_zeros", "new_ones", "unbind", "flatten", "unflatten", "repeat", "_reshape_alias",
    "index", "masked_fill", "tril", "triu", "where",
}


class _ElementCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.__name__.split(".")[0]
        if name not in _FREE:
            sizes = [t.numel() for t in _tensors((args, kwargs, out)) if t.is_floating_point()]
            if sizes:
                self.flops += max(sizes)
        return out


def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for y in x:
            yield from _tensors(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _tensors(y)


def count(model, inputs):
    """(flops, how) of model(*inputs)."""
    from torch.utils.flop_counter import FlopCounterMode
    try:
        from torch.nn.attention import sdpa_kernel, SDPBackend
        math_sdpa = sdpa_kernel([SDPBackend.MATH])
    except ImportError:                      # older torch: sdpa is counted as it is
        import contextlib
        math_sdpa = contextlib.nullcontext()
    with torch.no_grad(), math_sdpa:
        with FlopCounterMode(display=False) as fc:
            model(*inputs)
        total = int(fc.get_total_flops())
        if total > 0:
            return total, "torch.utils.flop_counter"
        with _ElementCounter() as ec:
            model(*inputs)
    return int(ec.flops), "one per element of each floating-point op (the flop counter found none)"
