"""Row gathers: the same values and gradients as plain indexing, and the same bits on every run."""
import contextlib

import torch

from dreamer.gather import gather_pairs, gather_rows


@contextlib.contextmanager
def threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def grads_of(gather, table, index, weight, runs=4):
    out = []
    for _ in range(runs):
        t = table.clone().requires_grad_()
        (gather(t, index) * weight).sum().backward()
        out.append(t.grad)
    return out


def test_values_and_gradients_match_plain_indexing():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(50, 3, 2, generator=g, dtype=torch.float64)
    index = torch.randint(0, 50, (7, 5), generator=g)
    weight = torch.randn(7, 5, 3, 2, generator=g, dtype=torch.float64)
    ours, plain = grads_of(gather_rows, table, index, weight, 1)[0], grads_of(lambda t, i: t[i], table, index, weight, 1)[0]
    torch.testing.assert_close(ours, plain, rtol=0, atol=1e-12)
    assert torch.equal(gather_rows(table, index), table[index])
    pairs = torch.randn(4, 6, 2, dtype=torch.float64)
    a, b = torch.randint(0, 4, (9,), generator=g), torch.randint(0, 6, (9,), generator=g)
    assert torch.equal(gather_pairs(pairs, a, b), pairs[a, b])
    assert torch.autograd.gradcheck(lambda t: gather_pairs(t, a, b), (pairs.requires_grad_(),))


def test_gradients_are_the_same_bits_on_every_run_with_threads():
    """Many indices share few rows (a hash grid's table, a splat seen by many pixels): plain
    indexing's backward summed them in a thread-dependent order here; ours must not."""
    g = torch.Generator().manual_seed(1)
    table = torch.randn(200_000, 2, generator=g)
    index = torch.randint(0, 200_000, (131_072, 8), generator=g)
    weight = torch.randn(131_072, 8, 2, generator=g)
    with threads(2):
        runs = grads_of(gather_rows, table, index, weight)
    assert all(torch.equal(runs[0], r) for r in runs[1:])


def test_every_row_shape_and_dtype_path_matches_plain_indexing():
    """One-dimensional tables, narrow and wide rows, float32 and float64: values against plain
    indexing bit for bit (NaN, -0.0 and inf included), gradients against plain indexing's."""
    g = torch.Generator().manual_seed(2)
    for shape, dtype in [((40,), torch.float32), ((40, 1), torch.float32), ((40, 2), torch.float32),
                         ((40, 1), torch.float64), ((40, 3), torch.float32), ((40, 2, 3), torch.float32)]:
        table = torch.randn(shape, generator=g, dtype=dtype)
        table.view(-1)[:3] = torch.tensor([float("nan"), -0.0, float("inf")], dtype=dtype)
        index = torch.randint(0, 40, (6, 9), generator=g)
        got = gather_rows(table, index)
        assert got.shape == table[index].shape and torch.equal(got.view(torch.uint8), table[index].view(torch.uint8))
        finite = torch.randn(shape, generator=g, dtype=dtype)
        weight = torch.randn(*index.shape, *shape[1:], generator=g, dtype=dtype)
        ours, plain = grads_of(gather_rows, finite, index, weight, 1)[0], grads_of(lambda t, i: t[i], finite, index,
                                                                                    weight, 1)[0]
        torch.testing.assert_close(ours, plain, rtol=1e-6, atol=1e-6)
