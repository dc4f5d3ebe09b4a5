"""A fuzz pass over the config schema: every numeric key gets hostile values through
`dreamer generate --steps 1`, and each probe must end in exit 0, or exit 2 with one line and no
run folder, never a traceback.

Values refused by validation are checked with validation alone (the run folder's creation is the
tripwire). Values that validation accepts really run, several keys to a run to keep it fast; a run
that exits 2 is split until each accepted value has its own verdict, and a crash is split until
the one key that causes it is named.
"""
import contextlib
import dataclasses
import io
import json
import typing
from pathlib import Path

import pytest

from test_hostile_input import TINY  # noqa: E402

pytestmark = pytest.mark.slow

HOSTILE = {"zero": "0", "minus one": "-1", "huge": None, "nan": ".nan", "inf": ".inf", "string": "abc", "empty list": "[]"}
GROUP = 80  # accepted keys per real run (all of them, today)


def numeric_keys(cls=None, prefix=""):
    """(dotted key, 'int' | 'float' | 'list') of every number-valued key in the schema."""
    from dreamer import config as C
    cls = cls or C.ExperimentConfig
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], prefix + f.name
        for _ in range(3):  # Optional[...] and Annotated[...] around the base type
            if typing.get_origin(tp) is typing.Union:
                tp = [a for a in typing.get_args(tp) if a is not type(None)][0]
            if typing.get_origin(tp) is typing.Annotated:
                tp, *meta = typing.get_args(tp)
                if tp is list and meta and isinstance(meta[0], C.Items):
                    tp = "list"
        if dataclasses.is_dataclass(tp):
            yield from numeric_keys(tp, key + ".")
        elif tp is int:
            yield key, "int"
        elif tp in (float, C.Sched, C.NumberOrAuto):
            yield key, "float"
        elif tp == "list":
            yield key, "list"


class Accepted(Exception):
    """Raised where the run folder would be created: validation let the value through."""


def run_cli(overrides, out: Path, real: bool, monkeypatch):
    """(exit code, stderr lines, exception) of one in-process `dreamer generate --steps 1`."""
    from dreamer import cli, pipeline

    def tripwire(path, cfg):
        raise Accepted()
    with monkeypatch.context() as m:
        if not real:
            m.setattr(pipeline.RunDir, "create", staticmethod(tripwire))
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(["generate", "a rubber duck", "--steps", "1", "--out", str(out), *TINY, *overrides])
        except Accepted:
            return "accepted", [], None
        except BaseException as exc:  # noqa: BLE001 - a traceback is the failure we look for
            return "crashed", [], exc
    return code, [ln for ln in err.getvalue().splitlines() if ln.strip() and "optimizing" not in ln], None


def value_for(kind: str, name: str) -> str:
    if name != "huge":
        return HOSTILE[name]
    return {"int": str(10**30), "float": "1e300", "list": f"[{10**30}]"}[kind]


def test_every_numeric_key_survives_hostile_values(tmp_path, monkeypatch):
    keys = list(numeric_keys())
    assert len(keys) > 120  # the whole schema, not a sample
    accepted, n = [], 0
    for key, kind in keys:
        for name in HOSTILE:
            item = f"{key}={value_for(kind, name)}"
            n += 1
            code, lines, exc = run_cli([item], tmp_path / f"v{n}", False, monkeypatch)
            assert exc is None, f"{item}: {type(exc).__name__}: {exc}"
            if code == "accepted":
                accepted.append(item)
            else:
                assert code == 2 and len(lines) == 1, (item, code, lines)
                assert not (tmp_path / f"v{n}").exists()
    refused = n - len(accepted)
    print(f"\n{n} probes over {len(keys)} keys: {refused} refused by validation, {len(accepted)} run for real")
    verdicts = {}
    for start in range(0, len(accepted), GROUP):
        verdicts.update(_really_run(accepted[start:start + GROUP], tmp_path, monkeypatch))
    print(f"of those, exit 0: {sum(v == 0 for v in verdicts.values())}, exit 2: {sum(v == 2 for v in verdicts.values())}")
    assert len(verdicts) == len(accepted)


def _really_run(items, tmp_path, monkeypatch, depth=0) -> dict:
    out = tmp_path / f"real-{abs(hash(tuple(items)))}"
    code, lines, exc = run_cli(items, out, True, monkeypatch)
    if code == 0:
        return {item: 0 for item in items}
    if len(items) == 1:
        assert exc is None, f"{items[0]} crashed after validation: {type(exc).__name__}: {exc}"
        errors = [ln for ln in lines if ln.startswith("dreamer: error:")]
        assert code == 2 and len(errors) == 1 and lines[-1] == errors[0], (items[0], code, lines)
        if out.exists():  # only a run that trained and then could not export keeps its folder
            state = json.loads((out / "run.json").read_text())
            assert state["status"] == "failed" and state["error"] in errors[0] and state["failed_in"] == "export", \
                f"{items[0]}: exit 2 but the run folder was written ({errors[0]})"
        return {items[0]: 2}
    half = len(items) // 2  # exit 2 or a crash: find which of them
    return {**_really_run(items[:half], tmp_path, monkeypatch, depth + 1),
            **_really_run(items[half:], tmp_path, monkeypatch, depth + 1)}
