"""Corruptions: the published definitions restated, the CIFAR-C and ImageNet-C file layouts."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from rascal_train.corruptions import (
    CORRUPTIONS, EXTRA_CORRUPTIONS, clipped_zoom, corrupt, disk_kernel, hsv_to_rgb,
    motion_blur_batch, rgb_to_hsv,
)
from rascal_train.datasets.corrupted import (
    corrupted_test_sets, imagenet_c_files, imagenet_c_transform, load_cifar_c,
)
from rascal_train.errors import RascalError
from rascal_train.transforms import MEAN, STD

# The published severities of these trade one strength for another (glass: blur vs shuffle;
# elastic: affine vs displacement; frost: image weight vs frost weight; saturate: down then up).
NOT_MONOTONE = {"glass_blur", "elastic_transform", "frost", "saturate"}
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur",
          "motion_blur", "snow", "frost", "fog", "elastic_transform"}


@pytest.fixture(scope="module")
def images():
    # smooth structure plus pixel noise (so blurs and zooms change them), and a flat mid-grey image
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([np.sin(6 * xx + p) * np.cos(4 * yy - p)
                     for p in rng.uniform(0, 6, 8)])[..., None]
    imgs = (127.5 + 60 * base * rng.uniform(0.4, 1.0, (8, 1, 1, 3))
            + rng.normal(0, 12, (8, 32, 32, 3)))
    imgs = np.clip(imgs, 0, 255).astype(np.uint8)
    imgs[0] = 128
    return imgs


@pytest.mark.parametrize("name", CORRUPTIONS + EXTRA_CORRUPTIONS)
def test_every_corruption_is_deterministic_and_grows_with_severity(images, name):
    mild, severe = corrupt(images, name, 1, seed=5), corrupt(images, name, 5, seed=5)
    assert mild.shape == images.shape and mild.dtype == np.uint8
    np.testing.assert_array_equal(mild, corrupt(images, name, 1, seed=5))
    assert np.array_equal(mild, corrupt(images, name, 1, seed=6)) == (name not in RANDOM)
    dist = [np.abs(x.astype(float) - images).mean() for x in (mild, severe)]
    assert dist[0] > 1.0 and dist[1] > 1.0, dist
    assert dist[1] > dist[0] or name in NOT_MONOTONE, dist


def test_noises_have_the_published_strength(images):
    grey = np.full((64, 32, 32, 3), 128, dtype=np.uint8)
    # sd 0.10, truncation lowers the mean by ~0.5/255
    x = corrupt(grey, "gaussian_noise", 5).astype(float) / 255
    assert abs(x.std() - 0.10) < 0.003 and abs(x.mean() - (128 - 0.5) / 255) < 0.002
    imp = corrupt(grey, "impulse_noise", 5)
    changed = imp != 128
    assert abs(changed.mean() - 0.07) < 0.005 and set(np.unique(imp[changed])) == {0, 255}
    shot = corrupt(grey, "shot_noise", 5).astype(float) / 255  # Poisson(50 p)/50: sd sqrt(p/50)
    assert abs(shot.std() - np.sqrt(128 / 255 / 50)) < 0.004


def test_colour_corruptions_against_float64_restatements(images):
    x = images.astype(np.float64) / 255
    for s, c in enumerate([0.75, 0.5, 0.4, 0.3, 0.15], start=1):
        ref = (x - x.mean(axis=(1, 2), keepdims=True)) * c + x.mean(axis=(1, 2), keepdims=True)
        np.testing.assert_array_equal(corrupt(images, "contrast", s),
                                      (np.clip(ref, 0, 1) * 255).astype(np.uint8))
    # brightness on grey pixels adds c to the value channel
    grey = np.full((1, 4, 4, 3), 100, dtype=np.uint8)
    assert (corrupt(grey, "brightness", 5) == int((100 / 255 + 0.3) * 255)).all()
    # HSV round trip and matplotlib's reference conversion
    from matplotlib.colors import rgb_to_hsv as mpl_rgb_to_hsv
    np.testing.assert_allclose(rgb_to_hsv(x), mpl_rgb_to_hsv(x), atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-12)


def test_pil_corruptions_equal_pillow(images):
    img = Image.fromarray(images[3])
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=40)
    np.testing.assert_array_equal(corrupt(images[3:4], "jpeg_compression", 5)[0],
                                  np.asarray(Image.open(buf)))
    small = img.resize((20, 20), Image.BOX).resize((32, 32), Image.BOX)  # int(32 * 0.65) = 20
    np.testing.assert_array_equal(corrupt(images[3:4], "pixelate", 5)[0], np.asarray(small))


def test_blur_kernels_and_zoom(images):
    # radius 1.5 holds the 3x3 block (corners at distance 1.41); alias 0.1 leaks e^-50 beyond it
    k = disk_kernel(1.5, 0.1)
    assert k.shape == (3, 3) and abs(k.sum() - 1) < 1e-12 and np.allclose(k, 1 / 9, atol=1e-12)
    # a wider alias blur spreads the disk by one pixel: 3-tap Gaussian [a, b, a] per axis
    k = disk_kernel(1.0, 0.5)
    t = np.exp(-np.array([1.0, 0.0, 1.0]) / 0.5)
    t /= t.sum()
    plus = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]]) / 5.0
    ref = ndimage.correlate(np.pad(plus, 1), np.outer(t, t), mode="constant")
    assert k.shape == (5, 5) and abs(k.sum() - 1) < 1e-12
    np.testing.assert_allclose(k, ref, atol=1e-12)
    # a horizontal motion blur (angle 0) of a column impulse
    # spreads it to the right with Gaussian taps
    x = np.zeros((1, 9, 9, 1))
    x[0, :, 2] = 1.0
    out = motion_blur_batch(x, 2, 1.0, np.array([0.0]))
    w = np.exp(-np.arange(5) ** 2 / 2.0)
    np.testing.assert_allclose(out[0, 4, 2:7, 0], w / w.sum(), atol=1e-12)
    # zoom about the centre equals scipy.ndimage.zoom (order 1) of
    # the central crop, for several factors
    y = images[:2].astype(float)
    for factor in (2.0, 1.13, 1.25):
        ch = int(np.ceil(32 / factor))
        top = (32 - ch) // 2
        ref = ndimage.zoom(y[:, top:top + ch, top:top + ch], (1, factor, factor, 1), order=1)
        trim = (ref.shape[1] - 32) // 2
        np.testing.assert_allclose(clipped_zoom(y, factor), ref[:, trim:trim + 32, trim:trim + 32],
                                   atol=1e-9)


def test_glass_blur_copies_up_left_neighbours_as_the_reference_does():
    # Severity 1: sigma 0.05 (the blur leaves a one-pixel impulse untouched), one pass, offsets in
    # {-1, 0}^2. Positions are visited bottom-right first, so a bright pixel at (10, 10) can only be
    # copied into (10..11, 10..11), each of the three others with probability 1/4.
    x = np.zeros((400, 32, 32, 3), dtype=np.uint8)
    x[:, 10, 10] = 255
    out = corrupt(x, "glass_blur", 1, seed=0)
    bright = out[..., 0] > 128
    assert not bright[:, :10].any() and not bright[:, 12:].any()
    assert not bright[:, :, :10].any() and not bright[:, :, 12:].any()
    for pos in [(10, 11), (11, 10), (11, 11)]:
        assert abs(bright[:, pos[0], pos[1]].mean() - 0.25) < 0.07  # binomial sd 0.022
    assert abs(bright[:, 10, 10].mean() - 0.25) < 0.07  # stays only if its own offset is (0, 0)


def test_cifar_c_files_are_read_by_severity_blocks(tmp_path, images):
    data = (np.repeat(np.arange(5, dtype=np.uint8), 4)[:, None, None, None]
            * np.ones((1, 32, 32, 3), np.uint8))
    np.save(tmp_path / "fog.npy", data)
    np.save(tmp_path / "labels.npy", np.tile(np.arange(4, dtype=np.uint8), 5))
    imgs, labels = load_cifar_c(tmp_path, "fog", 3)
    assert (imgs == 2).all() and imgs.shape == (4, 32, 32, 3) and labels.tolist() == [0, 1, 2, 3]
    sets = list(corrupted_test_sets(images[:4], np.arange(4), root=tmp_path,
                                    corruptions=("fog", "contrast"), severities=(2,)))
    assert [(s["corruption"], s["source"]) for s in sets] == [("fog", "file"),
                                                              ("contrast", "generated")]
    assert (sets[0]["images"] == 1).all()
    with pytest.raises(RascalError, match=r"has no snow\.npy; download CIFAR-100-C"):
        load_cifar_c(tmp_path, "snow", 1)


def test_imagenet_c_layout(tmp_path):
    for wnid in ("n01440764", "n01443537"):
        d = tmp_path / "fog" / "3" / wnid
        d.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(d / "ILSVRC2012_val_0001.JPEG")
    files = imagenet_c_files(tmp_path, "fog", 3)
    assert ([w for _, w in files] == ["n01440764", "n01443537"]
            and all(p.is_file() for p, _ in files))
    with pytest.raises(RascalError, match="has no fog/4/"):
        imagenet_c_files(tmp_path, "fog", 4)


def test_imagenet_c_transform_does_not_crop_again():
    # A 128-px image (the eval transform's resize-then-crop protocol size) passes through unchanged
    # except for normalisation: ImageNet-C images are already centre crops.
    image = np.random.default_rng(7).integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    got = imagenet_c_transform(128)(Image.fromarray(image)).numpy()
    expected = ((image / 255.0 - np.array(MEAN)) / np.array(STD)).transpose(2, 0, 1)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_unknown_corruption():
    with pytest.raises(RascalError, match="Unknown corruption"):
        corrupt(np.zeros((1, 8, 8, 3), np.uint8), "rain", 1)
