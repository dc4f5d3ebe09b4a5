"""The dreamer web UI (Gradio): `python app.py` or `dreamer ui`, on 127.0.0.1:7860 by default.

Jobs run one at a time in a worker process (dreamer/ui/jobs.py); the page polls the job's run
folder once a second for progress, the latest preview and, at the end, the exports.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: nothing leaves the machine

MAX_STEPS = 5000
MAX_PROMPT = 200
MAX_RENDER = 512


def job_config(prompt, prior, method, representation, steps, seed, guidance_scale):
    """(config, recipe path) exactly as `dreamer generate` would build them, after the UI's bounds."""
    from dreamer.cli import _generate_config
    from dreamer.errors import UserError
    from dreamer.pipeline import validate
    prompt = (prompt or "").strip()
    if len(prompt) > MAX_PROMPT:
        raise UserError(f"the prompt has {len(prompt)} characters; keep it under {MAX_PROMPT}")
    if not 1 <= int(steps) <= MAX_STEPS:
        raise UserError(f"steps must be between 1 and {MAX_STEPS}")
    overrides = [f"guidance.guidance_scale={float(guidance_scale)}"] if guidance_scale else []
    args = SimpleNamespace(prompt=prompt, method=method or None, representation=representation or None,
                           prior=(prior or "toy").strip(), object=None, steps=int(steps), seed=int(seed),
                           config=None, overrides=overrides)
    cfg, recipe = _generate_config(args)
    if max(cfg.camera.width + cfg.camera.height) > MAX_RENDER or cfg.export.resolution > 256:
        raise UserError(f"renders above {MAX_RENDER}² or exports above 256³ are for the CLI")
    validate(cfg)
    return cfg, recipe


def build_app(root: Path, queue=None):
    import gradio as gr

    from dreamer.config import to_yaml
    from dreamer.errors import UserError
    from dreamer.guidance import METHODS
    from dreamer.runs import slugify
    from dreamer.toy.catalogue import Catalogue
    from dreamer.ui.jobs import JobQueue, obj_zip, run_progress

    queue = queue or JobQueue()
    root.mkdir(parents=True, exist_ok=True)
    form_inputs = []

    def recipe_yaml(*form):
        try:
            cfg, recipe = job_config(*form)
            return f"# recipe: {recipe.name}\n" + to_yaml(cfg)
        except UserError as exc:
            return f"# {exc}"

    def submit(*form):
        try:
            cfg, recipe = job_config(*form)
        except UserError as exc:
            return None, f"**Error:** {exc}"
        out = root / f"{slugify(cfg.prompt)}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid() % 1000}"
        job = queue.submit(cfg.prompt, out, to_yaml(cfg))
        return job.id, f"queued as job {job.id} ({recipe.name})"

    def status(job_id):
        if not job_id or int(job_id) not in queue.jobs:
            return "", None, None, None, None
        job = queue.jobs[int(job_id)]
        info = run_progress(job.out)
        if job.status == "done":
            obj_zip(job.out)
        files = [str(job.out / f) for f in ("model.glb", "model-obj.zip", "splats.ply") if (job.out / f).is_file()]
        glb = str(job.out / "model.glb") if job.status == "done" and (job.out / "model.glb").is_file() else None
        video = str(job.out / "turntable.mp4") if job.status == "done" and (job.out / "turntable.mp4").is_file() else None
        return describe(job, info, queue.position(job.id)), info["preview"], glb, video, files or None

    def cancel(job_id):
        if job_id:
            queue.cancel(int(job_id))
        return "cancelling"

    with gr.Blocks(title="dreamer") as app:
        gr.Markdown("# dreamer: text to 3D")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="prompt", value="a rubber duck", max_length=MAX_PROMPT)
                gr.Examples([[f"a {n}"] for n in Catalogue().names()], [prompt], label="the toy prior knows")
                prior = gr.Textbox(label="prior", value="toy")
                method = gr.Dropdown(list(METHODS), value="sds", label="method")
                representation = gr.Radio(["nerf", "gaussians"], value="nerf", label="representation")
                steps = gr.Slider(1, MAX_STEPS, value=600, step=1, label="steps")
                seed = gr.Number(0, precision=0, label="seed")
                scale = gr.Number(0, label="guidance scale (0: the recipe's)")
                form_inputs = [prompt, prior, method, representation, steps, seed, scale]
                with gr.Accordion("advanced: the recipe that will run", open=False):
                    recipe = gr.Code(language="yaml", interactive=False)
                with gr.Row():
                    start = gr.Button("generate", variant="primary", elem_id="generate")
                    stop = gr.Button("cancel", elem_id="cancel")
            with gr.Column():
                job_id = gr.Number(label="job", interactive=False, precision=0, elem_id="job")
                state = gr.Markdown(elem_id="status")
                preview = gr.Image(label="latest preview", type="filepath")
                model = gr.Model3D(label="model", elem_id="model3d")
                video = gr.Video(label="turntable")
                files = gr.File(label="downloads", file_count="multiple")
        for comp in form_inputs:
            comp.change(recipe_yaml, form_inputs, recipe, api_name=False)
        app.load(recipe_yaml, form_inputs, recipe, api_name=False)
        start.click(submit, form_inputs, [job_id, state], api_name="generate")
        stop.click(cancel, job_id, state, api_name="cancel")
        gr.Timer(1.0).tick(status, job_id, [state, preview, model, video, files], api_name="status",
                           show_progress="hidden")
    return app


def describe(job, info: dict, position: int) -> str:
    if job.status == "queued":
        return f"job {job.id}: waiting, position {position} in the queue"
    if job.status in ("failed", "cancelled"):
        return f"job {job.id}: **{job.status}** {job.error}"
    step, total = info.get("step", 0), info.get("max_steps", 0) or 1
    eta = info.get("eta_seconds")
    bar = "█" * int(20 * step / total) + "░" * (20 - int(20 * step / total))
    rate = info.get("steps_per_second", 0.0)
    if job.status == "done":
        tail = "done"
    elif step >= total:
        tail = "exporting mesh, texture and turntable"
    else:
        tail = f"ETA {eta:.0f} s" if eta is not None else "starting"
    return f"job {job.id}: `{bar}` {step}/{total} steps, {rate:.1f} it/s, {tail}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dreamer ui", description="the dreamer web UI")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--out", default="outputs", help="folder of the runs (served read-only)")
    args = p.parse_args(argv)
    root = Path(args.out).resolve()
    app = build_app(root)
    app.queue(default_concurrency_limit=8).launch(server_name=args.host, server_port=args.port,
                                                  allowed_paths=[str(root)], show_error=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
