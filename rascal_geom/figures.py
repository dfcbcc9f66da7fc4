"""The report's figures: training curves, RASCAL's weight histogram, UMAP maps, per-class bars.

Each ``*_figure`` function returns a matplotlib ``Figure`` (Agg backend, no display needed);
:func:`export_figure` turns one into an SVG string for inlining in HTML and, given a folder,
also writes ``<stem>.svg`` and ``<stem>.pdf`` there for LaTeX. Text is kept as SVG text
(``svg.fonttype="none"``) so it stays selectable and matplotlib escapes it; dates are left
out of the metadata so the same numbers give byte-identical files.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from rascal_train.files import atomic_write_bytes  # noqa: E402

_RC = {"svg.fonttype": "none", "svg.hashsalt": "rascal", "font.size": 9, "axes.titlesize": 9,
       "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
       "axes.spines.top": False, "axes.spines.right": False}

#: Training-log keys drawn as curves, with their axis labels.
CURVE_KEYS = {"loss": "loss", "knn_acc": "kNN top-1 (test)",
              "rank_stability": "rank stability (Spearman)", "weight_entropy": "weight entropy",
              "eff_positives": "effective positives"}


def mpl_text(text: object) -> str:
    """User text made literal for matplotlib (a ``$`` would otherwise start mathtext)."""
    return str(text).replace("$", r"\$")


def _palette(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "turbo")
    return [cmap(i if n <= 20 else i / max(n - 1, 1)) for i in range(n)]


def export_figure(fig, stem: str | None = None, folder: str | Path | None = None) -> str:
    """Close ``fig`` and return it as an inline SVG element (no XML prolog, no metadata block).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    stem : str, optional
        File name without extension; with ``folder``, ``<stem>.svg`` and ``<stem>.pdf`` are
        written there (atomically).
    folder : str or Path, optional

    Returns
    -------
    str
        ``<svg ...>...</svg>``.
    """
    try:
        with matplotlib.rc_context(_RC):
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
            svg = buf.getvalue()
            if folder is not None and stem is not None:
                folder = Path(folder)
                atomic_write_bytes(folder / f"{stem}.svg", svg.encode("utf-8"))
                pdf = io.BytesIO()
                fig.savefig(pdf, format="pdf", metadata={"CreationDate": None, "ModDate": None},
                            bbox_inches="tight")
                atomic_write_bytes(folder / f"{stem}.pdf", pdf.getvalue())
    finally:
        plt.close(fig)
    svg = svg[svg.index("<svg"):]
    # The RDF block only names matplotlib and the Dublin Core namespaces; inline it is noise.
    return re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)


def _figure(n_panels: int, width: float = 3.2, height: float = 2.4, ncols: int | None = None):
    ncols = ncols or min(n_panels, 3)
    nrows = -(-n_panels // ncols)
    with matplotlib.rc_context(_RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                                 squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n_panels])


def curves_figure(curves: Mapping[str,
                                  Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]]]):
    """Training curves, one panel per metric, one colour per run group.

    Parameters
    ----------
    curves : mapping metric -> mapping group name -> list of (epochs, values)
        One ``(epochs, values)`` pair per seed. Seeds are drawn as thin lines and, where
        several share epochs, their mean as a thick line.
    """
    metrics = [m for m in curves if any(curves[m].values())]
    groups = list(dict.fromkeys(g for m in metrics for g in curves[m]))
    colours = dict(zip(groups, _palette(len(groups))))
    with matplotlib.rc_context(_RC):
        fig, axes = _figure(len(metrics))
        for ax, metric in zip(axes, metrics):
            for group, series in curves[metric].items():
                for epochs, values in series:
                    ax.plot(epochs, values, color=colours[group], lw=0.8,
                            alpha=0.45 if len(series) > 1 else 1.0,
                            marker="o" if len(epochs) == 1 else None, ms=3)
                if len(series) > 1:
                    common = sorted(set.intersection(*(set(e) for e, _ in series)))
                    if common:
                        mean = [np.mean([dict(zip(e, v))[x] for e, v in series]) for x in common]
                        ax.plot(common, mean, color=colours[group], lw=2.0)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_ylabel(mpl_text(CURVE_KEYS.get(metric, metric)))
            ax.grid(alpha=0.25)
        handles = [plt.Line2D([], [], color=colours[g], lw=2.0) for g in groups]
        fig.legend(handles, [mpl_text(g) for g in groups], loc="upper center",
                   ncol=min(len(groups), 5), frameon=False, bbox_to_anchor=(0.5, 1.06))
        fig.tight_layout()
    return fig


def weight_hist_figure(histograms: Mapping[str, Sequence[float]], edges: Sequence[float],
                       colour_order: Sequence[str] | None = None):
    """RASCAL's positive-weight distribution per group, as the share of weights per bin.

    Parameters
    ----------
    histograms : mapping group name -> counts of shape (n_bins,)
    edges : array-like of shape (n_bins + 1,)
    colour_order : sequence of str, optional
        All group names of the report, so a group keeps the colour it has in the other figures.
    """
    edges = np.asarray(edges, dtype=float)
    width = np.diff(edges)
    names = list(histograms)
    order = list(colour_order or names)
    colours = [_palette(len(order))[order.index(n)] for n in names]
    with matplotlib.rc_context(_RC):
        fig, (ax,) = _figure(1, width=5.0, height=2.6)
        for i, name in enumerate(names):
            c = np.asarray(histograms[name], dtype=float)
            share = c / c.sum()
            offset = edges[:-1] + width * i / len(names)
            ax.bar(offset, share, width=width / len(names), align="edge", color=colours[i],
                   label=mpl_text(name))
        for x in (0.3, 0.7, 0.9):
            ax.axvline(x, color="0.4", lw=0.7, ls="--")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("positive weight (raw, before normalisation)")
        ax.set_ylabel("share of positives")
        if len(names) > 1:
            ax.legend(frameon=False)
        fig.tight_layout()
    return fig


def umap_figure(coords: np.ndarray, panels: Mapping[str, tuple[np.ndarray, Sequence[str]]],
                title: str = ""):
    """A 2-D map coloured by label, one panel per hierarchy level.

    Parameters
    ----------
    coords : ndarray of shape (n, 2), float
    panels : mapping level -> (labels ndarray of shape (n,), int, class names)
        A legend is drawn for up to 12 classes; beyond that colours only.
    title : str
        Shown above the panels (user text, escaped for matplotlib).
    """
    coords = np.asarray(coords, dtype=float)
    with matplotlib.rc_context(_RC):
        fig, axes = _figure(len(panels), width=3.6, height=3.4)
        for ax, (level, (labels, names)) in zip(axes, panels.items()):
            labels = np.asarray(labels)
            classes = np.unique(labels)
            colours = _palette(len(classes))
            if len(classes) <= 12:  # one collection per class, for the legend
                for colour, c in zip(colours, classes):
                    pts = coords[labels == c]
                    name = names[c] if 0 <= c < len(names) else str(c)
                    ax.scatter(pts[:, 0], pts[:, 1], s=4, color=colour, linewidths=0,
                               label=mpl_text(name))
                ax.legend(frameon=False, markerscale=2.5, fontsize=7, loc="best")
            else:  # colours only: one collection (a thousand classes drew in 8 s, one by one)
                ax.scatter(coords[:, 0], coords[:, 1], s=4, linewidths=0,
                           c=np.asarray(colours)[np.searchsorted(classes, labels)])
            ax.set_title(mpl_text(f"coloured by {level} ({len(classes)} classes)"))
            ax.set_xticks([])
            ax.set_yticks([])
        if title:
            fig.suptitle(mpl_text(title))
        fig.tight_layout()
    return fig


def per_class_figure(class_names: Sequence[str], values: Mapping[str, Sequence[float]],
                     xlabel: str):
    """Horizontal bars of one per-class metric, classes sorted by the first series.

    Parameters
    ----------
    class_names : sequence of str, length n_classes
    values : mapping series name -> array of shape (n_classes,), float (``nan`` = missing)
    xlabel : str
    """
    names = list(values)
    first = np.asarray(values[names[0]], dtype=float)
    order = np.argsort(np.where(np.isnan(first), -np.inf, first))
    n = len(class_names)
    height = 0.9 / len(names)
    colours = _palette(len(names))
    with matplotlib.rc_context(_RC):
        fig, (ax,) = _figure(1, width=5.0, height=0.6 + 0.16 * n * max(1, len(names) * 0.6))
        y = np.arange(n)
        for i, name in enumerate(names):
            v = np.asarray(values[name], dtype=float)[order]
            ok = np.isfinite(v)  # a missing value gets no bar, not a bar of 0
            ax.barh((y + i * height)[ok], v[ok], height=height, color=colours[i],
                    label=mpl_text(name))
        ax.set_yticks(y + height * (len(names) - 1) / 2)
        ax.set_yticklabels([mpl_text(class_names[j]) for j in order], fontsize=7)
        ax.set_ylim(-0.6, n)
        ax.set_xlabel(mpl_text(xlabel))
        if len(names) > 1:
            ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
    return fig
