import pytest

from dreamer.config import build_config, load_recipe
from dreamer.errors import UserError
from dreamer.schedule import check_schedule, evaluate


def test_schedule_values_and_clamping():
    assert evaluate(0.5, 100) == 0.5
    s = [100, 1.0, 3.0, 300]
    assert evaluate(s, 0) == 1.0 and evaluate(s, 100) == 1.0
    assert evaluate(s, 200) == pytest.approx(2.0)
    assert evaluate(s, 10_000) == 3.0
    assert evaluate([2.0, 8.0, 1000], 500) == pytest.approx(5.0)  # 3 elements: start step 0
    jump = [5000, 0.98, 0.5, 5001]  # the spec's timestep switch
    assert evaluate(jump, 4999) == pytest.approx(0.98) and evaluate(jump, 5001) == pytest.approx(0.5)
    piecewise = [0, 0.0, 1.0, 10, 0.0, 20]
    assert evaluate(piecewise, 10) == pytest.approx(1.0) and evaluate(piecewise, 15) == pytest.approx(0.5)


def test_bad_schedules_fail():
    for bad in ([1, 2], [1, 2, 3, 4, 5], [10, 1.0, 2.0, 5], "fast", [1, "a", 2]):
        with pytest.raises(UserError):
            check_schedule(bad, "x")


def test_recipe_inheritance(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 3\ntrainer:\n  max_steps: 10\n  val_every: 5\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrainer:\n  max_steps: 20\n")
    data = load_recipe(tmp_path / "child.yaml")
    assert data == {"seed": 3, "trainer": {"max_steps": 20, "val_every": 5}}
    cfg = build_config(tmp_path / "child.yaml", ["trainer.val_every=7"])
    assert (cfg.seed, cfg.trainer.max_steps, cfg.trainer.val_every) == (3, 20, 7)


def test_a_recipe_anywhere_extends_a_shipped_one_by_name(tmp_path):
    """`extends: sds-nerf.yaml` outside configs/ finds the shipped recipe (a file of that name next
    to the recipe would come first); how a mesh run's coarse stage gets settings of its own."""
    (tmp_path / "coarse.yaml").write_text("extends: sds-nerf.yaml\nguidance:\n  guidance_scale: 100\n")
    cfg, shipped = build_config(tmp_path / "coarse.yaml"), build_config("configs/sds-nerf.yaml")
    assert (cfg.guidance.method, cfg.guidance.guidance_scale, shipped.guidance.guidance_scale) == ("sds", 100, 3.0)
    assert cfg.geometry == shipped.geometry
    (tmp_path / "sds-nerf.yaml").write_text("seed: 9\n")
    assert build_config(tmp_path / "coarse.yaml").seed == 9
    (tmp_path / "lost.yaml").write_text("extends: no-such-recipe.yaml\n")
    with pytest.raises(UserError, match="lost.yaml extends no-such-recipe.yaml, which is neither next to it"):
        load_recipe(tmp_path / "lost.yaml")


def test_shipped_recipe_validates():
    cfg = build_config("configs/sds-nerf.yaml", ["prompt=a rubber duck"])
    assert cfg.guidance.method == "sds" and cfg.geometry.pos_encoding.n_levels == 8


def test_unknown_key_names_closest():
    with pytest.raises(UserError, match=r"unknown config key 'trainer.max_step'; did you mean 'trainer.max_steps'"):
        build_config(None, ["trainer.max_step=3"])


def test_wrong_type_fails():
    with pytest.raises(UserError, match="trainer.max_steps must be an integer"):
        build_config(None, ["trainer.max_steps=lots"])
    with pytest.raises(UserError, match="guidance.guidance_scale"):
        build_config(None, ["guidance.guidance_scale=big"])


def test_schedules_accepted_for_numbers():
    cfg = build_config(None, ["guidance.max_step_percent=[0,0.98,0.5,400]", "loss.lambda_guidance=[0,1,2,10]",
                              "guidance.grad_clip=[0,2.0,8.0,1000]", "optimizer.lr_encoding=[0,0.01,0.001,100]"])
    assert cfg.guidance.max_step_percent == [0, 0.98, 0.5, 400]


def test_extends_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(UserError, match="extends itself"):
        load_recipe(tmp_path / "a.yaml")


def test_run_folders_from_before_the_guidance_family_still_load(tmp_path):
    """Their config.yaml says loss.lambda_sds; it now reads as loss.lambda_guidance."""
    from dreamer.runs import RunDir
    run = RunDir.create(tmp_path / "old", build_config(None, None, {"prompt": "a rubber duck"}))
    text = (run.path / "config.yaml").read_text()
    (run.path / "config.yaml").write_text(text.replace("lambda_guidance: 1.0", "lambda_sds: 2.0"))
    assert RunDir.open(run.path).config().loss.lambda_guidance == 2.0


def test_the_schema_is_the_one_source_of_defaults():
    """configs/base.yaml, which every recipe extends, overrides no default: ExperimentConfig() in
    Python is the same run as `dreamer generate` with no recipe values."""
    from dreamer.config import CONFIG_DIR, ExperimentConfig, build_config, load_recipe, to_dict
    assert to_dict(build_config(CONFIG_DIR / "base.yaml")) == to_dict(ExperimentConfig())
    assert load_recipe(CONFIG_DIR / "base.yaml") == {}  # a value added there must come with a reason here


def test_every_recipe_extends_the_base():
    from dreamer import yamldata
    from dreamer.config import CONFIG_DIR

    def roots(name: str, seen: tuple = ()) -> set:
        """The files at the top of every extends chain from `name`."""
        data = yamldata.loads((CONFIG_DIR / name).read_text(), name) or {}
        parents = data.get("extends") or []
        parents = [parents] if isinstance(parents, str) else parents
        if not parents or name in seen:
            return {name}
        return set().union(*(roots(p, seen + (name,)) for p in parents))
    for path in CONFIG_DIR.glob("*.yaml"):
        assert roots(path.name) == {"base.yaml"}, path.name
