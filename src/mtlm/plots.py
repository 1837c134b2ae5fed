"""Figures written as PNG files: drawn without a display, written atomically."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mtlm.files import staged_file


def new_figure(width: float = 7.0, height: float = 4.0) -> Figure:
    """A figure that needs no display (the Agg canvas), sized in inches."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` as a PNG, atomically."""
    with staged_file(path) as staging:
        figure.savefig(staging, dpi=dpi, format="png")
    return path
