"""The fake score of a UNet prior (VSD, ESD, DSD; specs/guidance-sds-vsd-esd-csd-asd.md section 2e).

A copy of the prior's UNet, frozen, with LoRA adapters (peft) on the q, k, v and output projections
of every attention layer, and the camera (the flattened camera-to-world matrix, 16 floats) fed
through the UNet's class-embedding slot, which is added to the time embedding. The LoRA
up-projections and the camera MLP's last layer start at zero, so before training the fake score
equals the prior. A v-prediction UNet's output is converted to epsilon.

The copy keeps the prior's UNet untouched; sharing one UNet with adapters switched off for the
prior's pass would halve the memory and is left for the diffusers priors to opt into. Only the
trainable tensors go into checkpoints: the frozen copy is restored from the prior on load.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .base import cast_inputs, v_to_eps

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


class CameraEmbedding(nn.Module):
    """Linear(16, d) -> SiLU -> Linear(d, d), the last layer zero so the camera starts inert."""

    def __init__(self, camera_dim: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(camera_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, camera):
        return self.net(camera.to(self.net[0].weight.dtype))


class LoRAFakeScore(nn.Module):
    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor, rank: int = 4, camera_dim: int = 16,
                 prediction_type: str = "epsilon", unet_kwargs=None):
        super().__init__()
        from peft import LoraConfig
        unet = copy.deepcopy(unet)
        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=LORA_TARGETS))
        unet.class_embedding = CameraEmbedding(camera_dim, unet.time_embedding.linear_2.out_features)
        self.unet, self.prediction_type = unet, prediction_type
        self.alphas_cumprod = alphas_cumprod
        # emb -> the UNet's inputs (SDXL splits off its pooled row and adds time ids)
        self.unet_kwargs = unet_kwargs or (lambda emb: {"encoder_hidden_states": emb})
        self.evaluations = 0
        self._register_state_dict_hook(_keep_trainable)
        self._register_load_state_dict_pre_hook(self._restore_frozen, with_module=True)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        self.evaluations += x_t.shape[0]
        device, dtype = self.unet.device, self.unet.dtype
        kwargs = cast_inputs(self.unet_kwargs(emb), device, dtype)
        out = self.unet(x_t.to(device, dtype), t.to(device), class_labels=camera.to(device), **kwargs).sample
        out = out[:, :x_t.shape[1]].to(x_t)  # IF also predicts variances
        if self.prediction_type == "v_prediction":
            out = v_to_eps(x_t, out, t.to(x_t.device), self.alphas_cumprod)
        return out

    @staticmethod
    def _restore_frozen(module, state_dict, prefix, *args):
        for name, tensor in module.state_dict_all().items():
            state_dict.setdefault(prefix + name, tensor)

    def state_dict_all(self) -> dict:
        """Every tensor, frozen ones included (what a plain state_dict would hold)."""
        out = {}
        for name, p in self.named_parameters():
            out[name] = p.detach()
        for name, b in self.named_buffers():
            out[name] = b
        return out


def _keep_trainable(module, state_dict, prefix, local_metadata):
    trainable = {prefix + n for n, p in module.named_parameters() if p.requires_grad}
    for key in [k for k in state_dict if k.startswith(prefix) and k not in trainable]:
        del state_dict[key]
    return state_dict
