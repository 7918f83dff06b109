"""PNG figures drawn with matplotlib's object API (no pyplot state): every figure is FIG_PIXELS in size.

Each `draw_*` function returns the Figure (tests read its text boxes); the function of the same name without the
prefix saves it as a PNG. An axis that is widened to a minimum span says so in a note inside the plot's lower-right
corner, never over the title.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from exssnet.report.aggregate import Group

FIG_INCHES = (6.4, 4.8)
DPI = 100
FIG_PIXELS = (round(FIG_INCHES[0] * DPI), round(FIG_INCHES[1] * DPI))
LINE_STYLES = ["-", "--", ":", "-."]  # lines that coincide stay distinguishable
MIN_ACC_SPAN = 10.0  # accuracy axes span at least this many points: a 0.3-point change is not drawn as a cliff
MIN_OVERLAP_SPAN = 0.1  # sparse-overlap axes span at least this much: a 0.0005 difference is not drawn as a spread
NOTE_PREFIX = "axis spans"  # every span note reads "<x|y> axis spans <span> (at least <minimum>)"


def span_note(ax, text: str) -> None:
    """Add one line to the plot's span note (lower-right corner inside the axes, on a translucent box)."""
    note = getattr(ax, "_exssnet_span_note", None)
    if note is None:
        note = ax.text(0.99, 0.02, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=6, zorder=5,
                       bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.7, "edgecolor": "none"})
        ax._exssnet_span_note = note
    else:
        note.set_text(note.get_text() + "\n" + text)


def accuracy_axis(ax, values: list[float]) -> None:
    """Y limits for accuracy (percent) showing at least MIN_ACC_SPAN points, within 0..100, noted in the plot."""
    finite = [v for v in values if v == v]
    if not finite:
        return
    low, high = min(finite), max(finite)
    pad = max(0.0, (MIN_ACC_SPAN - (high - low)) / 2)
    low, high = low - pad, high + pad
    if low < 0:
        low, high = 0.0, min(100.0, high - low)
    if high > 100:
        low, high = max(0.0, low - (high - 100)), 100.0
    margin = 0.05 * (high - low)
    ax.set_ylim(max(0.0, low - margin), min(100.0, high + margin) if high < 100 else 100.0 + margin)
    span_note(ax, f"y {NOTE_PREFIX} {ax.get_ylim()[1] - ax.get_ylim()[0]:.1f} points (at least {MIN_ACC_SPAN:g})")


def overlap_axis(ax, values: list[float]) -> None:
    """X limits for sparse overlap (0..1) spanning at least MIN_OVERLAP_SPAN around the values, noted in the plot."""
    finite = [v for v in values if v == v]
    if not finite:
        return
    low, high = min(finite), max(finite)
    span = max(high - low, MIN_OVERLAP_SPAN)
    margin = 0.1 * span
    centre = (low + high) / 2
    low, high = centre - span / 2 - margin, centre + span / 2 + margin
    if low < 0.0:
        low, high = 0.0, high - low
    if high > 1.0:
        low, high = max(0.0, low - (high - 1.0)), 1.0
    ax.set_xlim(low, high)
    span_note(ax, f"x {NOTE_PREFIX} {high - low:.3g} (at least {MIN_OVERLAP_SPAN:g})")


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=FIG_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _finish_plot(fig: Figure, ax, title: str, xlabel: str, ylabel: str, integer_x: bool = False) -> Figure:
    """Labels, grid and legend shared by the line plots."""
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    noted = getattr(ax, "_exssnet_span_note", None) is not None
    ax.legend(fontsize=7, loc="lower left" if noted else "best")  # the span note sits lower right
    return fig


def draw_accuracy_heatmap(group: Group, title: str) -> Figure:
    """Mean accuracy matrix: row i = after learning task i, column j = task j (blank above the diagonal)."""
    fig, ax = _figure()
    matrix = group.acc_matrix
    n = len(matrix)
    values = [[math.nan if v is None else v for v in row] for row in matrix]
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=100.0)
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    if n <= 12:
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                if v is not None:
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8, color="white" if v < 60 else "black")
    ticks = range(n) if n <= 20 else range(0, n, max(1, n // 10))
    ax.set_xticks(list(ticks))
    ax.set_yticks(list(ticks))
    ax.set_xlabel("evaluated task j")
    ax.set_ylabel("after learning task i")
    ax.set_title(title, fontsize=10)
    return fig


def draw_accuracy_curves(groups: list[Group], title: str) -> Figure:
    """Average accuracy of the tasks seen so far vs number of tasks learned (paper Fig. 6), mean ± std band."""
    fig, ax = _figure()
    for i, group in enumerate(groups):
        mean, std = group.curve
        x = list(range(1, len(mean) + 1))
        ax.plot(x, mean, marker="o", markersize=3, label=f"{group.label} (n={len(group.runs)})",
                linestyle=LINE_STYLES[i % len(LINE_STYLES)])
        ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
    accuracy_axis(ax, [v for group in groups for m, s in zip(*group.curve) for v in (m - s, m + s)])
    return _finish_plot(fig, ax, title, "tasks learned", "average accuracy of seen tasks (%)", integer_x=True)


def draw_overlap_per_task(groups: list[Group], title: str) -> Figure:
    """Sparse overlap of each task's mask with the union of earlier masks."""
    fig, ax = _figure()
    for i, group in enumerate(groups):
        overlap = group.overlap_per_task
        if overlap is not None:
            ax.plot(range(len(overlap)), overlap, marker="o", markersize=3, label=group.label,
                    linestyle=LINE_STYLES[i % len(LINE_STYLES)])
    ax.set_ylim(0.0, 1.0)
    return _finish_plot(fig, ax, title, "task", "sparse overlap with earlier masks", integer_x=True)


def draw_accuracy_vs_density(series: dict[str, list[Group]], title: str) -> Figure:
    """Average accuracy vs mask density, one line per method, error bars = std over seeds (paper Fig. 2/5)."""
    fig, ax = _figure()
    for name, groups in series.items():
        stats = [g.avg_acc for g in groups]
        ax.errorbar([g.key.density for g in groups], [s.mean for s in stats], yerr=[s.std for s in stats],
                    marker="o", capsize=3, label=name)
    accuracy_axis(ax, [v for groups in series.values() for g in groups
                       for v in (g.avg_acc.mean - g.avg_acc.std, g.avg_acc.mean + g.avg_acc.std)])
    return _finish_plot(fig, ax, title, "mask density (fraction of weights kept)", "average accuracy (%)")


def draw_accuracy_vs_overlap(series: dict[str, list[Group]], title: str) -> Figure:
    """Average accuracy vs mean sparse overlap, one point per (method, density), labelled by density (paper Fig. 3)."""
    fig, ax = _figure()
    for name, groups in series.items():
        points = [(g.overlap, g.avg_acc, g.key.density) for g in groups if g.overlap is not None]
        if not points:
            continue
        ax.errorbar([p[0].mean for p in points], [p[1].mean for p in points],
                    xerr=[p[0].std for p in points], yerr=[p[1].std for p in points],
                    marker="o", linestyle="none", capsize=3, label=name)
        for overlap, acc, density in points:
            ax.annotate(f"{density:g}", (overlap.mean, acc.mean), textcoords="offset points", xytext=(4, -4), fontsize=7,
                        va="top", annotation_clip=True)
    accuracy_axis(ax, [v for groups in series.values() for g in groups if g.overlap is not None
                       for v in (g.avg_acc.mean - g.avg_acc.std, g.avg_acc.mean + g.avg_acc.std)])
    overlap_axis(ax, [v for groups in series.values() for g in groups if g.overlap is not None
                      for v in (g.overlap.mean - g.overlap.std, g.overlap.mean + g.overlap.std)])
    return _finish_plot(fig, ax, title, "mean sparse overlap (tasks after the first)", "average accuracy (%)")


def accuracy_heatmap(group: Group, title: str, path: Path) -> Path:
    return _save(draw_accuracy_heatmap(group, title), path)


def accuracy_curves(groups: list[Group], title: str, path: Path) -> Path:
    return _save(draw_accuracy_curves(groups, title), path)


def overlap_per_task(groups: list[Group], title: str, path: Path) -> Path:
    return _save(draw_overlap_per_task(groups, title), path)


def accuracy_vs_density(series: dict[str, list[Group]], title: str, path: Path) -> Path:
    return _save(draw_accuracy_vs_density(series, title), path)


def accuracy_vs_overlap(series: dict[str, list[Group]], title: str, path: Path) -> Path:
    return _save(draw_accuracy_vs_overlap(series, title), path)
