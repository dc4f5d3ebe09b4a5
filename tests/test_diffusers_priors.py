"""Diffusers priors (SD eps, SD v-prediction, SDXL, DeepFloyd IF) on tiny random-weight pipelines
saved to a folder and loaded through the path users take (prior.name = folder)."""
from __future__ import annotations

import math
import subprocess
import sys
import threading

import pytest
import torch

pytest.importorskip("diffusers")

from tiny_pipelines import SAVERS

from dreamer.config import CONFIG_DIR, PriorConfig, build_config
from dreamer.errors import UserError
from dreamer.guidance import METHODS
from dreamer.priors.base import v_to_eps
from dreamer.priors.factory import build_prior

PROMPTS = ["a hamburger", "", "a hamburger, back view"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """family -> folder of a saved tiny pipeline."""
    root = tmp_path_factory.mktemp("pipelines")
    return {name: save(root / name) for name, save in SAVERS.items()}


@pytest.fixture(scope="session")
def priors(tiny):
    return {name: build_prior(PriorConfig(name=str(folder))) for name, folder in tiny.items()}


def reference_pipeline(family, folder):
    import diffusers
    cls = {"sd": diffusers.StableDiffusionPipeline, "sd-v": diffusers.StableDiffusionPipeline,
           "sdxl": diffusers.StableDiffusionXLPipeline, "if": diffusers.IFPipeline}[family]
    return cls.from_pretrained(str(folder), local_files_only=True)


@pytest.mark.parametrize("family", ["sd", "sdxl", "if"])
def test_embeddings_match_the_diffusers_pipeline(family, tiny, priors):
    """Our text path gives what the family's own pipeline feeds its UNet, prompt and empty prompt."""
    prior, pipe = priors[family], reference_pipeline(family, tiny[family])
    ours = prior.embed(PROMPTS[:2])
    with torch.no_grad():
        if family == "sd":
            cond, null = pipe.encode_prompt(PROMPTS[0], "cpu", 1, True, negative_prompt="")
            assert torch.allclose(ours[0], cond[0], atol=1e-5) and torch.allclose(ours[1], null[0], atol=1e-5)
        elif family == "sdxl":
            cond, null, pooled, null_pooled = pipe.encode_prompt(PROMPTS[0], device="cpu")
            assert torch.allclose(ours[0, :-1], cond[0], atol=1e-5)
            assert torch.allclose(ours[0, -1, :pooled.shape[-1]], pooled[0], atol=1e-5)
            assert torch.equal(ours[1], torch.zeros_like(ours[1])) and not null.any() and not null_pooled.any()
            ids = pipe._get_add_time_ids((32, 32), (0, 0), (32, 32), torch.float32,
                                         text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim)
            assert torch.equal(prior.unet_kwargs(ours)["added_cond_kwargs"]["time_ids"][0], ids[0])
        else:
            cond, null = pipe.encode_prompt(PROMPTS[0], device="cpu", negative_prompt="", clean_caption=False)
            assert torch.allclose(ours[0], cond[0], atol=1e-5) and torch.allclose(ours[1], null[0], atol=1e-5)


@pytest.mark.parametrize("family", list(SAVERS))
def test_noise_prediction_is_the_unets_epsilon(family, priors):
    prior = priors[family]
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, prior.channels, prior.resolution, prior.resolution, generator=gen)
    t = torch.tensor([50, 700])
    emb = prior.embed(PROMPTS[:2])
    eps = prior.predict_noise(x_t, t, emb)
    with torch.no_grad():
        raw = prior.unet(x_t, t, **prior.unet_kwargs(emb)).sample
    if family == "if":
        assert raw.shape[1] == 6  # learned variances, dropped
    raw = raw[:, :prior.channels]
    if family == "sd-v":
        abar = prior.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        raw = (1 - abar).sqrt() * x_t + abar.sqrt() * raw
    assert eps.shape == x_t.shape and torch.allclose(eps, raw, atol=1e-5)


def test_v_prediction_converts_to_the_schedulers_noise():
    """x_t and v from the scheduler's own add_noise and get_velocity: the conversion recovers eps."""
    from diffusers import DDPMScheduler
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          prediction_type="v_prediction")
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(5, 4, 8, 8, generator=gen), torch.randn(5, 4, 8, 8, generator=gen)
    t = torch.tensor([0, 10, 400, 900, 999])
    x_t, v = sched.add_noise(x0, noise, t), sched.get_velocity(x0, noise, t)
    assert torch.allclose(v_to_eps(x_t, v, t, sched.alphas_cumprod), noise, atol=1e-5)
    assert not torch.allclose(v, noise, atol=1e-2)  # the conversion is not a no-op


@pytest.mark.parametrize("family", ["sd", "sdxl", "if"])
def test_encode_is_differentiable_and_decode_inverts_the_pixel_space(family, priors):
    prior = priors[family]
    rgb = torch.rand(2, 24, 24, 3, requires_grad=True)
    x = prior.encode(rgb)
    assert x.shape == (2, prior.channels, prior.resolution, prior.resolution)
    x.square().sum().backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0
    if family == "if":  # pixel space: encode is a resize to [-1, 1], decode its inverse
        img = torch.rand(1, prior.resolution, prior.resolution, 3)
        assert torch.allclose(prior.decode(prior.encode(img)), img, atol=1e-6)
    else:
        assert prior.decode(x.detach()).shape == (2, prior.image_resolution, prior.image_resolution, 3)


def test_vae_mode_mean_is_deterministic(tiny):
    prior = build_prior(PriorConfig(name=str(tiny["sd"]), vae_mode="mean"))
    rgb = torch.rand(1, 32, 32, 3)
    assert torch.equal(prior.encode(rgb), prior.encode(rgb))
    sampled = build_prior(PriorConfig(name=str(tiny["sd"])))
    assert not torch.equal(sampled.encode(rgb), sampled.encode(rgb))


def test_embeddings_come_from_the_disk_cache_without_loading_encoders(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMER_CACHE", str(tmp_path))
    first = build_prior(PriorConfig(name=str(tiny["sd"])))
    emb = first.embed(PROMPTS)
    assert len(list((tmp_path / "embeddings").rglob("*.safetensors"))) == 3
    second = build_prior(PriorConfig(name=str(tiny["sd"])))
    monkeypatch.setattr(second, "text_models", lambda: pytest.fail("text encoders loaded despite the cache"))
    assert torch.equal(second.embed(PROMPTS), emb)
    off = build_prior(PriorConfig(name=str(tiny["sd"]), embedding_cache=False))
    assert torch.allclose(off.embed(PROMPTS), emb, atol=1e-6)


def test_concurrent_writers_of_one_entry_leave_a_whole_file(tmp_path):
    from dreamer.priors.text_cache import EmbeddingCache
    cache = EmbeddingCache("model", root=tmp_path)
    value = torch.arange(77 * 64, dtype=torch.float32).reshape(77, 64)
    errors = []

    def write():
        try:
            for _ in range(20):
                cache.put("a hamburger", value)
                got = cache.get("a hamburger")
                assert got is None or torch.equal(got, value)
        except Exception as e:  # noqa: BLE001 - collected and re-raised below in the test thread
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert torch.equal(cache.get("a hamburger"), value)
    assert [p.name for p in (tmp_path / "model").iterdir()] == [cache.path("a hamburger").name]


def test_pickled_weights_need_an_explicit_opt_in(tiny, tmp_path):
    import shutil

    from diffusers import UNet2DConditionModel
    folder = tmp_path / "pickled"
    shutil.copytree(tiny["sd"], folder)
    unet = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet")
    for f in (folder / "unet").glob("*.safetensors"):
        f.unlink()
    unet.save_pretrained(folder / "unet", safe_serialization=False)
    with pytest.raises(UserError, match="allow_pickle"):
        build_prior(PriorConfig(name=str(folder)))
    assert build_prior(PriorConfig(name=str(folder), allow_pickle=True)).unet is not None


def test_only_diffusers_and_transformers_classes_load(tiny, tmp_path):
    import json
    import shutil
    folder = tmp_path / "remote"
    shutil.copytree(tiny["sd"], folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["unet"] = ["my_package", "EvilUNet"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="no remote code"):
        build_prior(PriorConfig(name=str(folder)))


def test_a_missing_hub_model_fails_at_once_without_the_network(tmp_path, monkeypatch):
    import socket
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("a network connection was attempted"))
    from dreamer.priors.hub import resolve
    with pytest.raises(UserError, match="hf download stabilityai/stable-diffusion-2-1-base"):
        resolve("stabilityai/stable-diffusion-2-1-base")
    with pytest.raises(UserError, match="does not exist"):
        resolve("./no/such/folder")
    with pytest.raises(UserError, match="no model_index.json"):
        resolve(str(tmp_path))


def test_cli_with_an_uncached_hub_id_exits_2_in_one_line_before_loading_anything(tmp_path):
    """The check runs before torch and diffusers are imported (seconds between them), hence fast."""
    code = ("import sys; from dreamer.cli import main; rc = main(['generate', 'a hamburger', '--prior', "
            "'stabilityai/stable-diffusion-2-1-base', '--out', sys.argv[1]]); "
            "print('diffusers' in sys.modules, 'transformers' in sys.modules, 'torch' in sys.modules); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                         check=False, timeout=120, env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
                                           "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("dreamer: error")]
    assert len(errors) == 1 and "hf download stabilityai/stable-diffusion-2-1-base" in errors[0]
    assert out.stdout.split() == ["False", "False", "False"]
    assert not (tmp_path / "run").exists()


def test_bad_prior_options_fail_up_front():
    from dreamer.priors.factory import check_prior
    for key, value, match in [("dtype", "float8", "prior.dtype"), ("vae_mode", "mode", "prior.vae_mode")]:
        with pytest.raises(UserError, match=match):  # choices: refused by the schema at load
            build_config(values={"prior": {key: value}})
    for key, value, match in [("device", "tpu", "prior.device"), ("resolution", 500, "multiple of 8"),
                              ("posterior_resolution", 12, "divide 64"), ("local_window", 8, "odd")]:
        with pytest.raises(UserError, match=match):
            check_prior(PriorConfig(**{key: value}))


def _steps(cfg, prior, steps=2):
    from systems.text_to_3d import TextTo3DSystem
    from systems.trainer import fit, make_trainer
    torch.manual_seed(0)
    system = TextTo3DSystem(cfg, prior)
    before = {k: v.clone() for k, v in system.representation.field.state_dict().items()}
    fit(make_trainer(steps), system)
    assert math.isfinite(system.last_stats["loss"]) and system.skipped_steps == 0
    assert any(not torch.equal(v, system.representation.field.state_dict()[k]) for k, v in before.items())
    return system


CASES = [(m, f) for f in ("sd", "if") for m in METHODS] + [("vsd", "sdxl"), ("tsm", "sdxl"), ("vsd", "sd-v")]


@pytest.mark.parametrize("method,family", CASES)
def test_every_method_steps_on_a_tiny_pipeline(method, family, tiny, priors):
    cfg = build_config(CONFIG_DIR / f"{method}-nerf.yaml", values={
        "prompt": "a hamburger", "prior": {"name": str(tiny[family])},
        "camera": {"width": [32], "height": [32], "batch_size": 1},
        "renderer": {"num_samples_per_ray": 16}, "trainer": {"max_steps": 2}})
    system = _steps(cfg, priors[family])
    if method in ("vsd", "esd", "dsd"):
        fake = {k for k in system.state_dict() if k.startswith("guidance.fake.")}
        assert fake and all("lora" in k or "class_embedding" in k for k in fake)
        assert math.isfinite(system.last_stats["loss_fake_score"])


def test_generate_with_a_local_pipeline_folder_runs_end_to_end_and_exports(tiny, tmp_path):
    """The issue's command with a tiny SD folder in place of the hub id: the DreamFusion recipe runs,
    exports a valid GLB, and a second run reuses the cached prompt embeddings."""
    import json
    import os

    from conftest import ROOT, validate_gltf
    env = dict(os.environ, DREAMER_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "dreamer.cli", "generate", "a hamburger", "--prior", str(tiny["sd"]),
                           "--steps", "3", "--out", str(out), "export.turntable=false", "export.resolution=64"],
                          capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dreamfusion-sd21.yaml" in proc.stderr
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "done" and state["step"] == 3
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 4  # header + 3 steps
    report = validate_gltf(out / "model.glb")
    assert report["issues"]["numErrors"] == 0
    assert len(list((tmp_path / "cache" / "embeddings").rglob("*.safetensors"))) >= 2  # view prompts + null


def test_prior_benchmark_runs_on_a_cpu_with_a_small_architecture(tmp_path):
    """`dreamer bench prior` on a tiny UNet/VAE config (the SD 2.1-base one is for GPUs): the
    figures are consistent with each other."""
    import json

    from tiny_pipelines import unet, vae

    from dreamer.bench import prior as bench
    for name, model in (("unet", unet(4, 4, 8, 32)), ("vae", vae())):
        (tmp_path / f"{name}.json").write_text(json.dumps(dict(model.config)))
    (tmp_path / "scheduler.json").write_text((bench.MODEL_DIR / "scheduler.json").read_text())
    rows = bench.run(batch_sizes=(1, 2), steps=2, warmup=1, image_size=16, render_size=16, samples_per_ray=16,
                     device="cpu", model_dir=tmp_path, say=lambda m: None)
    assert [r["batch"] for r in rows] == [1, 2]
    for r in rows:
        assert r["unet_calls"] == 1 and r["unet_batch"] == 2 * r["batch"]  # SDS: cond + uncond in one call
        assert 0 < r["unet_in_step_s"] < r["step_s"] and r["unet_alone_s"] > 0
        assert r["ratio"] == pytest.approx(r["step_s"] / r["unet_alone_s"])
    assert "| 2 |" in bench.table(rows)


def test_the_benchmark_architecture_is_sd21_base():
    """The configs kept in the repo build SD 2.1-base's UNet: 865.9M parameters, 64x64 latents."""
    import json

    from diffusers import UNet2DConditionModel

    from dreamer.bench.prior import MODEL_DIR
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads((MODEL_DIR / "unet.json").read_text()))
    assert sum(p.numel() for p in unet.parameters()) == 865_910_724
    assert unet.config.sample_size == 64 and unet.config.cross_attention_dim == 1024


def test_precision_and_attention_options_reach_the_unet(tiny):
    from diffusers.models.attention_processor import (
        AttnProcessor2_0,
        SlicedAttnProcessor,
    )
    fast = build_prior(PriorConfig(name=str(tiny["sd"]), dtype="bfloat16"))
    assert fast.unet.dtype == torch.bfloat16
    assert all(isinstance(p, AttnProcessor2_0) for p in fast.unet.attn_processors.values())
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    x_t = torch.randn(1, 4, 16, 16)
    eps = fast.predict_noise(x_t, torch.tensor([500]), fast.embed(["a hamburger"]))
    exact = build_prior(PriorConfig(name=str(tiny["sd"])))
    ref = exact.predict_noise(x_t, torch.tensor([500]), exact.embed(["a hamburger"]))
    assert eps.dtype == torch.float32 and (eps - ref).abs().max() < 0.1  # bf16 keeps ~3 digits
    sliced = build_prior(PriorConfig(name=str(tiny["sd"]), attention_slicing=True, channels_last=False))
    assert all(isinstance(p, SlicedAttnProcessor) for p in sliced.unet.attn_processors.values())
    assert torch.allclose(sliced.predict_noise(x_t, torch.tensor([500]), exact.embed(["a hamburger"])), ref, atol=1e-5)


def test_the_vae_runs_in_half_precision_except_sdxls(tiny, tmp_path):
    """SD 1.x/2.x VAEs say force_upcast (the config default) but their pipelines run them in fp16;
    SDXL's overflows there. `dreamer bench prior` follows the same rule as a real run."""
    import json

    from tiny_pipelines import unet, vae

    from dreamer.bench import prior as bench
    half = {f: build_prior(PriorConfig(name=str(tiny[f]), dtype="float16")) for f in ("sd", "sdxl")}
    assert half["sd"].vae.config.force_upcast and half["sdxl"].vae.config.force_upcast
    assert half["sd"].vae.dtype == torch.float16 and half["sdxl"].vae.dtype == torch.float32
    for name, model in (("unet", unet(4, 4, 8, 32)), ("vae", vae())):
        (tmp_path / f"{name}.json").write_text(json.dumps(dict(model.config)))
    (tmp_path / "scheduler.json").write_text((bench.MODEL_DIR / "scheduler.json").read_text())
    bench_prior = bench.build_random_prior(tmp_path, device="cpu", dtype="float16")
    assert bench_prior.vae.dtype == torch.float16 == half["sd"].vae.dtype


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_a_compiled_unet_compiles_once_for_every_batch_size(family, tiny, monkeypatch):
    import functools

    import torch._dynamo
    from torch._dynamo.utils import counters
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))  # trace, no codegen
    torch._dynamo.reset()
    counters.clear()
    prior = build_prior(PriorConfig(name=str(tiny[family]), compile=True))
    for batch in (2, 4, 6):
        emb = prior.embed(["a hamburger"] * batch)
        prior.predict_noise(torch.randn(batch, prior.channels, prior.resolution, prior.resolution),
                            torch.full((batch,), 500), emb)
    assert counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()


def test_latent_colours_map_to_rgb_by_the_linear_decoder():
    from dreamer.priors.latent_rgb import LATENT_TO_RGB, latents_to_rgb
    assert torch.allclose(latents_to_rgb(torch.zeros(4)), torch.full((3,), 0.5))
    for k in range(4):
        assert torch.allclose(latents_to_rgb(torch.eye(4)[k]), (LATENT_TO_RGB[k] + 1) / 2)
    assert latents_to_rgb(torch.full((2, 4), 50.0)).max() <= 1  # clamped


def test_rgb_as_latents_feeds_the_renders_to_the_unet_and_exports(tiny, tmp_path):
    """Latent-NeRF: a 4-channel field whose renders are the latents (no VAE); the run exports a valid
    GLB whose texture shows the latents through the linear map."""
    import torch.nn.functional as F
    from conftest import validate_gltf

    from dreamer.pipeline import generate
    prior = build_prior(PriorConfig(name=str(tiny["sd"]), rgb_as_latents=True))
    renders = torch.randn(2, 24, 24, 4, requires_grad=True)
    x = prior.encode(renders)
    expected = F.interpolate(renders.permute(0, 3, 1, 2), (16, 16), mode="bilinear", align_corners=False)
    assert torch.equal(x, expected)
    cfg = build_config(CONFIG_DIR / "latentnerf-sd21.yaml", values={
        "prompt": "a hamburger", "prior": {"name": str(tiny["sd"])},
        "camera": {"width": [32], "height": [32]}, "renderer": {"num_samples_per_ray": 32},
        "trainer": {"max_steps": 3, "val_every": 2},
        "export": {"resolution": 48, "turntable": False, "formats": ["glb"]}})
    run, _ = generate(cfg, str(tmp_path / "run"), progress=False)
    assert run.state()["status"] == "done"
    assert validate_gltf(run.path / "model.glb")["issues"]["numErrors"] == 0
    assert list(run.previews.glob("*.png"))


@pytest.mark.parametrize("overrides, match", [
    ({"prior": {"rgb_as_latents": True}}, "the toy prior works on pixels"),
    ({"geometry": {"color_channels": 4}}, "unless prior.rgb_as_latents=true"),
    ({"background": {"color": [1.0, 1.0]}}, "background.color has 2 values"),
    ({"geometry": {"color_activation": "relu"}}, "unknown geometry.color_activation"),
])
def test_colour_settings_are_checked_up_front(overrides, match):
    from dreamer.pipeline import validate
    with pytest.raises(UserError, match=match):  # by the schema (choices) or by validate (combinations)
        validate(build_config(CONFIG_DIR / "sds-nerf.yaml", values={"prompt": "a rubber duck", **overrides}))


def test_rgb_as_latents_needs_a_latent_prior_and_four_channels(tiny):
    from dreamer.pipeline import validate
    base = {"prompt": "a hamburger", "prior": {"name": str(tiny["if"])}}
    with pytest.raises(UserError, match="DeepFloyd IF works on pixels"):
        validate(build_config(CONFIG_DIR / "latentnerf-sd21.yaml", values=base))
    base["prior"]["name"] = str(tiny["sd"])
    with pytest.raises(UserError, match="needs geometry.color_channels=4"):
        validate(build_config(CONFIG_DIR / "latentnerf-sd21.yaml", values={**base, "geometry": {"color_channels": 3}}))
    with pytest.raises(UserError, match="cannot be lit"):
        validate(build_config(CONFIG_DIR / "latentnerf-sd21.yaml", values={**base, "material": {"shaded_prob": 0.5}}))
    validate(build_config(CONFIG_DIR / "latentnerf-sd21.yaml", values=base))


def test_a_sentencepiece_only_t5_tokenizer_loads_like_deepfloyds(tiny, tmp_path):
    """DeepFloyd IF's tokenizer folder holds spiece.model and no tokenizer.json: it must load too."""
    import json
    import shutil

    spm = pytest.importorskip("sentencepiece")
    folder = tmp_path / "if-spiece"
    shutil.copytree(tiny["if"], folder)
    tok_dir = folder / "tokenizer"
    shutil.rmtree(tok_dir)
    tok_dir.mkdir()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["a hamburger on a plate", "a rubber duck, front view"] * 50))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tok_dir / "spiece"), vocab_size=26,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0}))
    prior = build_prior(PriorConfig(name=str(folder), embedding_cache=False))
    emb = prior.embed(["a hamburger", ""])
    assert emb.shape == (2, 77, 32) and not torch.allclose(emb[0], emb[1])


@pytest.mark.parametrize("family, scheduler", [("sd", "PNDMScheduler"), ("sd-v", "PNDMScheduler"),
                                               ("sdxl", "EulerDiscreteScheduler"), ("if", "DDPMScheduler")])
def test_the_noise_schedule_comes_from_the_checkpoints_own_scheduler(family, scheduler, tiny, priors):
    """Real checkpoints name different scheduler classes; each gives the prior its abar table."""
    import json

    from dreamer.priors.base import sd_alphas_cumprod
    index = json.loads((tiny[family] / "model_index.json").read_text())
    assert index["scheduler"][1] == scheduler
    abar = priors[family].alphas_cumprod
    if family == "if":  # squared-cosine betas
        assert abar[0] > 0.9999 and abar[-1] < 1e-4
    else:
        assert torch.allclose(abar, sd_alphas_cumprod().float(), atol=1e-6)
