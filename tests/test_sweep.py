"""Sweep grids: expansion, names, validation, and resuming an interrupted sweep."""

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from rascal_cli.main import cli
from rascal_train.errors import RascalError
from rascal_geom.workflows import run_sweep
from rascal_train.sweep import expand_grid, load_grid, run_status, train_command

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))


def test_grid_expands_to_the_product_then_include_with_stable_names():
    spec = {"base": {"epochs": 3},
            "grid": {"weights": ["current_rank", "rank_agreement"], "seed": [0, 1]},
            "include": [{"loss": "supcon", "seed": 0}, {"loss": "supcon", "seed": 1},
                        {"loss": "ce", "seed": 0}]}
    runs = expand_grid(spec)
    assert [r.name for r in runs] == [
        "weights=current_rank,seed=0", "weights=current_rank,seed=1",
        "weights=rank_agreement,seed=0", "weights=rank_agreement,seed=1",
        "loss=supcon,seed=0", "loss=supcon,seed=1", "loss=ce,seed=0"]
    assert runs[3].options == {"epochs": 3, "weights": "rank_agreement", "seed": 1}
    assert [r.name for r in expand_grid(spec)] == [r.name for r in runs]  # deterministic


def test_display_names_are_a_valid_grid_key():
    spec = {"grid": {"seed": [0, 1]}, "display_names": {"rascal": "RASCAL (ours)"}}
    assert [r.name for r in expand_grid(spec)] == ["seed=0", "seed=1"]


def test_sweep_names_group_over_seeds_in_the_report():
    from rascal_train.sweep import SEED_SUFFIX

    runs = expand_grid({"grid": {"seed": [0, 1], "weights": ["rank_agreement", "current_rank"]}})
    assert ({SEED_SUFFIX.sub("", r.name) for r in runs}
            == {"weights=rank_agreement", "weights=current_rank"})


def test_identical_runs_listed_twice_appear_once_and_clashing_names_fail():
    spec = {"grid": {"seed": [0, 0, 1]}}
    assert [r.name for r in expand_grid(spec)] == ["seed=0", "seed=1"]
    clash = {"grid": {"data_root": ["/data/a b", "/data/a_b"]}}  # both slug to _data_a_b
    with pytest.raises(RascalError, match="both get the name"):
        expand_grid(clash)


@pytest.mark.parametrize("spec,match", [
    ({"grid": {"sed": [0, 1]}}, "unknown option 'sed'"),
    ({"base": {"out": "x"}}, "sweep chooses itself"),
    ({"grid": {"seed": 3}}, "non-empty list"),
    ({"grid": {"loss": ["rascal", "triplet"]}}, "loss"),
    ({"grdi": {}}, "unknown top-level key 'grdi'"),
    ({"grid": {"seed": [0, 1]}, "display_names": ["CE"]}, "display_names"),
    ({"grid": {"seed": [0, 1]}, "display_names": {"rascal": ""}}, "display_names"),
])
def test_invalid_grids_are_named_in_one_line(spec, match):
    with pytest.raises(RascalError, match=match) as info:
        expand_grid(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_grids_expand(path):
    runs = expand_grid(load_grid(path))
    assert len(runs) == len({r.name for r in runs}) >= 4
    seeds = {r.options.get("seed") for r in runs}
    assert len(seeds) >= 3  # every ablation is repeated over seeds


def test_print_commands_gives_one_train_command_per_run(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({"base": {"epochs": 1, "monitor": False},
                                    "grid": {"seed": [0, 1]}, "gpus": 2}))
    res = CliRunner().invoke(cli, ["sweep", str(grid), "--out", str(tmp_path / "o"),
                                   "--print-commands"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines == ["torchrun --nproc-per-node=2 --no-python rascal train --epochs 1 "
                     f"--no-monitor --seed {s} --out {tmp_path / 'o' / f'seed={s}'}"
                     for s in (0, 1)]


def test_bad_grid_file_is_one_line_and_exit_1(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("grid: {seed: [0, 1]\n")
    res = CliRunner().invoke(cli, ["sweep", str(grid), "--dry-run"])
    assert res.exit_code == 1
    assert "not valid YAML" in res.output and "Traceback" not in res.output


def test_interrupted_sweep_reruns_nothing_finished(tmp_path):
    spec = {"base": {"dataset": "synthetic", "epochs": 2, "limit": 64, "batch_size": 32,
                     "monitor": False, "device": "cpu"},
            "grid": {"loss": ["supcon", "rascal"]}}
    out = tmp_path / "sweep"
    runs = expand_grid(spec)
    assert run_sweep(spec, out, progress=False, analyze=False) is None
    a, b = (out / r.name for r in runs)
    assert run_status(a, runs[0].options) == run_status(b, runs[1].options) == "done"
    # Interrupt run b after its first epoch: only epoch 1 survives.
    (b / "checkpoints" / "epoch_0002.pt").unlink()
    shutil.copy(b / "checkpoints" / "epoch_0001.pt", b / "checkpoints" / "last.pt")
    assert run_status(b, runs[1].options) == "partial"
    assert "--resume" in train_command(runs[1], b)
    stamp_a = (a / "checkpoints" / "epoch_0002.pt").stat().st_mtime_ns
    stamp_b1 = (b / "checkpoints" / "epoch_0001.pt").stat().st_mtime_ns
    run_sweep(spec, out, progress=False, analyze=False)
    assert (a / "checkpoints" / "epoch_0002.pt").stat().st_mtime_ns == stamp_a   # not retrained
    # resumed, not redone
    assert (b / "checkpoints" / "epoch_0001.pt").stat().st_mtime_ns == stamp_b1
    assert run_status(b, runs[1].options) == "done"


def test_sweep_continues_a_run_killed_before_its_first_checkpoint(tmp_path):
    spec = {"base": {"dataset": "synthetic", "epochs": 1, "limit": 64, "batch_size": 32,
                     "monitor": False, "device": "cpu", "loss": "supcon"}}
    out = tmp_path / "sweep"
    (run,) = expand_grid(spec)
    assert run_sweep(spec, out, progress=False, analyze=False) is None
    straight = torch.load(out / run.name / "last.pt", weights_only=True)["model"]
    # What a kill in the first epoch leaves: the config and some step records, no checkpoint.
    shutil.rmtree(out / run.name / "checkpoints")
    (out / run.name / "last.pt").unlink()
    assert run_status(out / run.name, run.options) == "partial"
    assert "--resume" in train_command(run, out / run.name)
    run_sweep(spec, out, progress=False, analyze=False)
    again = torch.load(out / run.name / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(straight[k], again[k]) for k in straight)
