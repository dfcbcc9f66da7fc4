"""End-to-end `analyze` on a real-size embedding set: 50,000 x 512, 100 classes, two levels, attributes.

Target (issue 5): every metric, kNN with k = 20 (and 1, 200), in under 2 minutes on a 2-core CPU.
Prints each stage's time and the total, and the ratio to the 120 s budget.

    .venv/bin/python benchmarks/analyze_bench.py [--n 50000] [--dim 512] [--no-umap] [--backend B] [--json FILE]

``--backend`` forces the neighbour search (torch, faiss_gpu, faiss_cpu); ``--json`` writes the
stage times for ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def synthetic_set(n: int, dim: int, n_fine: int = 100, n_coarse: int = 20, n_attr: int = 32, seed: int = 0):
    """Clustered embeddings: coarse centres, fine offsets, attribute directions, noise; and a later
    'checkpoint' of the same samples (the same rows moved by noise) for rank stability."""
    from rascal_geom.embeddings import EmbeddingSet

    rng = np.random.default_rng(seed)
    fine = rng.integers(0, n_fine, n)
    coarse = fine % n_coarse
    attrs = rng.random((n, n_attr)) < rng.uniform(0.1, 0.6, (n_fine, n_attr))[fine]
    centres = rng.standard_normal((n_coarse, dim))
    offsets = 0.6 * rng.standard_normal((n_fine, dim))
    attr_dirs = 0.15 * rng.standard_normal((n_attr, dim))
    x = (centres[coarse] + offsets[fine] + attrs @ attr_dirs + 0.9 * rng.standard_normal((n, dim))).astype(np.float32)
    later = x + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    labels = {"family": coarse, "variant": fine}
    names = {"family": [f"c{i}" for i in range(n_coarse)], "variant": [f"f{i}" for i in range(n_fine)]}
    attr_names = [f"group{i // 4}::value{i}" for i in range(n_attr)]

    def make(rows, epoch):
        return EmbeddingSet(rows, labels, names, attributes=attrs, attribute_names=attr_names,
                            source={"kind": "embeddings", "path": f"synthetic@{epoch}", "epoch": epoch})

    return make(x, 1), make(later, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--no-umap", action="store_true")
    parser.add_argument("--backend", choices=["torch", "faiss_gpu", "faiss_cpu"])
    parser.add_argument("--json", help="Also write the results to this JSON file.")
    args = parser.parse_args()

    from rascal_geom.analysis import analyze
    from rascal_geom.hierarchies import Hierarchy

    t0 = time.perf_counter()
    earlier, final = synthetic_set(args.n, args.dim)
    print(f"data generation: {time.perf_counter() - t0:.1f} s (not counted)")
    hier = Hierarchy("bench", ("family", "variant"), "variant", (("family", "variant"),), attributes="generated")
    start = time.perf_counter()
    doc = analyze(final, hierarchy=hier, compare=[earlier], k=20, knn_ks=(1, 20, 200), umap=not args.no_umap,
                  backend=args.backend, progress=False)
    total = time.perf_counter() - start
    print(f"{args.n} x {args.dim}, {len(doc['class_names']['variant'])} classes, backend {doc['settings']['backend']}")
    for stage, seconds in doc["timings"].items():
        print(f"  {stage:<24s} {seconds:7.1f} s")
    print(f"total: {total:.1f} s  ({total / 120:.2f} of the 120 s budget)")
    head = doc["headline"]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": args.n, "dim": args.dim, "backend": doc["settings"]["backend"], "total_s": total,
                       "timings": doc["timings"], "knn_top1": head["knn_top1"]}, fh)
    print(f"knn_top1 {head['knn_top1']:.4f}  retention {head['retention']}  lift {head['attribute_lift']:.4f}  "
          f"geodesic variance {head['geodesic_variance']:.4f}  rank stability {head['rank_stability']:.4f}")


if __name__ == "__main__":
    main()
