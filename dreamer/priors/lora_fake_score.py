"""The fake score of a UNet prior (VSD, ESD, DSD; specs/guidance-sds-vsd-esd-csd-asd.md section 2e).

The prior's own UNet, shared, with LoRA adapters (peft) on the q, k, v and output projections of
every attention layer, switched on only for the fake score's passes; the camera (the flattened
camera-to-world matrix, 16 floats) goes through the UNet's class-embedding slot, which is added to
the time embedding, attached for those passes only. The LoRA up-projections and the camera MLP's
last layer start at zero, so before training the fake score equals the prior.

Sharing instead of copying saves a whole UNet of GPU memory (5 GB for SDXL in fp16). The UNet is
not a submodule here: the prior owns it and its device, and only the trainable tensors are this
module's parameters (and go into checkpoints, under the names a UNet copy used to give them).

Precision: the trainable weights are float32 whatever the UNet's dtype. Adam's eps (1e-15) is 0 in
fp16, and LoRA's first A-gradient is exactly 0, so fp16 weights would take a 0/0 step. Through an
fp16 UNet the backward runs in fp16, where the denoising loss's small gradients would flush to
zero: the gradient entering the UNet is multiplied by a dynamic loss scale, and `after_backward`
divides it out of the weights' gradients (halving the scale and dropping this step's fake-score
update when they overflow, as torch.amp.GradScaler does).
"""
from __future__ import annotations

import itertools
from collections import OrderedDict

import torch
from torch import nn

from .base import cast_inputs, v_to_eps

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
SAVED_ADAPTER = "default"  # the adapter name inside checkpoint keys, whatever it is called in the UNet
_names = itertools.count()


class CameraEmbedding(nn.Module):
    """Linear(16, d) -> SiLU -> Linear(d, d), the last layer zero so the camera starts inert."""

    def __init__(self, camera_dim: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(camera_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, camera):
        return self.net(camera.to(self.net[0].weight.dtype))


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by `scale` (loss scaling)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class LoRAFakeScore(nn.Module):
    GROWTH_INTERVAL = 1000  # good steps before the loss scale doubles again

    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor, rank: int = 4, camera_dim: int = 16,
                 prediction_type: str = "epsilon", unet_kwargs=None):
        super().__init__()
        from peft import LoraConfig
        from peft.tuners.tuners_utils import BaseTunerLayer
        self.adapter = f"fake_score_{next(_names)}"  # unique: one prior may serve several fake scores
        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=LORA_TARGETS),
                         adapter_name=self.adapter)
        marker = f".{self.adapter}."
        lora = {n: p for n, p in unet.named_parameters() if marker in n}
        for p in lora.values():
            p.data = p.data.float()
        self._unet = [unet]  # a plain reference: not a submodule (see the module docstring)
        self._layers = [m for m in unet.modules() if isinstance(m, BaseTunerLayer)]
        self._switch(False)
        # The LoRA weights in the UNet's order, then the camera: the order the UNet copy gave its
        # trainable tensors, which the optimizer state of older checkpoints follows.
        self.lora = nn.ParameterDict(OrderedDict((_local(n), p) for n, p in lora.items()))  # a dict would be sorted
        self.camera = CameraEmbedding(camera_dim, unet.time_embedding.linear_2.out_features)
        # checkpoint names as a UNet copy with a "default" adapter gave them
        self._saved_names = {_local(n): "unet." + n.replace(marker, f".{SAVED_ADAPTER}.") for n in lora}
        self.prediction_type = prediction_type
        self.alphas_cumprod = alphas_cumprod
        # emb -> the UNet's inputs (SDXL splits off its pooled row and adds time ids)
        self.unet_kwargs = unet_kwargs or (lambda emb: {"encoder_hidden_states": emb})
        self.evaluations = 0
        half = unet.dtype == torch.float16  # bf16 has float32's range: no scaling needed
        self.loss_scale = 2.0 ** 16 if half else 1.0
        self._good_steps = 0
        self._register_state_dict_hook(_to_saved_names)
        self._register_load_state_dict_pre_hook(self._from_saved_names, with_module=True)

    @property
    def unet(self) -> nn.Module:
        return self._unet[0]

    def _switch(self, on: bool) -> None:
        """This fake score's adapters (and camera) into the UNet, or out of it for the prior's passes.
        peft's switch also clears requires_grad; ours stays set (the prior's passes take no grad)."""
        for layer in self._layers:
            if on:
                layer.set_adapter(self.adapter)
            layer.enable_adapters(on)
        if not on:
            for layer in self._layers:
                for name in layer.adapter_layer_names:
                    for key, sub in getattr(layer, name).items():
                        if key == self.adapter:
                            sub.requires_grad_(True)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        self.evaluations += x_t.shape[0]
        unet = self.unet
        device, dtype = unet.device, unet.dtype
        kwargs = cast_inputs(self.unet_kwargs(emb), device, dtype)
        slot = unet.class_embedding
        self._switch(True)
        unet.class_embedding = self.camera
        try:
            out = unet(x_t.to(device, dtype), t.to(device), class_labels=camera.to(device), **kwargs).sample
        finally:
            unet.class_embedding = slot
            self._switch(False)
        out = out[:, :x_t.shape[1]].to(x_t)  # IF also predicts variances
        if self.loss_scale != 1.0 and torch.is_grad_enabled():
            out = _ScaleGradient.apply(out, self.loss_scale)  # applied before the backward's cast to fp16
        if self.prediction_type == "v_prediction":
            out = v_to_eps(x_t, out, t.to(x_t.device), self.alphas_cumprod)
        return out

    def after_backward(self) -> None:
        """Divide the loss scale out of the gradients; on overflow drop them and halve the scale."""
        if self.loss_scale == 1.0:
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return
        torch._foreach_div_(grads, self.loss_scale)
        if bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            self._good_steps += 1
            if self._good_steps % self.GROWTH_INTERVAL == 0:
                self.loss_scale = min(self.loss_scale * 2, 2.0 ** 24)
            return
        for p in self.parameters():
            p.grad = None  # Adam skips this step for the fake score only
        self.loss_scale = max(self.loss_scale / 2, 1.0)
        self._good_steps = 0

    def _from_saved_names(self, module, state_dict, prefix, *args):
        for local, saved in self._saved_names.items():
            if prefix + saved in state_dict:
                state_dict[prefix + "lora." + local] = state_dict.pop(prefix + saved)
        _rename_prefix(state_dict, prefix + "unet.class_embedding.", prefix + "camera.")


def _local(name: str) -> str:
    """A parameter path as a ParameterDict key (which cannot hold dots)."""
    return name.replace(".", "/")


def _rename_prefix(state_dict: dict, old: str, new: str) -> None:
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[new + key[len(old):]] = state_dict.pop(key)


def _to_saved_names(module, state_dict, prefix, local_metadata):
    for local, saved in module._saved_names.items():
        state_dict[prefix + saved] = state_dict.pop(prefix + "lora." + local)
    _rename_prefix(state_dict, prefix + "camera.", prefix + "unet.class_embedding.")
    return state_dict
