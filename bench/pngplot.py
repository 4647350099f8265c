"""Horizontal bar charts as PNG files with the standard library only (zlib + a 5x7 bitmap font).

The benchmarks draw their plots with this rather than matplotlib, which would add numpy, pillow and
friends to every developer's venv for a handful of bar charts.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
INK: Color = (40, 40, 40)
GRID: Color = (225, 225, 225)
TARGET: Color = (200, 40, 40)
PALETTE: dict[str, Color] = {
    "relay": (31, 119, 180),
    "baseline": (160, 160, 160),
    "other": (255, 127, 14),
    "ok": (44, 160, 44),
    "bad": (214, 39, 40),
}

# 5x7 glyphs, one 5-bit row per entry, top to bottom (lower case is drawn as upper case).
_FONT: dict[str, tuple[int, ...]] = {
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "A": (0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E),
    "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F),
    "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F),
    "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11),
    "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11),
    "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D),
    "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E),
    "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A),
    "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04),
    "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    " ": (0, 0, 0, 0, 0, 0, 0),
    ".": (0, 0, 0, 0, 0, 0x0C, 0x0C),
    ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08),
    ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0),
    "-": (0, 0, 0, 0x1F, 0, 0, 0),
    "+": (0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
    "=": (0, 0, 0x1F, 0, 0x1F, 0, 0),
    "<": (0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02),
    ">": (0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08),
    "_": (0, 0, 0, 0, 0, 0, 0x1F),
    "*": (0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0),
    "#": (0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A),
    "?": (0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04),
    "'": (0x04, 0x04, 0x08, 0, 0, 0, 0),
}
_SUBSTITUTES = {"→": ">", "×": "X", "≤": "<", "≥": ">", "µ": "U", "–": "-", "—": "-"}


class Canvas:
    """An RGB raster with rectangles and text, written out as a PNG."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width, self.height = width, height
        self.rows = [bytearray(bytes(background) * width) for _ in range(height)]

    def rect(self, x: int, y: int, w: int, h: int, color: Color) -> None:
        x0, x1 = max(0, x), min(self.width, x + max(0, w))
        if x1 <= x0:
            return
        span = bytes(color) * (x1 - x0)
        for row in self.rows[max(0, y) : min(self.height, y + h)]:
            row[x0 * 3 : x1 * 3] = span

    def text(self, x: int, y: int, text: str, color: Color = INK, scale: int = 2) -> int:
        """Draw `text` with its top-left at (x, y); returns the x after it."""
        for char in text:
            glyph = _FONT.get(_SUBSTITUTES.get(char, char).upper(), _FONT["?"])
            for r, bits in enumerate(glyph):
                for c in range(5):
                    if bits & (0x10 >> c):
                        self.rect(x + c * scale, y + r * scale, scale, scale, color)
            x += 6 * scale
        return x

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return len(text) * 6 * scale

    def save(self, path: Path) -> None:
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
        )


@dataclass
class Bar:
    """One bar: its label within the group, value, colour name (PALETTE) and the text shown after it."""

    label: str
    value: float
    color: str = "relay"
    note: str | None = None


def bar_chart(
    path: Path,
    title: str,
    groups: Sequence[tuple[str, Sequence[Bar]]],
    unit: str,
    target: float | None = None,
    target_label: str | None = None,
    width: int = 1000,
) -> None:
    """Grouped horizontal bars, one group per case; an optional vertical target line."""
    scale, bar_h, gap, group_gap = 2, 18, 4, 16
    label_w = max(Canvas.text_width(b.label, scale) for _, bars in groups for b in bars) + 24
    top = 20 + 14 * 2 + 16
    height = top + sum(14 + 8 + len(bars) * (bar_h + gap) + group_gap for _, bars in groups) + 40
    canvas = Canvas(width, height)
    canvas.text(20, 20, title, scale=2)
    notes = [b.note if b.note is not None else f"{b.value:.3g}" for _, bars in groups for b in bars]
    x0, x1 = 20 + label_w, width - max(Canvas.text_width(n, scale) for n in notes) - 16
    peak = max([b.value for _, bars in groups for b in bars] + [target or 0]) or 1.0
    # Gridlines at 1, 2 or 5 times a power of ten, about five of them, so bars can be read at a glance.
    raw = peak / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    peak = math.ceil(peak / step - 1e-9) * step
    tick = 0.0
    while tick <= peak * 1.0001:
        x = x0 + int((x1 - x0) * tick / peak)
        canvas.rect(x, top - 6, 1, height - top - 30, GRID)
        text = f"{tick:g}"
        canvas.text(x - Canvas.text_width(text, 1) // 2, height - 30, text, scale=1)
        tick += step
    canvas.text(x1 + 10, height - 30, unit, scale=1)
    y = top
    for group, bars in groups:
        canvas.text(20, y, group, scale=2)
        y += 14 + 8
        for bar in bars:
            canvas.text(20 + 12, y + 2, bar.label, scale=scale, color=(90, 90, 90))
            w = max(1, int((x1 - x0) * bar.value / peak))
            canvas.rect(x0, y, w, bar_h, PALETTE.get(bar.color, PALETTE["relay"]))
            canvas.text(x0 + w + 6, y + 2, bar.note if bar.note is not None else f"{bar.value:.3g}", scale=2)
            y += bar_h + gap
        y += group_gap
    if target is not None:
        x = x0 + int((x1 - x0) * target / peak)
        for yy in range(top - 6, height - 34, 6):
            canvas.rect(x, yy, 2, 3, TARGET)
        if target_label:
            canvas.text(
                min(x + 4, width - Canvas.text_width(target_label, 1) - 4),
                top - 14,
                target_label,
                color=TARGET,
                scale=1,
            )
    canvas.save(path)
