"""Row gathers whose gradients add up in a fixed order, so one seed gives one run on the CPU.

`table[index]` is the obvious gather, but its backward (index_put_ with accumulate) sums the rows
that several indices share in an order that follows the CPU thread schedule: two runs of the same
seed drifted apart after a few dozen steps. index_add_ sums in index order on the CPU (and was the
faster of the two there). On CUDA both use atomics; reproducibility there is not promised.

Both directions work on one-dimensional tensors where they can, because PyTorch's CPU kernels are
several times faster there than on rows (150k points x 8 corners of a (R, 2) float table: 1.5 ms
for a 1-D int64 index_select of the rows' bits, 17 ms for `table[index]`; the backward's two
column-wise index_adds 5.7 ms against 10.7 ms for one on rows).
"""
from __future__ import annotations

import torch

_WORD = {4: torch.int32, 8: torch.int64}  # a row of this many bytes moves as one integer
_MAX_COLUMNS_ADDED_ONE_BY_ONE = 4


def _take_rows(table: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """table[flat_index] for a 1-D index: (K, *rest), the rows' bits copied, never their values."""
    rest = table.shape[1:]
    row_bytes = table.element_size() * rest.numel()
    if table.is_contiguous() and row_bytes in _WORD and table.dim() > 1 and table.dtype.is_floating_point:
        words = table.view(table.shape[0], -1).view(_WORD[row_bytes]).reshape(-1)
        return words.index_select(0, flat_index).view(table.dtype).view(-1, *rest)
    return table.index_select(0, flat_index)


def _add_rows(shape: torch.Size, flat_index: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gather's backward: zeros of `shape` with grad's rows added at flat_index, in index order."""
    columns = shape[1:].numel()
    grad = grad.reshape(-1, columns)
    if columns > _MAX_COLUMNS_ADDED_ONE_BY_ONE:
        return grad.new_zeros(shape[0], columns).index_add_(0, flat_index, grad).view(shape)
    out = grad.new_zeros(columns, shape[0])
    for column in range(columns):
        out[column].index_add_(0, flat_index, grad[:, column])
    return out.t().contiguous().view(shape)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        flat = index.reshape(-1)
        ctx.save_for_backward(flat)
        ctx.table_shape = table.shape
        return _take_rows(table, flat).view(*index.shape, *table.shape[1:])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (flat,) = ctx.saved_tensors
        return _add_rows(ctx.table_shape, flat, grad), None


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a long `index` of any shape: rows of `table` (R, ...) -> (*index.shape, ...)."""
    if not table.requires_grad or not torch.is_grad_enabled():
        return _take_rows(table, index.reshape(-1)).view(*index.shape, *table.shape[1:])
    return _GatherRows.apply(table, index)


def gather_pairs(table: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """table[first, second] for a table (A, B, ...), as one row gather of the flattened table."""
    a, b = table.shape[:2]
    return gather_rows(table.reshape(a * b, *table.shape[2:]), first * b + second)
