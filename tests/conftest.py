import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Toy references are cached per machine; tests share one cache folder inside the checkout.
os.environ.setdefault("DREAMER_CACHE", str(ROOT / ".cache"))
os.environ.setdefault("PYTHONWARNINGS", "ignore")
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
