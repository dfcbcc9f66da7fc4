import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from rascal_cli.main import cli

from rascal_geom.metrics import (
    attribute_consistency,
    geodesic_variance,
    hierarchy_retention,
    knn_accuracy,
)


def _npz(path, seed=0, n=400):
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 8, n)
    coarse = fine // 4
    attrs = rng.random((n, 6)) < 0.4
    emb = 3 * np.eye(16)[coarse] + 1.5 * np.eye(16)[2 + fine] + np.c_[attrs, np.zeros((n, 10))] \
        + 0.8 * rng.standard_normal((n, 16))
    np.savez(path, embeddings=emb.astype(np.float32), labels_family=coarse, labels_variant=fine,
             attributes=attrs, attribute_names=np.array([f"g{i // 3}::v{i}" for i in range(6)]))
    return emb, coarse, fine, attrs


def test_analyze_npz_end_to_end(tmp_path):
    emb, coarse, fine, attrs = _npz(tmp_path / "emb.npz")
    out = tmp_path / "rep" / "emb.html"
    res = CliRunner().invoke(cli, ["analyze", str(tmp_path / "emb.npz"), "--hierarchy", "synthetic",
                                                   "--out", str(out), "--no-umap", "--quiet"])
    assert res.exit_code == 0, res.output + res.stderr
    doc = json.loads((tmp_path / "rep" / "emb.json").read_text())
    assert out.is_file() and res.stdout.split() == [str(out.with_suffix(".json")), str(out)]
    assert doc["schema"] == "rascal.analysis/1" and doc["levels"] == ["family", "variant"]
    assert doc["source"]["kind"] == "embeddings" and doc["settings"]["level"] == "family"
    m = doc["metrics"]
    assert m["knn_accuracy"]["variant"]["20"] == pytest.approx(knn_accuracy(emb, fine, k=20))
    assert m["knn_accuracy"]["family"]["1"] == pytest.approx(knn_accuracy(emb, coarse, k=1))
    ret = hierarchy_retention(emb, coarse, fine, k=20)
    assert m["hierarchy_retention"][0]["retention"] == pytest.approx(ret["retention"])
    assert doc["headline"]["retention"] == {"variant": pytest.approx(ret["retention"])}
    assert (doc["headline"]["geodesic_variance"]
            == pytest.approx(geodesic_variance(emb, coarse)["mean"]))
    lift = attribute_consistency(emb, coarse, attrs, k=10, seed=0)["lift"]
    assert doc["headline"]["attribute_lift"] == pytest.approx(lift)
    assert set(m["attribute_consistency"]["per_group"]) == {"g0", "g1"}
    assert 0.5 < m["linear_probe"]["variant"] <= 1.0
    assert set(m["geometry"]) >= {"class_alignment", "uniformity", "nc1", "effective_rank",
                                  "margin_violation"}
    assert m["rank_stability"] is None and doc["umap"] is None
    card = doc["protocol"]
    assert card["features"] == "projection head" and card["seed"] == 0
    assert card["knn"]["ks"] == [1, 20, 200] and card["knn"]["headline_k"] == 20
    assert card["knn"]["temperature"] == 0.07 and card["linear"]["weight_decay"] == 1e-4


def test_compare_gives_stability_curve(tmp_path):
    from rascal_geom.analysis import analyze

    emb, coarse, fine, _ = _npz(tmp_path / "a.npz", seed=0)
    _npz(tmp_path / "b.npz", seed=0)
    same = analyze(tmp_path / "b.npz", compare=[tmp_path / "a.npz"], umap=False, progress=False)
    rs = same["metrics"]["rank_stability"]
    assert rs["spearman"] == 1.0 and rs["drift"] == 0.0 and len(rs["curve"]) == 1
    assert same["headline"]["rank_stability"] == 1.0 and same["levels"] == ["family", "variant"]
    noisy = emb + 0.5 * np.random.default_rng(1).standard_normal(emb.shape)
    np.savez(tmp_path / "c.npz", embeddings=noisy, labels_family=coarse, labels_variant=fine)
    moved = analyze(tmp_path / "c.npz", compare=[tmp_path / "a.npz"], umap=False, progress=False)
    from rascal_geom.metrics import rank_stability

    # Without --hierarchy an embedding file is analysed at its finest level.
    assert moved["settings"]["level"] == "variant"
    ref = rank_stability(emb.astype(np.float32), noisy.astype(np.float32), fine)
    assert moved["metrics"]["rank_stability"]["drift"] == pytest.approx(ref["drift"])
    assert moved["metrics"]["rank_stability"]["spearman"] == pytest.approx(ref["spearman"])
    # CKA between the checkpoints, against a float64 restatement of unbiased HSIC (Song et al.).

    def hsic(k, m):
        n = len(k)
        k, m = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
        return (np.trace(k @ m) + k.sum() * m.sum() / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (k @ m).sum()) / (n * (n - 3))

    grams = [g @ g.T for g in (emb.astype(np.float32).astype(np.float64), noisy)]
    expected = hsic(*grams) / np.sqrt(hsic(grams[0], grams[0]) * hsic(grams[1], grams[1]))
    over = moved["metrics"]["similarity_over_training"]
    assert over["cka_debiased"] == pytest.approx(expected, rel=1e-6) and 0.5 < expected < 0.99
    assert same["metrics"]["similarity_over_training"]["cka_debiased"] == pytest.approx(1.0)
    assert [c["cka_debiased"] for c in over["curve"]] == [over["cka_debiased"]]


@pytest.mark.parametrize("args,message", [
    (["--hierarchy", "cifar100"], "no labels for level(s) coarse, fine"),
    (["--compare", "OTHER"], "does not hold the same samples"),
])
def test_user_errors_exit_1_without_traceback(tmp_path, args, message):
    _npz(tmp_path / "e.npz")
    _npz(tmp_path / "o.npz", n=100)
    args = [a.replace("OTHER", str(tmp_path / "o.npz")) for a in args]
    res = CliRunner().invoke(cli, ["analyze", str(tmp_path / "e.npz"), *args, "--no-umap",
                                   "--quiet", "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 1 and message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.json").exists()


def test_bad_hierarchy_is_usage_error(tmp_path):
    _npz(tmp_path / "e.npz")
    res = CliRunner().invoke(cli, ["analyze", str(tmp_path / "e.npz"), "--hierarchy", "nope"])
    assert res.exit_code == 2


def test_hierarchy_choices_are_every_registered_dataset(tmp_path):
    from rascal_cli.commands.analyze import command

    from rascal_geom.hierarchies import list_hierarchies

    option = next(p for p in command.params if p.name == "hierarchy")
    assert list(option.type.choices) == list_hierarchies()  # one per dataset loader: test_registry
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", embeddings=rng.standard_normal((60, 8)).astype(np.float32),
             labels_class=np.arange(60) % 3)
    res = CliRunner().invoke(cli, ["analyze", str(tmp_path / "f.npz"), "--hierarchy", "imagefolder",
                                   "--no-umap", "--quiet", "--out", str(tmp_path / "f.html")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "f.json").read_text())
    assert doc["settings"]["hierarchy"] == "imagefolder" and doc["levels"] == ["class"]


def test_analyze_run_directory_of_checkpoints(tmp_path, monkeypatch):
    from rascal_train.files import atomic_torch_save
    from rascal_train.models import CHECKPOINT_FORMAT, build_model

    monkeypatch.setenv("RASCAL_CACHE_DIR", str(tmp_path / "cache"))
    config = {"dataset": "synthetic", "arch": "small_cnn", "loss": "supcon", "proj_dim": 16,
              "image_size": 32}
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = build_model(config)
    for epoch in (1, 2):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "config": config, "epoch": epoch,
                           "model": model.state_dict()},
                          run / "checkpoints" / f"epoch_{epoch:04d}.pt")
    (run / "last.pt").write_bytes((run / "checkpoints" / "epoch_0002.pt").read_bytes())
    res = CliRunner().invoke(cli, ["analyze", str(run), "--out", str(tmp_path / "r.html"),
                                                   "--no-umap", "--quiet"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads((run / "analysis.json").read_text())
    assert doc["settings"]["hierarchy"] == "synthetic" and doc["source"]["epoch"] == 2
    rs = doc["metrics"]["rank_stability"]
    assert [p["epoch"] for p in rs["curve"]] == [2] and 0 < rs["spearman"] < 1


@pytest.mark.slow
def test_umap_map_and_trustworthiness(tmp_path):
    from sklearn.manifold import trustworthiness as sk_trust

    from rascal_geom.umap_map import umap_map

    emb, coarse, fine, _ = _npz(tmp_path / "e.npz", n=600)
    out = umap_map(emb, {"family": coarse, "variant": fine}, max_points=300, seed=0)
    idx = np.array(out["indices"])
    assert (out["n"] == 300 and len(out["coords"]) == 300
            and out["labels"]["variant"] == fine[idx].tolist())
    xn = emb[idx] / np.linalg.norm(emb[idx], axis=1, keepdims=True)
    assert out["trustworthiness"] == pytest.approx(sk_trust(xn, np.array(out["coords"]),
                                                            n_neighbors=10))
    assert out["trustworthiness"] > 0.8


@pytest.mark.slow
def test_umap_kernels_cached_on_disk_give_the_same_map(tmp_path):
    """The second process loads UMAP's kernels from numba's cache and draws the same map."""
    import subprocess
    import sys

    script = ("import json, sys, numpy as np\n"
              "from rascal_geom.umap_map import umap_map\n"
              "x = np.random.default_rng(0).standard_normal((300, 16))\n"
              "out = umap_map(x, {'c': np.arange(300) % 5}, max_points=300)\n"
              "json.dump(out['coords'], sys.stdout)\n")
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    maps = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout for _ in range(2)]
    cached = {p.name.split("-")[0] for p in (tmp_path / "numba").rglob("*.nbi")}
    # umap-learn caches only `rdist` itself; these are what the map compiled.
    assert {"umap_.smooth_knn_dist", "umap_.compute_membership_strengths",
            "layouts._optimize_layout_euclidean_single_epoch"} <= cached
    assert json.loads(maps[0]) == json.loads(maps[1])


def test_umap_neighbour_graph_is_the_cosine_graph_umap_builds():
    """The graph handed to UMAP: self first at distance 0, then scikit-learn's cosine neighbours."""
    from sklearn.neighbors import NearestNeighbors

    from rascal_geom.umap_map import neighbour_graph

    x = np.random.default_rng(3).standard_normal((300, 24)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx, dists = neighbour_graph(x, 15)
    ref_d, ref_i = NearestNeighbors(n_neighbors=15, metric="cosine", algorithm="brute").fit(
        x.astype(np.float64)).kneighbors(x.astype(np.float64))
    assert idx.shape == dists.shape == (300, 15) and idx.dtype == np.int64
    assert (idx[:, 0] == np.arange(300)).all() and (dists[:, 0] == 0).all()
    assert (idx == ref_i).all()
    np.testing.assert_allclose(dists, np.maximum(ref_d, 0), atol=1e-6)


def test_every_per_class_result_names_its_classes(tmp_path):
    from rascal_geom.analysis import analyze

    emb, coarse, fine, attrs = _npz(tmp_path / "a.npz")
    _npz(tmp_path / "b.npz")
    doc = analyze(tmp_path / "b.npz", compare=[tmp_path / "a.npz"], hierarchy="synthetic",
                  umap=False, progress=False)
    m = doc["metrics"]
    family = doc["class_names"]["family"]
    blocks = {"retention": m["hierarchy_retention"][0]["per_class"],
              "variance": m["geodesic_variance"]["per_class"],
              "lift": m["attribute_consistency"]["per_class"],
              "spearman": m["rank_stability"]["per_class"]}
    for field, block in blocks.items():
        assert block["classes"] == family and len(block[field]) == len(family)
    assert set(blocks["retention"]) == {"classes", "accuracy", "chance", "retention"}
    assert set(blocks["lift"]) == {"classes", "agreement", "chance", "lift"}
    expected = geodesic_variance(emb, coarse)["per_class"].tolist()
    assert blocks["variance"]["variance"] == pytest.approx(expected)
