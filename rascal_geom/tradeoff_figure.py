"""The trade-off figure of a comparison: hierarchy retention (y) against linear accuracy (x).

One point per run group at its means, with error bars of the 95% t-interval of each mean
(none for a group of one run), the baseline drawn as a hollow square; the figure a reader looks
at first, since a loss that keeps structure inside classes must not buy it with accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from scipy import stats as sps

from rascal_geom.figures import _RC, _figure, _palette, mpl_text


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its t-interval (``0`` for a single value)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(
        sps.t.ppf((1 + confidence) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    )


def tradeoff_figure(points: Sequence[dict], baseline: str, xlabel: str, ylabel: str):
    """Draw the groups' points.

    Parameters
    ----------
    points : sequence of dict
        ``{"group", "x": [values over runs], "y": [values over runs]}``.
    baseline : str
        The baseline group's name (marked).
    xlabel, ylabel : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    colours = _palette(len(points))
    with matplotlib.rc_context(_RC):
        fig, axes = _figure(1, width=3.6, height=2.8)
        ax = axes[0]
        for colour, p in zip(colours, points):
            (mx, hx), (my, hy) = mean_interval(p["x"]), mean_interval(p["y"])
            is_base = p["group"] == baseline
            ax.errorbar(
                mx,
                my,
                xerr=hx or None,
                yerr=hy or None,
                fmt="s" if is_base else "o",
                ms=6,
                color=colour,
                mfc="white" if is_base else colour,
                capsize=2,
                lw=1,
                label=mpl_text(p["group"] + (" (baseline)" if is_base else ""))
                + f" (n={len(p['x'])})",
            )
        ax.set_xlabel(mpl_text(xlabel))
        ax.set_ylabel(mpl_text(ylabel))
        ax.legend(frameon=False, fontsize=7, loc="best")
        ax.grid(alpha=0.3)
        fig.tight_layout()
    return fig
