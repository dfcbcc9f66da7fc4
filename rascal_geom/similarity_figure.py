"""Heatmaps of representation similarity (``rascal compare``), in the report's figure style."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np

from rascal_geom.figures import _RC, _figure, mpl_text


def similarity_heatmap(
    matrix,
    rows: Sequence[str],
    cols: Sequence[str],
    title: str,
    vmin: float = 0.0,
    vmax: float = 1.0,
    xlabel: str = "",
    ylabel: str = "",
):
    """One annotated heatmap of ``matrix`` (NaN left blank).

    Parameters
    ----------
    matrix : array-like of shape (len(rows), len(cols)), float
    rows, cols : sequence of str
        Tick labels (user text, escaped for matplotlib).
    title : str
    vmin, vmax : float
        Colour range (CKA: [0, 1]; distances: [0, their maximum]).

    Returns
    -------
    matplotlib.figure.Figure
    """
    m = np.asarray(matrix, dtype=float)
    size = max(2.4, 0.45 * max(m.shape) + 1.2)
    with matplotlib.rc_context(_RC):
        fig, axes = _figure(1, width=size, height=size)
        ax = axes[0]
        image = ax.imshow(np.ma.masked_invalid(m), vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_xticks(range(len(cols)), [mpl_text(c) for c in cols], rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), [mpl_text(r) for r in rows])
        if max(m.shape) <= 12:  # numbers stay legible only on a small grid
            for (i, j), v in np.ndenumerate(m):
                if np.isfinite(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v < vmin + 0.6 * (vmax - vmin) else "black",
                    )
        ax.set_xlabel(mpl_text(xlabel))
        ax.set_ylabel(mpl_text(ylabel))
        ax.set_title(mpl_text(title))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
    return fig
