"""The whole `analyze` at 50,000 x 512 with issue 16's stages, and `compare` of three such sets.

Issue 16 adds retrieval (exact where the kNN stage's search is wide enough, else a seeded query
sample), within-coarse MAP@R, NC2-W/NC3/NC4, CDNV, RankMe and probe calibration to `analyze`;
the whole analysis must stay under 60 s on 2 CPU cores. Prints each stage's wall time, the total,
the process CPU seconds and the load average before and after (other work on a shared machine
inflates wall time, not CPU time). Uses analyze_bench's data (kept apart from that script, which
other work changes).

    ./py benchmarks/analysis_additions_bench.py [--n 50000] [--dim 512] [--no-umap] [--compare]

Measured 2026-12-01 on the shared 2-core machine (torch kNN backend), load average 1.0 -> 1.6:
retrieval 1.4 s, collapse + spectrum 0.5 s, neighbour grid 0 s (no images), probe 4.9 s (one fit
per level, as before); whole analysis 73.6 s wall / 103 s CPU, of which kNN 30.8 s and UMAP
20.9 s. Under load 4.7 -> 6.5 the same run took 194.5 s wall / 134 s CPU (before the
within-coarse query sample: retrieval 16 s there). `--compare` (three 50,000 x 512 sets): 48.8 s
wall, 48.3 s CPU under load ~5.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--no-umap", action="store_true")
    parser.add_argument("--compare", action="store_true",
                        help="also time `compare` of three representations of the same samples")
    args = parser.parse_args()

    from analyze_bench import synthetic_set

    from rascal_geom.analysis import analyze
    from rascal_geom.hierarchies import Hierarchy

    earlier, final = synthetic_set(args.n, args.dim)
    hier = Hierarchy("bench", ("family", "variant"), "variant", (("family", "variant"),))
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    doc = analyze(final, hierarchy=hier, compare=[earlier], k=20, knn_ks=(1, 20, 200),
                  umap=not args.no_umap, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{args.n} x {args.dim}, backend {doc['settings']['backend']}, threads {os.cpu_count()}")
    for stage, seconds in doc["timings"].items():
        print(f"  {stage:<24s} {seconds:7.1f} s")
    print(f"total: {wall:.1f} s wall, {cpu:.1f} s CPU (process); load average "
          f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    m = doc["metrics"]
    loo = m["retrieval"]["leave_one_out"]
    print(f"MAP@R {loo['map_at_r']:.4f} ({loo['queries']}), within-coarse MAP@R "
          f"{m['retrieval']['within_coarse'][0]['map_at_r']:.4f}, NC3 {m['collapse']['nc3']:.3f}, "
          f"CDNV {m['collapse']['cdnv']:.3f}, RankMe {m['spectrum']['rankme']:.1f}, "
          f"ECE {m['calibration']['ece']:.4f}")
    if args.compare:
        import tempfile
        from pathlib import Path

        from rascal_geom.compare import compare
        from rascal_geom.embeddings import save_npz

        rng = np.random.default_rng(1)
        with tempfile.TemporaryDirectory() as tmp:
            paths = [save_npz(Path(tmp) / "a.npz", final), save_npz(Path(tmp) / "b.npz", earlier)]
            final.embeddings = rng.standard_normal(final.embeddings.shape).astype(np.float32)
            paths.append(save_npz(Path(tmp) / "c.npz", final))
            wall, cpu = time.perf_counter(), time.process_time()
            out = compare(paths, progress=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"compare of 3 x {args.n} x {args.dim} (CKA biased + unbiased, shape distances, "
              f"minibatch CKA over {out['minibatch']['n_batches']} batches): {wall:.1f} s wall, "
              f"{cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
