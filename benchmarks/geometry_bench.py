"""Seconds of the geometry summary, its similarity gap and the geodesic variance on a clustered set,
optionally against an earlier revision of those two modules.

    python benchmarks/geometry_bench.py                            # 300,000 x 256, 300 classes
    python benchmarks/geometry_bench.py --n 1000000 --classes 1000 --baseline b7c7aa9
    python benchmarks/geometry_bench.py --noise 1.5 --rounds 1 --baseline b7c7aa9

Rows are ``normalise(class centre + noise * N(0, 1))``, float32, as ``rascal analyze`` reads an
embedding set. At the default noise 0.9 no negative beats its anchor's weakest positive (margin
violation 0); at 1.5 a few percent do, which is what shows that both sides count the same pairs.

With ``--baseline REV``, ``rascal_geom/metrics/geometry.py`` and ``geodesic_variance.py`` of git
revision ``REV`` are loaded beside the current ones; each round runs the two sides back to back,
first one then the other, alternating, so both see the same load of a shared machine. Printed:
seconds per round, the median ratio baseline / current, and the largest relative difference of
their results (``margin_violation`` is a count ratio: 0 expected)."""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODULES = {"geometry": "rascal_geom/metrics/geometry.py",
           "geodesic_variance": "rascal_geom/metrics/geodesic_variance.py"}


def clustered(n: int, dim: int, classes: int, noise: float,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit float32 rows (n, dim) around ``classes`` Gaussian centres, and their labels (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((classes, dim), dtype=np.float32)[y]
    x += np.float32(noise) * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, y


def baseline(rev: str, folder: Path) -> dict:
    """The modules of :data:`MODULES` as they were at git revision ``rev``."""
    out = {}
    for name, path in MODULES.items():
        source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
        file = folder / f"baseline_{name}.py"
        file.write_text(source)
        spec = importlib.util.spec_from_file_location(f"baseline_{name}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out[name] = module
    return out


def calls(modules: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """``{stage: no-argument callable}`` of one side."""
    geo, var = modules["geometry"], modules["geodesic_variance"]
    return {"similarity_gap": lambda: geo.similarity_gap(x, y),
            "geometry_summary": lambda: geo.geometry_summary(x, y),
            "geodesic_variance": lambda: var.geodesic_variance(x, y)}


def largest_difference(a: dict, b: dict) -> float:
    """Largest relative difference over the float and array values of two results."""
    worst = 0.0
    for key, value in a.items():
        u, v = np.atleast_1d(np.asarray(value, dtype=np.float64)), np.atleast_1d(b[key])
        both = np.isfinite(u) & np.isfinite(v)
        if (np.isnan(u) != np.isnan(v)).any():
            return float("inf")
        scale = np.maximum(np.abs(u[both]), np.finfo(np.float64).tiny)
        worst = max(worst, float(np.max(np.abs(u[both] - v[both]) / scale, initial=0.0)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.9)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="git revision to compare against")
    args = parser.parse_args()

    x, y = clustered(args.n, args.dim, args.classes, args.noise)
    print(f"{args.n} x {args.dim}, {args.classes} classes, noise {args.noise}, "
          f"{args.rounds} rounds")
    # By module name: the package exports a function called geodesic_variance.
    current = calls({name: importlib.import_module(f"rascal_geom.metrics.{name}")
                     for name in MODULES}, x, y)
    with tempfile.TemporaryDirectory() as tmp:
        sides = {"current": current}
        if args.baseline:
            sides = {"baseline": calls(baseline(args.baseline, Path(tmp)), x, y), **sides}
        for stage in current:
            seconds = {side: [] for side in sides}
            results = {}
            for r in range(args.rounds):
                for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                    start = time.perf_counter()
                    results[side] = sides[side][stage]()
                    seconds[side].append(time.perf_counter() - start)
            line = "  ".join(f"{side} " + " ".join(f"{t:.2f}" for t in times)
                             for side, times in seconds.items())
            if args.baseline:
                ratio = statistics.median(b / c for b, c in zip(seconds["baseline"],
                                                               seconds["current"]))
                line += (f"  baseline/current {ratio:.2f}x  largest rel. difference "
                         f"{largest_difference(results['baseline'], results['current']):.1e}")
            if stage == "similarity_gap":
                line += f"  (margin violation {results['current']['margin_violation']:.4g})"
            if stage == "geodesic_variance":
                line += f"  ({results['current']['iterations']} iterations)"
            print(f"{stage:18s} {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
