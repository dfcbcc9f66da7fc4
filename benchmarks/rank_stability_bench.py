"""Seconds of rank_stability with exact ranks over a stratified anchor subsample (as in analyze).

Defaults: 200,000 x 256 float32, 200 classes of ~1,000 members, 10,000 anchors: the per-class
shape of a 1,000,000-row set of 1,000 classes with its 50,000 anchors, at a fifth of its size.
Rows are class centre + noise; the second embedding is the first + small noise. Prints wall and
CPU seconds per call. ``--reference`` also times the class-by-class loop (per class, the
anchors' similarities ranked by two ``average_ranks`` calls), interleaved with rank_stability
over ``--repeats`` since others' load moves the wall clock of a shared machine, prints the
median ratio and checks that both give the same floats. The ratio is about the machine's load:
with ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` both take about the same time (~2 s at the
defaults), since what batching saves is two sets of ~20 small torch ops per class, each a hand-off
between torch's threads that stalls while other work holds the cores (~5x on 2 busy cores).

    .venv/bin/python benchmarks/rank_stability_bench.py [--n 200000] [--dim 256]
        [--classes 200] [--anchors 10000] [--repeats 3] [--reference]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def drifted(n: int, dim: int, classes: int, seed: int = 0):
    """Class centre + noise, float32 of shape (n, dim), a copy moved by small noise, labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = (rng.standard_normal((classes, dim), dtype=np.float32)[labels]
         + 0.8 * rng.standard_normal((n, dim), dtype=np.float32))
    return x, x + 0.2 * rng.standard_normal((n, dim), dtype=np.float32), labels


def per_class_loop(emb_a, emb_b, labels, anchors):
    """Per-sample Spearman and drift, ndarrays of shape (n,), one class at a time: its rows by
    ``labels == c``, its anchors' float64 similarities without self ranked by one
    ``average_ranks`` call per embedding and chunk of 1,024 anchors."""
    from rascal_geom.metrics._inputs import kept_precision, unit_rows
    from rascal_geom.metrics.rank_stability import _off_diagonal, _row_spearman
    from rascal_train.ranks import average_ranks

    a = unit_rows(emb_a, "emb_a", kept_precision(emb_a))
    b = unit_rows(emb_b, "emb_b", kept_precision(emb_b))
    rho, drift = np.full(len(a), np.nan), np.full(len(a), np.nan)
    is_anchor = np.isin(np.arange(len(a)), anchors)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        pos = np.flatnonzero(is_anchor[members])
        if len(members) < 3:
            continue
        xa, xb = (np.asarray(x[members], dtype=np.float64) for x in (a, b))
        for start in range(0, len(pos), 1024):
            rows = pos[start:start + 1024]
            ra = average_ranks(_off_diagonal(xa[rows] @ xa.T, rows))
            rb = average_ranks(_off_diagonal(xb[rows] @ xb.T, rows))
            rho[members[rows]] = _row_spearman(ra, rb)
            drift[members[rows]] = np.abs(ra - rb).mean(axis=1) / (len(members) - 2)
    return rho, drift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--anchors", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference", action="store_true",
                        help="also time the class-by-class loop and compare the results")
    args = parser.parse_args()

    from rascal_geom.metrics import rank_stability
    from rascal_geom.sampling import stratified_sample

    a, b, labels = drifted(args.n, args.dim, args.classes)
    anchors = stratified_sample(labels, args.anchors, seed=0)
    sizes = np.bincount(labels)
    print(f"{args.n} x {args.dim} float32, {args.classes} classes of {sizes.min()}-{sizes.max()}, "
          f"{len(anchors)} anchors")

    def timed(name, fn):
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        wall = time.perf_counter() - start
        print(f"  {name:<16s} {wall:7.2f} s wall  {time.process_time() - cpu:7.2f} s CPU")
        return value, wall

    ratios = []
    for _ in range(args.repeats):
        out, new = timed("rank_stability", lambda: rank_stability(a, b, labels, anchors=anchors))
        if args.reference:
            (rho, drift), old = timed("per-class loop", lambda: per_class_loop(a, b, labels,
                                                                               anchors))
            ratios.append(old / new)
    if args.reference:
        same = (np.array_equal(out["per_sample_spearman"], rho, equal_nan=True)
                and np.array_equal(out["per_sample_drift"], drift, equal_nan=True))
        print(f"per-class loop / rank_stability: median {np.median(ratios):.1f}x "
              f"(each repeat: {', '.join(f'{r:.1f}' for r in ratios)}); "
              f"same floats: {same}")


if __name__ == "__main__":
    main()
