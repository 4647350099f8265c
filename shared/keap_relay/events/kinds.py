"""The three kinds of event and every name each goes by: one table, imported wherever a kind is named."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One kind of event and its names across the project.

    `name` is the canonical event's `kind` (and EventBridge's detail-type); `folder` is the function's
    folder under functions/, its URL prefix (/forms/{source}) and its routes-file section; `prefix`
    starts its template resources (FormsFunction, FormsQueue, FormsDLQ); `section` is the part of the
    canonical event only this kind carries.
    """

    name: str
    folder: str
    prefix: str
    section: str

    @property
    def routes_section(self) -> str:
        """The routes file's section for this kind (the same word as the folder)."""
        return self.folder

    @property
    def function(self) -> str:
        """The template's logical id of the kind's function."""
        return f"{self.prefix}Function"

    @property
    def queue(self) -> str:
        """The template's logical id of the kind's work queue."""
        return f"{self.prefix}Queue"

    @property
    def dlq(self) -> str:
        """The template's logical id of the kind's dead-letter queue."""
        return f"{self.prefix}DLQ"


KINDS: tuple[Kind, ...] = (
    Kind("form_submission", "forms", "Forms", "form"),
    Kind("purchase", "purchases", "Purchases", "order"),
    Kind("unsubscribe", "unsubscribes", "Unsubscribes", "unsubscribe"),
)
KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
FOLDERS: tuple[str, ...] = tuple(kind.folder for kind in KINDS)

# Every word a person or a file may use for a kind: its name, folder, prefix, and the singular "form".
_BY_ANY_NAME: dict[str, Kind] = {
    alias.lower(): kind for kind in KINDS for alias in (kind.name, kind.folder, kind.prefix, kind.section)
}


def kind_named(word: str) -> Kind:
    """The kind a word names (`form_submission`, `forms`, `Forms`, `form`, ...); KeyError names the choices."""
    try:
        return _BY_ANY_NAME[word.lower()]
    except KeyError:
        raise KeyError(f"unknown kind {word!r}; one of {', '.join(FOLDERS)}") from None


def by_name(name: str) -> Kind:
    """The kind whose canonical name is `name` (exactly)."""
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise KeyError(f"unknown kind {name!r}; one of {', '.join(KIND_NAMES)}")
