"""The house's shape, held: imports point down the layers, no cycles (not even through imports
inside functions), and the loop, the job and the UI never ask which representation they hold."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dreamer", "systems", "renderers")

# Bottom to top: a module may import its own layer and those below, never one above.
LAYERS = [
    ("base", ["dreamer", "dreamer.errors", "dreamer.yamldata", "dreamer.atomic", "dreamer.schedule",
              "dreamer.config", "dreamer.gather", "dreamer.draws", "dreamer.budget", "dreamer.cameras", "dreamer.checkpoints", "dreamer.runs",
              "dreamer.topology"]),
    ("parts", ["dreamer.priors", "dreamer.toy", "dreamer.guidance", "dreamer.prompts", "dreamer.geometry",
               "renderers", "dreamer.export", "dreamer.eval"]),
    ("representations", ["dreamer.representations"]),
    ("systems", ["systems", "dreamer.callbacks"]),
    ("job", ["dreamer.pipeline", "dreamer.recipes", "dreamer.stages", "dreamer.diagnostics", "dreamer.evaluation"]),
    ("batch", ["dreamer.batch"]),
    ("front ends", ["dreamer.cli", "dreamer.ui", "dreamer.bench", "app"]),
]


def layer_of(module: str) -> int:
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and p.count(".") > depth:
                best, depth = i, p.count(".")
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}"
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")) + [ROOT / "app.py"]


def imports(path: Path):
    """(line, imported module, inside a function) for every import of a project module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    inside = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(n) for n in ast.walk(fn)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from pkg import submodule` imports the submodule
            names = [f"{base}.{a.name}" if (ROOT / base.replace(".", "/") / f"{a.name}.py").is_file()
                     or (ROOT / base.replace(".", "/") / a.name / "__init__.py").is_file() else base
                     for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES and name != mod:
                yield node.lineno, name, id(node) in inside


def graph() -> dict:
    edges: dict = {}
    for path in project_files():
        for line, name, _ in imports(path):
            edges.setdefault(module_name(path), {}).setdefault(name, line)
    return edges


def upward_imports(edges: dict) -> list[str]:
    bad = []
    for mod, targets in edges.items():
        for target, line in targets.items():
            if layer_of(target) > layer_of(mod):
                bad.append(f"{mod}:{line} imports {target} ({LAYERS[layer_of(mod)][0]} -> "
                           f"{LAYERS[layer_of(target)][0]})")
    return bad


def cycles(edges: dict) -> list[list[str]]:
    """Import cycles among modules (a package's __init__ importing its own modules is no cycle:
    they import their siblings, never the package)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in edges.get(node, {}):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_import_points_down_the_layers():
    edges = graph()
    assert len(edges) > 50  # the walk found the project
    assert upward_imports(edges) == []


def test_no_import_cycles_even_through_imports_inside_functions():
    assert cycles(graph()) == []


def test_an_import_inside_a_function_says_it_is_for_start_up_time():
    """Imports of project modules sit at the top of a module, unless they are delayed so a command
    answers before torch (or Gradio, diffusers) loads: then the line, or the one above, says so."""
    unmarked = []
    for path in project_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for line, name, inside in imports(path):
            text = lines[line - 1] + (lines[line - 2] if line > 1 else "")
            if inside and "start-up" not in text:
                unmarked.append(f"{path.relative_to(ROOT)}:{line} {name}")
    assert unmarked == []



def test_commands_that_check_export_or_evaluate_do_not_load_lightning():
    """Lightning takes seconds to import; only training needs it. Bad input is answered, and export
    and evaluation load a checkpoint (systems/scene.py), without it."""
    code = ("import sys, dreamer.cli, dreamer.pipeline, dreamer.evaluation; "
            "print(sorted(m for m in sys.modules if 'lightning' in m))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = "import sys, systems.text_to_3d; print('pytorch_lightning' in sys.modules)"  # the check can fail
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout.strip() == "True"

def test_the_checks_catch_what_they_are_for():
    """An upward import, a cycle and an unknown module are each reported."""
    edges = {"dreamer.config": {"dreamer.pipeline": 3}, "dreamer.pipeline": {"dreamer.config": 5}}
    assert upward_imports(edges) == ["dreamer.config:3 imports dreamer.pipeline (base -> job)"]
    assert cycles(edges) == [["dreamer.config", "dreamer.pipeline", "dreamer.config"]]
    assert layer_of("dreamer.representations.nerf") == 2 and layer_of("dreamer.eval.metrics") == 1


# -- the loop, the job, evaluation and the UI see representations only through the contract ---------

NAME_BLIND = ["systems", "dreamer/pipeline.py", "dreamer/evaluation.py", "dreamer/recipes.py", "dreamer/ui",
              "dreamer/export"]


def test_no_branch_on_a_representation_name_outside_its_module():
    from dreamer.representations import REPRESENTATIONS
    names = "|".join(REPRESENTATIONS)
    pattern = re.compile(rf"""["']({names})["']|geometry\.type\s*[!=]=""")
    found = []
    for entry in NAME_BLIND:
        for path in ([ROOT / entry] if entry.endswith(".py") else sorted((ROOT / entry).rglob("*.py"))):
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line.split("#")[0]):
                    found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert found == []
    # nor import a representation's own parts: only the contract, the registry and shared pieces
    own = ("dreamer.geometry", "dreamer.representations.nerf", "dreamer.representations.gaussians",
           "dreamer.representations.densify", "renderers.volume.VolumeRenderer", "renderers.gaussian", "renderers.splat_raster")
    edges = graph()
    leaks = [f"{m} imports {t}" for m, targets in edges.items() for t in targets
             if any(m == e.replace("/", ".").removesuffix(".py") or m.startswith(e.replace("/", ".") + ".")
                    for e in NAME_BLIND) and t.startswith(own)]
    assert leaks == []


def test_the_registries_and_the_schema_name_the_same_things():
    from dreamer.config import EXPORT_FORMATS, choices
    from dreamer.guidance import METHODS
    from dreamer.representations import REPRESENTATIONS
    assert choices("geometry.type") == tuple(REPRESENTATIONS)
    assert choices("guidance.method") == tuple(METHODS)
    assert choices("export.formats") == EXPORT_FORMATS
