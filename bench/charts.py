"""Grouped horizontal bar charts for docs/benchmarks.md, drawn with matplotlib (the `bench` extra)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# A bare Figure draws with the Agg backend on savefig: no pyplot state, no display needed.
from matplotlib.figure import Figure

COLORS = {"relay": "#1f77b4", "baseline": "#a0a0a0", "other": "#ff7f0e", "ok": "#2ca02c", "bad": "#d62728"}
TARGET = "#c82828"


@dataclass
class Bar:
    """One bar: its label within the group, value, colour name (COLORS) and the text shown after it."""

    label: str
    value: float
    color: str = "relay"
    note: str | None = None


@dataclass
class Group:
    """Bars of one case, and the target that case is held to (a dashed line across its bars)."""

    label: str
    bars: list[Bar] = field(default_factory=list)
    target: float | None = None
    target_label: str = "target"


def bar_chart(path: Path, title: str, groups: list[Group], unit: str, target: tuple[float, str] | None = None) -> None:
    """One row per bar, groups headed by their label, top to bottom; `target` is a line across the whole chart."""
    rows = sum(len(g.bars) + 1 for g in groups)
    fig = Figure(figsize=(10, 0.9 + 0.32 * rows), layout="constrained")
    ax = fig.subplots()
    y, ticks, labels, headers, labelled = 0, [], [], [], set()
    peak = max(
        [b.value for g in groups for b in g.bars] + [g.target or 0 for g in groups] + [target[0] if target else 0]
    )
    for group in groups:
        ticks.append(y)
        labels.append(group.label)
        headers.append(y)
        top = y + 0.5
        for bar in group.bars:
            y += 1
            ax.barh(y, bar.value, height=0.7, color=COLORS[bar.color])
            note = bar.note if bar.note is not None else f"{bar.value:.3g}"
            ax.text(bar.value + peak * 0.01, y, note, va="center", fontsize=8)
            ticks.append(y)
            labels.append(bar.label)
        if group.target is not None:
            first = group.target_label not in labelled
            labelled.add(group.target_label)
            ax.vlines(
                group.target, top, y + 0.5, colors=TARGET, linestyles="--", label=group.target_label if first else None
            )
        y += 1.5
    if target is not None:
        ax.axvline(target[0], color=TARGET, linestyle="--", label=target[1])
    ax.set_yticks(ticks, labels, fontsize=8)
    for tick, text in zip(ticks, ax.get_yticklabels(), strict=True):
        if tick in headers:
            text.set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_xlim(0, peak * 1.25)  # room for the notes after the longest bar
    ax.set_xlabel(unit)
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(axis="x", color="#e1e1e1")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8, frameon=False)
    fig.savefig(path, dpi=100)
