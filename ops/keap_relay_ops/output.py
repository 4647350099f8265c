"""How the operator commands print: rich text, tables and JSON, sized for a terminal, unwrapped for a pipe."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console

PIPED_WIDTH = 10_000  # output to a file or a pipe: values whole and unwrapped, for grep


def show(*parts: Any) -> None:
    """Print text, tables and JSON through rich: to a terminal as wide as it is, to a pipe unwrapped."""
    # Markup off: Keap's fault strings carry "[Loading]" and the like, which rich would read as styles.
    console = Console(markup=False, emoji=False, highlight=False, width=None if sys.stdout.isatty() else PIPED_WIDTH)
    with console.capture() as captured:
        for part in parts:
            console.print(part)
    # rich pads every cell to its column's width; the spaces at the end of a line are only noise in a pipe.
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
