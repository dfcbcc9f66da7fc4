"""Approximate inner-product neighbour search over an inverted file of k-means cells, and its
settings.

Exact all-pairs search costs ``2 n^2 d`` flop: 21 s at 50,000 x 512 on the 2-core development
machine and about an hour at 1,000,000 x 256. An inverted file (IVF-Flat) splits the bank into
``nlist`` k-means cells (FAISS's k-means) and compares each query only with the rows of the
``nprobe`` cells nearest its own, about ``n * nprobe / nlist`` rows instead of ``n``.

On the CPU the cells are searched as FAISS's ``IndexIVFFlat`` would, but a cell at a time: all
queries assigned to a cell share the ``nprobe`` cells nearest that cell's centroid, so one
matrix product (BLAS) scores them at once. ``IndexIVFFlat.search`` probes per query with a
scalar kernel: on this machine (1 M x 256, 4,096 cells, nprobe 4, k 21) it took 234 us per query,
about 4 minutes for the million queries alone, against well under a minute here. With the FAISS
GPU build the bank goes into a real ``IndexIVFFlat`` sharded over every GPU
(:func:`ivf_index`; :mod:`rascal_geom.neighbors`).

``method="auto"`` searches approximately from :data:`APPROX_MIN_ROWS` bank rows on (the
measurement behind that number is in ``benchmarks/analyze_bench.py``'s docstring). An
approximate search is reported with its check (:mod:`rascal_geom.knn_check`): exact neighbours
of a seeded sample of queries, the recall against them, and how much each metric moved.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rascal_train.errors import RascalError

METHODS = ("exact", "approx", "auto")
#: ``method="auto"`` searches approximately from this many bank rows on.
APPROX_MIN_ROWS = 100_000
#: A recall@k below this on the check sample is a warning in the JSON and the report.
RECALL_FLOOR = 0.9
#: Queries of the exact check (seeded, stratified by label).
CHECK_QUERIES = 1000
#: Rows per cell the cell count aims at, and cells probed per query.
CELL_ROWS = 1000
NPROBE = 4
#: k-means of the cells: training rows per cell (FAISS asks for 39; 32 with 10 iterations keeps
#: training at 1 M rows to seconds on two cores) and iterations.
_TRAIN_PER_CELL = 32
_KMEANS_ITER = 10
_BLOCK = 65536


def resolve_method(method: str, n_bank: int) -> str:
    """``"exact"`` or ``"approx"``: what ``method`` means for a bank of ``n_bank`` rows."""
    if method not in METHODS:
        raise RascalError(f"The 'knn' parameter must be one of {', '.join(METHODS)}. Got "
                          f"{method!r} instead.")
    if method == "auto":
        return "approx" if n_bank >= APPROX_MIN_ROWS else "exact"
    return method


def ivf_params(n_bank: int) -> tuple[int, int]:
    """``(nlist, nprobe)``: cells of about :data:`CELL_ROWS` rows (a power of two), :data:`NPROBE`
    of them probed; a bank of at most ``NPROBE`` cells is probed whole (the search is exact)."""
    nlist = 2 ** max(0, round(math.log2(max(1.0, n_bank / CELL_ROWS))))
    return nlist, min(nlist, NPROBE)


def train_cells(bank: np.ndarray, nlist: int, seed: int = 0) -> np.ndarray:
    """Unit centroids of ``nlist`` spherical k-means cells, trained on a seeded sample of the bank.

    Returns
    -------
    ndarray of shape (nlist, dim), float32
    """
    import faiss

    n_train = min(len(bank), _TRAIN_PER_CELL * nlist)
    rows = np.sort(np.random.default_rng(seed).choice(len(bank), n_train, replace=False))
    km = faiss.Kmeans(bank.shape[1], nlist, niter=_KMEANS_ITER, seed=seed, spherical=True,
                      min_points_per_centroid=1, max_points_per_centroid=_TRAIN_PER_CELL)
    km.train(np.ascontiguousarray(bank[rows], dtype=np.float32))
    return km.centroids


def nearest_cells(x: np.ndarray, centroids: np.ndarray, n: int = 1) -> np.ndarray:
    """The ``n`` cells of largest inner product for each row, int64 (len(x), n), block by block."""
    c = torch.from_numpy(centroids)
    out = np.empty((len(x), n), dtype=np.int64)
    for start in range(0, len(x), _BLOCK):
        block = torch.from_numpy(np.ascontiguousarray(x[start:start + _BLOCK], dtype=np.float32))
        out[start:start + len(block)] = torch.topk(block @ c.T, n, dim=1).indices.numpy()
    return out


def cell_search(queries: np.ndarray, bank: np.ndarray, k: int, exclude_self: bool, seed: int = 0,
                progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-``k`` inner-product neighbours, a cell of queries at a time (CPU, torch).

    Parameters
    ----------
    queries : ndarray of shape (n_queries, dim), float32
    bank : ndarray of shape (n_bank, dim), float32
        With ``exclude_self``, ``queries`` itself.
    k : int
    exclude_self : bool
        Query ``i`` never returns bank row ``i``.
    seed : int, default=0
        Seed of the k-means.
    progress : callable or None
        Wraps the iteration over cells (a progress bar).

    Returns
    -------
    sims : ndarray of shape (n_queries, k), float32, descending (``-inf`` padding)
    idx : ndarray of shape (n_queries, k), int64 (``-1`` padding where the probed cells hold
        fewer than ``k`` other rows)
    """
    nlist, nprobe = ivf_params(len(bank))
    centroids = train_cells(bank, nlist, seed)
    bank_cell = nearest_cells(bank, centroids)[:, 0]
    query_cell = bank_cell if exclude_self else nearest_cells(queries, centroids)[:, 0]
    # Each cell probes itself first, then the cells whose centroids are nearest its own.
    c = torch.from_numpy(centroids)
    probes = torch.topk((c @ c.T).fill_diagonal_(torch.inf), nprobe, dim=1).indices.numpy()
    bank_order = np.argsort(bank_cell, kind="stable")
    bank_start = np.concatenate([[0], np.cumsum(np.bincount(bank_cell, minlength=nlist))])
    query_order = np.argsort(query_cell, kind="stable")
    query_start = np.concatenate([[0], np.cumsum(np.bincount(query_cell, minlength=nlist))])
    # Every query row is written once, by its own cell (padding included): filling the 2.4 GB of
    # a million rows first would be a pass of its own.
    sims = np.empty((len(queries), k), dtype=np.float32)
    idx = np.empty((len(queries), k), dtype=np.int64)
    for cell in (progress or iter)(range(nlist)):
        q_rows = query_order[query_start[cell]:query_start[cell + 1]]
        if not len(q_rows):
            continue
        cand = np.concatenate([bank_order[bank_start[p]:bank_start[p + 1]] for p in probes[cell]])
        s = torch.from_numpy(queries[q_rows]) @ torch.from_numpy(bank[cand]).T
        if exclude_self:  # the queries are the own cell's rows, in order, at the head of `cand`
            s[torch.arange(len(q_rows)), torch.arange(len(q_rows))] = -torch.inf
        kk = min(k, len(cand) - int(exclude_self))
        top = torch.topk(s, kk, dim=1)
        sims[q_rows, :kk] = top.values.numpy()
        idx[q_rows, :kk] = cand[top.indices.numpy()]
        sims[q_rows, kk:] = -np.inf
        idx[q_rows, kk:] = -1
    return sims, idx


def ivf_index(bank: np.ndarray, seed: int = 0):
    """A FAISS ``IndexIVFFlat`` (inner product) over ``bank`` with :func:`ivf_params`'s cells,
    trained and filled on the CPU, ``nprobe`` set: for the GPU path, which shards it."""
    import faiss

    nlist, nprobe = ivf_params(len(bank))
    quantizer = faiss.IndexFlatIP(bank.shape[1])
    quantizer.add(train_cells(bank, nlist, seed))
    index = faiss.IndexIVFFlat(quantizer, bank.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True
    for start in range(0, len(bank), _BLOCK):
        index.add(np.ascontiguousarray(bank[start:start + _BLOCK]))
    index.nprobe = nprobe
    return index


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over rows of ``|found_i ∩ truth_i| / |truth_i|`` (``-1`` padding ignored in both).

    Parameters
    ----------
    found, truth : ndarray of shape (n_queries, k), int
        Approximate and exact neighbour indices of the same queries.
    """
    hits = (found[:, :, None] == truth[:, None, :]) & (truth[:, None, :] >= 0)
    wanted = (truth >= 0).sum(axis=1)
    ok = wanted > 0
    return (float((hits.any(axis=1).sum(axis=1)[ok] / wanted[ok]).mean()) if ok.any()
            else float("nan"))
