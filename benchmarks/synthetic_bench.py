"""Generation speed of the synthetic set against its target (10,000 32-px images < 10 s, 1 core).

Run: ``OMP_NUM_THREADS=1 python benchmarks/synthetic_bench.py [--n 10000] [--repeats 3]``.
Prints the best of ``repeats`` timings and its ratio to the target, then how far a linear probe
on raw pixels gets on each level (the set should not be solvable from pixels by a linear map).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from rascal_train.datasets.synthetic import generate, make_design  # noqa: E402

TARGET_S_PER_10K = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-probe", action="store_true")
    args = parser.parse_args()

    design = make_design(seed=0)
    times = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        images, variant, _ = generate(design, args.n, seed=r, split="train")
        times.append(time.perf_counter() - t0)
    best = min(times)
    target = TARGET_S_PER_10K * args.n / 10000
    print(f"synthetic: {args.n} images of 32 px in {best:.2f} s (best of {args.repeats}; "
          f"{args.n / best:,.0f} images/s); target {target:.1f} s; ratio target/measured = "
          f"{target / best:.1f}x")

    if not args.no_probe:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        # a capped probe is enough for a ceiling
        warnings.simplefilter("ignore", ConvergenceWarning)

        train_x, train_v, _ = generate(design, 4000, seed=0, split="train")
        test_x, test_v, _ = generate(design, 2000, seed=0, split="test")
        k = design.variants_per_family
        feats = [x.reshape(len(x), -1).astype(np.float32) / 255.0 for x in (train_x, test_x)]
        for level, (ytr, yte) in {"family": (train_v // k, test_v // k),
                                  "variant": (train_v, test_v)}.items():
            clf = LogisticRegression(max_iter=300, C=0.1).fit(feats[0], ytr)
            chance = 1.0 / len(np.unique(ytr))
            print(f"linear probe on raw pixels, {level}: test accuracy "
                  f"{clf.score(feats[1], yte):.3f} (chance {chance:.3f})")


if __name__ == "__main__":
    main()
