"""The built-in synthetic set: determinism, hierarchy, attributes, options, rendering."""

import numpy as np
import pytest

from rascal_train.datasets import get_dataset
from rascal_train.datasets.synthetic import (ATTRIBUTES, SHAPES, TEXTURES, make_design, render,
                                             sample_params)
from rascal_train.errors import RascalError


@pytest.fixture(scope="module")
def train():
    return get_dataset("synthetic", split="train", size=640, seed=3)


def test_same_seed_gives_byte_identical_images(train):
    again = get_dataset("synthetic", split="train", size=640, seed=3)
    assert again.images.tobytes() == train.images.tobytes()
    np.testing.assert_array_equal(again.attributes, train.attributes)
    other = get_dataset("synthetic", split="train", size=640, seed=4)
    assert np.mean(other.images != train.images) > 0.5


def test_train_and_test_are_disjoint_draws(train):
    test = get_dataset("synthetic", split="test", size=640, seed=3)
    assert len(test) == 320 and test.class_names == train.class_names
    train_rows = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in train_rows for img in test.images)


def test_hierarchy_is_consistent(train):
    assert train.levels == ("family", "variant") and train.train_level == "family"
    fam, var = train.labels["family"], train.labels["variant"]
    np.testing.assert_array_equal(fam, var // 4)
    assert len(train.class_names["family"]) == 8 and len(train.class_names["variant"]) == 32
    # balanced over variants, every variant present
    np.testing.assert_array_equal(np.bincount(var, minlength=32), np.full(32, 20))
    for v, name in enumerate(train.class_names["variant"]):
        assert name.startswith(train.class_names["family"][v // 4] + "/")
    np.testing.assert_array_equal(train.targets, fam)
    np.testing.assert_array_equal(train.ids, np.arange(640))
    assert train.images.shape == (640, 32, 32, 3) and train.images.dtype == np.uint8


def test_variants_of_a_family_look_different_and_looks_are_unique():
    d = make_design(seed=0, num_families=8, variants_per_family=4)
    looks = list(zip(d.shape.tolist(), d.texture.tolist()))
    assert len(set(looks)) == 32
    for f in range(8):
        assert len(set(d.shape[4 * f:4 * f + 4])) == 4 and len(set(d.texture[4 * f:4 * f + 4])) == 4
    # the family cue: distinct unordered hue pairs, each hue shared by several families
    pairs = {tuple(sorted(np.round(p, 6))) for p in d.hue_pairs}
    assert len(pairs) == 8
    hues, counts = np.unique(np.round(d.hue_pairs, 6), return_counts=True)
    assert counts.max() >= 2


def test_attributes_vary_within_classes_and_follow_the_variant(train):
    attrs, var = train.attributes, train.labels["variant"]
    assert attrs.shape == (640, 12) and attrs.dtype == bool
    assert train.attribute_names == list(ATTRIBUTES) and all("::" in n for n in ATTRIBUTES)
    rates = np.stack([attrs[var == v].mean(0) for v in range(32)])
    # within a variant most attributes take both values
    assert np.mean((rates > 0) & (rates < 1)) > 0.9
    # and their rates track the per-variant probabilities of the design
    prob = make_design(seed=3).attribute_prob
    assert np.corrcoef(rates.ravel(), prob.ravel())[0, 1] > 0.7


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_every_attribute_is_visible(attribute):
    d = make_design(seed=1)
    params = sample_params(d, np.arange(32), np.random.default_rng(0))
    params["attributes"][:] = False
    params["val"] = np.full_like(params["val"], 0.5)
    off = render(d, params)
    params["attributes"][:, ATTRIBUTES.index(attribute)] = True
    if attribute == "size::large":
        params["radius"] = params["radius"] + 0.2  # the sampler ties size to this attribute
    if attribute == "tone::bright":
        params["val"] = np.full_like(params["val"], 0.95)
    on = render(d, params)
    changed = np.abs(on.astype(int) - off.astype(int)).max(axis=3) > 20
    assert changed.reshape(32, -1).sum(1).min() >= 4


def test_every_shape_and_texture_renders_inside_the_image():
    d = make_design(seed=2, num_families=12, variants_per_family=4)
    assert set(d.shape) == set(range(len(SHAPES))) and set(d.texture) == set(range(len(TEXTURES)))
    params = sample_params(d, np.arange(48), np.random.default_rng(0))
    params["attributes"][:] = False
    img = render(d, params, image_size=48)
    assert img.shape == (48, 48, 48, 3)
    # the two-hue fill differs from a plain background on every image
    assert (img.reshape(48, -1, 3).std(1).max(1) > 10).all()


def test_long_tail_and_label_noise_change_the_training_split_only():
    lt = get_dataset("synthetic", split="train", size=1600, imbalance=10, seed=0)
    counts = np.bincount(lt.labels["family"], minlength=8)
    expected = [int(200 * 0.1 ** (i / 7)) for i in range(8)]
    np.testing.assert_array_equal(counts, expected)
    assert lt.meta["imbalance"] == 10 and len(lt.ids) == sum(expected)
    np.testing.assert_array_equal(lt.ids, np.arange(sum(expected)))

    noisy = get_dataset("synthetic", split="train", size=800, label_noise=0.25, seed=0)
    wrong = noisy.targets != noisy.labels["family"]
    assert wrong.sum() == 200 and noisy.meta["noise_rate"] == 0.25
    test = get_dataset("synthetic", split="test", size=800, label_noise=0.25, imbalance=10)
    assert test.noisy_targets is None and len(test) == 400


def test_variant_level_trains_and_bad_options_raise():
    ds = get_dataset("synthetic", split="test", size=64, label_level="variant")
    assert ds.num_classes == 32 and ds[0][1] == ds.labels["variant"][0]
    with pytest.raises(RascalError, match="label level 'species'"):
        get_dataset("synthetic", size=64, label_level="species")
    with pytest.raises(RascalError, match="variants_per_family"):
        get_dataset("synthetic", size=64, variants_per_family=9)
    with pytest.raises(RascalError, match="splits 'train' and 'test'"):
        get_dataset("synthetic", split="val", size=64)
