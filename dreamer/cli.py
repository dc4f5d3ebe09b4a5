"""The `dreamer` command line.

Start-up: torch, Lightning and Gradio are imported inside the commands that need them, so bad
input and `--help` answer before any of them loads.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .atomic import write_text
from .config import ExportConfig, PriorConfig, build_config, choices, from_dict, to_dict
from .errors import UserError
from .priors.factory import check_prior
from .recipes import DEFAULT_RECIPE, generate_config, recipe_path
from .runs import RunDir
from .yamldata import clip


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as every other bad input
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _placement_options(p) -> None:
    p.add_argument("--height", type=float, default=None, help="height of the exported asset in metres (default 1.0)")
    p.add_argument("--pivot", default=None, help="base (default: stands on y = 0) or center")


def _placement(args) -> dict:
    """The export settings given as options; the schema checks them with the other values."""
    return {k: v for k, v in (("height", args.height), ("pivot", args.pivot)) if v is not None}


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dreamer", description="Text-to-3D by score distillation.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="optimize a 3D asset for a prompt and export it")
    g.add_argument("prompt")
    g.add_argument("--method", default=None, help="guidance method: sds, vsd, esd, csd, csm, asd, nfsd, ism, tsm, bsd, dsd, cds (default: sds)")
    g.add_argument("--representation", default=None, help="nerf (default), gaussians, mesh (a coarse NeRF "
                                                           "or Gaussian stage, then a DMTet mesh stage), or texture "
                                                           "(a previous stage's mesh, then a UV texture stage)")
    g.add_argument("--coarse", default=None, help="the previous stage: with --representation mesh, nerf (default) "
                                                  "or gaussians; with texture, gaussians (default), nerf or mesh")
    g.add_argument("--prior", default=None, help="diffusion prior: toy (default), a hub id already in the local "
                                                  "Hugging Face cache, or a diffusers pipeline folder")
    g.add_argument("--object", default=None, help="toy prior: a mesh file (GLB/OBJ/PLY) that the prompt names, "
                                                  "added to the toy world as a new object")
    g.add_argument("--steps", type=int, default=None, help="optimization steps")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--out", default=None, help="run folder to create (default: outputs/<prompt>-<time>)")
    g.add_argument("--config", default=None, help=f"recipe YAML (default: configs/<method>-nerf.yaml, else configs/{DEFAULT_RECIPE})")
    _placement_options(g)
    g.add_argument("overrides", nargs="*", help="key=value config overrides")

    r = sub.add_parser("run", help="run a recipe with key=value overrides")
    r.add_argument("--config", required=True)
    r.add_argument("--out", default=None)
    r.add_argument("overrides", nargs="*")

    rf = sub.add_parser("refine", help="take a finished NeRF or Gaussian run to a mesh stage (DMTet) in a new run folder")
    rf.add_argument("run_dir")
    rf.add_argument("--steps", type=int, default=None, help="mesh stage steps (default: the mesh recipe's)")
    rf.add_argument("--method", default=None, help="guidance method of the mesh stage (default: the run's)")
    rf.add_argument("--out", default=None, help="run folder to create (default: RUN_DIR-mesh)")
    _placement_options(rf)
    rf.add_argument("overrides", nargs="*", help="key=value config overrides of the mesh stage")

    tx = sub.add_parser("texture", help="paint a finished run's exported mesh: a UV texture optimized against the "
                                        "prior at fixed geometry, in a new run folder")
    tx.add_argument("run_dir")
    tx.add_argument("--steps", type=int, default=None, help="texture stage steps (default: the texture recipe's)")
    tx.add_argument("--method", default=None, help="guidance method of the texture stage (default: the run's)")
    tx.add_argument("--size", default=None, help="texels per side, a power of two (default: 1024 on a GPU, 512 on a CPU)")
    tx.add_argument("--out", default=None, help="run folder to create (default: RUN_DIR-texture)")
    _placement_options(tx)
    tx.add_argument("overrides", nargs="*", help="key=value config overrides of the texture stage")

    s = sub.add_parser("resume", help="continue a killed or stopped run to its final step, then export")
    s.add_argument("run_dir")

    e = sub.add_parser("export", help="re-export a run's mesh")
    e.add_argument("run_dir")
    e.add_argument("--format", default=None, help="comma-separated: glb,obj,usdz,ply,splat (ply, splat: Gaussian runs)")
    e.add_argument("--resolution", type=int, default=None, help="marching-cubes grid resolution")
    e.add_argument("--faces", type=int, default=None, help="target face count after decimation")
    _placement_options(e)
    e.add_argument("--no-turntable", action="store_true")

    ev = sub.add_parser("eval", help="score toy-prior runs against the ground truth (writes metrics.json in each)")
    ev.add_argument("run_dirs", nargs="+")
    ev.add_argument("--views", type=int, default=16, help="held-out views at uniform azimuths")
    ev.add_argument("--resolution", type=int, default=64, help="render resolution of the held-out views")
    ev.add_argument("--diagnostics", action="store_true",
                    help="also measure the shares of classifier-free guidance (and of ESD's entropy term) in "
                         "the guidance gradient at t = 200, 500, 800, before training and at the end")

    bt = sub.add_parser("batch", help="run many jobs (a file of prompts or a YAML list of jobs) on a local pool "
                                      "or a Ray cluster; `dreamer batch status DIR` shows a batch's table")
    bt.add_argument("jobs", help="JOBS file: one prompt a line, or a YAML list of jobs (prompt, method, "
                                 "representation, prior, seed, steps, overrides); or `status`")
    bt.add_argument("status_dir", nargs="?", default=None, help=argparse.SUPPRESS)
    bt.add_argument("--out", default=None, help="batch folder: one run folder per job, summary.csv, summary.md")
    bt.add_argument("--jobs", dest="workers", type=int, default=None,
                    help="local pool: jobs at a time (default: one per GPU, else 1)")
    bt.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                    help="run on Ray: a cluster's host:port, auto (the cluster this machine belongs to, "
                         "the default of a bare --ray) or local (start one here)")
    bt.add_argument("--dashboard", action="store_true", help="with --ray local: start Ray's dashboard")
    bt.add_argument("overrides", nargs="*", help="key=value config overrides for every job")

    b = sub.add_parser("bench", help="print benchmark figures (guidance: seconds and prior evaluations per "
                                     "step on the toy; prior: SDS step vs UNet time on SD 2.1-base's architecture; quality: the method grid "
                                     "on the toy's ground truth; splats: our Gaussian rasterizer vs dense compositing; "
                                     "raster: our mesh rasterizer vs a dense all-pairs one)")
    b.add_argument("what", choices=["guidance", "prior", "quality", "splats", "raster"])
    b.add_argument("--methods", default=None, help="comma-separated (default: every method)")
    b.add_argument("--steps", type=int, default=20, help="timed steps per method")
    b.add_argument("--warmup", type=int, default=3, help="untimed steps per method first")
    b.add_argument("--batch-size", type=int, default=1, help="views per step")
    b.add_argument("--prompt", default="a rubber duck")
    b.add_argument("--markdown", default=None, help="also write the table to this file")
    b.add_argument("--objects", default="rubber duck,snowman,toy car,penguin",
                   help="quality: comma-separated toy objects (default: the four with a distinct front)")
    b.add_argument("--seeds", default="0,1", help="quality: comma-separated seeds")
    b.add_argument("--out", default="bench-quality", help="quality: root folder of the runs and results")
    b.add_argument("--jobs", type=int, default=None,
                   help="quality: runs at a time on this machine (default: one per GPU, else 1; the cores divided among them)")
    b.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="quality: run the grid on Ray (host:port, auto or local), as `dreamer batch --ray`")
    b.add_argument("--run-steps", type=int, default=None, help="quality: steps per run (default: each recipe's)")
    b.add_argument("--representation", default=None,
                   help="quality: run each method's recipe for this representation (mesh: a coarse NeRF, then "
                        "the mesh stage; default: each method's NeRF recipe)")
    b.add_argument("overrides", nargs="*", help="quality: key=value overrides for every run")
    b.add_argument("--batch-sizes", default="1,4", help="prior: comma-separated views per step")
    b.add_argument("--image-size", type=int, default=0,
                   help="prior: image size renders are encoded at (default 512; use 64 on a CPU)")
    b.add_argument("--render-size", type=int, default=64, help="prior: render resolution")
    b.add_argument("--samples-per-ray", type=int, default=512, help="prior: NeRF samples per ray")
    b.add_argument("--device", default="auto", help="prior, splats, raster: auto (cuda when present), cpu, cuda")
    b.add_argument("--dtype", default="auto", help="prior: auto (fp16 on GPU), float32, float16, bfloat16")
    b.add_argument("--gaussians", default="1000,10000,50000", help="splats: comma-separated Gaussian counts")
    b.add_argument("--sizes", default=None, help="splats, raster: comma-separated image sizes "
                                                 "(default 64,256 for splats, 128,512 for raster)")
    b.add_argument("--cameras", type=int, default=1, help="splats: views rendered together")
    b.add_argument("--tile-size", type=int, default=4, help="splats: our rasterizer's tile size")
    b.add_argument("--faces", default="10000,50000", help="raster: comma-separated face counts")

    sub.add_parser("ui", help="the web UI on 127.0.0.1:7860 (dreamer ui --help)", add_help=False)

    lp = sub.add_parser("list-prompts", help="objects the toy prior knows")
    lp.add_argument("--catalogue", default=None, help="YAML file adding objects from mesh files")
    return p


def _summary(run, result) -> None:
    out = sys.stdout
    state = run.state()
    print(f"\nrun folder: {run.path}", file=out)
    for f in result["files"]:
        size = os.path.getsize(f) / 1024
        print(f"  {Path(f).relative_to(run.path)}  ({size:,.0f} KiB)", file=out)
    print(f"  previews/ ({len(list(run.previews.glob('*.png')))} PNG), checkpoints/last.ckpt, metrics.csv", file=out)
    t = state.get("timings", {})
    if t:
        print("  time: " + ", ".join(f"{k.replace('_seconds', '')} {v:.0f}s" for k, v in t.items()), file=out)
    for k, v in result.get("metrics", {}).items():
        print(f"  {k}: {v}", file=out)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ui"]:  # the UI parses its own options (listed in `dreamer --help` by the stub below)
        from .ui.app import main as ui_main  # start-up
        return ui_main(argv[1:])
    try:
        args, extra = _parser().parse_known_args(argv)
        bad = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")]
        if bad:
            raise UserError(f"unrecognized arguments: {' '.join(bad)} (see `dreamer --help`)")
        if extra:
            args.overrides = list(args.overrides) + extra
        args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in benchmark outputs
        return _dispatch(args)
    except UserError as exc:
        print(f"dreamer: error: {str(exc).splitlines()[0] if str(exc) else 'bad input'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dreamer: interrupted; `dreamer resume RUN_DIR` continues from the last checkpoint", file=sys.stderr)
        return 130


def _dispatch(args) -> int:
    if getattr(args, "out", None) == "":
        raise UserError("--out is empty; pass a folder path, or leave --out out for the default folder")
    if args.command == "list-prompts":
        from .toy.catalogue import Catalogue  # start-up
        for obj in Catalogue.with_extension(args.catalogue).objects:
            front = " [distinct front]" if obj.has_front else ""
            print(f"{obj.name:14s} aliases: {', '.join(obj.aliases)}{front}")
        return 0
    if args.command == "bench":
        return _bench(args)
    if args.command == "batch":
        return _batch(args)
    if args.command == "eval":
        return _eval(args)
    if args.command == "generate":
        overrides = list(args.overrides)
        if args.coarse is not None:
            if args.representation not in ("mesh", "texture"):
                raise UserError("--coarse picks the previous stage of --representation mesh or texture; add one")
            # checked by the schema like any value
            overrides.append(f"geometry.{args.representation}.coarse={args.coarse}")
        cfg, recipe = generate_config(args.prompt, args.method, args.representation, args.prior, args.object,
                                      args.steps, args.seed, args.config, overrides, _placement(args))
        check_prior(cfg.prior)  # before torch loads: a missing model fails in well under a second
        from . import pipeline  # start-up
        run, result = pipeline.generate(cfg, args.out, recipe=recipe)
    elif args.command in ("refine", "texture"):
        from .stages import next_stage_config  # start-up
        if args.method is not None and args.method not in choices("guidance.method"):
            raise UserError(f"unknown method '{clip(args.method)}'; choose one of: {', '.join(choices('guidance.method'))}")
        overrides = list(args.overrides) + [f"export.{k}={v}" for k, v in _placement(args).items()]
        stage = "mesh" if args.command == "refine" else "texture"
        if stage == "texture" and args.size is not None:
            overrides.append(f"geometry.texture.size={args.size}")  # checked by the schema and the stage
        cfg, recipe = next_stage_config(args.run_dir, stage, args.method, args.steps, overrides)
        out = args.out or f"{Path(args.run_dir)}-{stage}"
        from . import pipeline  # start-up
        run, result = pipeline.generate(cfg, out, recipe=recipe)
    elif args.command == "run":
        cfg = build_config(recipe_path(args.config), args.overrides)
        from . import pipeline  # start-up
        run, result = pipeline.generate(cfg, args.out)
    elif args.command == "resume":
        from . import pipeline  # start-up
        run, result = pipeline.resume(args.run_dir)
    elif args.command == "export":
        from . import pipeline  # start-up
        run = RunDir.open(args.run_dir)
        cfg = run.config()
        # command-line options override the run's own export settings, checked by the same schema
        e = to_dict(cfg)["export"]
        if args.format:
            e["formats"] = [f.strip() for f in args.format.split(",")]
        e["resolution"] = e["resolution"] if args.resolution is None else args.resolution
        e["faces"] = e["faces"] if args.faces is None else args.faces
        e["turntable"] = e["turntable"] and not args.no_turntable
        e.update(_placement(args))
        cfg.export = from_dict(ExportConfig, e, "export")
        pipeline.validate_export(cfg.export)
        with run.hold():
            files = pipeline.export(run, cfg, pipeline.load_system(run, cfg))
        result = {"files": files, "metrics": {}}
    else:  # pragma: no cover - argparse guarantees a command
        raise UserError(f"unknown command {args.command}")
    _summary(run, result)
    return 0


def _batch(args) -> int:
    from .batch import summary  # start-up
    if args.jobs == "status" and args.status_dir:
        print(summary.status(Path(args.status_dir)), end="")
        return 0
    if args.status_dir and "=" in args.status_dir:  # argparse gives the first override to the optional slot
        args.overrides = [args.status_dir] + list(args.overrides)
    elif args.status_dir:
        raise UserError(f"unexpected argument {clip(args.status_dir)}; `dreamer batch JOBS --out DIR` or "
                        f"`dreamer batch status DIR`")
    if not args.out:
        raise UserError("dreamer batch needs --out DIR, the folder its run folders go to")
    from .batch.jobs import read_jobs  # start-up
    from .batch.runner import run_batch  # start-up
    jobs = read_jobs(Path(args.jobs), args.overrides)  # every job checked before any starts
    root = Path(args.out)
    pool = _pool(args.ray, args.workers, root, args.dashboard)
    table = run_batch(jobs, root, pool, say=lambda m: print(m, file=sys.stderr, flush=True))
    print(summary.to_markdown(table), end="")
    return 0 if all(r["status"] == "done" for r in table) else 1


def _pool(ray: str | None, workers: int | None, root: Path, dashboard: bool = False):
    """Where `dreamer batch` and `dreamer bench quality` run their jobs: Ray, or the local pool."""
    if workers is not None and workers < 1:
        raise UserError("--jobs must be at least 1")
    if ray is not None and workers is not None:
        raise UserError("--jobs is for the local pool; with --ray, Ray places the jobs")
    from .batch.pools import LocalPool, RayPool  # start-up
    return RayPool(ray, root, dashboard) if ray is not None else LocalPool(workers)


def _bench(args) -> int:
    if args.what == "prior":
        return _bench_prior(args)
    if args.what == "quality":
        return _bench_quality(args)
    if args.what == "splats":
        return _bench_splats(args)
    if args.what == "raster":
        return _bench_raster(args)
    from .bench import guidance  # start-up
    from .guidance import METHODS  # start-up
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method {', '.join(unknown)}; choose from: {', '.join(METHODS)}")
    if args.steps < 1 or args.batch_size < 1 or args.warmup < 0:
        raise UserError("--steps and --batch-size must be at least 1, --warmup at least 0")
    rows = guidance.run(methods, args.steps, args.warmup, args.prompt, args.batch_size,
                        say=lambda m: print(m, file=sys.stderr, flush=True))
    text = guidance.table(rows, args.batch_size)
    print(text)
    if args.markdown:
        write_text(Path(args.markdown), text + "\n")
    return 0


def _bench_quality(args) -> int:
    from .bench import quality  # start-up
    from .guidance import METHODS  # start-up
    from .toy.catalogue import Catalogue  # start-up
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else \
        ["sds", "vsd", "esd", "ism", "tsm", "bsd", "dsd", "csd"]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method {', '.join(unknown)}; choose from: {', '.join(METHODS)}")
    objects = [o.strip() for o in args.objects.split(",") if o.strip()]
    cat = Catalogue()
    for o in objects:
        cat.resolve(o)  # an unknown object fails here, before any run starts
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, got {args.seeds}") from None
    if args.run_steps is not None and args.run_steps < 1:
        raise UserError("--run-steps must be at least 1")
    if args.representation is not None and args.representation not in choices("geometry.type"):
        raise UserError(f"unknown representation '{clip(args.representation)}'; "
                        f"choose one of: {', '.join(choices('geometry.type'))}")
    pool = _pool(args.ray, args.jobs, Path(args.out))
    command = "dreamer " + " ".join(shlex.quote(a) for a in args.argv)
    result = quality.run(methods, objects, seeds, Path(args.out), args.run_steps, pool, args.overrides,
                         command=command, say=lambda m: print(m, file=sys.stderr, flush=True),
                         representation=args.representation)
    print(quality.markdown(result["summary"], command))
    print(f"written: {Path(args.out) / 'results.csv'}, summary.md, summary.png", file=sys.stderr)
    return 1 if result["failures"] else 0


def _bench_splats(args) -> int:
    try:
        counts = [int(n) for n in args.gaussians.split(",")]
        sizes = [int(n) for n in (args.sizes or "64,256").split(",")]
    except ValueError:
        raise UserError("--gaussians and --sizes must be comma-separated integers, e.g. --gaussians 1000,10000") from None
    if min(counts) < 1 or min(sizes) < 8 or args.cameras < 1 or args.tile_size < 1:
        raise UserError("--gaussians, --cameras and --tile-size must be at least 1, --sizes at least 8")
    from .bench import splats  # start-up
    from .priors.loading import pick_device  # start-up
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    device, with_gsplat = pick_device(args.device), False
    if device.type == "cuda":  # gsplat's rasterizer joins the table where its kernels build
        from renderers.cuda_kernels import kernels_missing  # start-up
        reason = kernels_missing("gsplat", say)
        with_gsplat = reason is None
        if reason:
            say(f"gsplat is left out of the table: its CUDA kernels are unavailable ({reason})")
    rows = splats.run(counts, sizes, args.cameras, tile_size=args.tile_size, say=say, device=str(device),
                      gsplat=with_gsplat)
    text = splats.table(rows, args.cameras, args.tile_size, str(device))
    print(text)
    if args.markdown:
        write_text(Path(args.markdown), text + "\n")
    return 0


def _bench_raster(args) -> int:
    try:
        counts = [int(n) for n in args.faces.split(",")]
        sizes = [int(n) for n in (args.sizes or "128,512").split(",")]
    except ValueError:
        raise UserError("--faces and --sizes must be comma-separated integers, e.g. --faces 10000,50000") from None
    if min(counts) < 8 or min(sizes) < 8:
        raise UserError("--faces and --sizes must be at least 8")
    from .bench import raster  # start-up
    from .priors.loading import pick_device  # start-up
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    device, dr = pick_device(args.device), None
    if device.type == "cuda":  # nvdiffrast joins the table where it is installed and its kernels build
        dr = _nvdiffrast_for_bench(device, say)
    rows = raster.run(counts, sizes, say=say, device=str(device), nvdiffrast=dr)
    text = raster.table(rows, str(device))
    print(text)
    if args.markdown:
        write_text(Path(args.markdown), text + "\n")
    return 0


def _nvdiffrast_for_bench(device, say):
    """nvdiffrast's torch module with its kernels built, or None (and why, said) where it cannot run."""
    from renderers.mesh_nvdiffrast import nvdiffrast_missing, prepare_nvdiffrast  # start-up
    reason = nvdiffrast_missing(True)
    if reason is None:
        try:
            return prepare_nvdiffrast(device, say)
        except UserError as exc:
            reason = str(exc)
    say(f"nvdiffrast is left out of the table: {reason}")
    return None


def _eval(args) -> int:
    from .evaluation import evaluate, table  # start-up
    if args.views < 1 or args.resolution < 16:
        raise UserError("--views must be at least 1 and --resolution at least 16")
    result = evaluate(args.run_dirs, args.views, args.resolution, say=lambda m: print(m, file=sys.stderr, flush=True),
                      diagnostics=args.diagnostics)
    print(table(result))
    return 0


def _bench_prior(args) -> int:
    check_prior(from_dict(PriorConfig, {"device": args.device, "dtype": args.dtype, "resolution": args.image_size},
                          "prior"))
    try:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        raise UserError(f"--batch-sizes must be comma-separated integers, got {args.batch_sizes}") from None
    if min(sizes) < 1 or args.steps < 1 or args.warmup < 0 or args.render_size < 8 or args.samples_per_ray < 1:
        raise UserError("--batch-sizes and --steps must be at least 1, --warmup at least 0, --render-size at least 8")
    from .bench import prior  # start-up
    rows = prior.run(sizes, args.steps, args.warmup, args.image_size, args.render_size, args.samples_per_ray,
                     args.device, args.dtype, say=lambda m: print(m, file=sys.stderr, flush=True))
    text = prior.table(rows)
    print(text)
    if args.markdown:
        write_text(Path(args.markdown), text + "\n")
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
