"""CKA, shape distances and retrieval metrics on a real-size set: 50,000 x 512, 100 classes in 20
coarse.

The whole ``rascal analyze`` at this size must stay under 60 s on 2 CPU cores (issue 16), so these
must be cheap. Prints seconds per call. Retrieval is timed from a search already made (what
analysis can pass in) and on a 5,000-query subsample searching the whole set; ``--search`` adds
the exact search itself: k = ``retrieval_k`` (largest class - 1) against analysis's k = 200, i.e.
the extra cost of widening analysis's one search so it serves both (two full searches: slow).

    .venv/bin/python benchmarks/similarity_bench.py [--n 50000] [--dim 512] [--search]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def clustered(n: int, dim: int, n_fine: int = 100, n_coarse: int = 20, seed: int = 0):
    """Coarse centres + fine offsets + noise (as analyze_bench), and a noisier copy of the same
    samples."""
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, n_fine, n)
    coarse = fine % n_coarse
    x = (rng.standard_normal((n_coarse, dim))[coarse] + 0.6
         * rng.standard_normal((n_fine, dim))[fine]
         + 0.9 * rng.standard_normal((n, dim))).astype(np.float32)
    later = x + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    return x, later, coarse, fine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--search", action="store_true",
                        help="also time the exact searches (k = R and k = 200)")
    args = parser.parse_args()

    from rascal_geom.metrics import (cka, minibatch_cka, retrieval_k, retrieval_metrics,
                                     shape_distances, within_coarse_retrieval)
    from rascal_geom.metrics._inputs import normalize_rows
    from rascal_geom.neighbors import knn_search, select_backend

    x, later, coarse, fine = clustered(args.n, args.dim)
    xn = normalize_rows(x)
    k = retrieval_k(fine)
    print(f"{args.n} x {args.dim}, {fine.max() + 1} classes (largest {k + 1}), backend "
          f"{select_backend()}")

    def timed(name, fn):
        # CPU seconds beside wall seconds: on a shared machine the
        # wall clock also counts others' load.
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        print(f"  {name:<44s} {time.perf_counter() - start:6.2f} s wall  "
              f"{time.process_time() - cpu:6.2f} s CPU")
        return value

    biased = timed("cka (biased)", lambda: cka(x, later))
    debiased = timed("cka (debiased)", lambda: cka(x, later, debiased=True))
    mini = timed("minibatch_cka (batch 1024)", lambda: minibatch_cka(x, later))
    shape = timed("shape_distances (alpha=1)", lambda: shape_distances(x, later))
    timed("shape_distances (alpha=0.5)", lambda: shape_distances(x, later, alpha=0.5))
    sub = timed("retrieval_metrics (max_queries=5000)",
                lambda: retrieval_metrics(x, fine, max_queries=5000))
    within = timed("within_coarse_retrieval", lambda: within_coarse_retrieval(x, coarse, fine))
    if args.search:
        nbrs = timed(f"knn_search k={k} (exact retrieval's search)",
                     lambda: knn_search(xn, xn, k, exclude_self=True))
        timed("knn_search k=200 (analysis today)",
              lambda: knn_search(xn, xn, 200, exclude_self=True))
    else:
        # Some neighbour lists of the right width to time the scoring alone (not a real search).
        nbrs = (None, np.random.default_rng(1).integers(0, args.n, (args.n, k)))
    timed("retrieval_metrics (neighbours passed in)",
          lambda: retrieval_metrics(x, fine, neighbours=nbrs))
    print(f"cka {biased:.4f} / debiased {debiased:.4f} / minibatch {mini['cka']:.4f} "
          f"({mini['n_batches']} batches); procrustes {shape['procrustes']:.4f}, angular "
          f"{shape['angular']:.4f}")
    print(f"5,000 queries: map_at_r {sub['map_at_r']:.4f}  r_precision {sub['r_precision']:.4f}  "
          f"precision_at_1 {sub['precision_at_1']:.4f}  recall_at_8 {sub['recall_at_8']:.4f}  "
          f"within-coarse map_at_r {within['map_at_r']:.4f} (chance {within['chance']:.4f})")


if __name__ == "__main__":
    main()
