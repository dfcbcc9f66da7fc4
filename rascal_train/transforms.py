"""The SupCon two-view augmentation, per image on the CPU and batched on any device.

:func:`two_view_transform` is the augmentation of Khosla et al. (2020) for a data loader:
random resized crop (scale 0.2-1), horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.1) with
p=0.8, grayscale with p=0.2, then normalisation. :class:`GpuTwoViewAugment` draws the same
distribution for a whole uint8 batch at once on the batch's device, so that a GPU training
on a CIFAR-sized set kept as one uint8 tensor on the device never waits for image decoding.
:func:`eval_transform` and :func:`normalize_batch` are the matching test-time transforms.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

#: Normalisation statistics (ImageNet's) used by every transform here.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: SupCon's augmentation strengths.
CROP_SCALE = (0.2, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}
JITTER_P = 0.8
GRAYSCALE_P = 0.2
#: Images at least this large are evaluated with the resize-256 / centre-crop-224 protocol.
LARGE_IMAGE = 128


def _to_pil(img):
    from PIL import Image

    return Image.fromarray(img) if isinstance(img, np.ndarray) else img


class TwoViews:
    """Apply ``transform`` twice to one image: ``img -> (view1, view2)``."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, img):
        return self.transform(img), self.transform(img)

    def __repr__(self) -> str:
        return f"TwoViews({self.transform!r})"


def augment_transform(image_size: int):
    """One SupCon view: PIL image or HWC uint8 array -> float tensor of shape (3, image_size,
    image_size)."""
    from torchvision import transforms as T

    return T.Compose([
        T.Lambda(_to_pil),
        T.RandomResizedCrop(image_size, scale=CROP_SCALE, ratio=CROP_RATIO),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(**JITTER)], p=JITTER_P),
        T.RandomGrayscale(p=GRAYSCALE_P),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])


def two_view_transform(image_size: int) -> TwoViews:
    """The SupCon two-view augmentation for a data loader.

    Parameters
    ----------
    image_size : int
        Side of the square output (32 for CIFAR-sized sets, 224 for ImageNet-sized ones).

    Returns
    -------
    TwoViews
        Callable: PIL image or ndarray of shape (H, W, 3), dtype uint8 -> tuple of two float32
        tensors of shape (3, image_size, image_size), independently augmented.
    """
    return TwoViews(augment_transform(image_size))


def eval_transform(image_size: int):
    """Test-time transform: resize and centre-crop to ``image_size``, then normalise.

    Images of ``LARGE_IMAGE`` px or more follow the ImageNet protocol (shorter side to
    ``image_size * 256 / 224``, centre crop); smaller ones are resized so that the shorter side is
    ``image_size`` (a no-op for 32-px CIFAR images at ``image_size=32``) and centre-cropped.

    Returns
    -------
    callable
        PIL image or ndarray of shape (H, W, 3), dtype uint8 -> float32 tensor of shape
        (3, image_size, image_size).
    """
    from torchvision import transforms as T

    resize = round(image_size * 256 / 224) if image_size >= LARGE_IMAGE else image_size
    return T.Compose([T.Lambda(_to_pil), T.Resize(resize), T.CenterCrop(image_size), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


@functools.lru_cache(maxsize=None)
def _channel_constant(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``values`` as a (1, 3, 1, 1) tensor, made once per device: copying a Python list to a GPU
    waits for the GPU, which a training step would otherwise do at every call."""
    return torch.tensor(values, dtype=dtype, device=device).view(1, 3, 1, 1)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return ((x - _channel_constant(MEAN, x.dtype, x.device))
            / _channel_constant(STD, x.dtype, x.device))


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """The evaluation transform of same-size images, in batch form.

    Parameters
    ----------
    images : Tensor of shape (B, H, W, 3), dtype uint8, on any device

    Returns
    -------
    Tensor of shape (B, 3, H, W), dtype float32, on the same device
    """
    _check_batch(images)
    return _normalize(images.permute(0, 3, 1, 2).float().div_(255.0))


def _check_batch(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Expected a uint8 tensor of shape (B, H, W, 3); got dtype {images.dtype} "
                         f"and shape {tuple(images.shape)}. Keep images as HWC uint8 and batch "
                         "them.")


# --- batched colour operations (the definitions of torchvision.transforms.functional) ---------

def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma of RGB images in [0, 1] with torchvision's weights: (B, 3, H, W) -> (B, 1, H, W)."""
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor.view(-1, 1, 1, 1) * x
            + (1.0 - factor.view(-1, 1, 1, 1)) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image brightness: ``x`` of shape (B, 3, H, W) in [0, 1], ``factor`` of shape (B,)."""
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image contrast: blend with the image's mean gray level."""
    return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image saturation: blend with the image's grayscale version."""
    return _blend(x, _gray(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Per-image hue rotation by ``shift`` (of shape (B,), in [-0.5, 0.5]) turns of the HSV
    wheel."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    # Guarded divisions: grey pixels (delta 0) have hue 0 and saturation 0, as in torchvision.
    safe = torch.where(delta == 0, torch.ones_like(delta), delta)
    sat = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta == 0, torch.zeros_like(hue), hue)
    hue = (hue / 6.0 + 1.0 + shift.view(-1, 1, 1)) % 1.0
    # HSV -> RGB, the vectorised k-formula.
    k = (_channel_constant((5.0, 3.0, 1.0), x.dtype, x.device) + hue.unsqueeze(1) * 6.0) % 6.0
    chroma = (maxc * sat).unsqueeze(1)
    return maxc.unsqueeze(1) - chroma * (torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))


_COLOUR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


# --- the batched augmentation ------------------------------------------------------------

def sample_crops(batch: int, height: int, width: int, generator: torch.Generator | None = None,
                 scale=CROP_SCALE, ratio=CROP_RATIO, attempts: int = 10) -> torch.Tensor:
    """Crop boxes drawn as ``RandomResizedCrop.get_params`` does, for a whole batch.

    Up to ``attempts`` (area, aspect) draws per image; the first that fits wins, and an image
    whose draws all fail falls back to the central crop of the clamped aspect ratio.

    Returns
    -------
    Tensor of shape (batch, 4), dtype int64
        ``(top, left, h, w)`` per image, in pixels.
    """
    area = height * width
    target = area * torch.empty(batch, attempts).uniform_(*scale, generator=generator)
    log_r = torch.empty(batch, attempts).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                  generator=generator)
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(ok.any(1), ok.long().argmax(1), torch.full((batch,), -1))
    rows = torch.arange(batch)
    w, h = w[rows, first.clamp(min=0)], h[rows, first.clamp(min=0)]

    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    fallback = first < 0
    w = torch.where(fallback, torch.full_like(w, fw), w)
    h = torch.where(fallback, torch.full_like(h, fh), h)
    u = torch.rand(batch, 2, generator=generator)
    top = torch.where(fallback, (height - h) // 2, (u[:, 0] * (height - h + 1)).long())
    left = torch.where(fallback, (width - w) // 2, (u[:, 1] * (width - w + 1)).long())
    return torch.stack([top, left, h, w], dim=1)


def sample_augment_params(batch: int, height: int, width: int,
                          generator: torch.Generator | None = None) -> dict:
    """Draw the SupCon augmentation of ``batch`` images (on the CPU; a few numbers per image).

    Returns
    -------
    dict
        ``crops`` (batch, 4) int64 from :func:`sample_crops`; ``flip`` (batch,) bool;
        ``jitter`` (batch,) bool; ``factors`` (batch, 4) float32 brightness, contrast,
        saturation factors and hue shift; ``order`` (batch, 4) int64, a permutation of the four
        colour operations per image; ``gray`` (batch,) bool.
    """
    g = generator
    strengths = torch.tensor([JITTER["brightness"], JITTER["contrast"], JITTER["saturation"],
                              JITTER["hue"]])
    centre = torch.tensor([1.0, 1.0, 1.0, 0.0])
    factors = centre + strengths * (2.0 * torch.rand(batch, 4, generator=g) - 1.0)
    return {
        "crops": sample_crops(batch, height, width, g),
        "flip": torch.rand(batch, generator=g) < 0.5,
        "jitter": torch.rand(batch, generator=g) < JITTER_P,
        "factors": factors,
        "order": torch.argsort(torch.rand(batch, 4, generator=g), dim=1),
        "gray": torch.rand(batch, generator=g) < GRAYSCALE_P,
    }


def resized_crop(x: torch.Tensor, crops: torch.Tensor, flip: torch.Tensor,
                 size: int) -> torch.Tensor:
    """Crop every image to its box, flip where asked, and resize bilinearly to ``size``.

    One ``grid_sample`` for the batch. Sampling positions are those of
    ``F.interpolate(mode="bilinear", align_corners=False)`` applied to the crop, so the result
    equals torchvision's ``resized_crop`` away from the crop's border (at the border this reads
    the neighbouring pixels outside the box instead of repeating the edge pixel).

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W), floating
    crops : Tensor of shape (B, 4), dtype int64
        ``(top, left, h, w)`` in pixels.
    flip : Tensor of shape (B,), dtype bool
    size : int

    Returns
    -------
    Tensor of shape (B, C, size, size)
    """
    b, _, height, width = x.shape
    top, left, h, w = crops.to(device=x.device, dtype=x.dtype).unbind(1)
    sx = w / width * torch.where(flip.to(x.device), -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * left + w) / width - 1.0
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1.0
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def apply_augment(images: torch.Tensor, params: dict, size: int) -> torch.Tensor:
    """Apply drawn augmentation ``params`` to a uint8 batch and normalise.

    Parameters
    ----------
    images : Tensor of shape (B, H, W, 3), dtype uint8, on any device
    params : dict from :func:`sample_augment_params`
    size : int

    Returns
    -------
    Tensor of shape (B, 3, size, size), dtype float32, on the device of ``images``
    """
    _check_batch(images)
    params = _params_to(params, images.device)
    x = resized_crop(images.permute(0, 3, 1, 2).float().div_(255.0), params["crops"],
                     params["flip"], size)
    jitter, factors, order = params["jitter"], params["factors"], params["order"]
    # Per-image random order of the four colour operations, as ColorJitter draws it: at each
    # position every operation applies only to the images that put it there.
    for pos in range(4):
        for op_index, op in enumerate(_COLOUR_OPS):
            sel = jitter & (order[:, pos] == op_index)
            if _host_shortcuts(x):
                # On the CPU the selected images alone: a quarter of the work.
                if sel.any():
                    x[sel] = op(x[sel], factors[sel, op_index])
            else:
                # On a GPU every image, then a select: selecting first would cost a device sync
                # per operation and position (sel.any() and the boolean index), 32 per step.
                x = torch.where(sel.view(-1, 1, 1, 1), op(x, factors[:, op_index]), x)
    gray = params["gray"].view(-1, 1, 1, 1)
    x = torch.where(gray, _gray(x).expand_as(x), x)
    return _normalize(x)


def _host_shortcuts(x: torch.Tensor) -> bool:
    """Whether to take the CPU's path (select, then operate); the GPU path stays correct on a
    CPU, and the tests run it there."""
    return x.device.type == "cpu"


def _params_to(params: dict, device: torch.device) -> dict:
    """The drawn parameters on ``device``, in one pinned non-blocking copy on a GPU (a copy of
    each tensor from pageable memory would wait for the GPU six times per view)."""
    if device.type == "cpu":
        return params
    # float32 holds every value exactly: pixel offsets, bools, permutation indices, factors.
    widths = {key: value[0].numel() for key, value in params.items()}
    packed = torch.cat([value.reshape(len(value), -1).float() for value in params.values()], dim=1)
    packed = packed.pin_memory().to(device, non_blocking=True)
    out, start = {}, 0
    for key, value in params.items():
        out[key] = packed[:, start:start + widths[key]].reshape(value.shape).to(value.dtype)
        start += widths[key]
    return out


class GpuTwoViewAugment:
    """The SupCon two-view augmentation for a batch of uint8 images on any device.

    Parameters
    ----------
    image_size : int
        Side of the square output views.

    Examples
    --------
    >>> aug = GpuTwoViewAugment(32)
    >>> v1, v2 = aug(torch.zeros(8, 32, 32, 3, dtype=torch.uint8))
    >>> tuple(v1.shape)
    (8, 3, 32, 32)
    """

    def __init__(self, image_size: int):
        if image_size < 1:
            raise ValueError("The 'image_size' parameter of GpuTwoViewAugment must be an int >= "
                             f"1. Got {image_size} instead.")
        self.image_size = int(image_size)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """``images`` uint8 (B, H, W, 3) -> two independently augmented float32 (B, 3, S, S) views.

        ``generator`` (a CPU ``torch.Generator``) makes the draws reproducible; the images may
        live on any device.
        """
        _check_batch(images)
        b, h, w, _ = images.shape
        return tuple(apply_augment(images, sample_augment_params(b, h, w, generator),
                                   self.image_size)
                     for _ in range(2))

    def __repr__(self) -> str:
        return f"GpuTwoViewAugment(image_size={self.image_size})"
