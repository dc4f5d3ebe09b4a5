"""Row gathers whose gradients add up in a fixed order, so one seed gives one run on the CPU.

`table[index]` is the obvious gather, but its backward (index_put_ with accumulate) sums the rows
that several indices share in an order that follows the CPU thread schedule: two runs of the same
seed drifted apart after a few dozen steps. index_add_ sums in index order on the CPU (and was the
faster of the two there). On CUDA both use atomics; reproducibility there is not promised.
"""
from __future__ import annotations

import torch


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.table_shape = table.shape
        return table[index]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        rest = ctx.table_shape[1:]
        table_grad = grad.new_zeros(ctx.table_shape)
        return table_grad.index_add_(0, index.reshape(-1), grad.reshape((-1, *rest))), None


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a long `index` of any shape: rows of `table` (R, ...) -> (*index.shape, ...)."""
    if not table.requires_grad or not torch.is_grad_enabled():
        return table[index]
    return _GatherRows.apply(table, index)


def gather_pairs(table: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """table[first, second] for a table (A, B, ...), as one row gather of the flattened table."""
    a, b = table.shape[:2]
    return gather_rows(table.reshape(a * b, *table.shape[2:]), first * b + second)
