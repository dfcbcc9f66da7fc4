"""The UMAP figure: every point drawn in its class's colour, a legend only where it can be read."""

import matplotlib
import numpy as np

from rascal_geom import figures

matplotlib.use("Agg")


def _points(fig):
    """(offsets, face colours) of every scatter collection of the first panel, stacked."""
    ax = fig.axes[0]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    colours = np.concatenate([np.broadcast_to(c.get_facecolors(), (len(c.get_offsets()), 4))
                              for c in ax.collections])
    return np.asarray(offsets), colours, ax


def test_many_classes_are_one_collection_in_the_class_colours():
    rng = np.random.default_rng(0)
    coords = rng.standard_normal((500, 2))
    labels = rng.integers(0, 40, 500) * 3  # sparse ids: colours follow the classes present
    fig = figures.umap_figure(coords, {"fine": (labels, [])})
    offsets, colours, ax = _points(fig)
    palette = np.asarray(figures._palette(40))
    assert len(ax.collections) == 1 and ax.get_legend() is None
    np.testing.assert_allclose(offsets, coords)
    np.testing.assert_allclose(colours, palette[labels // 3])
    matplotlib.pyplot.close(fig)


def test_few_classes_get_a_legend_with_their_names():
    rng = np.random.default_rng(1)
    coords = rng.standard_normal((90, 2))
    labels = np.repeat([0, 1, 2], 30)
    fig = figures.umap_figure(coords, {"coarse": (labels, ["a", "b", "c"])})
    offsets, colours, ax = _points(fig)
    palette = np.asarray(figures._palette(3))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    np.testing.assert_allclose(offsets, coords)  # grouped by class, here in row order already
    np.testing.assert_allclose(colours, palette[labels])
    matplotlib.pyplot.close(fig)
