"""Forward+backward time and peak memory of RASCAL's weight sources against textbook SupCon.

    python benchmarks/loss_bench.py                 # CUDA if present, else CPU (smaller sizes)
    python benchmarks/loss_bench.py --sizes 2048 --classes 10 100

Peak memory of each (method, N, classes) point is that point's alone: on a GPU
``torch.cuda.max_memory_allocated`` over one step after a reset of the peak (in this process:
torch counts every allocation exactly); on a CPU the growth of peak RSS, in a subprocess per point.
Times are measured in this process with the methods interleaved round by round, so every method
sees the same load; each is the best of ``--repeats`` rounds after a warm-up. Ratios are taken
within this one run, as the median over rounds of the two methods' times in the same round.
Targets (issue 2): CPU, rank_agreement ≤ 1.5× uniform at N = 2048; GPU, rank_agreement at
N = 8192 with 100 classes ≤ 1.1× textbook SupCon's time and ≤ 1 GiB peak. ``--json FILE`` writes
every point (ms, rounds, peak MiB) for ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

METHODS = ("textbook_supcon", "uniform", "rank_agreement", "rank_agreement+stats")


def textbook_supcon(z, labels, temperature=0.1):
    """The dense SupCon of the reference implementation (mask matrices, full log-softmax)."""
    import torch

    n = z.shape[0]
    mask = torch.eq(labels[:, None], labels[None, :]).float()
    logits = z @ z.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    logits_mask = 1 - torch.eye(n, device=z.device)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    pos = mask.sum(1)
    mean_log_prob_pos = (mask * log_prob).sum(1) / pos.clamp_min(1)
    return -mean_log_prob_pos[pos > 0].mean()


def make_step(method: str, n: int, classes: int, dim: int, device: str):
    """One forward+backward of ``method`` on a fixed random batch, as a no-argument callable."""
    import torch
    import torch.nn.functional as F

    from rascal_train.losses import RascalLoss

    torch.manual_seed(0)
    labels = torch.randint(0, classes, (n // 2,), device=device).repeat(2)  # two views
    base = F.normalize(torch.randn(n, dim, device=device), dim=1)
    # As in training: the two views of an image share the image's one cache row.
    cached = F.normalize(base[: n // 2] + 0.3 * torch.randn_like(base[: n // 2]),
                         dim=1).repeat(2, 1)
    valid = torch.ones(n, dtype=torch.bool, device=device)
    if method == "textbook_supcon":
        fn = lambda z: textbook_supcon(z, labels)  # noqa: E731
    else:
        loss = RascalLoss(0.1, weights=method.split("+")[0], track_stats=method.endswith("+stats"))
        fn = lambda z: loss(z, labels, cached, valid)  # noqa: E731

    def step():
        z = base.clone().requires_grad_()
        fn(z).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def peak_memory(method: str, n: int, classes: int, dim: int, device: str) -> float:
    """Peak memory (MiB) of one step.

    On a GPU: ``max_memory_allocated`` over the second step less what was allocated before it.
    On a CPU (run in a fresh process, so nothing else counts): the rise of the resident set's
    high-water mark over its level before the first step (the mark reset through
    ``/proc/self/clear_refs``). Only a first step shows it: later steps reuse memory that the C
    allocator kept, so their RSS barely moves.
    """
    import torch

    step = make_step(method, n, classes, dim, device)
    if device == "cuda":
        step()  # warm-up: CUDA context and kernels are not the step's
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current resident set
    before = _status_kib("VmRSS")
    step()
    return (_status_kib("VmHWM") - before) / 1024


def step_times(n: int, classes: int, dim: int, repeats: int, device: str) -> dict[str, list[float]]:
    """ms of every round per method, the methods interleaved so each round sees one load."""
    steps = {m: make_step(m, n, classes, dim, device) for m in METHODS}
    for step in steps.values():  # warm-up
        step()
    rounds = {m: [] for m in METHODS}
    for _ in range(repeats):
        for m, step in steps.items():
            t0 = time.perf_counter()
            step()
            rounds[m].append(1000 * (time.perf_counter() - t0))
    return rounds


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a/b: a slow spell of a shared machine slows both sides of a pair."""
    return statistics.median(x / y for x, y in zip(a, b))


def _peak_point(method: str, n: int, classes: int, dim: int, device: str, console) -> dict | None:
    """``{"peak_mib": float}`` of one point, or ``None`` where it failed (out of memory, say)."""
    if device == "cuda":
        import torch

        try:
            return {"peak_mib": peak_memory(method, n, classes, dim, device)}
        except torch.OutOfMemoryError as exc:
            console.print(f"[red]{method} N={n} C={classes} failed: {str(exc).splitlines()[0]}")
            return None
        finally:
            torch.cuda.empty_cache()
    payload = json.dumps([method, n, classes, dim, device])
    out = subprocess.run([sys.executable, __file__, "--memory", payload], capture_output=True,
                         text=True)
    if out.returncode != 0:  # out of memory or similar: shown as "failed"
        console.print(f"[red]{method} N={n} C={classes} failed: "
                      f"{out.stderr.strip().splitlines()[-1:]}")
        return None
    return {"peak_mib": float(out.stdout.split()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+")
    ap.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", choices=["cuda", "cpu"])
    ap.add_argument("--memory", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="Also write the results to this JSON file.")
    args = ap.parse_args()
    if args.memory:
        print(peak_memory(*json.loads(args.memory)))
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    from rascal_train.progress import make_progress

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    sizes = args.sizes or ([1024, 2048, 4096, 8192, 16384] if device == "cuda"
                           else [1024, 2048, 4096])
    grid = [(n, c) for c in args.classes for n in sizes]
    results = {}
    with make_progress() as prog:
        task = prog.add_task("loss benchmark", total=len(grid) * (len(METHODS) + 1))
        for n, c in grid:
            for m in METHODS:
                results[(m, n, c)] = _peak_point(m, n, c, args.dim, device, prog.console)
                prog.advance(task)
            ok = [m for m in METHODS if results[(m, n, c)] is not None]
            if ok:
                for m, ms in step_times(n, c, args.dim, args.repeats, device).items():
                    if results[(m, n, c)] is not None:
                        results[(m, n, c)].update(ms=min(ms), rounds=ms)
            prog.advance(task)

    name = (torch.cuda.get_device_name() if device == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    table = Table(title=f"forward+backward, d={args.dim}, two views, {name}")
    for col in ("classes", "N", *(f"{m} ms" for m in METHODS), "RA/uniform", "RA/textbook",
                *(f"{m} MiB" for m in METHODS)):
        table.add_column(col, justify="right")
    fmt = lambda r, k: "failed" if r is None else f"{r[k]:.1f}"  # noqa: E731
    for c in args.classes:
        for n in sizes:
            row = [results[(m, n, c)] for m in METHODS]
            ra, uni, tb = (results[("rank_agreement", n, c)], results[("uniform", n, c)],
                           results[("textbook_supcon", n, c)])
            ratio = lambda a, b: ("-" if a is None or b is None  # noqa: E731
                                  else f"{paired_ratio(a['rounds'], b['rounds']):.2f}")
            table.add_row(str(c), str(n), *(fmt(r, "ms") for r in row), ratio(ra, uni),
                          ratio(ra, tb), *(fmt(r, "peak_mib") for r in row))
    Console(width=220).print(table)
    print(f"ms: best of {args.repeats} rounds; ratios: median over the rounds of the paired ratio")
    print("peak memory:", "torch.cuda.max_memory_allocated" if device == "cuda"
          else "rise of the resident set's high-water mark during one step (includes allocator "
               "slack)")
    if args.json:
        points = [{"method": m, "n": n, "classes": c, **(r or {"failed": True})}
                  for (m, n, c), r in results.items()]
        with open(args.json, "w") as fh:
            json.dump({"device": name, "dim": args.dim, "repeats": args.repeats, "points": points},
                      fh)


if __name__ == "__main__":
    main()
