"""Transforms: the batched augmentation against torchvision's per-image definitions."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from rascal_train.transforms import (
    CROP_SCALE, MEAN, STD, GpuTwoViewAugment, adjust_brightness, adjust_contrast, adjust_hue,
    adjust_saturation, eval_transform, normalize_batch, resized_crop, sample_crops,
    two_view_transform,
)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 3, 20, 24, generator=g)


@pytest.mark.parametrize("ours, theirs, lo, hi", [
    (adjust_brightness, TF.adjust_brightness, 0.6, 1.4),
    (adjust_contrast, TF.adjust_contrast, 0.6, 1.4),
    (adjust_saturation, TF.adjust_saturation, 0.6, 1.4),
    (adjust_hue, TF.adjust_hue, -0.1, 0.1),
])
def test_colour_ops_match_torchvision_per_image(batch, ours, theirs, lo, hi):
    factors = torch.linspace(lo, hi, len(batch))
    got = ours(batch.clone(), factors)
    for i, f in enumerate(factors.tolist()):
        torch.testing.assert_close(got[i], theirs(batch[i], f), atol=1e-5, rtol=0)


def test_resized_crop_identity_flip_and_exact_quarter(batch):
    n, _, h, _ = batch.shape
    x = batch[:, :, :, :h]  # square images
    full = torch.tensor([[0, 0, h, h]]).repeat(n, 1)
    no, yes = torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)
    torch.testing.assert_close(resized_crop(x, full, no, h), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(resized_crop(x, full, yes, h), x.flip(3), atol=1e-6, rtol=0)
    # no resize: exact pixels
    quarter = torch.tensor([[h // 2, h // 2, h // 2, h // 2]]).repeat(n, 1)
    torch.testing.assert_close(resized_crop(x, quarter, no, h // 2), x[:, :, h // 2:, h // 2:],
                               atol=1e-6, rtol=0)
    # a 2x upsampling equals F.interpolate on the crop away from its border
    up = resized_crop(x, quarter, no, h)
    ref = torch.nn.functional.interpolate(x[:, :, h // 2:, h // 2:], size=h, mode="bilinear",
                                          align_corners=False)
    torch.testing.assert_close(up[:, :, 1:-1, 1:-1], ref[:, :, 1:-1, 1:-1], atol=1e-5, rtol=0)


def test_crops_follow_random_resized_crop():
    g = torch.Generator().manual_seed(0)
    top, left, h, w = sample_crops(5000, 32, 32, g).unbind(1)
    assert ((top >= 0).all() and (left >= 0).all() and (top + h <= 32).all()
            and (left + w <= 32).all())
    area = (h * w).double() / 1024
    # whole-pixel rounding of each side moves the area by at most about one pixel per side
    assert area.min() >= CROP_SCALE[0] - 2 * 33 / 1024 and area.max() <= 1.0
    # torchvision draws the same distribution: compare the mean area with its sampler
    torch.manual_seed(0)
    from torchvision.transforms import RandomResizedCrop
    img = torch.zeros(3, 32, 32)
    tv = np.array([np.prod(RandomResizedCrop.get_params(img, CROP_SCALE, (3 / 4, 4 / 3))[2:]) / 1024
                   for _ in range(5000)])
    assert abs(area.mean().item() - tv.mean()) < 0.015  # sd of each mean ~ 0.0035


def test_gpu_augment_shapes_reproducibility_and_grayscale_rate():
    images = torch.randint(0, 256, (400, 32, 32, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    v1, v2 = GpuTwoViewAugment(32)(images, torch.Generator().manual_seed(0))
    assert v1.shape == (400, 3, 32, 32) and v1.dtype == torch.float32 and not torch.equal(v1, v2)
    a1, _ = GpuTwoViewAugment(32)(images[:16], torch.Generator().manual_seed(0))
    b1, _ = GpuTwoViewAugment(32)(images[:16], torch.Generator().manual_seed(0))
    assert torch.equal(a1, b1)
    raw = (torch.cat([v1, v2]) * torch.tensor(STD).view(1, 3, 1, 1)
           + torch.tensor(MEAN).view(1, 3, 1, 1))
    gray = (raw.std(1).amax(dim=(1, 2)) < 1e-5).float().mean().item()
    assert abs(gray - 0.2) < 0.06  # p = 0.2 over 800 views: binomial sd ~ 0.014
    assert raw.min() > -1e-5 and raw.max() < 1 + 1e-5
    small = GpuTwoViewAugment(16)(images[:4])[0]
    assert small.shape == (4, 3, 16, 16)
    with pytest.raises(ValueError, match="uint8 tensor of shape"):
        GpuTwoViewAugment(32)(images.float())


def test_cpu_transforms():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    v1, v2 = two_view_transform(32)(arr)
    assert v1.shape == (3, 32, 32) and not torch.equal(v1, v2)
    v1, _ = two_view_transform(224)(
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)))
    assert v1.shape == (3, 224, 224)
    # on 32-px images the evaluation transform is exactly the batch normalisation
    torch.testing.assert_close(eval_transform(32)(arr),
                               normalize_batch(torch.from_numpy(arr)[None])[0])
    big = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    assert eval_transform(224)(big).shape == (3, 224, 224)
    x = normalize_batch(torch.full((1, 2, 2, 3), 255, dtype=torch.uint8))
    torch.testing.assert_close(x[0, :, 0, 0], (1 - torch.tensor(MEAN)) / torch.tensor(STD))


def test_gpu_colour_path_equals_the_cpu_path(monkeypatch):
    # The GPU path (every image through every operation, then a select; no device sync) gives
    # the CPU path's views; the CPU keeps its select-first path.
    from rascal_train import transforms
    from rascal_train.transforms import apply_augment, sample_augment_params

    images = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    params = sample_augment_params(64, 32, 32, torch.Generator().manual_seed(3))
    assert params["jitter"].any() and not params["jitter"].all()
    cpu = apply_augment(images, params, 24)
    monkeypatch.setattr(transforms, "_host_shortcuts", lambda x: False)
    gpu_path = apply_augment(images, params, 24)
    torch.testing.assert_close(gpu_path, cpu, rtol=0, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_augmentation_and_cache_lookup_never_wait_for_the_gpu():
    from rascal_train.cache import EmbeddingCache

    images = torch.randint(0, 256, (256, 32, 32, 3), dtype=torch.uint8, device="cuda")
    cpu_views = GpuTwoViewAugment(32)(images.cpu(), torch.Generator().manual_seed(0))
    cache = EmbeddingCache(1000, 16, device="cuda")
    ids = torch.arange(256, device="cuda")
    GpuTwoViewAugment(32)(images)  # warm-up: the per-device constants are made (and copied) once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        views = GpuTwoViewAugment(32)(images, torch.Generator().manual_seed(0))
        rows, valid = cache.lookup(ids)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for v, c in zip(views, cpu_views):
        torch.testing.assert_close(v.cpu(), c, rtol=0, atol=1e-4)
    assert rows.shape == (256, 16) and not valid.any().item()
