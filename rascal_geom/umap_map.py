"""A 2-D UMAP map of an embedding (at most a few thousand sub-sampled points) and its
trustworthiness.

The map is fitted on a seeded subsample stratified by the finest label level; the other rows
are left out of the map (not placed with ``transform``: at a million rows that would cost more
than the fit and add nothing a reader can see), and the result says so.

``umap`` is imported here, lazily. UMAP is handed the exact cosine neighbour graph
(:func:`neighbour_graph`): below 4,096 rows it would otherwise compute all pairwise distances
through a Python callback, ~2 million calls, and compile its cosine kernel first (at 2,000 x 512
on 2 cores: 14 s for the fit, 7 s with the graph given). Most of what remains is numba compiling
UMAP's kernels, again in every process: :func:`_cache_umap_kernels` keeps them in numba's on-disk
cache, so only the first map after an install pays it (a map then takes ~2.6 s instead of ~9 s).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from rascal_geom.metrics._inputs import unit_rows
from rascal_geom.metrics.geometry import trustworthiness
from rascal_geom.neighbors import knn_search
from rascal_geom.sampling import stratified_sample


@functools.cache
def _cache_umap_kernels() -> None:
    """Give UMAP's numba kernels the on-disk cache that ``cache=True`` would have given them.

    umap-learn compiles them without it, ~7 s on 2 cores in every process. Numba keys the cache
    by the source file, so a new umap-learn recompiles; where no cache folder is writable (a
    read-only install and no ``NUMBA_CACHE_DIR``) they are compiled per process, as before.
    """
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts, umap.spectral, umap.utils):
        for kernel in vars(module).values():
            if isinstance(kernel, CPUDispatcher):
                try:
                    kernel.enable_caching()
                except RuntimeError:  # numba found no writable cache folder
                    return


def neighbour_graph(x: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """The cosine ``n_neighbors``-nearest-neighbour graph of unit rows, as UMAP builds its own:
    each row first (distance 0), then its ``n_neighbors - 1`` nearest others.

    Parameters
    ----------
    x : ndarray of shape (n, dim), float32, unit rows
    n_neighbors : int, at most ``n``

    Returns
    -------
    idx : ndarray of shape (n, n_neighbors), int64
    dists : ndarray of shape (n, n_neighbors), float32
        Cosine distances ``1 - cos``, clipped at 0 (float rounding can take them below).
    """
    sims, idx = knn_search(x, x, n_neighbors - 1, exclude_self=True)
    own = np.arange(len(x))[:, None]
    dists = np.maximum(1.0 - sims, 0.0).astype(np.float32)
    return (np.hstack([own, idx]),
            np.hstack([np.zeros((len(x), 1), dtype=np.float32), dists]))


def umap_map(emb, labels: dict[str, np.ndarray], max_points: int = 2000, seed: int = 0,
             n_neighbors: int = 15, trust_k: int = 10) -> dict:
    """Embed a seeded subsample in 2-D with cosine UMAP.

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
    labels : dict of str to ndarray of shape (n_samples,), int
        Labels per level, coarse to fine, carried along for colouring; the subsample is
        stratified by the last (finest) level.
    max_points : int, default=2000
    seed : int, default=0
        Drives both the subsample and UMAP.
    n_neighbors : int, default=15
    trust_k : int, default=10
        Neighbourhood size of the trustworthiness score.

    Returns
    -------
    dict
        ``coords`` (list of [x, y]), ``labels`` ({level: list}), ``indices`` (rows used),
        ``trustworthiness`` (of the map against the L2-normalised embedding), ``n``.
    """
    import umap

    _cache_umap_kernels()

    n_total = len(emb)
    finest = list(labels)[-1]
    idx = stratified_sample(labels[finest], max_points, seed)
    x = unit_rows(np.asarray(emb[idx]), "emb", np.float32)
    n_neighbors = min(n_neighbors, len(idx) - 1)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, metric="cosine",
                        random_state=seed, n_jobs=1,  # seeded UMAP runs single-threaded anyway
                        precomputed_knn=(*neighbour_graph(x, n_neighbors), None))
    with warnings.catch_warnings():
        # Without a search index UMAP warns that `transform` is unavailable: the map never uses it.
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        coords = reducer.fit_transform(x)
    k = min(trust_k, (len(idx) - 1) // 2)
    return {"coords": coords.astype(float).tolist(),
            "labels": {lvl: np.asarray(y)[idx].astype(int).tolist() for lvl, y in labels.items()},
            "indices": idx.tolist(), "trustworthiness": trustworthiness(x, coords, k),
            "n": len(idx), "n_total": n_total,
            "sampling": (f"seeded (seed {seed}), stratified by {finest}" if len(idx) < n_total
                         else "every row"),
            "rest": "left out of the map" if len(idx) < n_total else None}
