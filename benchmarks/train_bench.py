"""Images per second of one training step (CE, SupCon, RASCAL) and of the on-device augmentation.

On CUDA: ResNet-18 (CIFAR stem), batch 512, 32 px, fp32 vs bf16 + channels-last. On a CPU the
same measurement runs with a smaller batch (``--batch-size``, default 32) and fp32 only. Prints
the images/s of each configuration and the ratios the issue sets targets for (H100):
RASCAL/SupCon step time <= 1.05, bf16+channels-last >= 2.5x the fp32 reference-style step
(19.4 k images/s), augmentation faster than the step.

The step runs under the engine's own settings: its step functions, its precision choice
(:func:`rascal_train.devices.autocast_dtype`), and cuDNN as the engine leaves it (no
``cudnn.benchmark``), so the numbers describe real runs. ``--json FILE`` writes them for
``benchmarks/gpu_check.py``.

    python benchmarks/train_bench.py [--arch cifar_resnet18] [--batch-size N] [--steps N] [--json
    FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rascal_train.cache import EmbeddingCache
from rascal_train.engine import ce_loss, contrastive_loss
from rascal_train.losses import RascalLoss
from rascal_train.models import build_model
from rascal_train.transforms import GpuTwoViewAugment


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, steps, warmup):
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


def bench_step(loss: str, arch: str, batch: int, device, amp, channels_last: bool, steps: int,
               warmup: int, num_samples: int = 50_000, num_classes: int = 100) -> float:
    """Seconds per optimiser step on pre-augmented views (the model, the loss, the cache, SGD)."""
    torch.manual_seed(0)
    model = build_model({"arch": arch, "loss": loss, "num_classes": num_classes}).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    v1 = torch.randn(batch, 3, 32, 32, device=device)
    v2 = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, num_classes, (batch,), device=device)
    ids = torch.randperm(num_samples, device=device)[:batch]
    cache = EmbeddingCache(num_samples, 128, device=device) if loss == "rascal" else None
    loss_fn = RascalLoss(0.1, "rank_agreement" if loss == "rascal" else "uniform")
    if cache is not None:  # a warm cache, as after the first epoch
        cache.update(ids,
                     torch.nn.functional.normalize(torch.randn(batch, 128, device=device), dim=1))

    def step():
        if loss == "ce":
            value = ce_loss(model, v1, labels, amp)
        else:
            value, z, gids = contrastive_loss(model, loss_fn, v1, v2, labels, ids, cache,
                                              autocast_dtype=amp)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if loss == "rascal":
            cache.update(gids, z)

    return _timed(step, device, steps, warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cifar_resnet18")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--json", help="Also write the results to this JSON file.")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    batch = args.batch_size or (512 if cuda else 32)
    steps = args.steps or (20 if cuda else 3)
    warmup = 5 if cuda else 1
    name = (torch.cuda.get_device_name(device) if cuda
            else f"CPU ({torch.get_num_threads()} threads)")
    print(f"device: {name}; arch {args.arch}; batch {batch} images (x2 views for contrastive); 32 "
          f"px; {steps} timed steps after {warmup} warm-up")

    from rascal_train.devices import autocast_dtype

    amp = autocast_dtype("auto", device) if cuda else None
    low = "fp16" if amp == torch.float16 else "bf16"
    modes = [("fp32", None, False)] + ([(f"{low}+channels_last", amp, True)] if cuda else [])
    times = {}
    for mode, amp, cl in modes:
        for loss in ("ce", "supcon", "rascal"):
            t = bench_step(loss, args.arch, batch, device, amp, cl, steps, warmup)
            times[loss, mode] = t
            print(f"  step {loss:7s} {mode:19s} {batch / t:10.1f} images/s  ({t * 1e3:.1f} ms)")

    images = torch.randint(0, 256, (batch, 32, 32, 3), dtype=torch.uint8, device=device)
    aug, gen = GpuTwoViewAugment(32), torch.Generator().manual_seed(0)
    t_aug = _timed(lambda: aug(images, generator=gen), device, steps, warmup)
    print(f"  augmentation (two views)     {batch / t_aug:10.1f} images/s  ({t_aug * 1e3:.1f} ms)")

    for mode, _, _ in modes:
        print(f"ratio RASCAL/SupCon step time ({mode}): "
              f"{times['rascal', mode] / times['supcon', mode]:.3f} (target <= 1.05)")
    if cuda:
        for loss in ("ce", "supcon", "rascal"):
            speedup = times[loss, "fp32"] / times[loss, modes[-1][0]]
            print(f"speed-up {modes[-1][0]} vs fp32 ({loss}): {speedup:.2f}x (target >= 2.5)")
    fastest = min(times[loss, modes[-1][0]] for loss in ("supcon", "rascal"))
    print(f"augmentation time / contrastive step time ({modes[-1][0]}): {t_aug / fastest:.3f} "
          "(target < 1)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": name, "arch": args.arch, "batch": batch, "steps": steps,
                       "step_ms": {f"{loss}/{mode}": 1e3 * t for (loss, mode), t in times.items()},
                       "images_per_s": {f"{loss}/{mode}": batch / t
                                        for (loss, mode), t in times.items()},
                       "augment_ms": 1e3 * t_aug, "augment_images_per_s": batch / t_aug}, fh)


if __name__ == "__main__":
    main()
