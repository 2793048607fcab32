"""The PNG files `lastmile report` writes: a figure without pyplot's global state, saved at one
resolution, and the grey "no data yet" figure drawn where a plot has nothing to show."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

NO_DATA = "no data yet"
DPI = 110


def figure(width_in: float = 8.0, height_in: float = 5.0) -> Figure:
    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def no_data(title: str, path: Path, detail: str = "") -> Path:
    fig = figure(6.0, 3.5)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.55, NO_DATA, ha="center", va="center", fontsize=18, color="grey")
    if detail:
        ax.text(0.5, 0.3, detail, ha="center", va="center", fontsize=9, color="grey")
    return save(fig, path)
