"""Hash-grid radiance field: density (with a blob prior at the centre) and albedo."""
from __future__ import annotations

import torch
from torch import nn

from ..priors.latent_rgb import to_display_rgb
from .hashgrid import make_encoding, refuse_other_backend


def _mlp(n_in: int, width: int, n_out: int, hidden_layers: int) -> nn.Sequential:
    layers, d = [], n_in
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, width), nn.ReLU(inplace=True)]
        d = width
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


class NeRFField(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg, self.radius = cfg, cfg.radius
        self.color_channels = cfg.color_channels  # what renderers composite: 3 (RGB) or 4 (latents)
        self.encoding = make_encoding(cfg.pos_encoding)
        self.density_mlp = _mlp(self.encoding.output_dim, cfg.mlp_width, 1, cfg.mlp_layers)
        self.colour_mlp = _mlp(self.encoding.output_dim, cfg.mlp_width, cfg.color_channels, cfg.mlp_layers)
        self._register_load_state_dict_pre_hook(self._check_encoding_backend)

    def _check_encoding_backend(self, state_dict, prefix, *args):
        refuse_other_backend(state_dict, prefix + "encoding.", self.cfg.pos_encoding.backend)

    def parameter_groups(self) -> dict:
        return {"encoding": list(self.encoding.parameters()),
                "mlp": list(self.density_mlp.parameters()) + list(self.colour_mlp.parameters())}

    def _blob(self, points: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        r = points.norm(dim=-1)
        if c.density_bias == "blob_magic3d":
            return c.density_blob_scale * (1 - r / c.density_blob_std)
        if c.density_bias == "blob_dreamfusion":
            return c.density_blob_scale * torch.exp(-0.5 * (r / c.density_blob_std) ** 2)
        return torch.zeros_like(r)

    def _activate(self, raw: torch.Tensor) -> torch.Tensor:
        if self.cfg.density_activation == "exp":
            return torch.exp(raw.clamp_max(15))
        return nn.functional.softplus(raw)

    def _features(self, points):
        return self.encoding((points / self.radius + 1) / 2)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        raw = self.density_mlp(self._features(points))[:, 0] + self._blob(points)
        return self._activate(raw)

    def _colour(self, feats: torch.Tensor) -> torch.Tensor:
        raw = self.colour_mlp(feats)
        return torch.sigmoid(raw) if self.cfg.color_activation == "sigmoid" else raw

    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N,) and albedo (N, C): RGB in [0, 1], or latents with color_channels 4."""
        feats = self._features(points)
        sigma = self._activate(self.density_mlp(feats)[:, 0] + self._blob(points))
        return sigma, self._colour(feats)

    def albedo(self, points: torch.Tensor) -> torch.Tensor:
        return self._colour(self._features(points))

    def display_albedo(self, points: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] for textures: latent colours through the linear latent -> RGB map."""
        return to_display_rgb(self.albedo(points))

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        """Unit normals, pointing out of the density: -grad(sigma), by central finite differences
        (or autograd when normal_type is 'analytic')."""
        if self.cfg.normal_type == "analytic":
            with torch.enable_grad():
                p = points if points.requires_grad else points.detach().requires_grad_(True)
                sigma = self.density(p)
                grad = torch.autograd.grad(sigma.sum(), p, create_graph=torch.is_grad_enabled())[0]
            return -nn.functional.normalize(grad, dim=-1)
        eps = self.cfg.finite_difference_eps
        offsets = torch.eye(3, dtype=points.dtype, device=points.device) * eps
        shifted = torch.cat([points[None] + offsets[:, None], points[None] - offsets[:, None]]).reshape(-1, 3)
        d = self.density(shifted).reshape(2, 3, -1)
        grad = (d[0] - d[1]).T / (2 * eps)
        return -nn.functional.normalize(grad, dim=-1)
