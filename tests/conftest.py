import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Toy references are cached per machine; tests share one cache folder inside the checkout.
os.environ.setdefault("DREAMER_CACHE", str(ROOT / ".cache"))
os.environ.setdefault("PYTHONWARNINGS", "ignore")
# Under pytest-xdist (`make test`: one process per core), each process and the runs it starts use one
# torch thread, so the processes do not fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def small_catalogue():
    from dreamer.toy.catalogue import Catalogue, builtin_objects
    objs = builtin_objects()
    return Catalogue([objs[0], objs[1], objs[4]])  # duck, snowman, mushroom


@pytest.fixture(scope="session")
def small_prior(small_catalogue):
    from dreamer.toy.prior import ToyPrior
    return ToyPrior(small_catalogue, refs_per_object=48)


VALIDATOR = ROOT / "tests" / "js" / "validate-gltf.js"


def validate_gltf(path) -> dict:
    """The Khronos validator's report for a GLB (node + npm package gltf-validator)."""
    import json
    if shutil.which("node") is None or not (ROOT / "tests" / "js" / "node_modules" / "gltf-validator").exists():
        if os.environ.get("CI"):
            pytest.fail("gltf-validator is not installed: run `npm ci --prefix tests/js` (done by .ci/run)")
        pytest.skip("gltf-validator not installed (npm ci --prefix tests/js)")
    out = subprocess.run(["node", str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


THREE_LOADER = ROOT / "tests" / "js" / "three-load.mjs"
BLENDER_PYTHON = ROOT / ".venv-blender" / "bin" / "python"
BLENDER_FACTS = ROOT / "tests" / "clients" / "blender_facts.py"


def _missing(what: str, fix: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed: {fix} (done by `make tools`)")
    pytest.skip(f"{what} not installed ({fix})")


def three_facts(path) -> dict:
    """What three.js's GLTFLoader builds from a GLB, in Node (tests/js/three-load.mjs)."""
    import json
    if shutil.which("node") is None or not (ROOT / "tests" / "js" / "node_modules" / "three").exists():
        _missing("three.js", "npm ci --prefix tests/js")
    out = subprocess.run(["node", str(THREE_LOADER), str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def blender_facts(path, render_to=None) -> dict:
    """What Blender (bpy from PyPI, in .venv-blender) sees in an exported GLB or OBJ."""
    import json
    probe = subprocess.run([str(BLENDER_PYTHON), "-c", "import bpy"], capture_output=True) \
        if BLENDER_PYTHON.exists() else None
    if probe is None or probe.returncode != 0:
        _missing("Blender (bpy)", "make tools, which needs Python 3.11 for bpy 5.0")
    args = [str(BLENDER_PYTHON), str(BLENDER_FACTS), str(path)] + ([str(render_to)] if render_to else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BLENDER_FACTS ")), None)
    assert out.returncode == 0 and line, (out.stdout[-2000:], out.stderr[-2000:])
    return json.loads(line[len("BLENDER_FACTS "):])


# `make test` runs a file per pytest-xdist process (--dist loadfile --no-loadscope-reorder), in this
# order: the longest files first, so that none of them starts last and becomes the suite's tail
# (minutes on the 2-core CI machine, measured 2026-12-02). The rest follow in collection order.
LONGEST_FIRST = ["test_end_to_end.py", "test_gaussians.py", "test_batch.py", "test_methods_end_to_end.py",
                 "test_mesh_runs.py", "test_ui.py", "test_hostile_input.py", "test_eval_metrics.py",
                 "test_diffusers_priors.py", "test_cli.py", "test_gpu_readiness.py"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order
