"""YAML as plain data: no interpolation, no tags, no objects.

Recipes, run folders' config.yaml and catalogues hold user text (prompts, paths, overrides). We
read and write them with PyYAML's safe loader rather than OmegaConf, because OmegaConf resolves
`${oc.env:NAME}` inside any string it is handed, which leaks environment variables into run
folders. The one thing taken from OmegaConf's loader is YAML 1.2's float syntax, so `1e-3` is a
number as recipes expect, not the string YAML 1.1 makes of it.
"""
from __future__ import annotations

import re

import yaml

from .errors import UserError


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.2 floats (1e-3, 2E5, .5, 1.) on top of the safe loader's; .nan/.inf stay floats (refused later).
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, cut: error lines must stay one short line."""
    text = str(exc).strip()
    return clip(text.splitlines()[0] if text else type(exc).__name__, limit)


def clip(text: str, limit: int = 80) -> str:
    """User input quoted in an error message, cut to `limit` characters."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def loads(text: str, where: str):
    """Parse YAML text into plain Python data; a syntax error is a one-line UserError."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise UserError(f"{where} is not valid YAML ({clip(problem, 60)}{at}); fix the syntax") from None


def dumps(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
