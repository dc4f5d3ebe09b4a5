import torch

from dreamer.geometry.hashgrid import PRIMES, HashGrid


def brute_force(grid: HashGrid, x: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation written point by point from the definition."""
    out = []
    for p in x:
        feats = []
        for level, res in enumerate(grid.resolutions):
            pos = p * res
            base = torch.clamp(pos.floor().long(), max=res - 1)
            f = pos - base
            acc = torch.zeros(grid.n_features, dtype=x.dtype)
            for cx in (0, 1):
                for cy in (0, 1):
                    for cz in (0, 1):
                        c = base + torch.tensor([cx, cy, cz])
                        size = grid.offsets[level + 1] - grid.offsets[level]
                        if (res + 1) ** 3 <= grid.table_size:
                            i = (c[0] * (res + 1) + c[1]) * (res + 1) + c[2]
                        else:
                            i = ((c[0] * PRIMES[0]) ^ (c[1] * PRIMES[1]) ^ (c[2] * PRIMES[2])) % size
                        w = (f[0] if cx else 1 - f[0]) * (f[1] if cy else 1 - f[1]) * (f[2] if cz else 1 - f[2])
                        acc = acc + w * grid.embeddings[grid.offsets[level] + i]
            feats.append(acc)
        out.append(torch.cat(feats))
    return torch.stack(out)


def small_grid():
    torch.manual_seed(0)
    g = HashGrid(n_levels=3, n_features_per_level=2, log2_hashmap_size=8, base_resolution=2, per_level_scale=2.0)
    with torch.no_grad():
        g.embeddings.uniform_(-1, 1)
    return g.double()


def test_matches_brute_force_dense_and_hashed_levels():
    g = small_grid()
    assert (g.resolutions[0] + 1) ** 3 <= g.table_size < (g.resolutions[2] + 1) ** 3  # both kinds
    x = torch.rand(20, 3, dtype=torch.float64)
    assert torch.allclose(g(x), brute_force(g, x), atol=1e-12)


def test_gradcheck_inputs_and_table():
    g = small_grid()
    x = (torch.rand(5, 3, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: g(x), (x,), eps=1e-6, atol=1e-5)
    table = g.embeddings.detach().clone().requires_grad_(True)

    def f(table):
        return torch.func.functional_call(g, {"embeddings": table}, (x.detach(),))
    assert torch.autograd.gradcheck(f, (table,), eps=1e-6, atol=1e-5)


def test_continuous_across_cell_borders():
    g = small_grid()
    x = torch.tensor([[0.5, 0.25, 0.75]], dtype=torch.float64)
    d = torch.tensor([[1e-9, 0, 0]], dtype=torch.float64)
    assert torch.allclose(g(x - d), g(x + d), atol=1e-6)


def test_tinycudann_is_an_explicit_choice_and_its_checkpoints_are_refused_by_ours(monkeypatch):
    """Picked whenever CUDA and tinycudann were present, it broke CPU export and made checkpoints
    unportable; now only geometry.pos_encoding.backend=tinycudann picks it."""
    import sys
    import types

    import pytest

    from dreamer.config import GeometryConfig, HashGridConfig
    from dreamer.errors import UserError
    from dreamer.geometry.hashgrid import make_encoding
    from dreamer.geometry.nerf import NeRFField
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tinycudann", types.ModuleType("tinycudann"))  # "installed"
    assert isinstance(make_encoding(HashGridConfig()), HashGrid)  # the default stays ours
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU; run it on a CUDA machine"):
        make_encoding(HashGridConfig(backend="tinycudann"))
    field = NeRFField(GeometryConfig())
    state = {k: v for k, v in field.state_dict().items() if k != "encoding.embeddings"}
    state["encoding.encoding.params"] = torch.zeros(10)  # what a tinycudann run saves
    with pytest.raises(UserError, match="trained with geometry.pos_encoding.backend=tinycudann, but the config says torch"):
        field.load_state_dict(state)
