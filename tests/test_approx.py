"""Approximate neighbour search (IVF), its recall check, and the --knn choice."""

import numpy as np
import pytest

from rascal_geom import approx
from rascal_geom.knn_check import check_search
from rascal_geom.metrics.knn import knn_correct
from rascal_geom.neighbors import knn_search
from rascal_geom.sampling import stratified_sample
from rascal_train.errors import RascalError


def _clustered(n, d, classes, seed=0, noise=0.6):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = (rng.standard_normal((classes, d))[y]
         + noise * rng.standard_normal((n, d))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def test_every_cell_probed_is_exact():
    x, _ = _clustered(3000, 16, 20)
    # 3,000 rows: 4 cells of ~1,000, all 4 probed (nprobe = min(nlist, NPROBE)): an exact search.
    assert approx.ivf_params(3000) == (4, 4)
    s_a, i_a = knn_search(x, x, 10, exclude_self=True, method="approx")
    s_e, i_e = knn_search(x, x, 10, exclude_self=True, method="exact")
    np.testing.assert_allclose(s_a, s_e, atol=1e-5)
    assert (i_a == i_e).mean() > 0.999  # equal up to float ties
    assert not (i_a == np.arange(len(x))[:, None]).any()


def test_partial_probe_is_approximate_and_measured(monkeypatch):
    monkeypatch.setattr(approx, "CELL_ROWS", 100)  # 32 cells, 4 probed: a real approximation
    x, _ = _clustered(4000, 32, 40, noise=1.5)
    assert approx.ivf_params(4000) == (32, 4)
    _, i_a = knn_search(x, x, 20, exclude_self=True, method="approx", seed=1)
    _, i_e = knn_search(x, x, 20, exclude_self=True)
    recall = approx.recall_at_k(i_a, i_e)
    assert 0.3 < recall < 1.0
    assert not (i_a == np.arange(len(x))[:, None]).any()
    # Queries other than the bank are placed in their nearest cell.
    q, _ = _clustered(50, 32, 40, seed=5, noise=1.5)
    s, i = knn_search(q, x, 5, method="approx")
    assert s.shape == (50, 5) and (np.diff(s, axis=1) <= 1e-6).all()


def test_recall_at_k_counts_overlap_and_ignores_padding():
    truth = np.array([[1, 2, 3], [4, 5, -1]])
    found = np.array([[3, 9, 1], [5, 7, 8]])
    assert approx.recall_at_k(found, truth) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_auto_switches_at_the_threshold():
    assert approx.resolve_method("auto", approx.APPROX_MIN_ROWS - 1) == "exact"
    assert approx.resolve_method("auto", approx.APPROX_MIN_ROWS) == "approx"
    assert approx.resolve_method("exact", 10 ** 7) == "exact"
    with pytest.raises(RascalError, match="'knn' parameter"):
        approx.resolve_method("fast", 10)


def test_check_reports_recall_and_metric_moves(monkeypatch):
    monkeypatch.setattr(approx, "CELL_ROWS", 100)
    x, y = _clustered(3000, 32, 30, noise=1.5)
    neighbours = knn_search(x, x, 20, exclude_self=True, method="approx")
    rows = stratified_sample(y, 300, seed=0)

    def acc(s, i, r):
        return knn_correct(s, y[i], y[r], 30, 20).astype(float)

    check = check_search(x, neighbours, rows, (1, 20), {"knn": acc}, seed=0)
    exact = knn_search(x, x, 20, exclude_self=True)
    assert check["queries"] == 300
    assert check["recall_at_k"]["20"] == pytest.approx(
        approx.recall_at_k(neighbours[1][rows], exact[1][rows]))
    m = check["metrics"]["knn"]
    assert m["exact"] == pytest.approx(acc(exact[0][rows], exact[1][rows], rows).mean())
    assert m["delta"] == pytest.approx(m["approx"] - m["exact"])
    assert check["below_floor"] == [k for k, r in check["recall_at_k"].items()
                                    if r < approx.RECALL_FLOOR]


def test_stratified_sample_is_seeded_and_proportional():
    y = np.repeat(np.arange(4), [100, 300, 500, 100])
    a, b = stratified_sample(y, 100, seed=3), stratified_sample(y, 100, seed=3)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 100 and len(np.unique(a)) == 100
    np.testing.assert_array_equal(np.bincount(y[a]), [10, 30, 50, 10])
    assert not np.array_equal(a, stratified_sample(y, 100, seed=4))
    np.testing.assert_array_equal(stratified_sample(y, 5000), np.arange(len(y)))


def _file(path, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 10, n)
    x = rng.standard_normal((10, 24))[fine] + 1.2 * rng.standard_normal((n, 24))
    np.savez(path, embeddings=x.astype(np.float32), labels_family=fine // 5, labels_variant=fine)


def _analyze(tmp_path, *args):
    import json

    from click.testing import CliRunner
    from rascal_cli.main import cli

    out = tmp_path / "r.html"
    res = CliRunner().invoke(cli, ["analyze", str(tmp_path / "e.npz"), "--out", str(out),
                                   "--no-umap", "--quiet", *args])
    doc = json.loads(out.with_suffix(".json").read_text()) if res.exit_code == 0 else None
    return res, doc, out


def test_cli_knn_approx_writes_its_check_in_json_and_report(tmp_path, monkeypatch):
    monkeypatch.setattr(approx, "CELL_ROWS", 100)  # 16 cells, 4 probed
    monkeypatch.setattr(approx, "CHECK_QUERIES", 200)
    _file(tmp_path / "e.npz")
    res, doc, out = _analyze(tmp_path, "--knn", "approx")
    assert res.exit_code == 0, res.output
    search = doc["neighbour_search"]
    assert (search["method"] == "approx" and search["index"]["nlist"] == 16
            and search["index"]["nprobe"] == 4)
    check = search["check"]
    assert check["queries"] == 200 and set(check["recall_at_k"]) == {"1", "20", "200"}
    assert "knn_accuracy[variant][20]" in check["metrics"]
    assert doc["protocol"]["knn"]["neighbours"] == "approx"
    html = out.read_text()
    assert "approximate: IVF-Flat, 16 cells, nprobe 4" in html and "recall @1" in html
    exact, _, _ = _analyze(tmp_path, "--knn", "exact")
    assert exact.exit_code == 0


def test_cli_low_recall_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(approx, "CELL_ROWS", 100)
    monkeypatch.setattr(approx, "RECALL_FLOOR", 1.01)  # no recall reaches it
    monkeypatch.setattr("rascal_geom.knn_check.RECALL_FLOOR", 1.01)
    _file(tmp_path / "e.npz")
    res, doc, out = _analyze(tmp_path, "--knn", "approx")
    assert res.exit_code == 0, res.output
    assert len(doc["warnings"]) == 3 and "below the floor 1.01" in doc["warnings"][0]
    assert "warning: Approximate neighbour search: recall@1" in res.stderr
    assert "Warning (e): Approximate neighbour search" in out.read_text()


def test_cli_exact_below_threshold_and_bad_choice(tmp_path):
    _file(tmp_path / "e.npz", n=300)
    res, doc, _ = _analyze(tmp_path)
    assert res.exit_code == 0, res.output
    assert doc["neighbour_search"]["method"] == "exact" and "check" not in doc["neighbour_search"]
    assert doc["samples"]["linear_probe"] == {"n": 300, "of": 300, "seed": None}
    bad, _, _ = _analyze(tmp_path, "--knn", "fast")
    assert bad.exit_code == 2 and "'fast' is not one of" in bad.stderr
