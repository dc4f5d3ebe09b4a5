"""The Python steps of scripts/gpu-check: each prints a markdown table and exits 1 if a row failed.

  guidance   every guidance method steps on a tiny random-weight SD pipeline in half precision
             (VSD/ESD/DSD for --fake-steps steps): the loss stays finite and no step is skipped
  resume     a Gaussian run is killed (SIGKILL) during densification and resumed to the end
  backends   toy runs with each CUDA backend (and the torch reference) to a valid, closed GLB
  draws      the device draws of one step repeat exactly (resume-safe) and differ between steps

They take --device and --dtype so the suite can run them small on a CPU (tests/test_gpu_readiness.py);
on the GPU machine the defaults are cuda and float16.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

FAKE_SCORE = ("vsd", "esd", "dsd")


def dreamer(*args, out: Path, wait: bool = True):
    """`dreamer ARGS` in a child process (as users run it), stderr into out/log.txt."""
    log = open(out.parent / f"{out.name}.log", "a")
    cmd = [sys.executable, "-m", "dreamer.cli", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc.wait() if wait else proc


def run_state(folder: Path) -> dict:
    from dreamer.runs import run_progress
    return run_progress(folder)


def guidance(args) -> int:
    import torch
    from tiny_pipelines import SAVERS

    from dreamer.config import CONFIG_DIR, build_config
    from dreamer.guidance import METHODS
    from dreamer.priors.factory import build_prior
    from systems.text_to_3d import TextTo3DSystem
    from systems.trainer import fit, make_trainer
    folder = SAVERS["sd"](Path(args.out) / "tiny-sd")
    methods = args.methods.split(",") if args.methods else list(METHODS)
    rows, failed = [], 0
    prior = None
    for method in methods:
        steps = args.fake_steps if method in FAKE_SCORE else args.steps
        cfg = build_config(CONFIG_DIR / f"{method}-nerf.yaml", values={
            "prompt": "a hamburger", "prior": {"name": str(folder), "device": args.device, "dtype": args.dtype},
            "camera": {"width": [32], "height": [32], "batch_size": 1},
            "renderer": {"num_samples_per_ray": 16}, "trainer": {"max_steps": steps}})
        if prior is None:
            prior = build_prior(cfg.prior)
        started = time.perf_counter()
        try:
            torch.manual_seed(0)
            system = TextTo3DSystem(cfg, prior)
            fit(make_trainer(steps), system)
            stats = system.last_stats
            fake = getattr(system.guidance, "fake", None)
            scale = getattr(fake, "loss_scale", None)
            ok = math.isfinite(stats["loss"]) and system.skipped_steps == 0
            note = f"loss {stats['loss']:.4g}" + (f", fake loss {stats['loss_fake_score']:.4g}, loss scale {scale:g}"
                                                   if "loss_fake_score" in stats else "")
            rows.append((method, steps, system.skipped_steps, ok, time.perf_counter() - started, note))
        except Exception as exc:  # noqa: BLE001 - a report row, not a crash: the other methods still run
            rows.append((method, steps, "-", False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"[:200]))
        failed += not rows[-1][3]
    print(f"prior: tiny SD, UNet {prior.unet.dtype}, VAE {prior.vae.dtype}, {prior.device}\n")
    print("| method | steps | skipped | ok | seconds | notes |\n|---|---:|---:|---|---:|---|")
    for method, steps, skipped, ok, seconds, note in rows:
        print(f"| {method} | {steps} | {skipped} | {'yes' if ok else 'NO'} | {seconds:.1f} | {note} |")
    return 1 if failed else 0


def resume(args) -> int:
    """Kill -9 once the run has passed a densification step, resume, and check the end."""
    out = Path(args.out) / "resume-gaussians"
    steps, kill_after = args.steps, args.kill_after
    proc = dreamer("generate", "a rubber duck", "--representation", "gaussians", "--steps", str(steps),
                   "--out", str(out), "trainer.checkpoint_every=10", "export.turntable=false",
                   "export.formats=[glb]", *args.overrides, out=out, wait=False)
    deadline = time.time() + args.timeout
    while time.time() < deadline and proc.poll() is None and run_state(out).get("step", 0) < kill_after:
        time.sleep(0.5)
    killed_at = run_state(out).get("step", 0)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    rc = dreamer("resume", str(out), out=out)
    state = run_state(out)
    ok = rc == 0 and state.get("status") == "done" and state.get("step") == steps and killed_at < steps
    print("| run | killed at step | resumed rc | final step | status | IoU |\n|---|---:|---:|---:|---|---:|")
    print(f"| gaussians, killed during densification | {killed_at} | {rc} | {state.get('step')} | "
          f"{state.get('status')} | {state.get('metrics', {}).get('silhouette_iou_8views', '-')} |")
    if not ok:
        print(f"\nlog tail:\n{(out.parent / (out.name + '.log')).read_text()[-1500:]}")
    return 0 if ok else 1


def glb_facts(path: Path) -> dict:
    import trimesh
    mesh = trimesh.load(path, force="mesh")
    mesh.merge_vertices(merge_tex=True, merge_norm=True)  # weld the UV seams
    return {"faces": len(mesh.faces), "watertight": bool(mesh.is_watertight),
            "bodies": len(mesh.split(only_watertight=False))}


def backends(args) -> int:
    cases = [("nerf-torch", ["renderer.backend=torch"]),
             ("nerf-nerfacc", ["renderer.backend=nerfacc"]),
             ("gaussians-gsplat", ["--representation", "gaussians", "geometry.gaussians.backend=gsplat"]),
             ("gaussians-auto", ["--representation", "gaussians"])]
    if args.only:
        cases = [c for c in cases if c[0] in args.only.split(",")]
    print("| run | rc | seconds | IoU (8 views) | GLB faces | watertight | bodies |\n"
          "|---|---:|---:|---:|---:|---|---:|")
    failed = 0
    for name, extra in cases:
        out = Path(args.out) / f"backend-{name}"
        started = time.time()
        rc = dreamer("generate", "a rubber duck", "--steps", str(args.steps), "--out", str(out), *extra,
                     "export.turntable=false", "export.formats=[glb]", *args.overrides, out=out)
        seconds = time.time() - started
        facts = glb_facts(out / "model.glb") if rc == 0 and (out / "model.glb").is_file() else {}
        iou = run_state(out).get("metrics", {}).get("silhouette_iou_8views", "-")
        ok = rc == 0 and facts.get("watertight") and facts.get("bodies") == 1
        failed += not ok
        print(f"| {name} | {rc} | {seconds:.0f} | {iou} | {facts.get('faces', '-')} | {facts.get('watertight', '-')} | "
              f"{facts.get('bodies', '-')} |")
        if rc:
            print(f"\n{(out.parent / (out.name + '.log')).read_text()[-600:]}\n")
    return 1 if failed else 0


def draws(args) -> int:
    import torch

    from dreamer import draws as d
    like = torch.zeros((), device=args.device)
    step = lambda s: d.randn((1024, 512), torch.Generator().manual_seed(s), like)  # noqa: E731
    same = torch.equal(step(5), step(5))
    different = not torch.equal(step(5), step(6))
    x = step(5)
    normal = abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01
    print("| device | same step repeats | steps differ | N(0, 1) |\n|---|---|---|---|")
    print(f"| {x.device} | {same} | {different} | {normal} |")
    return 0 if same and different and normal else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="step", required=True)
    for name in ("guidance", "resume", "backends", "draws"):
        s = sub.add_parser(name)
        s.add_argument("--out", default=tempfile.mkdtemp(prefix="gpu-check-"))
        s.add_argument("--device", default="cuda")
        s.add_argument("overrides", nargs="*", help="resume, backends: key=value overrides for the runs")
    g = sub.choices["guidance"]
    g.add_argument("--dtype", default="float16")
    g.add_argument("--methods", default=None, help="comma-separated (default: every method)")
    g.add_argument("--steps", type=int, default=3)
    g.add_argument("--fake-steps", type=int, default=30, help="steps of VSD, ESD and DSD")
    r = sub.choices["resume"]
    r.add_argument("--steps", type=int, default=300)
    r.add_argument("--kill-after", type=int, default=160, help="kill once the run has passed this step")
    r.add_argument("--timeout", type=float, default=240)
    b = sub.choices["backends"]
    b.add_argument("--steps", type=int, default=200)
    b.add_argument("--only", default=None, help="comma-separated run names")
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return {"guidance": guidance, "resume": resume, "backends": backends, "draws": draws}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
