"""The dreamer web UI (Gradio): `dreamer ui` or `python app.py`, on 127.0.0.1:7860 by default.

Jobs run one at a time in a worker process (dreamer/ui/jobs.py); the page polls the job's run
folder once a second for progress, the latest preview and, at the end, the exports.
"""

import argparse
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from dreamer.config import GeometryConfig, build_config, choices, to_dict, to_yaml
from dreamer.errors import UserError
from dreamer.recipes import generate_config
from dreamer.runs import slugify
from dreamer.ui.jobs import JobQueue, list_runs, mark_stale_runs, obj_zip, run_progress
from dreamer.ui.serving import RunFilesOnly

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: nothing leaves the machine

MAX_STEPS = 5000
MAX_PROMPT = 200
MAX_RENDER = 512


def job_config(prompt, prior, method, representation, steps, seed, guidance_scale, extra=()):
    """(config, recipe path) exactly as `dreamer generate` would build them, after the UI's bounds;
    `extra` are the server's own key=value overrides, applied to every job."""
    from dreamer.pipeline import validate  # start-up: torch loads in the server only when a form is checked
    prompt = (prompt or "").strip()
    if len(prompt) > MAX_PROMPT:
        raise UserError(f"the prompt has {len(prompt)} characters; keep it under {MAX_PROMPT}")
    steps = _whole_number(steps, "steps")
    if not 1 <= steps <= MAX_STEPS:
        raise UserError(f"steps must be between 1 and {MAX_STEPS}")
    seed = _whole_number(seed, "seed")
    cfg, recipe = generate_config(prompt, method or None, representation or None, (prior or "toy").strip(),
                                  steps=steps, seed=seed, overrides=list(extra))
    if guidance_scale:  # 0: the recipe's; the schema's bounds apply as to any other value
        cfg = build_config(None, None, {**to_dict(cfg), "guidance": {**to_dict(cfg)["guidance"],
                                                                     "guidance_scale": guidance_scale}})
    if max(cfg.camera.width + cfg.camera.height) > MAX_RENDER or cfg.export.resolution > 256:
        raise UserError(f"renders above {MAX_RENDER}² or exports above 256³ are for the CLI")
    validate(cfg)
    return cfg, recipe


def _whole_number(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or \
            value in (float("inf"), float("-inf")) or int(value) != value:
        raise UserError(f"{name} must be a whole number, got {str(value)[:40]!r}")
    return int(value)


def build_app(root: Path, queue=None, overrides=()):
    import gradio as gr

    from dreamer.guidance import METHODS  # start-up: torch
    from dreamer.toy.catalogue import Catalogue  # start-up: torch

    queue = queue or JobQueue()
    root.mkdir(parents=True, exist_ok=True)
    mark_stale_runs(root)  # runs of a server or worker that was killed
    form_inputs = []

    def recipe_yaml(*form):
        try:
            cfg, recipe = job_config(*form, extra=overrides)
            return f"# recipe: {recipe.name}\n" + to_yaml(cfg)
        except UserError as exc:
            return f"# {exc}"

    def submit(*form):
        try:
            cfg, recipe = job_config(*form, extra=overrides)
        except UserError as exc:
            return None, f"**Error:** {exc}"
        # a random tail: two clicks in one second must not share a folder
        out = root / f"{slugify(cfg.prompt)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        job = queue.submit(cfg.prompt, out, to_dict(cfg))
        return job.id, f"queued as job {job.id} ({recipe.name})"

    def results(out: Path, finished: bool):
        """(preview, GLB, turntable, downloads) of a run folder; the last three once it is done."""
        info = run_progress(out)
        if not finished:
            return info["preview"], None, None, None
        obj_zip(out)
        have = lambda name: str(out / name) if (out / name).is_file() else None
        files = [f for f in map(have, ("model.glb", "model-obj.zip", "model.usdz", "splats.ply", "splats.splat")) if f]
        return info["preview"], have("model.glb"), have("turntable.mp4"), files or None

    def status(job_id):
        if not job_id or int(job_id) not in queue.jobs:
            return ("", None, None, None, None)
        job = queue.jobs[int(job_id)]
        text = describe(job, run_progress(job.out), queue.position(job.id))
        return (text, *results(job.out, job.status == "done"))

    def open_run(rows, evt: gr.SelectData):
        folder = root / str(rows.iloc[evt.index[0], 0])
        if folder.parent != root or not (folder / "run.json").is_file():
            return ("", None, None, None, None)
        return (f"run `{folder.name}`", *results(folder, True))

    def cancel(job_id):
        if job_id:
            queue.cancel(int(job_id))
        return "cancelling"

    with gr.Blocks(title="dreamer") as app:
        gr.Markdown("# dreamer: text to 3D")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="prompt", value="a rubber duck", max_length=MAX_PROMPT, elem_id="prompt")
                gr.Examples([[f"a {n}"] for n in Catalogue().names()], [prompt], label="the toy prior knows")
                prior = gr.Textbox(label="prior", value="toy")
                method = gr.Dropdown(list(METHODS), value="sds", label="method")
                representation = gr.Radio(list(choices("geometry.type")), value=GeometryConfig().type,
                                          label="representation")
                steps = gr.Slider(1, MAX_STEPS, value=600, step=1, label="steps", elem_id="steps")
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
        with gr.Accordion("history: runs in the output folder (click one to open it)", open=False):
            past = gr.Dataframe(headers=["folder", "prompt", "status", "step", "IoU"], interactive=False,
                                value=lambda: list_runs(root))
            refresh = gr.Button("refresh")
        for comp in form_inputs:
            comp.change(recipe_yaml, form_inputs, recipe, api_name=False)
        app.load(recipe_yaml, form_inputs, recipe, api_name=False)
        start.click(submit, form_inputs, [job_id, state], api_name="generate")
        stop.click(cancel, job_id, state, api_name="cancel")
        refresh.click(lambda: list_runs(root), None, past, api_name=False)
        past.select(open_run, past, [state, preview, model, video, files], api_name=False)
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
    stage = f"{info['stage']}, " if info.get("stage") and job.status != "done" else ""
    return f"job {job.id}: {stage}`{bar}` {step}/{total} steps, {rate:.1f} it/s, {tail}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dreamer ui", description="the dreamer web UI")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--out", default="outputs", help="folder of the runs (served read-only)")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every job")
    args = p.parse_args(argv)
    root = Path(args.out).resolve()
    queue = JobQueue()

    def stop(signum, frame):  # SIGTERM/SIGHUP: no worker may outlive the server
        queue.shutdown()
        sys.exit(0)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        serve(build_app(root, queue=queue, overrides=args.overrides), root, args.host, args.port)
    finally:
        queue.shutdown()
    return 0


def serve(app, root: Path, host: str = "127.0.0.1", port: int = 7860, **launch):
    """Start the server; of the disk it serves only files inside run folders under root (as
    downloads where a browser could run them) and Gradio's own cache."""
    from starlette.middleware import Middleware
    return app.queue(default_concurrency_limit=8).launch(
        server_name=host, server_port=port, allowed_paths=[str(root)], show_error=True,
        app_kwargs={"middleware": [Middleware(RunFilesOnly, root=str(root))]}, **launch)


if __name__ == "__main__":
    sys.exit(main())
