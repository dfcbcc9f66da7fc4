"""`rascal demo`: one budget for CE, SupCon and RASCAL, analysed and reported end to end."""

import json

from click.testing import CliRunner

from rascal_cli.main import cli
from rascal_geom import workflows as demo
from rascal_train.sweep import expand_grid


def test_every_loss_gets_the_same_budget():
    runs = expand_grid(demo.demo_spec(quick=False, seeds=2))
    assert sorted((r.options["loss"], r.options["seed"]) for r in runs) == [
        ("ce", 0), ("ce", 1), ("rascal", 0), ("rascal", 1), ("supcon", 0), ("supcon", 1)]
    budgets = {json.dumps({k: v for k, v in r.options.items() if k not in ("loss", "seed")},
                          sort_keys=True)
               for r in runs}
    assert len(budgets) == 1


def test_quick_demo_end_to_end_and_rerun_retrains_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "QUICK_BUDGET", {**demo.QUICK_BUDGET, "epochs": 1, "limit": 128,
                                               "batch_size": 64, "device": "cpu"})
    report = tmp_path / "demo.html"
    args = ["demo", "--quick", "--out", str(tmp_path / "runs"), "--report", str(report), "-q"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert f"Report: {report.resolve()}" in res.output
    assert "Ran 1 seed per loss" in res.output and "none is claimed" in res.output
    html = report.read_text()
    for loss in ("ce", "supcon", "rascal"):
        run = tmp_path / "runs" / "quick" / f"loss={loss}"
        analysis = json.loads((run / "analysis.json").read_text())
        assert analysis["headline"]["retention"]["variant"] is not None
        assert json.loads((run / "eval.json").read_text())["epoch"] == 1
        assert f"loss={loss}" in html
    # The runs' similarity: what `rascal compare` gives on the three run directories.
    from rascal_geom.compare import compare

    runs = [tmp_path / "runs" / "quick" / f"loss={loss}" for loss in ("ce", "supcon", "rascal")]
    similarity = json.loads((tmp_path / "runs" / "quick" / "similarity.json").read_text())
    again = compare(runs, device="cpu", progress=False)
    assert similarity["names"] == again["names"] == [r.name for r in runs]
    assert similarity["matrices"]["cka_debiased"] == again["matrices"]["cka_debiased"]
    assert 'id="similarity"' in html and "seeds of one configuration" not in html
    stamp = (tmp_path / "runs" / "quick" / "loss=rascal" / "checkpoints"
             / "last.pt").stat().st_mtime_ns
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert (tmp_path / "runs" / "quick" / "loss=rascal" / "checkpoints"
            / "last.pt").stat().st_mtime_ns == stamp
