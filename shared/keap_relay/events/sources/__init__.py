"""Webhook sources: one adapter module per service, each with verify(), parse() and sign()."""

from __future__ import annotations

from types import ModuleType

from . import generic

# URL source name -> adapter module. A vendor adapter is added here and nowhere else.
SOURCES: dict[str, ModuleType] = {
    "generic": generic,
}


def adapter(source: str) -> ModuleType | None:
    """The adapter serving /{kind}/{source}, or None when there is none."""
    return SOURCES.get(source)
