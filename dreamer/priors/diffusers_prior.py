"""Diffusers checkpoints as priors: Stable Diffusion 1.x/2.x, SDXL base and DeepFloyd IF stage I.

What guidance sees is the interface of priors.base.Prior; the families differ only in
  - their space: SD and SDXL work on VAE latents (renders are resized to the UNet's image size and
    encoded with gradient), IF on 64x64 pixels;
  - their text conditioning: SD one CLIP encoder; SDXL two CLIP encoders (penultimate hidden
    states concatenated) plus the second one's pooled output and "added time ids"; IF a T5 encoder;
  - their UNet output: v-prediction (SD 2.1 768) is converted to epsilon, and IF's learned
    variance channels are dropped.

SDXL's pooled embedding rides along as one extra token row of the embedding tensor (zero padded
to the token width), so a prompt is one tensor for every family and Perp-Neg can blend them.
Text encoders load only when a prompt is not in the disk cache, and leave the GPU afterwards.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import PriorConfig
from .base import Prior, cast_inputs, v_to_eps
from .hub import PriorSource
from .loading import apply_gpu_options, load_part, pick_device, pick_dtype, vae_dtype
from .lora_fake_score import LoRAFakeScore
from .text_cache import EmbeddingCache, model_fingerprint


class DiffusersPrior(Prior):
    family = "sd"
    space = "latent"
    text_parts: tuple[tuple[str, str], ...] = (("tokenizer", "text_encoder"),)
    max_tokens: int | None = None  # None: the tokenizer's model_max_length

    def __init__(self, unet, scheduler, vae=None, source: PriorSource | None = None, cfg=None,
                 text_models: dict | None = None, cache: EmbeddingCache | None = None,
                 device: torch.device | str = "cpu"):
        """`text_models` (part name -> tokenizer/encoder) may be given already loaded; otherwise they
        load from `source` on the first prompt the cache does not hold."""
        self.unet, self.vae, self.source, self.cfg = unet, vae, source, cfg or PriorConfig()
        self.device = torch.device(device)
        self.prediction_type = scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported prediction type {self.prediction_type}")
        self.alphas_cumprod = scheduler.alphas_cumprod.float()
        self._text = dict(text_models or {})
        self.cache = cache or EmbeddingCache("unsaved", enabled=False)
        self._unet_forward = torch.compile(unet) if self.cfg.compile else unet
        sample = unet.config.sample_size
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        self.resolution = int(sample)
        self.channels = int(unet.config.in_channels)
        scale = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        self.image_resolution = int(self.cfg.resolution or self.resolution * scale)
        self.resolution = self.image_resolution // scale

    # -- text --------------------------------------------------------------------------------

    def check_prompt(self, prompt: str) -> None:
        """Any text conditions a real prior (overlong prompts are truncated as diffusers does)."""

    @property
    def unet_dtype(self) -> torch.dtype:
        return self.unet.dtype

    def embed(self, prompts: list[str]) -> torch.Tensor:
        out = {p: self.cache.get(p) for p in dict.fromkeys(prompts)}
        missing = [p for p, e in out.items() if e is None]
        if missing:
            with torch.no_grad():
                fresh = self.encode_text(missing).float().cpu()
            for p, e in zip(missing, fresh):
                out[p] = e
                self.cache.put(p, e)
            self._offload_text()
        return torch.stack([out[p] for p in prompts]).to(self.device)

    def text_models(self) -> dict:
        """Tokenizers and encoders on the device, loading them on first use."""
        for tok_name, enc_name in self.text_parts:
            if tok_name not in self._text:
                self._text[tok_name] = load_part(self.source, tok_name)
            if enc_name not in self._text:
                self._text[enc_name] = load_part(self.source, enc_name, self.unet_dtype, self.cfg.allow_pickle)
            self._text[enc_name].to(self.device).requires_grad_(False).eval()
        return self._text

    def _offload_text(self) -> None:
        if self.device.type != "cpu" and self.cfg.offload_text_encoders:
            for _, enc_name in self.text_parts:
                if enc_name in self._text:
                    self._text[enc_name].to("cpu")

    def tokenize(self, tokenizer, prompts: list[str]) -> dict:
        enc = tokenizer(prompts, padding="max_length", max_length=self.max_tokens or tokenizer.model_max_length,
                        truncation=True, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """(N, tokens, width): SD's CLIP last hidden state."""
        m = self.text_models()
        ids = self.tokenize(m["tokenizer"], prompts)["input_ids"]
        return m["text_encoder"](ids)[0]

    # -- images --------------------------------------------------------------------------------

    def _to_image_size(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2)
        size = self.image_resolution
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, (size, size), mode="bilinear", align_corners=False,
                              antialias=bool(x.shape[-1] > size))
        return x * 2 - 1

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        """Renders -> latents with gradient: resize to the UNet's image size, VAE-encode, and take
        the posterior's sample or mean (prior.vae_mode), scaled as diffusers does. With
        prior.rgb_as_latents the renders' 4 channels are the latents, resized to the latent size."""
        if self.cfg.rgb_as_latents:
            x = rgb.permute(0, 3, 1, 2)
            if x.shape[-2:] != (self.resolution, self.resolution):
                x = F.interpolate(x, (self.resolution, self.resolution), mode="bilinear", align_corners=False)
            return x
        x = self._to_image_size(rgb)
        vae = self.vae
        posterior = vae.encode(x.to(self.device, vae.dtype)).latent_dist
        z = posterior.sample() if self.cfg.vae_mode == "sample" else posterior.mean
        return ((z - self._vae_shift) * vae.config.scaling_factor).float().to(rgb.device)

    @property
    def _vae_shift(self) -> float:
        return getattr(self.vae.config, "shift_factor", None) or 0.0  # newer VAEs only

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        img = vae.decode((x / vae.config.scaling_factor + self._vae_shift).to(self.device, vae.dtype)).sample
        return ((img.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)

    # -- the noise prediction --------------------------------------------------------------------

    def unet_kwargs(self, emb: torch.Tensor) -> dict:
        """UNet inputs made from one embedding batch (SDXL splits its pooled row off here)."""
        return {"encoder_hidden_states": emb}

    @torch.no_grad()
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        dtype = self.unet_dtype
        x = x_t.to(self.device, dtype)
        tt = t.to(self.device).long()
        kwargs = cast_inputs(self.unet_kwargs(emb), self.device, dtype)
        if self.cfg.compile:
            _batch_is_dynamic(x, tt, kwargs)
        out = self._unet_forward(x, tt, **kwargs).sample
        return self.to_eps(x, out, tt).to(x_t)

    def to_eps(self, x_t: torch.Tensor, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = out[:, :x_t.shape[1]]  # IF also predicts variances
        if self.prediction_type == "v_prediction":
            out = v_to_eps(x_t.float(), out.float(), t, self.alphas_cumprod).to(out.dtype)
        return out

    def make_fake_score(self, cfg):
        return LoRAFakeScore(self.unet, self.alphas_cumprod, rank=cfg.lora_rank,
                             prediction_type=self.prediction_type, unet_kwargs=self.unet_kwargs)


class SDXLPrior(DiffusersPrior):
    family = "sdxl"
    text_parts = (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"))

    def __init__(self, *args, force_zeros_for_empty_prompt: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.force_zeros = force_zeros_for_empty_prompt

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Penultimate hidden states of both encoders side by side, plus the second one's pooled
        projection as an extra token row; the empty prompt is all zeros, as the SDXL pipeline does."""
        m = self.text_models()
        states, pooled = [], None
        for tok_name, enc_name in self.text_parts:
            ids = self.tokenize(m[tok_name], prompts)["input_ids"]
            out = m[enc_name](ids, output_hidden_states=True)
            states.append(out.hidden_states[-2])
            pooled = out[0]  # text_embeds of the projection model (the last encoder)
        tokens = torch.cat(states, dim=-1)
        row = torch.zeros(tokens.shape[0], 1, tokens.shape[-1], dtype=tokens.dtype, device=tokens.device)
        row[:, 0, :pooled.shape[-1]] = pooled
        emb = torch.cat([tokens, row], dim=1)
        if self.force_zeros:
            for i, p in enumerate(prompts):
                if p == "":
                    emb[i] = 0
        return emb

    @property
    def pooled_dim(self) -> int:
        return int(self.unet.config.projection_class_embeddings_input_dim
                   - 6 * self.unet.config.addition_time_embed_dim)

    def unet_kwargs(self, emb: torch.Tensor) -> dict:
        size = float(self.image_resolution)
        # (original size, crop top-left, target size): an uncropped image at the rendered size
        time_ids = torch.tensor([size, size, 0.0, 0.0, size, size]).expand(emb.shape[0], 6)
        return {"encoder_hidden_states": emb[:, :-1],
                "added_cond_kwargs": {"text_embeds": emb[:, -1, :self.pooled_dim], "time_ids": time_ids}}


class IFPrior(DiffusersPrior):
    family = "if"
    space = "pixel"
    max_tokens = 77  # what the IF pipeline uses, whatever the T5 tokenizer allows

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        m = self.text_models()
        enc = self.tokenize(m["tokenizer"], prompts)
        return m["text_encoder"](enc["input_ids"], attention_mask=enc["attention_mask"])[0]

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        return self._to_image_size(rgb)

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)


def _batch_is_dynamic(*inputs) -> None:
    """Compile the UNet once for every batch size (B views, 2B with CFG, more with Perp-Neg) instead
    of once for the first size and again when a second one shows it varies."""
    for v in inputs:
        if isinstance(v, dict):
            _batch_is_dynamic(*v.values())
        elif torch.is_tensor(v) and v.dim():
            torch._dynamo.maybe_mark_dynamic(v, 0)


def _quiet_loaders() -> None:
    """Loading bars and notices from transformers/diffusers would interleave with our progress line."""
    import diffusers
    import transformers
    for lib in (diffusers, transformers):
        lib.utils.logging.disable_progress_bar()
        lib.utils.logging.set_verbosity_error()


PRIOR_CLASSES = {"sd": DiffusersPrior, "sdxl": SDXLPrior, "if": IFPrior}


def load_diffusers_prior(source: PriorSource, cfg, progress=None) -> DiffusersPrior:
    """The prior of a resolved pipeline folder, with cfg's device, dtype and GPU options."""
    _quiet_loaders()
    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    if progress:
        progress(f"loading {source.family.upper()} prior {source.name} ({dtype}, {device})")
    scheduler = load_part(source, "scheduler")
    unet = apply_gpu_options(load_part(source, "unet", dtype, cfg.allow_pickle), cfg).to(device)
    vae = None
    if source.family != "if":
        vae = load_part(source, "vae", dtype, cfg.allow_pickle)
        vae = vae.to(device, vae_dtype(source.family, vae.config, dtype)).requires_grad_(False).eval()
    cls = PRIOR_CLASSES[source.family]
    subfolders = [p for pair in cls.text_parts for p in pair]
    cache = EmbeddingCache(model_fingerprint(source.folder, subfolders) + f"-{source.family}",
                           enabled=cfg.embedding_cache)
    extra = {}
    if source.family == "sdxl":
        import json
        index = json.loads((source.folder / "model_index.json").read_text())
        extra["force_zeros_for_empty_prompt"] = bool(index.get("force_zeros_for_empty_prompt", True))
    return cls(unet, scheduler, vae=vae, source=source, cfg=cfg, cache=cache, device=device, **extra)
