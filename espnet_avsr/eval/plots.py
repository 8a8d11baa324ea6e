"""PNG figures for the reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path


def heatmap(
    matrix: np.ndarray,
    path: PathLike,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    annotate: bool = False,
    xticklabels: Optional[Sequence[str]] = None,
    yticklabels: Optional[Sequence[str]] = None,
) -> Path:
    plt = _plt()
    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(m, cmap="inferno", vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(im, ax=ax)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), xticklabels, rotation=45, ha="right", fontsize=7)
    if yticklabels is not None:
        ax.set_yticks(range(len(yticklabels)), yticklabels, fontsize=7)
    if annotate:
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="cyan")
    return _save(fig, path)


def heatmap_grid(matrices: Sequence[Tuple[str, np.ndarray]], path: PathLike, title: str = "", vmin: Optional[float] = None, vmax: Optional[float] = None) -> Path:
    """Several similarity matrices side by side with one shared colour scale."""
    plt = _plt()
    n = len(matrices)
    if n == 0:
        raise ValueError("no matrices to plot")
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols + 0.8, 2.9 * rows), squeeze=False)
    if vmin is None:
        vmin = float(min(np.min(m) for _, m in matrices))
    if vmax is None:
        vmax = float(max(np.max(m) for _, m in matrices))
    im = None
    for ax, (label, m) in zip(axes.flat, matrices):
        im = ax.imshow(np.asarray(m, dtype=float), cmap="inferno", vmin=vmin, vmax=vmax)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("ASR sample index")
    axes[-1, 0].set_xlabel("AVSR sample index")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def line_plot(
    series: Mapping[str, Tuple[Sequence[float], Sequence[Optional[float]]]],
    path: PathLike,
    xlabel: str,
    ylabel: str,
    title: str = "",
    hlines: Optional[Mapping[str, float]] = None,
    invert_x: bool = False,
    xticks: Optional[Sequence[float]] = None,
) -> Path:
    """One line per series (x, y); None values are gaps. ``hlines`` are dashed references."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for label, value in (hlines or {}).items():
        ax.axhline(value, linestyle="--", color="black", linewidth=1.2, label=label)
    markers = "os^Dv<>ph*"
    for k, (label, (xs, ys)) in enumerate(series.items()):
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[k % len(markers)], label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xticks is not None:
        ax.set_xticks(list(xticks))
    if invert_x:
        ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def grouped_bars(groups: Mapping[str, Mapping[str, float]], path: PathLike, ylabel: str, xlabel: str = "", title: str = "") -> Path:
    """``{group: {bar label: value}}`` -> grouped bar chart with values written on the bars."""
    plt = _plt()
    labels: List[str] = []
    for bars in groups.values():
        for lab in bars:
            if lab not in labels:
                labels.append(lab)
    n = len(groups) * len(labels)  # bars in all: wider figure, vertical values when crowded
    fig, ax = plt.subplots(figsize=(max(5.6, 0.32 * n + 1.5), 3.8))
    width = 0.8 / max(len(labels), 1)
    for k, lab in enumerate(labels):
        xs, ys = [], []
        for g, (_, bars) in enumerate(groups.items()):
            if lab in bars:
                xs.append(g - 0.4 + width * (k + 0.5))
                ys.append(bars[lab])
        rects = ax.bar(xs, ys, width=width, label=lab)
        for r, y in zip(rects, ys):
            ax.text(r.get_x() + r.get_width() / 2, r.get_height(), f"{y:.2f}", ha="center", va="bottom",
                    fontsize=6 if len(labels) > 2 else 7, rotation=90 if len(labels) > 2 else 0)
    ax.set_xticks(range(len(groups)), [g.replace(" missing ", " missing\n") for g in groups], fontsize=8)
    ax.margins(y=0.12)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


__all__: List[str] = ["heatmap", "heatmap_grid", "line_plot", "grouped_bars"]
