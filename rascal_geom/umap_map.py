"""A 2-D UMAP map of an embedding (at most a few thousand sub-sampled points) and its
trustworthiness.

The map is fitted on a seeded subsample stratified by the finest label level; the other rows
are left out of the map (not placed with ``transform``: at a million rows that would cost more
than the fit and add nothing a reader can see), and the result says so.

``umap`` is imported here, lazily: numba compiles it on first import (~18 s on 2 cores).
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import unit_rows
from rascal_geom.metrics.geometry import trustworthiness
from rascal_geom.sampling import stratified_sample


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

    n_total = len(emb)
    finest = list(labels)[-1]
    idx = stratified_sample(labels[finest], max_points, seed)
    x = unit_rows(np.asarray(emb[idx]), "emb", np.float32)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(idx) - 1), metric="cosine",
                        random_state=seed, n_jobs=1)  # seeded UMAP runs single-threaded anyway
    coords = reducer.fit_transform(x)
    k = min(trust_k, (len(idx) - 1) // 2)
    return {"coords": coords.astype(float).tolist(),
            "labels": {lvl: np.asarray(y)[idx].astype(int).tolist() for lvl, y in labels.items()},
            "indices": idx.tolist(), "trustworthiness": trustworthiness(x, coords, k),
            "n": len(idx), "n_total": n_total,
            "sampling": (f"seeded (seed {seed}), stratified by {finest}" if len(idx) < n_total
                         else "every row"),
            "rest": "left out of the map" if len(idx) < n_total else None}
