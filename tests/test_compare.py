"""`rascal compare`: CKA and shape-distance matrices between representations of the same samples."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from rascal_cli.main import cli
from scipy.stats import ortho_group
from test_train import TINY_TRAIN

from rascal_geom import compare as compare_module
from rascal_geom.compare import compare
from rascal_geom.metrics import cka, minibatch_cka, shape_distances


def _write(path, emb, labels):
    np.savez(path, embeddings=emb.astype(np.float32), labels=labels)


@pytest.fixture
def three(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 4
    x = rng.standard_normal((120, 16)) + 2 * np.eye(16)[labels]
    rotated = 3.0 * x @ ortho_group.rvs(16, random_state=1)  # CKA(X, sXQ) = 1, shape distances 0
    other = rng.standard_normal((120, 10))
    paths = [tmp_path / f"{n}.npz" for n in ("a", "b", "c")]
    for p, e in zip(paths, (x, rotated, other)):
        _write(p, e, labels)
    return paths, (x, rotated, other)


def test_compare_cli_writes_symmetric_matrices_with_unit_diagonal(tmp_path, three):
    paths, (x, rotated, other) = three
    out = tmp_path / "rep" / "cmp.html"
    res = CliRunner().invoke(cli, ["compare", *map(str, paths), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert res.stdout.split() == [str(out.with_suffix(".json")), str(out)]
    doc = json.loads(out.with_suffix(".json").read_text())
    assert (
        doc["names"] == ["a", "b", "c"] and doc["n_samples"] == 120 and doc["dims"] == [16, 16, 10]
    )
    m = {k: np.array(v) for k, v in doc["matrices"].items()}
    for key in ("cka", "cka_debiased", "angular", "procrustes"):
        np.testing.assert_allclose(m[key], m[key].T, atol=1e-12)
    np.testing.assert_allclose(np.diag(m["cka"]), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.diag(m["angular"]), 0.0)
    assert m["cka"][0, 1] == pytest.approx(1.0, abs=1e-5) and m["angular"][0, 1] == pytest.approx(
        0.0, abs=1e-3
    )
    # Each entry is the metric function on that pair.
    assert m["cka"][0, 2] == pytest.approx(cka(x, other), rel=1e-5)
    assert m["cka_debiased"][1, 2] == pytest.approx(
        cka(rotated, other, debiased=True), rel=1e-4, abs=1e-6
    )
    assert m["procrustes"][0, 2] == pytest.approx(shape_distances(x, other)["procrustes"], rel=1e-5)
    assert doc["minibatch"] is None and "minibatch_cka" not in m
    html = out.read_text()
    assert (
        html.count("<svg") == 4 and "linear CKA (unbiased HSIC)" in html and "<script" not in html
    )


def test_minibatch_cka_above_the_threshold(tmp_path, three, monkeypatch):
    paths, (x, rotated, _) = three
    monkeypatch.setattr(compare_module, "MINIBATCH_ABOVE", 50)
    monkeypatch.setattr(compare_module, "MINIBATCH_SIZE", 32)
    doc = compare(paths[:2], progress=False)
    want = minibatch_cka(x, rotated, batch_size=32, seed=0)
    assert doc["minibatch"] == {
        "n_batches": want["n_batches"],
        "batch_size": want["batch_size"],
        "seed": 0,
    }
    assert doc["matrices"]["minibatch_cka"][0][1] == pytest.approx(want["cka"], rel=1e-5)


def test_layer_map_between_two_runs(tmp_path):
    run = tmp_path / "run"
    train = [*TINY_TRAIN, "--loss", "supcon", "--out", str(run)]
    assert CliRunner().invoke(cli, train).exit_code == 0
    doc = compare([run, run / "last.pt"], layers="all", device="cpu", progress=False)
    lay = doc["layers"]
    assert lay["names_a"] == lay["names_b"] and len(lay["names_a"]) >= 2
    m = np.array(lay["cka"])
    assert m.shape == (len(lay["names_a"]),) * 2
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-5)  # the same model against itself
