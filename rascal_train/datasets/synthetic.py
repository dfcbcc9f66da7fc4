"""The built-in hierarchical synthetic image set: no file, no download, a seed.

A *family* is a coarse class made of several *variants*. Every variant is a distinct
(shape, texture) pair, and shapes and textures are reused across families, so neither alone
names a family. What the variants of one family share is a **two-hue fill**: the shape's
texture alternates two hues, the family's unordered hue pair, with the order drawn per image.
Each hue belongs to several families, so the family cue is a conjunction of colours inside the
shape, not a colour a linear read-out of the image can pick up; colour jitter and grayscale
augmentation weaken it further. A model trained on family labels can therefore solve the task
from the hue pair alone, collapsing variants, or keep the variants' shapes and textures apart:
which one it does is the question the project asks.

Nuisance: position, scale, rotation, texture frequency and phase, colour saturation and
brightness, background hue and gradient, pixel noise. Twelve binary attributes
(``"group::value"``, like CUB's) are drawn per image with per-variant probabilities in
[0.1, 0.9], so they vary within every class and are partly predictable from the variant, and
each is visibly rendered (corner marks, outline, spot, bars, size, brightness, background
stripes, shadow).

Rendering is vectorised in NumPy over images and pixels, in fixed-size chunks; the same seed
gives byte-identical images, and the train and test splits are disjoint random streams over
the same class design.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

SHAPES = ("disk", "square", "triangle", "ring", "cross", "star", "crescent", "ellipse", "hexagon")
TEXTURES = ("stripes", "checker", "dots", "rings", "waves", "halves", "spiral")
ATTRIBUTES = (
    "mark::top_left", "mark::top_right", "mark::bottom_left", "mark::bottom_right",
    "outline::dark", "spot::white", "bar::horizontal", "bar::vertical",
    "size::large", "tone::bright", "background::striped", "shadow::cast",
)
_HUE_NAMES = ("red", "orange", "yellow", "lime", "green", "spring", "cyan", "azure", "blue",
              "violet", "magenta", "rose")
_SPLIT_STREAM = {"train": 1, "test": 2}
_CHUNK = 1024  # images rendered at once: bounded memory, and noise draws independent of size
DEFAULT_SIZE = {"train": 3200, "test": 1600}


@dataclass(frozen=True)
class SyntheticDesign:
    """The class design shared by every split of one seed.

    Attributes
    ----------
    hue_pairs : ndarray of shape (num_families, 2), dtype float64
        The two hues (in [0, 1)) of each family's fill.
    shape : ndarray of shape (num_variants,), dtype int64
        Index into :data:`SHAPES` of each variant; variant ``v`` belongs to family
        ``v // variants_per_family``.
    texture : ndarray of shape (num_variants,), dtype int64
        Index into :data:`TEXTURES`.
    attribute_prob : ndarray of shape (num_variants, 12), dtype float64
        Probability of each attribute given the variant.
    family_names, variant_names : list of str
    """

    hue_pairs: np.ndarray
    shape: np.ndarray
    texture: np.ndarray
    attribute_prob: np.ndarray
    family_names: list
    variant_names: list

    @property
    def variants_per_family(self) -> int:
        return len(self.shape) // len(self.hue_pairs)


def make_design(seed: int = 0, num_families: int = 8,
                variants_per_family: int = 4) -> SyntheticDesign:
    """Draw the families, their variants and the attribute probabilities from ``seed``."""
    if not 2 <= num_families <= 20:
        raise RascalError("The 'num_families' option of the synthetic set must be an int in [2, "
                          f"20]. Got {num_families} instead.")
    if not 1 <= variants_per_family <= len(TEXTURES):
        raise RascalError("The 'variants_per_family' option of the synthetic set must be an int "
                          f"in [1, {len(TEXTURES)}]. Got {variants_per_family} instead.")
    rng = np.random.default_rng([seed, 0])
    n_hues = next(p for p in range(3, 32) if p * (p - 1) // 2 >= num_families)
    hues = (rng.uniform() + np.arange(n_hues) / n_hues) % 1.0
    pairs = np.array(list(combinations(range(n_hues), 2)))[
        rng.permutation(n_hues * (n_hues - 1) // 2)]
    hue_pairs = hues[pairs[:num_families]]

    # Within a family all shapes and all textures differ; across families each (shape,
    # texture) pair is used at most once, so a variant is identified by its look alone.
    used: set = set()
    shape, texture = [], []
    for _ in range(num_families):
        for _attempt in range(1000):
            s = rng.permutation(len(SHAPES))[:variants_per_family]
            t = rng.permutation(len(TEXTURES))[:variants_per_family]
            if not used & set(zip(s.tolist(), t.tolist())):
                break
        else:
            raise RascalError(f"{num_families} synthetic families of {variants_per_family} "
                              f"variants do not fit {len(SHAPES)} shapes x {len(TEXTURES)} "
                              "textures with distinct looks; lower num_families or "
                              "variants_per_family.")
        used |= set(zip(s.tolist(), t.tolist()))
        shape.extend(s.tolist())
        texture.extend(t.tolist())
    attribute_prob = rng.uniform(0.1, 0.9, size=(len(shape), len(ATTRIBUTES)))

    def hue_name(h):
        return _HUE_NAMES[int(np.round(h * 12)) % 12]

    family_names = [f"{hue_name(a)}+{hue_name(b)}" for a, b in hue_pairs]
    variant_names = [f"{family_names[v // variants_per_family]}/{SHAPES[s]}-{TEXTURES[t]}"
                     for v, (s, t) in enumerate(zip(shape, texture))]
    return SyntheticDesign(hue_pairs, np.array(shape), np.array(texture), attribute_prob,
                           family_names, variant_names)


def sample_params(design: SyntheticDesign, variant: np.ndarray, rng: np.random.Generator) -> dict:
    """Draw the attributes and nuisance parameters of one image per entry of ``variant``.

    Returns
    -------
    dict of str to ndarray, each of length ``len(variant)``
        ``attributes`` (bool, shape (n, 12)) and the float nuisance parameters read by
        :func:`render`.
    """
    n = len(variant)
    attrs = rng.uniform(size=(n, len(ATTRIBUTES))) < design.attribute_prob[variant]
    large, bright = (attrs[:, ATTRIBUTES.index("size::large")],
                     attrs[:, ATTRIBUTES.index("tone::bright")])
    jitter = rng.uniform(-0.03, 0.03, size=(n, 2))
    hues = design.hue_pairs[variant // design.variants_per_family] + jitter
    swap = rng.uniform(size=n) < 0.5  # which hue fills the "on" part of the texture
    hues = np.where(swap[:, None], hues[:, ::-1], hues) % 1.0
    return {
        "variant": np.asarray(variant, dtype=np.int64),
        "attributes": attrs,
        "cx": rng.uniform(-0.2, 0.2, n), "cy": rng.uniform(-0.2, 0.2, n),
        "radius": np.where(large, rng.uniform(0.58, 0.72, n), rng.uniform(0.38, 0.5, n)),
        "theta": rng.uniform(0, 2 * np.pi, n),
        "freq": rng.uniform(9.0, 13.0, n), "phase": rng.uniform(0, 2 * np.pi, n),
        "hue_on": hues[:, 0], "hue_off": hues[:, 1],
        "sat": rng.uniform(0.55, 1.0, (n, 2)),
        "val": np.where(bright[:, None], rng.uniform(0.82, 1.0, (n, 2)),
                        rng.uniform(0.45, 0.65, (n, 2))),
        "bg_hue": rng.uniform(0, 1, n), "bg_sat": rng.uniform(0.0, 0.35, n),
        "bg_val": rng.uniform(0.3, 0.75, n), "bg_angle": rng.uniform(0, 2 * np.pi, n),
        "bg_slope": rng.uniform(0.0, 0.25, n), "bar_pos": rng.uniform(-0.6, 0.6, (n, 2)),
        "noise": rng.uniform(0.01, 0.05, n),
    }


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB, inputs of equal shape in [0, 1]; output has a trailing 3."""
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    return v[..., None] - (v * s)[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _shape_distance(kind: int, u, w):
    """Signed distance (in units of the shape radius, negative inside) of shape ``kind``."""
    rho = np.hypot(u, w)
    if SHAPES[kind] == "disk":
        return rho - 0.9
    if SHAPES[kind] == "square":
        return np.maximum(np.abs(u), np.abs(w)) - 0.72
    if SHAPES[kind] in ("triangle", "hexagon"):
        sides, apothem = (3, 0.48) if SHAPES[kind] == "triangle" else (6, 0.8)
        angles = np.pi / 2 + 2 * np.pi * np.arange(sides) / sides
        return np.max([u * np.cos(a) + w * np.sin(a) for a in angles], axis=0) - apothem
    if SHAPES[kind] == "ring":
        return np.abs(rho - 0.66) - 0.26
    if SHAPES[kind] == "cross":
        au, aw = np.abs(u), np.abs(w)
        return np.minimum(np.maximum(au - 0.3, aw - 0.92), np.maximum(au - 0.92, aw - 0.3))
    if SHAPES[kind] == "star":
        return (rho - (0.62 + 0.33 * np.cos(5 * np.arctan2(w, u)))) * 0.6
    if SHAPES[kind] == "crescent":
        return np.maximum(rho - 0.9, 0.72 - np.hypot(u - 0.5, w))
    if SHAPES[kind] == "ellipse":
        return (np.hypot(u / 0.95, w / 0.42) - 1.0) * 0.42
    raise ValueError(kind)


def _texture(kind: int, u, w, freq, phase):
    """Two-tone pattern in [0, 1] (1 = "on" hue) of texture ``kind``; edges softened."""
    name = TEXTURES[kind]
    if name == "stripes":
        wave = np.sin(freq * u + phase)
    elif name == "checker":
        wave = np.sin(0.8 * freq * u + phase) * np.sin(0.8 * freq * w + phase)
    elif name == "dots":
        wave = np.cos(freq * u + phase) + np.cos(freq * w + phase) - 0.8
    elif name == "rings":
        wave = np.sin(freq * np.hypot(u, w) + phase)
    elif name == "waves":
        wave = np.sin(freq * u + 2.0 * np.sin(0.6 * freq * w) + phase)
    elif name == "halves":
        wave = 4.0 * u  # split along the shape's own axis, so it turns with the shape
    else:  # spiral
        wave = np.sin(3.0 * np.arctan2(w, u) + 0.8 * freq * np.hypot(u, w) + phase)
    return np.clip(0.5 + 2.0 * wave, 0.0, 1.0)


def render(design: SyntheticDesign, params: dict, image_size: int = 32,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """Render the images described by ``params`` (from :func:`sample_params`).

    Parameters
    ----------
    design : SyntheticDesign
    params : dict of str to ndarray
    image_size : int, default=32
    rng : numpy Generator, optional
        Source of the pixel noise; ``None`` renders without noise.

    Returns
    -------
    ndarray of shape (n, image_size, image_size, 3), dtype uint8
    """
    n, s = len(params["variant"]), image_size
    f32 = np.float32
    px = f32(2.0 / s)  # one pixel in the [-1, 1] image frame
    grid = ((np.arange(s) + 0.5) * px - 1.0).astype(f32)
    x, y = grid[None, None, :], grid[None, :, None]

    def col(name, j=None):  # per-image scalar -> broadcastable over (n, H, W)
        v = params[name] if j is None else params[name][:, j]
        return np.asarray(v, dtype=f32).reshape(n, 1, 1)

    a = {name: params["attributes"][:, i] for i, name in enumerate(ATTRIBUTES)}
    cos, sin, r = np.cos(col("theta")), np.sin(col("theta")), col("radius")
    dx, dy = x - col("cx"), y - col("cy")
    u, w = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r

    shape_kind = design.shape[params["variant"]]
    tex_kind = design.texture[params["variant"]]
    dist = np.empty((n, s, s), dtype=f32)
    pattern = np.empty((n, s, s), dtype=f32)
    for kind in np.unique(shape_kind):
        m = shape_kind == kind
        dist[m] = _shape_distance(kind, u[m], w[m])
    for kind in np.unique(tex_kind):
        m = tex_kind == kind
        pattern[m] = _texture(kind, u[m], w[m], col("freq")[m], col("phase")[m])

    # Distances in pixels give one-pixel anti-aliased edges at every scale.
    dist *= r / px
    inside = np.clip(f32(0.5) - dist, 0.0, 1.0)

    # Background: a hue whose brightness follows a linear ramp, optionally diagonal stripes.
    # HSV -> RGB is linear in V, so the per-pixel value scales a per-image colour.
    ramp = np.cos(col("bg_angle")) * x + np.sin(col("bg_angle")) * y
    bg_v = col("bg_val") + col("bg_slope") * ramp
    stripes = np.sign(np.sin((x + y) * f32(np.pi / (3 * px)))) * f32(0.14)
    bg_v[a["background::striped"]] += stripes[0]
    bg_rgb = _hsv_to_rgb(params["bg_hue"], params["bg_sat"],
                         np.ones(n)).astype(f32).reshape(n, 1, 1, 3)
    img = np.clip(bg_v, 0.0, 1.0)[..., None] * bg_rgb

    shift = max(2, round(s / 14))
    cast = np.flatnonzero(a["shadow::cast"])
    img[cast, shift:, shift:] *= (1.0 - 0.6 * inside[cast, :-shift, :-shift])[..., None]

    on = _hsv_to_rgb(params["hue_on"], params["sat"][:, 0],
                     params["val"][:, 0]).astype(f32).reshape(n, 1, 1, 3)
    off = _hsv_to_rgb(params["hue_off"], params["sat"][:, 1],
                      params["val"][:, 1]).astype(f32).reshape(n, 1, 1, 3)
    fill = off + (on - off) * pattern[..., None]
    img += (fill - img) * inside[..., None]

    def paint(selected, coverage, value):
        idx = np.flatnonzero(selected)
        img[idx] += (f32(value) - img[idx]) * coverage[idx][..., None]

    paint(a["outline::dark"], np.clip(f32(1.3) - np.abs(dist), 0.0, 1.0), 0.06)
    rho = np.hypot(u, w) * (r / px)
    paint(a["spot::white"],
          np.clip(np.maximum(f32(1.2), f32(0.15) * r / px) + f32(0.5) - rho, 0.0, 1.0), 1.0)
    paint(a["bar::horizontal"], np.clip(f32(1.2) - np.abs(y - col("bar_pos", 0)) / px, 0.0, 1.0),
          0.95)
    paint(a["bar::vertical"], np.clip(f32(1.2) - np.abs(x - col("bar_pos", 1)) / px, 0.0, 1.0),
          0.95)

    # Corner marks: a black square (4 px at 32 px) with a white centre, 1 px from the border.
    side = max(4, round(s / 8))
    inner = slice(1 + side // 4, 1 + side - side // 4)
    for name, (rows, cols) in {"mark::top_left": (0, 0), "mark::top_right": (0, 1),
                               "mark::bottom_left": (1, 0), "mark::bottom_right": (1, 1)}.items():
        idx = np.flatnonzero(a[name])
        sq = np.zeros((s, s), dtype=bool)
        sq[1:1 + side, 1:1 + side] = True
        centre = np.zeros((s, s), dtype=bool)
        centre[inner, inner] = True
        flip = (slice(None, None, -1 if rows else 1), slice(None, None, -1 if cols else 1))
        sq, centre = sq[flip], centre[flip]
        sub = img[idx]
        sub[:, sq] = 0.0
        sub[:, centre] = 1.0
        img[idx] = sub

    if rng is not None:
        img += rng.standard_normal(img.shape, dtype=f32) * col("noise")[..., None]
    return np.clip(np.rint(img * f32(255.0)), 0, 255).astype(np.uint8)


def generate(design: SyntheticDesign, size: int, seed: int = 0, split: str = "train",
             image_size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, variant labels and attributes of one split.

    Variants are balanced (``size // num_variants`` each, the remainder spread over the first
    variants) and shuffled.

    Returns
    -------
    images : ndarray of shape (size, image_size, image_size, 3), dtype uint8
    variant : ndarray of shape (size,), dtype int64
    attributes : ndarray of shape (size, 12), dtype bool
    """
    if split not in _SPLIT_STREAM:
        raise RascalError(f"The synthetic set has splits 'train' and 'test'. Got {split!r} "
                          "instead.")
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    variant = rng.permutation(np.arange(size) % len(design.shape))
    params = sample_params(design, variant, rng)
    images = np.empty((size, image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, size, _CHUNK):
        chunk = {k: v[start:start + _CHUNK] for k, v in params.items()}
        images[start:start + _CHUNK] = render(design, chunk, image_size, rng)
    return images, variant, params["attributes"]


@register_dataset("synthetic")
def synthetic(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
              imbalance: float | None = None, label_noise: float = 0.0, size: int | None = None,
              num_families: int = 8, variants_per_family: int = 4,
              image_size: int = 32) -> HierDataset:
    """The hierarchical synthetic set (levels ``("family", "variant")``, trains on ``family``).

    ``root`` is ignored (nothing is read). ``size`` is the number of training images (default
    3,200); the test split has half as many (default 1,600). ``imbalance`` and ``label_noise``
    apply to the training split at the training level.
    """
    if image_size < 16:
        raise RascalError("The 'image_size' option of the synthetic set must be an int >= 16. Got "
                          f"{image_size} instead.")
    design = make_design(seed, num_families, variants_per_family)
    n = DEFAULT_SIZE.get(split, 0) if size is None else (size if split == "train"
                                                         else max(size // 2, 1))
    images, variant, attributes = generate(design, n, seed, split, image_size)
    ds = HierDataset(
        name="synthetic", split=split, levels=("family", "variant"),
        labels={"family": variant // variants_per_family, "variant": variant},
        class_names={"family": list(design.family_names), "variant": list(design.variant_names)},
        train_level=label_level or "family", images=images, attributes=attributes,
        attribute_names=list(ATTRIBUTES),
        meta={"seed": seed, "num_families": num_families,
              "variants_per_family": variants_per_family, "image_size": image_size},
    )
    return apply_train_options(ds, imbalance, label_noise, seed)
