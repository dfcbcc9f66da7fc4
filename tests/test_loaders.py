"""Real loaders on tiny fixtures written in the official formats, plus the shared LT/noise code."""

import json
import os
import pickle

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
    assert set(list_datasets()) >= {"synthetic", "cifar100", "cifar100_lt", "aircraft", "cub", "cars",
                                    "imagefolder", "inat"}


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
        obj = {k("data"): data, k("fine_labels"): fine.tolist(), k("coarse_labels"): (fine // 5).tolist(),
               k("filenames"): [k(f"img_{i}.png") for i in range(len(fine))], k("batch_label"): k(split)}
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
    np.testing.assert_array_equal(ds.images[3, 2, 7], data[3, [2 * 32 + 7, 1024 + 2 * 32 + 7, 2048 + 2 * 32 + 7]])
    np.testing.assert_array_equal(ds.labels["coarse"], ds.labels["fine"] // 5)
    assert ds.class_names["fine"][1] == "fine 1" and ds.class_names["coarse"][19] == "coarse_19"
    coarse = get_dataset("cifar100", root=tmp_path / "cifar-100-python", split="test", label_level="coarse")
    assert coarse.num_classes == 20 and coarse[0][1] == coarse.labels["coarse"][0]


def test_cifar100_lt_and_noise(tmp_path):
    _cifar_fixture(tmp_path)
    lt = get_dataset("cifar100_lt", root=tmp_path, imbalance=5, label_noise=0.2, seed=1)
    np.testing.assert_array_equal(np.bincount(lt.labels["fine"], minlength=100), lt_counts(100, 5, 5))
    assert lt.name == "cifar100_lt" and (lt.targets != lt.labels["fine"]).sum() == round(0.2 * len(lt))
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


# --- FGVC-Aircraft ------------------------------------------------------------------------------

def test_aircraft_three_levels_labels_with_spaces_and_banner_crop(tmp_path):
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    rows = [("0034309", "Boeing", "Boeing 737", "737-700"), ("1514522", "Cessna", "Cessna 172", "Cessna 172"),
            ("0062781", "McDonnell Douglas", "F/A-18", "F/A-18")]
    for level, col in (("manufacturer", 1), ("family", 2), ("variant", 3)):
        names = sorted({r[col] for r in rows})
        (data / f"{level}s.txt").parent.mkdir(parents=True, exist_ok=True)
        (data / f"{level}s.txt").write_text("\n".join(names) + "\n")
        (data / f"images_{level}_trainval.txt").write_text("".join(f"{r[0]} {r[col]}\n" for r in rows))
    for r in rows:
        _jpeg(data / "images" / f"{r[0]}.jpg", size=(40, 50), banner=20)
    ds = get_dataset("aircraft", root=tmp_path, split="trainval")
    assert ds.levels == ("manufacturer", "family", "variant") and ds.train_level == "variant"
    assert [ds.class_names["variant"][v] for v in ds.labels["variant"]] == ["737-700", "Cessna 172", "F/A-18"]
    assert [ds.class_names["manufacturer"][v] for v in ds.labels["manufacturer"]] == \
        ["Boeing", "Cessna", "McDonnell Douglas"]
    img = np.asarray(ds.raw_image(0))
    assert img.shape == (30, 40, 3)
    assert img[..., 0].min() > 150 and img[..., 2].max() < 90  # the blue banner is gone
    with pytest.raises(RascalError, match=r"images_manufacturer_test.txt; download FGVC-Aircraft"):
        get_dataset("aircraft", root=tmp_path, split="test")
    with pytest.raises(RascalError, match=r"no fgvc-aircraft-2013b/data/variants.txt"):
        get_dataset("aircraft", root=tmp_path / "nowhere")


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
    (base / "bounding_boxes.txt").write_text("1 10.0 5.0 20.0 30.0\n2 0 0 60 40\n3 1 2 3 4\n4 5 5 10 10\n")
    names = "1 has_bill_shape::curved_(up_or_down)\n2 has_bill_shape::dagger\n3 has_wing_color::blue\n"
    (base / "attributes").mkdir()
    (tmp_path / "attributes.txt" if names_beside else base / "attributes" / "attributes.txt").write_text(names)
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
    assert train.levels == ("class",) and len(train) == 2 and train.labels["class"].tolist() == [0, 1]
    assert train.attribute_names == ["has_bill_shape::curved_(up_or_down)", "has_bill_shape::dagger",
                                     "has_wing_color::blue"]
    np.testing.assert_array_equal(train.attributes, [[1, 0, 1], [0, 1, 0]])  # images 1 and 3
    np.testing.assert_array_equal(train.meta["attribute_certainty"], [[4, 1, 3], [1, 2, 1]])
    test = get_dataset("cub", root=tmp_path / "CUB_200_2011", split="test", bbox_crop=True)
    np.testing.assert_array_equal(test.attributes, [[0, 1, 0], [0, 0, 0]])
    assert test.raw_image(1).size == (10, 10) and test.raw_image(0).size == (60, 40)
    assert test.class_names["class"] == ["001.Black_footed_Albatross", "002.Laysan_Albatross"]


def test_cub_errors(tmp_path):
    with pytest.raises(RascalError, match=r"no CUB_200_2011/images.txt; download CUB_200_2011 from"):
        get_dataset("cub", root=tmp_path)
    _cub_fixture(tmp_path)
    (tmp_path / "attributes.txt").unlink()
    with pytest.raises(RascalError, match="no attributes.txt beside"):
        get_dataset("cub", root=tmp_path)
    (tmp_path / "CUB_200_2011" / "bounding_boxes.txt").unlink()
    with pytest.raises(RascalError, match="no .*bounding_boxes.txt; download CUB-200-2011"):
        get_dataset("cub", root=tmp_path, bbox_crop=True)


# --- Stanford Cars ------------------------------------------------------------------------------

CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Aston Martin V8 Vantage Convertible 2012",
             "Land Rover Range Rover SUV 2012", "Land Rover LR2 SUV 2012"]


def _cars_fixture(tmp_path):
    from scipy.io import savemat

    base = tmp_path / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(CAR_NAMES, dtype=object)[None]})
    dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    for split, classes in (("train", [1, 3, 4, 5, 3]), ("test", [2, 4])):
        annos = np.zeros((1, len(classes)), dtype=dtype)
        for j, c in enumerate(classes):
            fname = f"{j + 1:05d}.jpg"
            annos[0, j] = (np.uint8(2), np.uint8(3), np.uint8(12), np.uint8(9), np.uint8(c), fname)
            _jpeg(base / f"cars_{split}" / fname, size=(30, 20))
        path = base / "devkit" / "cars_train_annos.mat" if split == "train" else base / "cars_test_annos_withlabels.mat"
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
    assert make_of("Mercedes-Benz S-Class Sedan 2012") == "Mercedes-Benz" and make_of("Zonda X 2020") == "Zonda"
    with pytest.raises(RascalError, match=r"no stanford_cars/devkit; download stanford_cars"):
        get_dataset("cars", root=tmp_path / "empty")


# --- ImageNet-style folders and LT list files ---------------------------------------------------

def test_imagefolder_folders_list_files_parents_and_lt(tmp_path):
    for cls, n in (("n01", 6), ("n02", 2)):
        for i in range(n):
            _jpeg(tmp_path / "train" / cls / f"{i}.JPEG", size=(8, 8))
    ds = get_dataset("imagefolder", root=tmp_path, split="train")
    assert ds.class_names["class"] == ["n01", "n02"] and np.bincount(ds.labels["class"]).tolist() == [6, 2]
    assert ds.raw_image(7).size == (8, 8)
    lt = get_dataset("imagefolder", root=tmp_path, split="train", imbalance=3)
    assert np.bincount(lt.labels["class"]).tolist() == [6, 2] and len(lt) == 8
    lt = get_dataset("imagefolder", root=tmp_path, split="train", imbalance=6)
    assert np.bincount(lt.labels["class"]).tolist() == [6, 1] and lt.raw_image(6).size == (8, 8)

    (tmp_path / "ImageNet_LT_train.txt").write_text("train/n02/1.JPEG 1\n/train/n01/0.JPEG 0\ntrain/n01/3.JPEG 0\n")
    (tmp_path / "parents.txt").write_text("n01 fish\nn02 bird of prey\n")
    ds = get_dataset("imagefolder", root=tmp_path, split="train", parents=tmp_path / "parents.txt")
    assert ds.labels["class"].tolist() == [1, 0, 0] and ds.class_names["class"] == ["n01", "n02"]
    assert ds.levels == ("parent", "class") and ds.class_names["parent"] == ["bird of prey", "fish"]
    assert ds.labels["parent"].tolist() == [0, 1, 1]
    with pytest.raises(RascalError, match="neither .*test .* nor one \\*_test.txt"):
        get_dataset("imagefolder", root=tmp_path, split="test")


# --- iNaturalist 2018 ---------------------------------------------------------------------------

def test_inat_taxonomy_levels(tmp_path):
    cats = [{"id": 7, "name": "Felis catus", "kingdom": "Animalia", "phylum": "Chordata", "class": "Mammalia",
             "order": "Carnivora", "family": "Felidae", "genus": "Felis", "supercategory": "Mammalia"},
            {"id": 2, "name": "Canis lupus", "kingdom": "Animalia", "phylum": "Chordata", "class": "Mammalia",
             "order": "Carnivora", "family": "Canidae", "genus": "Canis", "supercategory": "Mammalia"},
            {"id": 3, "name": "Quercus robur", "kingdom": "Plantae", "phylum": "Tracheophyta",
             "class": "Magnoliopsida", "order": "Fagales", "family": "Fagaceae", "genus": "Quercus",
             "supercategory": "Plantae"}]
    images = [{"id": i, "file_name": f"train_val2018/x/{i}.jpg", "width": 8, "height": 8} for i in (10, 11, 12)]
    annos = [{"id": 1, "image_id": 11, "category_id": 3}, {"id": 2, "image_id": 10, "category_id": 7},
             {"id": 3, "image_id": 12, "category_id": 2}]
    (tmp_path / "train2018.json").write_text(json.dumps({"images": images, "annotations": annos, "categories": cats}))
    for im in images:
        _jpeg(tmp_path / im["file_name"], size=(8, 8))
    ds = get_dataset("inat", root=tmp_path, split="train", label_level="family")
    assert ds.levels[0] == "kingdom" and ds.levels[-1] == "species" and ds.num_classes == 3
    assert ds.class_names["species"] == ["Canis lupus", "Quercus robur", "Felis catus"]  # by category id
    assert ds.labels["species"].tolist() == [2, 1, 0]  # images 10, 11, 12
    assert [ds.class_names["kingdom"][k] for k in ds.labels["kingdom"]] == ["Animalia", "Plantae", "Animalia"]
    assert [ds.class_names["genus"][k] for k in ds.labels["genus"]] == ["Felis", "Quercus", "Canis"]
    assert ds.raw_image(1).size == (8, 8)
    with pytest.raises(RascalError, match=r"no inat2018/val2018.json; download inat2018"):
        get_dataset("inat", root=tmp_path, split="val")
    (tmp_path / "val2018.json").write_text(json.dumps({"images": images[1:2], "annotations": annos[:1],
                                                       "categories": cats}))
    test = get_dataset("inat", root=tmp_path, split="test")  # the labelled val set stands in
    assert test.split == "test" and test.labels["species"].tolist() == [1]
