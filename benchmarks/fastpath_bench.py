"""What each CPU fast path of the ranks and the loss buys over its plain form, on the loss's inputs.

    python benchmarks/fastpath_bench.py                       # N = 2048, 10 and 100 classes
    python benchmarks/fastpath_bench.py --n 4096 --classes 10 --repeats 31

The inputs are the ones the loss itself hands over: one ``rascal_weights(..., "rank_agreement")``
call on a batch shaped as ``loss_bench.py`` shapes it (two views per image, float32, the views
of an image sharing one cache row) records what ``losses`` passes to ``average_ranks`` (the
current similarities in the padded ``[N, n_max]`` block; the cached ones as a multiset of
``[groups, width]`` with counts) and to ``_distinct_rows`` (the cache rows, ``[N, dim]``).

Pairs (fast vs plain):
- sort: ``ranks._argsort_desc`` vs ``ranks._argsort_desc_reference`` (torch's argsort);
- tie pass: ``ranks._tied_spans_where_tied`` vs ``ranks._tied_spans`` on every row;
- multiset: ``average_ranks(values, counts)`` vs ``average_ranks`` of the expanded multiset
  (each entry repeated ``counts`` times, rows padded with -inf);
- distinct rows: ``losses._distinct_rows`` vs ``losses._distinct_rows_reference``.

The two sides of a pair run one after the other in every round (first one, then the other,
alternating), so both see the same load of a shared machine; ms is the median over rounds and
the gain the median over rounds of the paired ratio plain / fast. For scale, each class count
ends with the CPU time of one forward+backward of the loss (``loss_bench.py``'s step).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from loss_bench import make_step  # this directory is on the path of a script run from it

from rascal_train import losses, ranks


def loss_inputs(n: int, classes: int, dim: int) -> dict:
    """What one ``rascal_weights`` call passes to ``average_ranks`` and ``_distinct_rows``."""
    torch.manual_seed(0)
    labels = torch.randint(0, classes, (n // 2,)).repeat(2)
    z = F.normalize(torch.randn(n, dim), dim=1)
    cached = F.normalize(z[: n // 2] + 0.3 * torch.randn(n // 2, dim), dim=1).repeat(2, 1)
    calls = {"average_ranks": [], "_distinct_rows": []}
    originals = {name: getattr(losses, name) for name in calls}

    def recorder(name):
        def record(*args):
            calls[name].append(args)
            return originals[name](*args)
        return record

    try:
        for name in calls:
            setattr(losses, name, recorder(name))
        losses.rascal_weights(z, labels, cached, torch.ones(n, dtype=torch.bool))
    finally:
        for name, fn in originals.items():
            setattr(losses, name, fn)
    (current,), (cached_sims, counts) = calls["average_ranks"]
    (rows,), = calls["_distinct_rows"]
    return {"current": current, "cached": cached_sims, "counts": counts, "rows": rows}


def expand(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The multiset written out: each entry ``counts`` times, rows padded with -inf."""
    reps = counts.long()
    totals = reps.sum(1)
    row_of = torch.arange(len(values)).repeat_interleave(totals)
    col = torch.arange(len(row_of)) - (totals.cumsum(0) - totals)[row_of]
    out = torch.full((len(values), int(totals.max())), float("-inf"), dtype=values.dtype)
    out[row_of, col] = values.flatten().repeat_interleave(reps.flatten())
    return out


def pairs(inputs: dict) -> dict:
    """``{name: (shape, fast, plain)}``, each side a no-argument callable."""
    out = {}
    for which in ("current", "cached"):
        v = inputs[which]
        counts = inputs["counts"] if which == "cached" else None
        _, srt, before, through = ranks._sorted_places(v, counts)
        out[f"sort, {which}"] = (tuple(v.shape), lambda v=v: ranks._argsort_desc(v),
                                 lambda v=v: ranks._argsort_desc_reference(v))
        out[f"tie pass, {which}"] = (
            tuple(v.shape), lambda a=(srt, before, through): ranks._tied_spans_where_tied(*a),
            lambda a=(srt, before, through): ranks._tied_spans(*a))
    v, counts = inputs["cached"], inputs["counts"]
    full = expand(v, counts)
    out["multiset vs expanded"] = (tuple(v.shape), lambda: ranks.average_ranks(v, counts),
                                   lambda: ranks.average_ranks(full))
    x = inputs["rows"]
    out["distinct rows"] = (tuple(x.shape), lambda: losses._distinct_rows(x),
                            lambda: losses._distinct_rows_reference(x))
    return out


def timed(fn, calls: int) -> float:
    """CPU ms of this process per call of ``fn``, over ``calls`` calls in a row."""
    t0 = time.process_time()
    for _ in range(calls):
        fn()
    return 1000 * (time.process_time() - t0) / calls


def compare(fast, plain, repeats: int) -> tuple[float, float, float]:
    """Median ms of each side and median over rounds of plain / fast.

    A round times each side over enough calls to take ~20 ms (a scheduler tick of a loaded
    machine would otherwise decide a sub-millisecond call), the side that goes first alternating.
    """
    fast(), plain()  # warm-up
    calls = max(1, round(20 / min(timed(fast, 1), timed(plain, 1))))
    rounds = []
    for r in range(repeats):
        if r % 2:
            p = timed(plain, calls)
            rounds.append((timed(fast, calls), p))
        else:
            f = timed(fast, calls)
            rounds.append((f, timed(plain, calls)))
    return (statistics.median(f for f, _ in rounds), statistics.median(p for _, p in rounds),
            statistics.median(p / f for f, p in rounds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU time, {torch.get_num_threads()} thread(s); N={args.n}, dim={args.dim}, "
          f"medians of {args.repeats} interleaved rounds")
    print(f"{'classes':>7}  {'fast path':<22} {'shape':>12} {'fast ms':>9} {'plain ms':>9} "
          f"{'plain/fast':>10}")
    for classes in args.classes:
        for name, (shape, fast, plain) in pairs(loss_inputs(args.n, classes, args.dim)).items():
            f_ms, p_ms, gain = compare(fast, plain, args.repeats)
            print(f"{classes:>7}  {name:<22} {str(list(shape)):>12} {f_ms:>9.2f} {p_ms:>9.2f} "
                  f"{gain:>9.1f}x")
        step = make_step("rank_agreement", args.n, classes, args.dim, "cpu")
        step()  # warm-up
        step_ms = statistics.median(timed(step, 1) for _ in range(5))
        print(f"{classes:>7}  {'loss step (fwd+bwd)':<22} {'':>12} {step_ms:>9.2f}")


if __name__ == "__main__":
    main()
