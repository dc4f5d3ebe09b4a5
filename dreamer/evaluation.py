"""`dreamer eval`: score finished toy-prior runs against the toy world's ground truth.

Per run (metrics.json in its folder): silhouette IoU, PSNR, saturation and sharpness ratios at
`views` held-out cameras with uniform azimuths, the Chamfer distance of the exported mesh to the true
mesh, and the Janus score for objects with a distinct front. Across runs of one prompt: the spread
between their results (pairwise silhouette disagreement 1 - IoU and RGB RMSE at the same views).
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import torch
import trimesh

from renderers.background import Background
from renderers.mesh import draw_chunked
from renderers.volume import ShadingSpec

from .atomic import write_text
from .diagnostics import gradient_shares, shares_table
from .eval.geometry import chamfer, true_mesh
from .eval.janus import janus_score
from .eval.metrics import heldout_cameras, image_metrics, object_renderer, silhouette_iou
from .export.placement import placement
from .pipeline import load_system
from .runs import RunDir
from .toy.catalogue import toy_object

WHITE = torch.ones(3)
# Raise when a metric's definition changes: `bench quality` reuses a run's metrics.json only when
# it was written by this version, at the same views and resolution, after the run last changed.
EVAL_VERSION = 3  # 3: sharpness and detail match added


def run_renderer(system):
    """render_fn(cams) -> (rgb, coverage) of a trained system, shaded like the truth, on white."""
    def render(cams):
        out = system.render_views(cams, mode="shaded", bg_color=WHITE)
        return out["rgb"], out["opacity"][..., 0]
    return render


def exported_mesh(run: RunDir, cfg, system):
    """The run's exported mesh in field units, where the truth lives: the export scaled and moved it
    to export.height and export.pivot, and run.json records by how much (for a run exported before
    it did, the placement is recomputed from the representation's mesh, as the export made it)."""
    path = next((run.path / n for n in ("model.glb", "model.obj") if (run.path / n).is_file()), None)
    if path is None:
        return None
    mesh = trimesh.load_mesh(path)  # a GLB scene flattened to one mesh
    where = run.state().get("placement")
    if where is None:
        with torch.no_grad():
            field_mesh = system.representation.to_mesh(cfg.export)
        p = placement(field_mesh.vertices, cfg.export.height, cfg.export.pivot)
        where = {"scale": p.scale, "offset": p.offset}
    vertices = (np.asarray(mesh.vertices) - np.asarray(where["offset"])) / where["scale"]
    return trimesh.Trimesh(vertices, mesh.faces, process=False)


def mesh_coverage(mesh, cfg, cams) -> torch.Tensor:
    """The coverage of a mesh in field units (the exported asset, whatever the run's representation)
    at the held-out cameras: the file users get, scored like the run's own renders."""
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.as_tensor(mesh.faces, dtype=torch.long)
    out = draw_chunked(vertices, faces, lambda p: torch.full_like(p, 0.5), Background(cfg.background), cams,
                       ShadingSpec("albedo"), bg_color=WHITE)
    return out["opacity"][..., 0]


def evaluate_run(run: RunDir, views: int = 16, resolution: int = 64) -> tuple[dict, dict]:
    """(metrics, renders) of one run; metrics.json is written into the run folder."""
    cfg = run.config()
    obj = toy_object(cfg.prior, cfg.prompt)
    system = load_system(run, cfg)
    render_fn, truth_fn = run_renderer(system), object_renderer(obj)
    cams = heldout_cameras(cfg.camera, views, resolution)
    truth = truth_fn(cams)
    metrics = {"prompt": cfg.prompt, "object": obj.name, "method": cfg.guidance.method, "seed": cfg.seed,
               "views": views, "resolution": resolution, "eval_version": EVAL_VERSION,
               **image_metrics(render_fn, lambda _: truth, cams)}
    mesh = exported_mesh(run, cfg, system)
    metrics["chamfer"] = None if mesh is None else chamfer(mesh, true_mesh(obj))
    metrics["export_silhouette_iou"] = None if mesh is None else silhouette_iou(mesh_coverage(mesh, cfg, cams), truth[1])
    if obj.has_front:
        c = cfg.camera
        metrics.update(janus_score(render_fn, truth_fn, c.eval_elevation, c.eval_distance, c.eval_fovy, resolution))
    else:
        metrics["janus_score"] = None
    metrics = {k: _round(v) for k, v in metrics.items()}
    write_text(run.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    rgb, cov = render_fn(cams)
    return metrics, {"rgb": rgb, "coverage": cov}


def stored_metrics(run: RunDir, views: int, resolution: int) -> dict | None:
    """The run's metrics.json if it still holds (see EVAL_VERSION), without its spread; else None."""
    path = run.path / "metrics.json"
    sources = [run.path / n for n in ("config.yaml", "model.glb", "model.obj", "checkpoints/last.ckpt")]
    newest = max((p.stat().st_mtime for p in sources if p.is_file()), default=math.inf)
    try:
        if path.stat().st_mtime < newest:
            return None
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (metrics.get("eval_version"), metrics.get("views"), metrics.get("resolution")) != (EVAL_VERSION, views, resolution):
        return None
    metrics.pop("spread", None)
    return metrics


def heldout_renders(run: RunDir, views: int, resolution: int) -> dict:
    """The run's renders at the held-out cameras, as evaluate_run makes them (for the spread)."""
    cfg = run.config()
    rgb, cov = run_renderer(load_system(run, cfg))(heldout_cameras(cfg.camera, views, resolution))
    return {"rgb": rgb, "coverage": cov}


def _round(v):
    if isinstance(v, float):
        return v if math.isinf(v) else round(v, 4)
    return v


def spread(renders: list[dict]) -> dict:
    """Mean over pairs of runs: silhouette disagreement (1 - IoU) and RGB RMSE at the same views."""
    pairs = list(itertools.combinations(renders, 2))
    if not pairs:
        return {}
    dis = [1 - silhouette_iou(a["coverage"], b["coverage"]) for a, b in pairs]
    rmse = [float(((a["rgb"] - b["rgb"]) ** 2).mean().sqrt()) for a, b in pairs]
    return {"runs": len(renders), "silhouette_disagreement": round(sum(dis) / len(dis), 4),
            "rgb_rmse": round(sum(rmse) / len(rmse), 4)}


def evaluate(paths: list[str], views: int = 16, resolution: int = 64, say=print, diagnostics: bool = False,
             reuse: bool = False) -> dict:
    """Score every run; runs that share a prompt and method also get their spread. With
    `diagnostics`, also the shares of CFG (and of ESD's entropy term) in the guidance gradient.
    With `reuse`, a run whose metrics.json still holds (stored_metrics) is not scored again; only
    its renders are made again, where a spread needs them."""
    rows, groups = [], {}
    for p in paths:
        run = RunDir.open(p)
        metrics, renders = stored_metrics(run, views, resolution) if reuse else None, None
        if metrics is not None:
            say(f"kept the metrics of {run.path}")
        else:
            say(f"evaluating {run.path}")
            metrics, renders = evaluate_run(run, views, resolution)
        if diagnostics and "gradient_shares" not in metrics:
            metrics["gradient_shares"] = gradient_shares(run)
            write_text(run.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        rows.append((run, metrics))
        groups.setdefault((metrics["prompt"], metrics["method"]), []).append((run, metrics, renders))
    spreads = {}
    for (prompt, method), members in groups.items():
        if len(members) > 1:
            members = [(run, m, r if r is not None else heldout_renders(run, views, resolution)) for run, m, r in members]
        s = spread([r for _, _, r in members])
        if s:
            spreads[f"{method}: {prompt}"] = s
            for run, metrics, _ in members:
                metrics["spread"] = s
                write_text(run.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return {"runs": [{"run": str(r.path), **m} for r, m in rows], "spread": spreads}


def table(result: dict) -> str:
    fmt = lambda v, f: "-" if v is None else format(v, f)
    lines = ["| run | object | method | seed | IoU | PSNR (dB) | Chamfer | export IoU | Janus | saturation (truth) | sharpness (truth) | detail |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["runs"]:
        lines.append(f"| {Path(r['run']).name} | {r['object']} | {r['method']} | {r['seed']} | {r['silhouette_iou']:.3f} | "
                     f"{r['psnr']:.2f} | {fmt(r['chamfer'], '.4f')} | {fmt(r.get('export_silhouette_iou'), '.3f')} | "
                     f"{fmt(r['janus_score'], '+.2f')} | "
                     f"{r['saturation']:.3f} ({r['saturation_truth']:.3f}) | "
                     f"{fmt(r.get('sharpness'), '.3f')} ({fmt(r.get('sharpness_truth'), '.3f')}) | "
                     f"{fmt(r.get('detail_match'), '+.2f')} |")
    for r in result["runs"]:
        if "gradient_shares" in r:
            lines.append("\n" + shares_table(Path(r["run"]).name, r["gradient_shares"]))
    for key, s in result["spread"].items():
        lines.append(f"\nspread over {s['runs']} runs ({key}): silhouette disagreement {s['silhouette_disagreement']:.3f}, "
                     f"RGB RMSE {s['rgb_rmse']:.3f}")
    return "\n".join(lines)
