"""Tiny random-weight diffusers pipelines of each family, built from configs (no download).

They have the real pipelines' structure (model_index.json, one subfolder per part, safetensors
weights, tokenizer files) at a few hundred kilobytes, so the loading path users take is exercised
end to end. Run as a script to write one for trying the CLI: python tests/tiny_pipelines.py sd OUT
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz,.!'"


def clip_tokenizer(max_length: int = 16):
    from transformers import CLIPTokenizer
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    tok.model_max_length = max_length
    return tok


def clip_text_encoder(width: int = 32, projection: bool = False, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=2 + 2 * len(LETTERS), hidden_size=width, intermediate_size=2 * width,
                            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16,
                            projection_dim=width, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def t5_tokenizer(max_length: int = 16):
    from transformers import T5Tokenizer
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in LETTERS] + [("\u2581" + c, -2.5) for c in LETTERS]
    tok = T5Tokenizer(vocab=pieces, extra_ids=0)
    tok.model_max_length = max_length
    return tok


def t5_text_encoder(width: int = 32, seed: int = 0):
    from transformers import T5Config, T5EncoderModel
    torch.manual_seed(seed)
    config = T5Config(vocab_size=4 + 2 * len(LETTERS), d_model=width, d_kv=8, d_ff=2 * width, num_layers=2,
                      num_heads=2, pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(config).eval()


def unet(in_channels: int, out_channels: int, sample_size: int, cross_dim: int, seed: int = 0, **extra):
    from diffusers import UNet2DConditionModel
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=out_channels, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=cross_dim,
        attention_head_dim=8, norm_num_groups=8, **extra).eval()


def vae(seed: int = 0, **extra):
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=8, sample_size=32, **extra).eval()


def scheduler(prediction_type: str = "epsilon", beta_schedule: str = "scaled_linear", kind: str = "DDPMScheduler"):
    """The scheduler class the real checkpoints name: PNDM (SD 1.x/2.x), EulerDiscrete (SDXL), DDPM (IF)."""
    import diffusers
    kwargs = {"clip_sample": False} if kind == "DDPMScheduler" else {}
    return getattr(diffusers, kind)(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                    beta_schedule=beta_schedule, prediction_type=prediction_type, steps_offset=1,
                                    **kwargs)


def save_sd(folder, prediction_type: str = "epsilon") -> Path:
    """SD 1.x/2.x layout: 16x16 latents (32x32 images), one CLIP encoder."""
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline(vae=vae(), text_encoder=clip_text_encoder(), tokenizer=clip_tokenizer(),
                                   unet=unet(4, 4, 16, 32), scheduler=scheduler(prediction_type, kind="PNDMScheduler"),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return Path(folder)


def save_sdxl(folder) -> Path:
    """SDXL layout: two CLIP encoders (the second with a projection), pooled text and time ids."""
    from diffusers import StableDiffusionXLPipeline
    width = 32
    u = unet(4, 4, 16, 2 * width, addition_embed_type="text_time", addition_time_embed_dim=8,
             projection_class_embeddings_input_dim=width + 6 * 8)
    pipe = StableDiffusionXLPipeline(vae=vae(force_upcast=True), text_encoder=clip_text_encoder(width),
                                     text_encoder_2=clip_text_encoder(width, projection=True, seed=1),
                                     tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(), unet=u,
                                     scheduler=scheduler(kind="EulerDiscreteScheduler"))
    pipe.save_pretrained(folder)
    return Path(folder)


def save_if(folder) -> Path:
    """DeepFloyd IF stage I layout: 16x16 pixels, T5 encoder, learned variances (6 output channels)."""
    from diffusers import IFPipeline
    pipe = IFPipeline(tokenizer=t5_tokenizer(), text_encoder=t5_text_encoder(), unet=unet(3, 6, 16, 32),
                      scheduler=scheduler(beta_schedule="squaredcos_cap_v2"), safety_checker=None,
                      feature_extractor=None, watermarker=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return Path(folder)


SAVERS = {"sd": save_sd, "sd-v": lambda f: save_sd(f, "v_prediction"), "sdxl": save_sdxl, "if": save_if}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SAVERS:
        sys.exit(f"usage: python {sys.argv[0]} {{{','.join(SAVERS)}}} OUT_FOLDER")
    print(SAVERS[sys.argv[1]](sys.argv[2]))
