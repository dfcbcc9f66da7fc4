"""How far an approximate neighbour search is from the exact one, measured on a seeded sample.

For a seeded, stratified sample of queries the exact leave-one-out neighbours are searched
against every row; the check gives recall@k of the approximate neighbours against them and,
for each metric computed from those neighbours, its value on the sample under both and the
difference (approximate minus exact).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from rascal_geom.approx import RECALL_FLOOR, recall_at_k
from rascal_geom.neighbors import grouped_knn

#: A per-row metric: ``fn(sims, idx, rows) -> ndarray (len(rows),)`` of values to average (NaN
#: left out), from neighbours ``sims``/``idx`` of the sampled ``rows``.
RowMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def check_search(x: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray], rows: np.ndarray, ks,
                 metrics: Mapping[str, RowMetric], backend: str | None = None,
                 seed: int | None = None) -> dict:
    """Recall@k and metric deltas of approximate ``neighbours`` on the sampled ``rows``.

    Parameters
    ----------
    x : ndarray of shape (n_samples, dim), float32, unit rows
    neighbours : (sims, idx), each ndarray of shape (n_samples, k_max)
        The approximate leave-one-out search over all rows.
    rows : ndarray of shape (m,), int
        The seeded sample of queries.
    ks : sequence of int
        Where recall@k is reported (each clipped to ``k_max``).
    metrics : mapping of str to RowMetric
        Metrics computed from the neighbours, compared on the sample.
    seed : int or None
        Recorded: the seed that drew ``rows``.

    Returns
    -------
    dict
        ``queries``, ``seed``, ``recall_at_k`` ({k: recall}), ``recall_floor``, ``below_floor``
        (the ks whose recall is under :data:`~rascal_geom.approx.RECALL_FLOOR`), and per metric
        ``{"approx", "exact", "delta"}`` under ``metrics``.
    """
    a_sims, a_idx = neighbours
    k_max = a_idx.shape[1]
    e_sims, e_idx = grouped_knn(x, np.zeros(len(x), dtype=np.int64), k_max, backend=backend,
                                rows=rows)
    recall = {str(min(k, k_max)): recall_at_k(a_idx[rows, :min(k, k_max)], e_idx[:, :min(k, k_max)])
              for k in ks}
    moved = {}
    for name, fn in metrics.items():
        va = float(np.nanmean(fn(a_sims[rows], a_idx[rows], rows)))
        ve = float(np.nanmean(fn(e_sims, e_idx, rows)))
        moved[name] = {"approx": va, "exact": ve, "delta": va - ve}
    return {"queries": int(len(rows)), "seed": seed, "recall_at_k": recall,
            "recall_floor": RECALL_FLOOR,
            "below_floor": [k for k, r in recall.items() if r < RECALL_FLOOR], "metrics": moved}
