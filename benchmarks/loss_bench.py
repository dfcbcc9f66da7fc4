"""Forward+backward time and peak memory of RASCAL's weight sources against textbook SupCon.

    python benchmarks/loss_bench.py                 # CUDA if present, else CPU (smaller sizes)
    python benchmarks/loss_bench.py --sizes 2048 --classes 10 100

Every (method, N, classes) point runs in its own subprocess so peak memory is that point's
alone: ``torch.cuda.max_memory_allocated`` on a GPU, the growth of peak RSS on a CPU. Times are
the best of ``--repeats`` timed runs after warm-up (the least disturbed by other load). Ratios are taken within this one run.
Targets (issue 2): CPU, rank_agreement ≤ 1.5× uniform at N = 2048; GPU, rank_agreement at
N = 8192 with 100 classes ≤ 1.1× textbook SupCon's time and ≤ 1 GiB peak.
"""

from __future__ import annotations

import argparse
import json
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


def run_point(method: str, n: int, classes: int, dim: int, repeats: int, device: str) -> dict:
    import resource

    import torch
    import torch.nn.functional as F

    from rascal_train.losses import RascalLoss

    torch.manual_seed(0)
    labels = torch.randint(0, classes, (n // 2,), device=device).repeat(2)  # two views
    base = F.normalize(torch.randn(n, dim, device=device), dim=1)
    # As in training: the two views of an image share the image's one cache row.
    cached = F.normalize(base[: n // 2] + 0.3 * torch.randn_like(base[: n // 2]), dim=1).repeat(2, 1)
    valid = torch.ones(n, dtype=torch.bool, device=device)
    if method == "textbook_supcon":
        fn = lambda z: textbook_supcon(z, labels)  # noqa: E731
    else:
        weights = method.split("+")[0]
        loss = RascalLoss(0.1, weights=weights, track_stats=method.endswith("+stats"))
        fn = lambda z: loss(z, labels, cached, valid)  # noqa: E731

    def step():
        z = base.clone().requires_grad_()
        fn(z).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    step()
    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024
    return {"method": method, "n": n, "classes": classes, "ms": 1000 * min(times),
            "peak_mib": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+")
    ap.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", choices=["cuda", "cpu"])
    ap.add_argument("--point", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.point:
        method, n, c, dim, repeats, device = json.loads(args.point)
        print(json.dumps(run_point(method, n, c, dim, repeats, device)))
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    from rascal_train.progress import make_progress

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    sizes = args.sizes or ([1024, 2048, 4096, 8192, 16384] if device == "cuda" else [1024, 2048, 4096])
    points = [(m, n, c) for c in args.classes for n in sizes for m in METHODS]
    results = {}
    with make_progress() as prog:
        task = prog.add_task("loss benchmark", total=len(points))
        for m, n, c in points:
            payload = json.dumps([m, n, c, args.dim, args.repeats, device])
            out = subprocess.run([sys.executable, __file__, "--point", payload],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                results[(m, n, c)] = None  # out of memory or similar: shown as "failed"
                prog.console.print(f"[red]{m} N={n} C={c} failed: {out.stderr.strip().splitlines()[-1:]}")
            else:
                results[(m, n, c)] = json.loads(out.stdout.strip().splitlines()[-1])
            prog.advance(task)

    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"forward+backward, d={args.dim}, two views, {name}")
    for col in ("classes", "N", *(f"{m} ms" for m in METHODS), "RA/uniform", "RA/textbook",
                *(f"{m} MiB" for m in METHODS)):
        table.add_column(col, justify="right")
    fmt = lambda r, k: "failed" if r is None else f"{r[k]:.1f}"  # noqa: E731
    for c in args.classes:
        for n in sizes:
            row = [results[(m, n, c)] for m in METHODS]
            ra, uni, tb = results[("rank_agreement", n, c)], results[("uniform", n, c)], results[("textbook_supcon", n, c)]
            ratio = lambda a, b: "-" if a is None or b is None else f"{a['ms'] / b['ms']:.2f}"  # noqa: E731
            table.add_row(str(c), str(n), *(fmt(r, "ms") for r in row), ratio(ra, uni), ratio(ra, tb),
                          *(fmt(r, "peak_mib") for r in row))
    Console(width=220).print(table)
    print("peak memory:", "torch.cuda.max_memory_allocated" if device == "cuda"
          else "growth of the process's peak RSS (includes allocator slack)")


if __name__ == "__main__":
    main()
