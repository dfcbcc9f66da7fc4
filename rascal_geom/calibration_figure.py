"""The reliability diagram of :func:`rascal_geom.metrics.calibration`, in the report's figure style.

Kept apart from :mod:`rascal_geom.figures` (one figure, one idea) but drawn with its rc settings
and panel helper, and exported with its :func:`~rascal_geom.figures.export_figure`.
"""

from __future__ import annotations

from typing import Mapping

import matplotlib
import numpy as np

from rascal_geom.figures import _RC, _figure, mpl_text


def reliability_figure(result: Mapping, title: str = ""):
    """Reliability diagram (Guo et al. 2017) over the share of predictions per confidence bin.

    Top: accuracy per bin as bars, the gap to the bin's mean confidence hatched in red, the
    diagonal of perfect calibration; the ECE in the title. Bottom: share of predictions per bin.

    Parameters
    ----------
    result : mapping
        The dict :func:`rascal_geom.metrics.calibration` returns (``ece`` and ``bins`` are read).
    title : str
        Shown above the diagram before the ECE (user text, escaped for matplotlib).

    Returns
    -------
    matplotlib.figure.Figure
    """
    bins = result["bins"]
    edges = np.asarray(bins["edges"], dtype=float)
    left, width = edges[:-1], np.diff(edges)
    count = np.asarray(bins["count"], dtype=float)
    filled = count > 0
    acc = np.where(filled, np.asarray(bins["accuracy"], dtype=float), 0.0)
    conf = np.where(filled, np.asarray(bins["confidence"], dtype=float), 0.0)
    with matplotlib.rc_context(_RC):
        fig, (ax, ax_count) = _figure(2, width=3.4, height=2.0, ncols=1)
        ax.bar(left, acc, width=width, align="edge", color="tab:blue", edgecolor="white", lw=0.5,
               label="accuracy")
        ax.bar(left[filled], (conf - acc)[filled], bottom=acc[filled], width=width[filled],
               align="edge", color="none", edgecolor="tab:red", hatch="//", lw=0.5,
               label="gap to confidence")
        ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2,
                  borderaxespad=0.2)
        ax_count.bar(left, count / max(count.sum(), 1.0), width=width, align="edge", color="0.55",
                     edgecolor="white", lw=0.5)
        ax_count.set_xlim(0, 1)
        ax_count.set_xlabel("confidence")
        ax_count.set_ylabel("share of predictions")
        ece = f"ECE {100 * result['ece']:.2f} % ({len(edges) - 1} bins)"
        fig.suptitle(f"{mpl_text(title)}: {ece}" if title else ece)
        fig.tight_layout()
    return fig
