"""Real loaders on tiny fixtures written in the official formats, plus the shared LT/noise code."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rascal_train.datasets import get_dataset, list_datasets
from rascal_train.datasets.cars import make_of
from rascal_train.datasets.longtail import lt_counts, lt_indices, shot_groups, symmetric_noise
from rascal_train.errors import RascalError


def _jpeg(path, size=(40, 30), colour=(200, 30, 30), banner=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[:] = colour
    if banner:
        arr[-banner:] = (20, 20, 220)
    Image.fromarray(arr).save(path, quality=95)


def test_every_loader_is_registered():
    assert set(list_datasets()) >= {"synthetic", "cifar100", "cifar100_lt", "aircraft", "cub",
                                    "cars", "imagefolder", "inat"}


# --- shared long-tail and noise ----------------------------------------------------------------

def test_lt_profile_matches_published_cifar100_lt_sizes():
    # The training-set sizes reported for CIFAR-100-LT (Cao et al. 2019 and later work).
    assert lt_counts(100, 500, 100).sum() == 10847
    assert lt_counts(100, 500, 50).sum() == 12608
    assert lt_counts(100, 500, 10).sum() == 19573
    c = lt_counts(100, 500, 100)
    assert c[0] == 500 and c[-1] == 5 and (np.diff(c) <= 0).all()
    with pytest.raises(RascalError, match="imbalance factor"):
        lt_counts(10, 500, 0.5)


def test_lt_indices_keep_the_first_of_a_seeded_shuffle():
    targets = np.repeat(np.arange(4), 10)
    idx = lt_indices(targets, 4, imbalance=10, seed=5)
    np.testing.assert_array_equal(np.bincount(targets[idx], minlength=4), [10, 4, 2, 1])
    order = np.random.default_rng(5).permutation(40)
    assert set(idx[targets[idx] == 1]) == set(order[targets[order] == 1][:4])


def test_shot_group_thresholds():
    targets = np.repeat(np.arange(5), [101, 100, 20, 19, 0])
    assert shot_groups(targets, 5).tolist() == ["many", "medium", "medium", "few", "few"]


def test_symmetric_noise_is_exact_and_uniform_over_other_classes():
    targets = np.zeros(20000, dtype=np.int64)
    noisy = symmetric_noise(targets, 5, 0.4, seed=0)
    assert (noisy != targets).sum() == 8000
    counts = np.bincount(noisy[noisy != 0], minlength=5)[1:]
    assert counts.min() > 1850 and counts.max() < 2150  # 2000 each, sd ~ 39
    np.testing.assert_array_equal(noisy, symmetric_noise(targets, 5, 0.4, seed=0))
    assert (targets == 0).all()  # input untouched
    with pytest.raises(RascalError, match="label-noise rate"):
        symmetric_noise(targets, 5, 1.0)


# --- CIFAR-100 ---------------------------------------------------------------------------------

def _cifar_fixture(root, bytes_keys=True, per_class=5):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
    fine = np.repeat(np.arange(100), per_class)
    for split in ("train", "test"):
        data = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
        obj = {k("data"): data, k("fine_labels"): fine.tolist(),
               k("coarse_labels"): (fine // 5).tolist(),
               k("filenames"): [k(f"img_{i}.png") for i in range(len(fine))],
               k("batch_label"): k(split)}
        with open(base / split, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    meta = {k("fine_label_names"): [k(f"fine {i}") for i in range(100)],
            k("coarse_label_names"): [k(f"coarse_{i}") for i in range(20)]}
    with open(base / "meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return base


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar100_reads_planes_labels_and_names(tmp_path, bytes_keys):
    base = _cifar_fixture(tmp_path, bytes_keys)
    with open(base / "train", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    data = raw[b"data" if bytes_keys else "data"]
    ds = get_dataset("cifar100", root=tmp_path, split="train")
    assert ds.levels == ("coarse", "fine") and ds.train_level == "fine" and ds.num_classes == 100
    assert ds.images.shape == (500, 32, 32, 3)
    # pixel (row 2, col 7) of image 3: R, G, B planes of 1024 values each
    np.testing.assert_array_equal(ds.images[3, 2, 7],
                                  data[3, [2 * 32 + 7, 1024 + 2 * 32 + 7, 2048 + 2 * 32 + 7]])
    np.testing.assert_array_equal(ds.labels["coarse"], ds.labels["fine"] // 5)
    assert ds.class_names["fine"][1] == "fine 1" and ds.class_names["coarse"][19] == "coarse_19"
    coarse = get_dataset("cifar100", root=tmp_path / "cifar-100-python", split="test",
                         label_level="coarse")
    assert coarse.num_classes == 20 and coarse[0][1] == coarse.labels["coarse"][0]


def test_cifar100_lt_and_noise(tmp_path):
    _cifar_fixture(tmp_path)
    lt = get_dataset("cifar100_lt", root=tmp_path, imbalance=5, label_noise=0.2, seed=1)
    np.testing.assert_array_equal(np.bincount(lt.labels["fine"], minlength=100),
                                  lt_counts(100, 5, 5))
    assert (lt.name == "cifar100_lt"
            and (lt.targets != lt.labels["fine"]).sum() == round(0.2 * len(lt)))
    assert len(get_dataset("cifar100_lt", root=tmp_path, split="test")) == 500


def test_cifar100_errors(tmp_path):
    with pytest.raises(RascalError, match=r"no cifar-100-python/train; download.*cs.toronto.edu"):
        get_dataset("cifar100", root=tmp_path)
    base = _cifar_fixture(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with open(base / "train", "wb") as fh:
        pickle.dump({"data": Evil()}, fh)
    with pytest.raises(RascalError, match="is not a CIFAR-100 pickle"):
        get_dataset("cifar100", root=tmp_path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar100_matches_torchvision(tmp_path, monkeypatch, split):
    import torchvision.datasets.cifar as tv_cifar

    _cifar_fixture(tmp_path, bytes_keys=False)
    # The fixture's md5 sums are not the release's: bypass only
    # the checksum, as torchvision's tests do.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    theirs = tv_cifar.CIFAR100(tmp_path, train=split == "train")
    ours = get_dataset("cifar100", root=tmp_path, split=split)
    np.testing.assert_array_equal(ours.images, theirs.data)
    assert (ours.labels["fine"].tolist() == theirs.targets
            and ours.class_names["fine"] == theirs.classes)
    with open(tmp_path / "cifar-100-python" / split, "rb") as fh:  # torchvision has no coarse level
        assert ours.labels["coarse"].tolist() == pickle.load(fh, encoding="latin1")["coarse_labels"]


def test_cifar100_without_coarse_labels_is_one_line(tmp_path):
    # torchvision's own CIFAR-100 fixture (and some re-packaged copies) carry only fine labels.
    base = _cifar_fixture(tmp_path, bytes_keys=False)
    with open(base / "train", "rb") as fh:
        obj = pickle.load(fh)
    del obj["coarse_labels"]
    with open(base / "train", "wb") as fh:
        pickle.dump(obj, fh)
    with pytest.raises(RascalError,
                       match=r"^\S+train has no 'coarse_labels' key \(it has batch_label, data, "
                                          r"filenames, fine_labels\); .*cs.toronto.edu[^\n]*$"):
        get_dataset("cifar100", root=tmp_path)


# --- FGVC-Aircraft ------------------------------------------------------------------------------

# (image id, manufacturer, family, variant) as the release's hierarchy places each variant
# (variants.txt, families.txt, manufacturers.txt of fgvc-aircraft-2013b); labels with spaces
# and slashes, as the release has them.
AIRCRAFT_ROWS = [("0034309", "Boeing", "Boeing 737", "737-700"),
                 ("1514522", "Cessna", "Cessna 172", "Cessna 172"),
                 ("0062781", "McDonnell Douglas", "F/A-18", "F/A-18"),
                 ("0711208", "Boeing", "Boeing 737", "737-800"),
                 ("1049278", "de Havilland", "DHC-1", "DHC-1"),
                 ("2215790", "Airbus", "A320", "A320")]
AIRCRAFT_LEVELS = {"manufacturer": ("manufacturers.txt", 1), "family": ("families.txt", 2),
                   "variant": ("variants.txt", 3)}


def _aircraft_fixture(root, split="trainval", order=None):
    """The release's layout; ``order`` maps a level to a permutation of its image-list lines."""
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for level, (names_file, col) in AIRCRAFT_LEVELS.items():
        (data / names_file).write_text("\n".join(sorted({r[col] for r in AIRCRAFT_ROWS})) + "\n")
        rows = [AIRCRAFT_ROWS[i] for i in (order or {}).get(level, range(len(AIRCRAFT_ROWS)))]
        (data / f"images_{level}_{split}.txt").write_text(
            "".join(f"{r[0]} {r[col]}\n" for r in rows))
    for i, r in enumerate(AIRCRAFT_ROWS):
        _jpeg(data / "images" / f"{r[0]}.jpg", size=(40, 50), colour=(200, 10 * i, 30), banner=20)
    return data


def test_aircraft_three_levels_labels_with_spaces_and_banner_crop(tmp_path):
    _aircraft_fixture(tmp_path)
    ds = get_dataset("aircraft", root=tmp_path, split="trainval")
    assert ds.levels == ("manufacturer", "family", "variant") and ds.train_level == "variant"
    for level, (_, col) in AIRCRAFT_LEVELS.items():
        assert ([ds.class_names[level][v] for v in ds.labels[level]]
                == [r[col] for r in AIRCRAFT_ROWS])
    img = np.asarray(ds.raw_image(0))
    assert img.shape == (30, 40, 3)
    assert img[..., 0].min() > 150 and img[..., 2].max() < 90  # the blue banner is gone
    with pytest.raises(RascalError, match=r"images_manufacturer_test.txt; download FGVC-Aircraft"):
        get_dataset("aircraft", root=tmp_path, split="test")
    with pytest.raises(RascalError, match=r"no fgvc-aircraft-2013b/data/variants.txt"):
        get_dataset("aircraft", root=tmp_path / "nowhere")


@pytest.mark.parametrize("level", ["variant", "family", "manufacturer"])
def test_aircraft_matches_torchvision_at_each_annotation_level(tmp_path, level):
    from torchvision.datasets import FGVCAircraft

    _aircraft_fixture(tmp_path)
    ours = get_dataset("aircraft", root=tmp_path, split="trainval", label_level=level)
    theirs = FGVCAircraft(tmp_path, split="trainval", annotation_level=level)
    assert len(ours) == len(theirs) == len(AIRCRAFT_ROWS)
    assert ours.class_names[level] == theirs.classes
    assert ours.load_image.paths == theirs._image_files
    assert ours.targets.tolist() == theirs._labels
    for i in range(len(ours)):
        image, label = theirs[i]
        assert label == ours[i][1]
        # banner cropped
        np.testing.assert_array_equal(np.asarray(ours.raw_image(i)), np.asarray(image)[:-20])


def test_aircraft_joins_levels_by_image_id_not_line_order(tmp_path):
    from torchvision.datasets import FGVCAircraft

    _aircraft_fixture(tmp_path,
                      order={"manufacturer": [5, 4, 3, 2, 1, 0], "family": [2, 0, 5, 1, 4, 3]})
    ds = get_dataset("aircraft", root=tmp_path, split="trainval")
    for level, (_, col) in AIRCRAFT_LEVELS.items():
        assert ([ds.class_names[level][v] for v in ds.labels[level]]
                == [r[col] for r in AIRCRAFT_ROWS])
        theirs = FGVCAircraft(tmp_path, split="trainval", annotation_level=level)
        by_file = dict(zip(theirs._image_files, theirs._labels))
        assert [by_file[p] for p in ds.load_image.paths] == ds.labels[level].tolist()
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    (data / "images_family_trainval.txt").write_text("0034309 Boeing 737\n")
    with pytest.raises(RascalError,
                       match=r"images_family_trainval.txt has no line for image 1514522"):
        get_dataset("aircraft", root=tmp_path, split="trainval")


# --- CUB-200-2011 ---------------------------------------------------------------------------------

def _cub_fixture(tmp_path, names_beside=True):
    base = tmp_path / "CUB_200_2011"
    imgs = ["001.Black_footed_Albatross/a.jpg", "001.Black_footed_Albatross/b.jpg",
            "002.Laysan_Albatross/c.jpg", "002.Laysan_Albatross/d.jpg"]
    for p in imgs:
        _jpeg(base / "images" / p, size=(60, 40))
    (base / "images.txt").write_text("".join(f"{i + 1} {p}\n" for i, p in enumerate(imgs)))
    (base / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n4 2\n")
    (base / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n4 0\n")
    (base / "classes.txt").write_text("1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n")
    (base / "bounding_boxes.txt").write_text("1 10.0 5.0 20.0 30.0\n2 0 0 60 40\n"
                                             "3 1 2 3 4\n4 5 5 10 10\n")
    names = ("1 has_bill_shape::curved_(up_or_down)\n2 has_bill_shape::dagger\n"
             "3 has_wing_color::blue\n")
    (base / "attributes").mkdir()
    (tmp_path / "attributes.txt" if names_beside
     else base / "attributes" / "attributes.txt").write_text(names)
    lines = []
    present = {(1, 1): (1, 4), (1, 3): (1, 3), (3, 2): (1, 2), (2, 2): (1, 4), (4, 3): (0, 1)}
    for i in range(1, 5):
        for a in range(1, 4):
            p, c = present.get((i, a), (0, 1))
            extra = " 0 extra" if (i + a) % 2 else ""  # some lines carry extra fields
            lines.append(f"{i} {a} {p} {c} 12.5{extra}\n")
    (base / "attributes" / "image_attribute_labels.txt").write_text("".join(lines))


@pytest.mark.parametrize("names_beside", [True, False])
def test_cub_attributes_certainties_and_split(tmp_path, names_beside):
    _cub_fixture(tmp_path, names_beside)
    train = get_dataset("cub", root=tmp_path, split="train")
    assert (train.levels == ("class",) and len(train) == 2
            and train.labels["class"].tolist() == [0, 1])
    assert train.attribute_names == ["has_bill_shape::curved_(up_or_down)",
                                     "has_bill_shape::dagger", "has_wing_color::blue"]
    np.testing.assert_array_equal(train.attributes, [[1, 0, 1], [0, 1, 0]])  # images 1 and 3
    np.testing.assert_array_equal(train.meta["attribute_certainty"], [[4, 1, 3], [1, 2, 1]])
    test = get_dataset("cub", root=tmp_path / "CUB_200_2011", split="test", bbox_crop=True)
    np.testing.assert_array_equal(test.attributes, [[0, 1, 0], [0, 0, 0]])
    assert test.raw_image(1).size == (10, 10) and test.raw_image(0).size == (60, 40)
    assert test.class_names["class"] == ["001.Black_footed_Albatross", "002.Laysan_Albatross"]


def test_cub_errors(tmp_path):
    with pytest.raises(RascalError,
                       match=r"no CUB_200_2011/images.txt; download CUB_200_2011 from"):
        get_dataset("cub", root=tmp_path)
    _cub_fixture(tmp_path)
    (tmp_path / "attributes.txt").unlink()
    with pytest.raises(RascalError, match="no attributes.txt beside"):
        get_dataset("cub", root=tmp_path)
    (tmp_path / "CUB_200_2011" / "bounding_boxes.txt").unlink()
    with pytest.raises(RascalError, match="no .*bounding_boxes.txt; download CUB-200-2011"):
        get_dataset("cub", root=tmp_path, bbox_crop=True)


# --- Stanford Cars ------------------------------------------------------------------------------

CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012",
             "Aston Martin V8 Vantage Convertible 2012", "Land Rover Range Rover SUV 2012",
             "Land Rover LR2 SUV 2012"]


def _cars_fixture(tmp_path):
    from scipy.io import savemat

    base = tmp_path / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat",
            {"class_names": np.array(CAR_NAMES, dtype=object)[None]})
    dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"),
             ("fname", "O")]
    for split, classes in (("train", [1, 3, 4, 5, 3]), ("test", [2, 4])):
        annos = np.zeros((1, len(classes)), dtype=dtype)
        for j, c in enumerate(classes):
            fname = f"{j + 1:05d}.jpg"
            annos[0, j] = (np.uint8(2), np.uint8(3), np.uint8(12), np.uint8(9), np.uint8(c), fname)
            _jpeg(base / f"cars_{split}" / fname, size=(30, 20))
        path = (base / "devkit" / "cars_train_annos.mat" if split == "train"
                else base / "cars_test_annos_withlabels.mat")
        savemat(path, {"annotations": annos})


def test_cars_makes_from_multiword_list(tmp_path):
    _cars_fixture(tmp_path)
    ds = get_dataset("cars", root=tmp_path, split="train")
    assert ds.levels == ("make", "model") and ds.class_names["model"] == CAR_NAMES
    assert ds.class_names["make"] == ["AM General", "Acura", "Aston Martin", "Land Rover"]
    assert ds.labels["model"].tolist() == [0, 2, 3, 4, 2]
    assert [ds.class_names["make"][m] for m in ds.labels["make"]] == \
        ["AM General", "Aston Martin", "Land Rover", "Land Rover", "Aston Martin"]
    assert ds.raw_image(0).size == (30, 20)
    test = get_dataset("cars", root=tmp_path / "stanford_cars", split="test", bbox_crop=True)
    assert test.labels["model"].tolist() == [1, 3] and test.raw_image(0).size == (10, 6)
    assert (make_of("Mercedes-Benz S-Class Sedan 2012") == "Mercedes-Benz"
            and make_of("Zonda X 2020") == "Zonda")
    with pytest.raises(RascalError, match=r"no stanford_cars/devkit; download stanford_cars"):
        get_dataset("cars", root=tmp_path / "empty")


def test_cars_matches_torchvision_and_the_published_make_list(tmp_path):
    from scipy.io import savemat
    from torchvision.datasets import StanfordCars

    from rascal_train.datasets.cars import MAKES

    published = (Path(__file__).parent / "data"
                 / "stanford_cars_class_names.txt").read_text().splitlines()
    _cars_fixture(tmp_path)
    savemat(tmp_path / "stanford_cars" / "devkit" / "cars_meta.mat",
            {"class_names": np.array(published, dtype=object)[None]})
    for split in ("train", "test"):
        ours, theirs = (get_dataset("cars", root=tmp_path, split=split),
                        StanfordCars(tmp_path, split=split))
        assert ours.class_names["model"] == theirs.classes
        assert ours.load_image.paths == [p for p, _ in theirs._samples]
        assert ours.labels["model"].tolist() == [int(t) for _, t in theirs._samples]
        np.testing.assert_array_equal(np.asarray(ours.raw_image(1)), np.asarray(theirs[1][0]))
    # The make level exists only here: every one of the 196 published classes gets one of the 49
    # makes, which is how its name begins.
    ds = get_dataset("cars", root=tmp_path, split="train")
    assert len(ds.class_names["model"]) == 196 and ds.class_names["make"] == sorted(MAKES)
    for name in published:
        assert name.startswith(make_of(name) + " ")
    assert make_of("Dodge Ram Pickup 3500 Crew Cab 2010") == "Dodge"
    assert make_of("Ram C/V Cargo Van Minivan 2012") == "Ram"
    assert (make_of("Land Rover LR2 SUV 2012") == "Land Rover"
            and make_of("AM General Hummer SUV 2000") == "AM General")


# --- ImageNet-style folders and LT list files ---------------------------------------------------

def test_imagefolder_folders_list_files_parents_and_lt(tmp_path):
    for cls, n in (("n01", 6), ("n02", 2)):
        for i in range(n):
            _jpeg(tmp_path / "train" / cls / f"{i}.JPEG", size=(8, 8))
    ds = get_dataset("imagefolder", root=tmp_path, split="train")
    assert (ds.class_names["class"] == ["n01", "n02"]
            and np.bincount(ds.labels["class"]).tolist() == [6, 2])
    assert ds.raw_image(7).size == (8, 8)
    lt = get_dataset("imagefolder", root=tmp_path, split="train", imbalance=3)
    assert np.bincount(lt.labels["class"]).tolist() == [6, 2] and len(lt) == 8
    lt = get_dataset("imagefolder", root=tmp_path, split="train", imbalance=6)
    assert np.bincount(lt.labels["class"]).tolist() == [6, 1] and lt.raw_image(6).size == (8, 8)

    (tmp_path / "ImageNet_LT_train.txt").write_text("train/n02/1.JPEG 1\n/train/n01/0.JPEG 0\n"
                                                    "train/n01/3.JPEG 0\n")
    (tmp_path / "parents.txt").write_text("n01 fish\nn02 bird of prey\n")
    ds = get_dataset("imagefolder", root=tmp_path, split="train", parents=tmp_path / "parents.txt")
    assert ds.labels["class"].tolist() == [1, 0, 0] and ds.class_names["class"] == ["n01", "n02"]
    assert ds.levels == ("parent", "class") and ds.class_names["parent"] == ["bird of prey", "fish"]
    assert ds.labels["parent"].tolist() == [0, 1, 1]
    with pytest.raises(RascalError, match="neither .*test .* nor one \\*_test.txt"):
        get_dataset("imagefolder", root=tmp_path, split="test")


def _imagenet_fixture(root, splits=("train", "val")):
    """ImageNet as released and as torchvision's ``ImageNet`` reads it: class folders +
    ``meta.bin``."""
    import torch

    wnids = ["n01440764", "n01443537", "n01484850"]
    for split in splits:
        for c, wnid in enumerate(wnids):
            for i in range(3 - c if split == "train" else 2):
                name = (f"{wnid}_{i}.JPEG" if split == "train"
                        else f"ILSVRC2012_val_{c * 10 + i:08d}.JPEG")
                _jpeg(root / split / wnid / name, size=(12, 10), colour=(40 * c, 20 * i, 90))
    (root / "train" / wnids[0] / "notes.txt").write_text("not an image")
    classes = {"n01440764": ("tench", "Tinca tinca"),
               "n01443537": ("goldfish", "Carassius auratus"),
               "n01484850": ("great white shark", "white shark")}
    torch.save((classes, None), root / "meta.bin")
    return wnids


@pytest.mark.parametrize("split", ["train", "val"])
def test_imagenet_folders_match_torchvision(tmp_path, split):
    from torchvision.datasets import ImageFolder, ImageNet

    wnids = _imagenet_fixture(tmp_path)
    ours = get_dataset("imagefolder", root=tmp_path, split=split)
    for theirs in (ImageNet(tmp_path, split=split), ImageFolder(tmp_path / split)):
        assert [str(p) for p in ours.load_image.paths] == [p for p, _ in theirs.samples]
        assert ours.labels["class"].tolist() == theirs.targets
    assert ours.class_names["class"] == ImageNet(tmp_path, split=split).wnids == wnids
    np.testing.assert_array_equal(np.asarray(ours.raw_image(2)),
                                  np.asarray(ImageFolder(tmp_path / split)[2][0]))


def test_imagenet_as_released_has_no_test_split_and_val_stands_in(tmp_path):
    _imagenet_fixture(tmp_path)
    test = get_dataset("imagefolder", root=tmp_path, split="test")
    val = get_dataset("imagefolder", root=tmp_path, split="val")
    assert test.split == "test" and test.meta["read_split"] == "val"
    assert test.load_image.paths == val.load_image.paths
    (tmp_path / "ImageNet_LT_train.txt").write_text("train/n01443537/n01443537_1.JPEG 1\n")
    (tmp_path / "ImageNet_LT_val.txt").write_text("val/n01484850/ILSVRC2012_val_00000021.JPEG 2\n")
    lt = get_dataset("imagefolder", root=tmp_path, split="test")  # LT list files: val stands in too
    assert lt.meta["read_split"] == "val" and lt.labels["class"].tolist() == [2]


def test_training_on_imagenet_as_released_monitors_on_val(tmp_path):
    from rascal_train.config import TrainConfig
    from rascal_train.engine import load_datasets

    _imagenet_fixture(tmp_path)
    train, monitor = load_datasets(TrainConfig.from_dict({"dataset": "imagefolder",
                                                          "data_root": str(tmp_path)}))
    assert len(train) == 6 and monitor.meta["read_split"] == "val" and len(monitor) == 6


# --- iNaturalist ----------------------------------------------------------------------------------

def test_inat_taxonomy_levels(tmp_path):
    cats = [{"id": 7, "name": "Felis catus", "kingdom": "Animalia", "phylum": "Chordata",
             "class": "Mammalia", "order": "Carnivora", "family": "Felidae", "genus": "Felis",
             "supercategory": "Mammalia"},
            {"id": 2, "name": "Canis lupus", "kingdom": "Animalia", "phylum": "Chordata",
             "class": "Mammalia", "order": "Carnivora", "family": "Canidae", "genus": "Canis",
             "supercategory": "Mammalia"},
            {"id": 3, "name": "Quercus robur", "kingdom": "Plantae", "phylum": "Tracheophyta",
             "class": "Magnoliopsida", "order": "Fagales", "family": "Fagaceae", "genus": "Quercus",
             "supercategory": "Plantae"}]
    images = [{"id": i, "file_name": f"train_val2018/x/{i}.jpg", "width": 8, "height": 8}
              for i in (10, 11, 12)]
    annos = [{"id": 1, "image_id": 11, "category_id": 3},
             {"id": 2, "image_id": 10, "category_id": 7},
             {"id": 3, "image_id": 12, "category_id": 2}]
    (tmp_path / "train2018.json").write_text(json.dumps({"images": images, "annotations": annos,
                                                         "categories": cats}))
    for im in images:
        _jpeg(tmp_path / im["file_name"], size=(8, 8))
    ds = get_dataset("inat", root=tmp_path, split="train", label_level="family")
    assert ds.levels[0] == "kingdom" and ds.levels[-1] == "species" and ds.num_classes == 3
    # by category id
    assert ds.class_names["species"] == ["Canis lupus", "Quercus robur", "Felis catus"]
    assert ds.labels["species"].tolist() == [2, 1, 0]  # images 10, 11, 12
    assert ([ds.class_names["kingdom"][k] for k in ds.labels["kingdom"]]
            == ["Animalia", "Plantae", "Animalia"])
    assert [ds.class_names["genus"][k] for k in ds.labels["genus"]] == ["Felis", "Quercus", "Canis"]
    assert ds.raw_image(1).size == (8, 8)
    with pytest.raises(RascalError,
                       match=r"has neither .*2021_valid \(iNaturalist 2021\) nor val2018.json"):
        get_dataset("inat", root=tmp_path, split="val")
    (tmp_path / "val2018.json").write_text(json.dumps({"images": images[1:2],
                                                       "annotations": annos[:1],
                                                       "categories": cats}))
    test = get_dataset("inat", root=tmp_path, split="test")  # the labelled val set stands in
    assert test.split == "test" and test.labels["species"].tolist() == [1]


INAT_2021 = ["00000_Animalia_Arthropoda_Insecta_Coleoptera_Cleridae_Trichodes_ornatus",
             "00001_Animalia_Arthropoda_Insecta_Coleoptera_Cleridae_Trichodes_apiarius",
             "00002_Animalia_Chordata_Aves_Passeriformes_Corvidae_Corvus_corax",
             "00003_Plantae_Tracheophyta_Magnoliopsida_Fagales_Fagaceae_Quercus_robur"]


def _inat_2021_fixture(root, version="2021_train"):
    """torchvision's INaturalist 2021 layout:
    ``<root>/<version>/NNNNN_Kingdom_..._species/<image>.jpg``."""
    for c, folder in enumerate(INAT_2021):
        for i in range(4 - c):
            _jpeg(root / version / folder / f"{(7 * i + c) % 5:x}{i}.jpg", size=(9, 7),
                  colour=(60 * c, 40 * i, 5))


@pytest.mark.parametrize("version,split", [("2021_train", "train"), ("2021_train_mini", "train"),
                                           ("2021_train_mini", "train_mini"),
                                           ("2021_valid", "test")])
def test_inat_2021_matches_torchvision_at_all_seven_levels(tmp_path, version, split):
    from torchvision.datasets import INaturalist
    from torchvision.datasets.inaturalist import CATEGORIES_2021

    _inat_2021_fixture(tmp_path, version)
    theirs = INaturalist(tmp_path, version=version, target_type=["full", *CATEGORIES_2021])
    ours = get_dataset("inat", root=tmp_path, split=split)
    assert ours.levels == tuple(CATEGORIES_2021) + ("species",) and ours.meta["layout"] == version
    # torchvision lists a folder's files in os.listdir order; ours
    # sorts them: the same up to that order.
    index = sorted(theirs.index)
    assert [str(p) for p in ours.load_image.paths] == \
        [str(tmp_path / version / theirs.all_categories[c] / f) for c, f in index]
    assert ours.labels["species"].tolist() == [c for c, _ in index]
    for rank in CATEGORIES_2021:
        assert ours.labels[rank].tolist() == [theirs.categories_map[c][rank] for c, _ in index]
        assert ours.class_names[rank] == list(theirs.categories_index[rank])
    assert ours.class_names["species"] == ["Trichodes ornatus", "Trichodes apiarius",
                                           "Corvus corax", "Quercus robur"]
    position = index.index((2, sorted(os.listdir(tmp_path / version / INAT_2021[2]))[1]))
    image, target = theirs[theirs.index.index(index[position])]
    np.testing.assert_array_equal(np.asarray(ours.raw_image(position)),
                                  np.asarray(image.convert("RGB")))
    assert target == tuple(int(ours.labels[lvl][position]) for lvl in ("species", *CATEGORIES_2021))


def test_inat_2021_bad_folder_is_one_line(tmp_path):
    _inat_2021_fixture(tmp_path)
    (tmp_path / "2021_train" / "00004_Animalia_Chordata").mkdir()
    with pytest.raises(RascalError,
                       match=r"00004_Animalia_Chordata is not an iNaturalist 2021 category folder"):
        get_dataset("inat", root=tmp_path)


def test_inat_2018_json_matches_torchvision_folders(tmp_path):
    """2018 as torchvision's download leaves it (``<root>/2018/<super>/<id>/``) plus the release's
    JSON."""
    from torchvision.datasets import INaturalist

    taxa = [("Plantae", "Quercus robur", "Plantae", "Tracheophyta", "Magnoliopsida", "Fagales",
             "Fagaceae", "Quercus"),
            ("Aves", "Corvus corax", "Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae",
             "Corvus"),
            ("Plantae", "Acer rubrum", "Plantae", "Tracheophyta", "Magnoliopsida", "Sapindales",
             "Sapindaceae", "Acer")]
    cats = [{"id": c, "name": t[1], "supercategory": t[0],
             **dict(zip(("kingdom", "phylum", "class", "order", "family", "genus"), t[2:]))}
            for c, t in enumerate(taxa)]
    images, annos = [], []
    for c, t in enumerate(taxa):
        for i in range(2):
            image_id = 100 + 2 * c + i
            images.append({"id": image_id, "file_name": f"train_val2018/{t[0]}/{c}/{image_id}.jpg"})
            annos.append({"id": image_id, "image_id": image_id, "category_id": c})
            _jpeg(tmp_path / "2018" / t[0] / str(c) / f"{image_id}.jpg", size=(6, 6),
                  colour=(30 * c, 90 * i, 0))
    (tmp_path / "train2018.json").write_text(json.dumps({"images": images[::-1],
                                                         "annotations": annos,
                                                        "categories": cats[::-1]}))
    theirs = INaturalist(tmp_path, version="2018", target_type="full")
    ours = get_dataset("inat", root=tmp_path, split="train")
    # torchvision orders by category id (then os.listdir); ours by
    # image id, which here follows categories.
    expected = [(str(tmp_path / "2018" / theirs.all_categories[c] / f), c)
                for c, f in sorted(theirs.index)]
    assert list(zip(map(str, ours.load_image.paths), ours.labels["species"].tolist())) == expected
    assert ([ours.class_names["order"][o] for o in ours.labels["order"]]
            == [t[5] for t in taxa for _ in range(2)])
    (tmp_path / "train2018.json").write_text(json.dumps({"images": images, "annotations": annos,
                                                        "categories": [{"id": 0, "name": "x",
                                                                        "supercategory": "y"}]}))
    with pytest.raises(RascalError,
                       match=r"have no 'kingdom' field \(iNaturalist 2017 lists only a "
                             r"supercategory\)"):
        get_dataset("inat", root=tmp_path, split="train")

