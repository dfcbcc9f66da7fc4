"""The analysis' retrieval, collapse, spectrum and calibration blocks equal direct metric calls."""

import numpy as np
import pytest

from rascal_geom import analysis as analysis_module
from rascal_geom.analysis import analyze
from rascal_geom.embeddings import EmbeddingSet
from rascal_geom.metrics import (
    calibration,
    cdnv,
    classifier_collapse,
    effective_rank,
    fit_linear_probe,
    holdout_probe_accuracy,
    rankme,
    retrieval_metrics,
    within_coarse_retrieval,
)
from rascal_geom.metrics.linear_probe import holdout_split


def _set(n=300, seed=0):
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 6, n)
    coarse = fine // 3
    emb = (
        2 * np.eye(12)[coarse] + np.eye(12)[2 + fine] + 0.7 * rng.standard_normal((n, 12))
    ).astype(np.float32)
    return EmbeddingSet(
        emb,
        {"family": coarse, "variant": fine},
        {"family": ["a", "b"], "variant": [f"v{i}" for i in range(6)]},
        source={"kind": "embeddings", "path": "mem.npz"},
    )


def _approx_block(got: dict, want: dict, keys):
    for key in keys:
        assert got[key] == pytest.approx(want[key]), key


@pytest.mark.parametrize("knn_ks", [(1, 20, 200), (1, 5)])
def test_new_blocks_equal_direct_calls(knn_ks):
    emb = _set()
    x, y, coarse = emb.embeddings, emb.labels["variant"], emb.labels["family"]
    doc = analyze(emb, level="variant", umap=False, progress=False, knn_ks=knn_ks)
    m = doc["metrics"]
    keys = ("precision_at_1", "r_precision", "map_at_r", "recall_at_1", "recall_at_8")
    loo = m["retrieval"]["leave_one_out"]
    # (1, 5): the kNN search is narrower than the largest class, so queries are sampled; n = 300 is
    # below the sample size, so the sample is every query and the numbers are exact either way.
    _approx_block(loo, retrieval_metrics(x, y), keys)
    assert loo["queries"].startswith("exact") and loo["level"] == "variant"
    assert loo["per_class"]["classes"] == [f"v{i}" for i in range(6)]
    within = m["retrieval"]["within_coarse"]
    assert [(w["coarse"], w["fine"]) for w in within] == [("family", "variant")]
    _approx_block(
        within[0], within_coarse_retrieval(x, coarse, y), ("map_at_r", "r_precision", "chance")
    )
    assert within[0]["queries"] == "exact, all 300 queries"

    train, test = holdout_split(y, 0.5, 0)
    probe = fit_linear_probe(x[train], y[train], num_classes=6)
    assert m["linear_probe"]["variant"] == pytest.approx(holdout_probe_accuracy(x, y)["top1"])
    assert m["linear_probe"]["family"] == pytest.approx(holdout_probe_accuracy(x, coarse)["top1"])
    cal = calibration(probe.logits(x[test]), y[test], n_bins=15, from_logits=True)
    _approx_block(m["calibration"], cal, ("ece", "mce", "accuracy"))
    assert m["calibration"]["n_bins"] == 15 and len(m["calibration"]["bins"]["count"]) == 15
    coll = classifier_collapse(x[train], y[train], probe)
    _approx_block(m["collapse"], coll, ("nc3", "nc4_agreement", "w_equinorm"))
    assert m["collapse"]["cdnv"] == pytest.approx(cdnv(x, y)["cdnv"])
    assert m["spectrum"]["rankme"] == pytest.approx(rankme(x))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert m["spectrum"]["effective_rank"] == pytest.approx(effective_rank(unit), rel=1e-5)
    assert (
        "raw" in m["spectrum"]["rankme_rows"]
        and "L2-normalised" in m["spectrum"]["effective_rank_rows"]
    )


def test_rankme_reads_raw_backbone_features_where_projections_are_normalised():
    emb = _set()
    feats = 5.0 * emb.embeddings
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    emb = EmbeddingSet(unit, emb.labels, emb.class_names, features=feats, source=emb.source)
    m = analyze(emb, level="variant", umap=False, progress=False)["metrics"]
    assert m["spectrum"]["rankme"] == pytest.approx(rankme(feats))
    assert m["spectrum"]["rankme_rows"] == "raw (not normalised) backbone features"
    assert m["collapse"]["rows"].startswith("L2-normalised projection rows")


def test_retrieval_samples_queries_when_the_knn_search_is_narrow(monkeypatch):
    monkeypatch.setattr(analysis_module, "RETRIEVAL_QUERIES", 50)
    emb = _set()
    doc = analyze(emb, level="variant", umap=False, progress=False, knn_ks=(1, 5))
    loo = doc["metrics"]["retrieval"]["leave_one_out"]
    want = retrieval_metrics(emb.embeddings, emb.labels["variant"], max_queries=50, seed=0)
    assert (
        loo["map_at_r"] == pytest.approx(want["map_at_r"]) and loo["n_queries"] == want["n_queries"]
    )
    assert loo["queries"].startswith("estimate: 50 seeded queries of 300")
    within = doc["metrics"]["retrieval"]["within_coarse"][0]
    x, labels = emb.embeddings, emb.labels
    want = within_coarse_retrieval(x, labels["family"], labels["variant"], max_queries=50, seed=0)
    assert (within["map_at_r"] == pytest.approx(want["map_at_r"])
            and within["n_queries"] == want["n_queries"])
    assert within["queries"].startswith("estimate: 50 seeded queries of 300")
