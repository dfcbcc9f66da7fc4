"""HTML reports from tiny schema-complete run directories: sections, escaping, stats, CLI."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rascal_geom.report import render_analysis, render_report
from rascal_geom.runs import find_baseline, group_runs, headline_values, load_run
from rascal_geom.stats import WEIGHT_BIN_EDGES, histogram_summary
from rascal_train.errors import RascalError

EVIL = "<script>alert(1)</script>"
COARSE = ["Boeing", "Airbus", EVIL]
FINE = ["737", "747", "A320", "A380", "x&y", "$z$"]
FINE_TO_COARSE = np.array([0, 0, 1, 1, 2, 2])


def write_run(root: Path, name: str, loss: str, seed: int, offset: float = 0.0, epochs: int = 3,
              umap: bool = True, values_seed: int | None = None) -> Path:
    """A fake but schema-complete run directory; numbers drawn from a seeded generator.

    ``values_seed`` fixes the drawn numbers independently of ``seed`` (identical runs).
    """
    rng = np.random.default_rng(1000 + (seed if values_seed is None else values_seed))
    run = root / name
    run.mkdir(parents=True)
    config = {"dataset": "synthetic", "data_root": None, "label_level": "family",
              "arch": "small_cnn", "loss": loss,
              "weights": "rank_agreement" if loss == "rascal" else None, "cache": "last_seen",
              "epochs": epochs, "batch_size": 64, "lr": 0.05, "temperature": 0.1, "seed": seed,
              "image_size": 32, "num_classes": 3, "out": str(run)}
    (run / "config.json").write_text(json.dumps(config))
    lines = []
    for e in range(1, epochs + 1):
        stats = {k: float(rng.uniform(0.1, 1.0)) for k in
                 ("pos_per_anchor", "weight_entropy", "eff_positives", "uniform_fallback", "drift",
                  "pos_sim", "neg_sim", "sim_gap", "margin_violation")}
        lines.append({"kind": "step", "epoch": e - 1, "step": e * 10 - 5, "lr": 0.05,
                      "loss": 5.0 - e, "images_per_s": 900.0, **stats})
        hist = rng.integers(0, 50, size=20).tolist() if loss == "rascal" else [0] * 19 + [100]
        lines.append({"kind": "epoch", "epoch": e, "step": e * 10, "lr": 0.05,
                      "loss": 5.0 - e + float(rng.normal(0, 0.05)), "images_per_s": 950.0,
                      "time_s": 3.0, **stats, "weight_hist": hist,
                      "knn_acc": 0.5 + 0.1 * e + offset, "rank_stability": 0.6 + 0.05 * e + offset})
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "eval.json").write_text(json.dumps({
        "checkpoint": str(run / "last.pt"), "epoch": epochs, "level": "family",
        "knn": {"top1": 0.7 + offset + float(rng.normal(0, 0.01)), "top5": 0.95, "k": 20},
        "linear": {"top1": 0.72 + offset + float(rng.normal(0, 0.01)), "top5": 0.96,
                   "protocol": "full_batch"},
        "shot_groups": None, "corruptions": None}))
    n = 60
    fine = rng.integers(0, len(FINE), size=n)
    analysis = {
        "schema": "rascal.analysis/1",
        "source": {"kind": "checkpoint", "path": str(run / "last.pt"), "run_dir": str(run),
                   "epoch": epochs, "config": config},
        "settings": {"hierarchy": "synthetic", "split": "test", "k": 20, "knn_ks": [1, 20],
                     "seed": 0, "embedding": "encoder"},
        "levels": ["family", "variant"],
        "class_names": {"family": COARSE, "variant": FINE},
        "metrics": {
            "knn_accuracy": {"family": {"1": 0.7, "20": 0.72}, "variant": {"1": 0.4, "20": 0.42}},
            "linear_probe": {"family": 0.73, "variant": 0.45},
            "hierarchy_retention": [{"coarse": "family", "fine": "variant", "accuracy": 0.6,
                                     "chance": 0.5, "retention": 0.2 + offset,
                                     "per_class": {"retention": (rng.uniform(0, 0.5, 3)
                                                                 + offset).tolist(),
                                                   "accuracy": rng.uniform(0.5, 1, 3).tolist()}}],
            "geodesic_variance": {"mean": 0.3, "collapse_ratio": 0.1,
                                  "per_class": rng.uniform(0.1, 0.5, 3).tolist()},
            "attribute_consistency": {"agreement": 0.5, "chance": 0.4, "lift": 0.17},
            "rank_stability": None,
            "geometry": {"alignment": 0.4 + offset, "uniformity": -2.0, "nc1": 1.5, "equinorm": 0.1,
                         "equiangularity": 0.05, "effective_rank": 20.0, "pos_sim": 0.8,
                         "neg_sim": 0.1, "sim_gap": 0.7, "margin_violation": 0.02},
        },
        "headline": {"knn_top1": 0.71 + offset + float(rng.normal(0, 0.01)),
                     "retention": {"variant": 0.2 + offset + float(rng.normal(0, 0.01))},
                     "attribute_lift": 0.17 + float(rng.normal(0, 0.01)),
                     "geodesic_variance": 0.3 + float(rng.normal(0, 0.01)),
                     "collapse_ratio": 0.1 + offset, "rank_stability": None},
        "umap": ({"coords": rng.normal(size=(n, 2)).tolist(),
                  "labels": {"family": FINE_TO_COARSE[fine].tolist(), "variant": fine.tolist()},
                  "trustworthiness": 0.91, "n": n} if umap else None),
    }
    (run / "analysis.json").write_text(json.dumps(analysis))
    return run


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    runs = [write_run(root, f"supcon_s{s}", "supcon", s) for s in (0, 1, 2)]
    runs += [write_run(root, f"rascal_s{s}", "rascal", s, offset=0.2) for s in (0, 1, 2)]
    out = root / "reports" / "cmp.html"
    latex = root / "tex"
    path = render_report(runs, baseline="supcon", out_html=out, latex_dir=latex, progress=False)
    return root, runs, path, path.read_text(encoding="utf-8"), latex


def _remote_references(html: str) -> list[str]:
    """src/href/url()/@import pointing off the page (namespace declarations are not fetched)."""
    # data: URIs (inline thumbnails) are part of the page, not fetched.
    pats = [r"""(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*"""
            r"""(?!data:)(?:[a-z][a-z0-9+.-]*:|//)""",
            r"""url\(\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)""", r"@import", r"<link\b", r"<iframe\b"]
    return [m.group(0) for p in pats for m in re.finditer(p, html, flags=re.IGNORECASE)]


def test_report_has_every_section_and_no_remote_resource(comparison):
    root, _, path, html, _ = comparison
    for section in ("summary", "config", "tradeoff", "headline", "geometry", "curves", "weights",
                    "per-class", "umap"):
        assert f'<section id="{section}">' in html
    # trade-off, curves, weights, 2 per-class, 2 UMAPs
    assert html.count("<svg") == 1 + 1 + 1 + 2 + 2
    assert "No epoch records" not in html and "No UMAP" not in html and "No RASCAL run" not in html
    assert _remote_references(html) == []
    assert "<style>" in html and "font-variant-numeric" in html  # the CSS is inlined
    assert "@media print" in html
    figs = path.with_name("cmp_figures")
    stems = {p.stem for p in figs.iterdir()}
    assert {"tradeoff", "training_curves", "weight_histogram", "per_class_1", "per_class_2",
            "umap_1", "umap_2"} <= stems
    for stem in stems:
        assert (figs / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert (figs / f"{stem}.svg").read_text().lstrip().startswith("<?xml")


def test_remote_reference_detector_catches_remote_resources():
    assert _remote_references('<img src="https://x.org/a.png">')
    assert _remote_references("<style>a{background:url(//cdn.x/y.png)}</style>")
    assert _remote_references('<svg xmlns="http://www.w3.org/2000/svg"><use '
                              'xlink:href="#a"/></svg>') == []
    assert _remote_references('<img src="data:image/png;base64,iVBO">') == []


def test_runs_grouped_by_seed_and_headline_mean_std(comparison):
    _, runs, _, html, _ = comparison
    groups = group_runs([load_run(r) for r in runs])
    assert [g.name for g in groups] == ["supcon", "rascal"]
    assert [sorted(g.seeds) for g in groups] == [[0, 1, 2], [0, 1, 2]]
    assert find_baseline(groups, "supcon") == 0 and find_baseline(groups, "rascal") == 1
    knn = [next(v for k, v in headline_values(r).items() if k.startswith("knn_top1|analysis"))
           for r in groups[1].runs]
    assert summary_text(knn) in html
    assert "n=3" in html
    # Differences of 0.2 with a spread of 0.01 are distinguishable, paired by seed.
    assert "paired t" in html
    # Groups are shown by method name, derived from loss and weight source.
    assert "RASCAL (rank agreement) is higher than SupCon in" in html


def test_weight_table_from_last_epoch_histograms(comparison):
    _, runs, _, html, _ = comparison
    counts = sum(np.asarray([r for r in load_run(p).epoch_records][-1]["weight_hist"], dtype=float)
                 for p in runs[3:])
    h = histogram_summary(counts, WEIGHT_BIN_EDGES)
    section = html.split('<section id="weights">')[1].split("</section>")[0]
    assert f"{h['share_ge_0.9']:.1%}" in section and f"{h['share_lt_0.3']:.1%}" in section
    assert f"{h['mean']:.3f}" in section
    assert "supcon" not in section.split("<table>")[1]  # only RASCAL groups are tabulated


def test_user_text_is_escaped(comparison):
    _, _, _, html, _ = comparison
    # Exactly one script element: the page's own sorter. The class name shows as text.
    assert len(re.findall(r"<script\b", html)) == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "x&amp;y" in html


def test_identical_runs_give_only_indistinguishable_deltas(tmp_path):
    a = [write_run(tmp_path, f"base_s{s}", "supcon", s, values_seed=s, umap=False)
         for s in (0, 1, 2)]
    b = [write_run(tmp_path, f"copy_s{s}", "rascal", s, values_seed=s, umap=False)
         for s in (0, 1, 2)]
    html = render_report(a + b, out_html=tmp_path / "same.html", progress=False).read_text()
    table = html.split('id="headline-table"')[1].split("</table>")[0]
    deltas = re.findall(r'<td class="num (sig|ns|noci)"', table)
    # linear and kNN (eval.json), kNN, retention, lift, variance, ratio (analysis), rank stability
    # (training monitor): 8 measurements, all ≈ 0
    assert len(deltas) == 8 and set(deltas) == {"ns"}
    summary = html.split('<section id="summary">')[1].split("</section>")[0]
    assert "is higher" not in summary and "is lower" not in summary and "improv" not in summary
    assert "Not distinguishable from zero" in summary


def test_single_runs_state_no_interval(tmp_path):
    a = write_run(tmp_path, "supcon_s0", "supcon", 0, values_seed=0, umap=False)
    b = write_run(tmp_path, "rascal_s0", "rascal", 0, offset=0.3, values_seed=0, umap=False)
    html = render_report([a, b], out_html=tmp_path / "one.html", progress=False).read_text()
    summary = html.split('<section id="summary">')[1].split("</section>")[0]
    assert "is higher" not in summary and "no difference is claimed" in summary
    # Said once per table and once in the summary, not after each of the 7 headline metrics.
    assert summary.count("one run (n=1)") == 1 and "n=1: no interval" not in html
    headline = html.split('<section id="headline">')[1].split("</section>")[0]
    assert headline.count("one run (n=1)") == 1 and headline.count(">no CI<") == 8


def test_render_analysis_single_page(tmp_path):
    run = write_run(tmp_path, "rascal_s0", "rascal", 0)
    analysis = json.loads((run / "analysis.json").read_text())
    out = render_analysis(analysis, tmp_path / "page" / "a.html")
    html = out.read_text()
    assert '<section id="umap">' in html and "trustworthiness 0.910" in html
    # nothing to compare
    assert "\u0394" not in html.split('id="headline-table"')[1].split("</table>")[0]
    assert _remote_references(html) == []
    with pytest.raises(RascalError, match="schema"):
        render_analysis({"schema": "other"}, tmp_path / "b.html")


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RascalError, match="neither a run directory"):
        load_run(tmp_path / "empty")
    run = write_run(tmp_path, "supcon_s0", "supcon", 0)
    with pytest.raises(RascalError, match="No run group matches --baseline 'ce'"):
        render_report([run], baseline="ce", out_html=tmp_path / "x.html", progress=False)


def test_cli_report(tmp_path):
    from rascal_cli.main import cli

    a = write_run(tmp_path, "supcon_s0", "supcon", 0, umap=False)
    b = write_run(tmp_path, "rascal_s0", "rascal", 0, umap=False)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(cli, ["report", str(a), str(b), "--baseline", "supcon", "--out",
                                   str(out), "--latex", str(tmp_path / "tex"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and str(out) in res.output
    assert (tmp_path / "tex" / "headline.tex").is_file()
    bad = CliRunner().invoke(cli, ["report", str(tmp_path / "tex"), "--quiet"])
    assert bad.exit_code == 1 and "neither a run directory" in bad.output
    assert "Traceback" not in bad.output


def _headline_rows(html: str) -> dict[str, str]:
    table = html.split('id="headline-table"')[1].split("</table>")[0]
    return {m.group(1): m.group(0)
            for m in re.finditer(r"<tr><td>([^<]*)<span class=\"ci\">.*?</tr>", table, re.S)}


def test_every_row_is_one_measurement_with_its_provenance(tmp_path):
    # Before, "kNN top-1" silently took the analysis value over eval.json's, and "rank stability"
    # was the analysis value for some runs and the training monitor's for others, averaged together.
    a = [write_run(tmp_path, f"supcon_s{s}", "supcon", s, umap=False) for s in (0, 1, 2)]
    for run in a[:2]:  # two runs were analysed between checkpoints, the third only monitored
        doc = json.loads((run / "analysis.json").read_text())
        doc["headline"]["rank_stability"] = 0.1
        (run / "analysis.json").write_text(json.dumps(doc))
    html = render_report(a, out_html=tmp_path / "p.html", progress=False).read_text()
    rows = _headline_rows(html)
    assert set(rows) >= {"kNN top-1 (eval.json)", "kNN top-1 (analysis)",
                         "rank stability (analysis)", "rank stability (training monitor)"}
    records = [load_run(r) for r in a]
    eval_knn = [r.eval["knn"]["top1"] for r in records]
    analysis_knn = [r.analysis["headline"]["knn_top1"] for r in records]
    assert summary_text(eval_knn) in rows["kNN top-1 (eval.json)"]
    assert summary_text(analysis_knn) in rows["kNN top-1 (analysis)"]
    assert ("test split vs the train-split bank, backbone features, k=20"
            in rows["kNN top-1 (eval.json)"])
    assert "leave-one-out, k=20" in rows["kNN top-1 (analysis)"]
    monitor = [r.epoch_records[-1]["rank_stability"] for r in records]
    assert summary_text(monitor) in rows["rank stability (training monitor)"]
    assert "0.100 \u00b1 0.000" in rows["rank stability (analysis)"]  # no spread: 3 decimals
    assert "n=2 of 3" in rows["rank stability (analysis)"]  # the gap is shown, not filled


def summary_text(values) -> str:
    """Mean ± std rounded to the std's first significant digit, computed here by hand."""
    std = np.std(values, ddof=1)
    d = max(0, -int(np.floor(np.log10(std)))) if std > 0 else 3  # no spread: 3 decimals
    return f"{np.mean(values):.{d}f} \u00b1 {std:.{d}f}".replace("-", "\u2212")


def test_protocol_card_heads_the_report(comparison):
    _, runs, _, html, _ = comparison
    assert html.index('<section id="protocol">') < html.index('<section id="summary">')
    card = html.split('<section id="protocol">')[1].split("</section>")[0]
    for field in ("eval.json: split", "eval.json: checkpoint", "eval.json: linear probe",
                  "eval.json: kNN", "analysis: split", "analysis: features", "seeds"):
        assert f"<td>{field}</td>" in card
    assert "last.pt (epoch 3)" in card and "0, 1, 2" in card


@pytest.mark.parametrize("weights,expected", [
    ("rank_agreement", "raw positive weights 1 \u2212 \u03b4"),
    ("uniform", "not this run&#39;s weights (it weighted positives by uniform)"),
    ("current_rank", "not this run&#39;s weights (it weighted positives by current_rank)"),
])
def test_weight_histogram_caption_names_what_was_recorded(tmp_path, weights, expected):
    run = write_run(tmp_path, "rascal_s0", "rascal", 0, umap=False)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "weights": weights}))
    html = render_report([run], out_html=tmp_path / "w.html", progress=False).read_text()
    section = html.split('<section id="weights">')[1].split("</section>")[0]
    assert expected in section.split("<figcaption>")[1].split("</figcaption>")[0]
    if weights != "rank_agreement":
        assert "raw positive weights" not in html


def test_classes_without_a_value_are_out_of_the_ranking():
    from rascal_geom.report import MAX_CLASSES_IN_FIGURE, _classes_to_draw

    values = np.arange(50, dtype=float)
    values[[0, 49, 7]] = np.nan  # the old ranking drew 49 as the best and 0 among the worst
    shown, notes = _classes_to_draw(values, "rascal")
    assert len(shown) == MAX_CLASSES_IN_FIGURE and not np.isnan(values[shown]).any()
    finite = np.sort(values[np.isfinite(values)])
    half = MAX_CLASSES_IN_FIGURE // 2
    assert set(values[shown]) == set(finite[:half]) | set(finite[-half:])
    assert notes[-1] == ("3 classes without a value for rascal left out of the figure and its "
                         "ranking")
    few, notes = _classes_to_draw(np.array([0.2, np.nan, 0.5]), "supcon")
    assert few.tolist() == [0, 2] and notes == ["1 class without a value for supcon left out of "
                                                "the figure and its ranking"]


def test_analysis_files_of_the_old_per_class_shapes_render_as_before(tmp_path):
    # Before the per-class shape was fixed, geodesic variance was a bare list and retention a dict
    # of series, both without class names (write_run writes those shapes); the report named them
    # by the level with as many classes. The current shape names the classes itself.
    old = write_run(tmp_path / "old", "rascal_s0", "rascal", 0, umap=False)
    new = write_run(tmp_path / "new", "rascal_s0", "rascal", 0, umap=False)
    doc = json.loads((new / "analysis.json").read_text())
    m = doc["metrics"]
    geo, retention = m["geodesic_variance"], m["hierarchy_retention"][0]
    geo["per_class"] = {"classes": COARSE, "variance": geo["per_class"]}
    retention["per_class"] = {"classes": COARSE, **retention["per_class"]}
    (new / "analysis.json").write_text(json.dumps(doc))
    assert load_run(old).analysis["metrics"] == load_run(new).analysis["metrics"]

    def per_class(run):
        html = render_report([run], out_html=run.parent / "r.html", progress=False).read_text()
        section = html.split('<section id="per-class">')[1].split("</section>")[0]
        return re.sub(r"<svg.*?</svg>", "", section, flags=re.S)  # the tables and captions

    section = per_class(old)
    assert section == per_class(new)
    assert "Boeing" in section and "&lt;script&gt;" in section and "class 0" not in section


def test_tradeoff_figure_marks_the_baseline_at_the_group_means(comparison):
    _, runs, _, html, _ = comparison
    section = html.split('<section id="tradeoff">')[1].split("</section>")[0]
    # eval.json has the linear top-1 of every run, so the x axis says so; the baseline is named.
    assert "linear top-1 (eval.json" in section and "retention of variant" in section
    assert "hollow square is the baseline SupCon" in section
    assert "SupCon (baseline) (n=3)" in section and "RASCAL (rank agreement) (n=3)" in section


def test_analysis_page_shows_retrieval_collapse_and_a_reliability_diagram(tmp_path):
    from test_analysis_retrieval import _set

    from rascal_geom.analysis import analyze
    from rascal_geom.report import render_analysis

    doc = analyze(_set(), level="variant", umap=False, progress=False)
    html = render_analysis(doc, tmp_path / "a.html").read_text()
    section = html.split('<section id="retrieval">')[1].split("</section>")[0]
    for label in ("MAP@R", "R-precision", "Recall@8", "MAP@R of variant within family",
                  "NC3 (self-duality)", "CDNV", "RankMe (raw rows)", "probe ECE (15 bins)"):
        assert f"<td>{label} (analysis)<span" in section, label
    assert ("exact, all 300 queries" in section
            and "Reliability diagram of the linear probe" in section)
    assert section.count("<svg") == 1
    # One group: nothing to trade off.
    assert '<section id="tradeoff">' not in html


def _similarity_doc(names, matrix):
    return {"schema": "rascal.compare/1", "names": names, "n_samples": 60, "split": "test",
            "embedding": "projection", "matrices": {"cka_debiased": matrix.tolist()}}


def test_similarity_section_means_within_and_between_groups(comparison, tmp_path):
    root, runs, _, _, _ = comparison
    names = [r.name for r in runs]  # supcon_s0..2, rascal_s0..2
    m = np.random.default_rng(5).uniform(0.2, 0.9, (6, 6))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    order = [3, 0, 4, 1, 5, 2]  # the file lists the runs in another order than the report
    doc = _similarity_doc([names[i] for i in order], m[np.ix_(order, order)])
    html = render_report(runs, baseline="supcon", out_html=tmp_path / "s.html", progress=False,
                         similarity=doc).read_text()
    section = html[html.index('<section id="similarity">'):]
    section = section[:section.index("</section>")]
    cells = re.findall(r'<td class="num">([^<]*)</td><td class="num">(\d+)</td>', section)
    within_s = m[np.ix_([0, 1, 2], [0, 1, 2])][np.triu_indices(3, 1)].mean()
    between = m[np.ix_([0, 1, 2], [3, 4, 5])].mean()
    within_r = m[np.ix_([3, 4, 5], [3, 4, 5])][np.triu_indices(3, 1)].mean()
    assert cells == [(f"{within_s:.3f}", "3"), (f"{between:.3f}", "9"), (f"{within_r:.3f}", "3")]
    assert section.count("seeds of one configuration") == 2 and "<svg" in section
    assert '<a href="#similarity">' in html


def test_similarity_file_errors_are_one_line(comparison, tmp_path):
    from rascal_cli.main import cli

    root, runs, _, _, _ = comparison
    with pytest.raises(RascalError, match="not a comparison of runs"):
        render_report(runs, out_html=tmp_path / "a.html", progress=False,
                      similarity={"schema": "rascal.analysis/1"})
    names = [r.name for r in runs]
    for broken in ({**_similarity_doc(names, np.eye(6)), "matrices": {"cka_debiased": [[1.0]]}},
                   {**_similarity_doc(names, np.eye(6)), "names": None},
                   {**_similarity_doc(names, np.eye(6)),
                    "matrices": {"cka_debiased": [["x"] * 6] * 6}},
                   {**_similarity_doc(names, np.eye(6)), "matrices": None}):  # --layers
        with pytest.raises(RascalError, match="not a comparison of runs"):
            render_report(runs, out_html=tmp_path / "e.html", progress=False, similarity=broken)
    with pytest.raises(RascalError, match="compares none or one of these runs"):
        render_report(runs, out_html=tmp_path / "b.html", progress=False,
                      similarity=_similarity_doc(["x", "y"], np.eye(2)))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = CliRunner().invoke(cli, ["report", *map(str, runs), "--similarity", str(bad), "-q",
                                   "--out", str(tmp_path / "c.html")])
    assert res.exit_code == 1 and res.output.count("Error:") == 1
    assert "is not readable JSON" in res.output and "Traceback" not in res.output
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_similarity_doc([r.name for r in runs], np.eye(6))))
    res = CliRunner().invoke(cli, ["report", *map(str, runs), "--similarity", str(good), "-q",
                                   "--out", str(tmp_path / "d.html")])
    assert res.exit_code == 0 and 'id="similarity"' in (tmp_path / "d.html").read_text()
