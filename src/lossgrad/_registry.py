"""The catalog: every loss registers under a name, a family and test variants."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from ._props import Shape

__all__ = ["CatalogEntry", "register", "get", "catalog", "entry"]


@dataclass(frozen=True)
class CatalogEntry:
    """One registered loss: its class, defaults and the parameter variants tests sweep."""

    name: str
    family: str
    shape: Shape
    cls: type
    params: dict[str, Any]
    variants: tuple[dict[str, Any], ...]
    summary: str

    def make(self, **params: Any) -> Any:
        return self.cls(**params)

    def instances(self) -> list[Any]:
        """One instance per declared variant (the default parameters first)."""
        return [self.cls(**v) for v in self.variants]


_REGISTRY: dict[str, CatalogEntry] = {}


def register(name: str, family: str, variants: tuple[dict[str, Any], ...] = ({},)):
    """Class decorator adding a loss to the catalog under ``name``."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"a loss named {name!r} is already registered")
        cls.name = name
        cls.family = family
        params = {}
        if dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                if f.init and not f.name.startswith("_"):
                    params[f.name] = f.default if f.default is not dataclasses.MISSING else None
        doc = (cls.__doc__ or "").strip().splitlines()
        vs = tuple(variants) if variants else ({},)
        if vs[0] != {}:
            vs = ({},) + vs
        _REGISTRY[name] = CatalogEntry(
            name=name,
            family=family,
            shape=cls.shape,
            cls=cls,
            params=params,
            variants=vs,
            summary=doc[0] if doc else "",
        )
        return cls

    return decorate


def entry(name: str) -> CatalogEntry:
    """The catalog entry of a registered name; a clear error with suggestions otherwise."""
    _ensure_loaded()
    if not isinstance(name, str):
        raise TypeError(f"name must be a string naming a registered loss, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown loss name {name!r}{hint} (lossgrad.catalog() lists them all)") from None


def get(name: str, **params: Any) -> Any:
    """Build the registered loss ``name`` with the given parameters.

    >>> import lossgrad
    >>> lossgrad.get("huber", delta=2.0)
    Huber(delta=2.0)
    """
    return entry(name).make(**params)


def catalog(family: str | None = None, shape: str | Shape | None = None) -> list[CatalogEntry]:
    """Every registered loss, sorted by family then name; optionally filtered."""
    _ensure_loaded()
    rows = list(_REGISTRY.values())
    if family is not None:
        rows = [r for r in rows if r.family == family]
    if shape is not None:
        shape = Shape(shape)
        rows = [r for r in rows if r.shape == shape]
    return sorted(rows, key=lambda r: (r.family, r.name))


def _ensure_loaded() -> None:
    from . import losses  # noqa: F401  (importing registers every family)
