"""The toy catalogue: the built-in objects plus users' mesh objects, and how prompts name them."""
from __future__ import annotations

import hashlib
import re

from ..errors import UserError
from ..yamldata import clip
from .objects import Part, ToyObject, builtin_objects, normalize_prompt
from .user_objects import load_catalogue_extension

__all__ = ["Catalogue", "Part", "ToyObject", "builtin_objects", "normalize_prompt", "toy_object"]


class Catalogue:
    """Objects by name; prompts resolve to an object through its aliases."""

    def __init__(self, objects: list[ToyObject] | None = None):
        self.objects = list(objects if objects is not None else builtin_objects())

    @classmethod
    def with_extension(cls, path: str | None) -> "Catalogue":
        """The built-in objects plus those of a user catalogue YAML (dreamer.toy.user_objects)."""
        objects = builtin_objects()
        if path:
            extra = load_catalogue_extension(path)
            taken = {o.name for o in objects}
            for obj in extra:
                if obj.name in taken:
                    raise UserError(f"catalogue object '{obj.name}' is already in the catalogue; rename it")
                taken.add(obj.name)
            objects += extra
        return cls(objects)

    def names(self) -> list[str]:
        return [o.name for o in self.objects]

    def version(self) -> str:
        return hashlib.sha1("".join(o.fingerprint() for o in self.objects).encode()).hexdigest()[:12]

    def index_of(self, name: str) -> int:
        return self.names().index(name)

    def resolve(self, prompt: str) -> tuple[int | None, str | None]:
        """(object index or None for the empty prompt, view label or None)."""
        text, label = normalize_prompt(prompt)
        if not text:
            return None, label
        best, best_len = None, 0
        for i, obj in enumerate(self.objects):
            for alias in obj.aliases:
                if re.search(rf"\b{re.escape(alias)}\b", text) and len(alias) > best_len:
                    best, best_len = i, len(alias)
        if best is None:
            shown = ", ".join(f'"{n}"' for n in self.names()[:8])
            raise UserError(
                f'the toy prior does not know "{clip(prompt.strip())}"; it knows {shown} '
                f"(see `dreamer list-prompts`), or pass --prior <diffusers model id or folder> "
                f"to use a real diffusion model")
        return best, label


def toy_object(prior_cfg, prompt: str) -> ToyObject:
    """The ground-truth object a toy-prior run's prompt names (its catalogue included)."""
    if prior_cfg.name != "toy":
        raise UserError(f"dreamer eval scores toy-prior runs against the toy ground truth; this run used "
                        f"prior {clip(prior_cfg.name)}")
    cat = Catalogue.with_extension(prior_cfg.catalogue)
    index, _ = cat.resolve(prompt)
    if index is None:
        raise UserError("the prompt names no toy object; there is no ground truth to score against")
    return cat.objects[index]
