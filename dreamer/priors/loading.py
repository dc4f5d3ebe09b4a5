"""Loading a diffusers pipeline's parts from a local folder, safely, and the GPU options.

Each part is loaded by the class model_index.json names, but only classes of diffusers and
transformers: no custom pipelines, never trust_remote_code. Weights come from safetensors unless
the user opts into pickled (.bin/.ckpt) weights with prior.allow_pickle, which can run code.
"""
from __future__ import annotations

import torch

from ..errors import UserError
from .hub import PriorSource

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"prior.device={name} but this machine has no CUDA GPU; use prior.device=auto or cpu")
    return torch.device(name)


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: half precision on a GPU (the UNet is the step's floor), float32 on a CPU (fp16 is slow there)."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def vae_dtype(family: str, vae_config, dtype: torch.dtype) -> torch.dtype:
    """The VAE's dtype for a UNet in `dtype`: SDXL's VAE overflows in fp16, so it runs in fp32 when
    its config asks (force_upcast; the fp16-fix VAEs do not). SD 1.x/2.x VAEs also carry
    force_upcast=true (the config's default), but their pipelines run them in fp16, and so do we."""
    if family == "sdxl" and dtype == torch.float16 and getattr(vae_config, "force_upcast", False):
        return torch.float32
    return dtype


def load_part(source: PriorSource, part: str, dtype: torch.dtype | None = None, allow_pickle: bool = False):
    """One component (unet, vae, text_encoder, tokenizer, scheduler, ...) from the pipeline folder."""
    if part not in source.components:
        raise UserError(f"prior {source.name} has no '{part}' in model_index.json; is it a complete "
                        f"{source.family} pipeline?")
    library, cls_name = source.components[part][:2]
    if library not in ("diffusers", "transformers"):
        raise UserError(f"prior {source.name}: part '{part}' needs library '{library}'; dreamer loads only "
                        f"diffusers and transformers classes (no remote code)")
    import importlib
    cls = getattr(importlib.import_module(library), cls_name, None)
    if cls is None:
        raise UserError(f"prior {source.name}: {library} has no class {cls_name} for '{part}'; "
                        f"upgrade {library} or use another checkpoint")
    kwargs: dict = {"subfolder": part, "local_files_only": True}
    is_model = isinstance(cls, type) and issubclass(cls, torch.nn.Module)
    if is_model:
        kwargs["use_safetensors"] = None if allow_pickle else True
        if dtype is not None:
            kwargs["torch_dtype"] = dtype
    try:
        return cls.from_pretrained(str(source.folder), **kwargs)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = ("; if it only has pickled weights (.bin) and you trust it, set prior.allow_pickle=true"
                if is_model and not allow_pickle else "")
        raise UserError(f"cannot load '{part}' of prior {source.name} from {source.folder}: {first}{hint}") from None


def apply_gpu_options(unet: torch.nn.Module, cfg) -> torch.nn.Module:
    """SDPA attention, channels_last and attention slicing on the (frozen) UNet, in place."""
    from diffusers.models.attention_processor import AttnProcessor2_0
    unet.requires_grad_(False)
    unet.eval()
    if cfg.attention == "sdpa":
        unet.set_attn_processor(AttnProcessor2_0())
    if cfg.attention_slicing:
        unet.set_attention_slice("auto")
    if cfg.channels_last:
        unet.to(memory_format=torch.channels_last)
    return unet
