"""Every command, tried as a careless user would: bad paths, bad contents, bad values, outputs that
cannot (or must not) be written.

Each case asserts the same contract: exit 1 (a failure at run time) or 2 (a usage error), one
``Error:`` line on stderr (a usage error adds click's ``Usage:``/``Try`` lines), no traceback,
no file of the user's changed, no temporary file left. Kills during writes and two writers to
one run directory are in ``test_kill_resume.py``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from rascal_cli.main import cli
from test_train import TINY, TINY_TRAIN

TRAIN = TINY_TRAIN
GRID = {"base": {"dataset": TINY, "epochs": 1, "batch_size": 16, "limit": 32, "monitor": False},
        "grid": {"loss": ["ce", "supcon"]}}


def _npz(path, embeddings, labels):
    np.savez(path, embeddings=np.asarray(embeddings, np.float32), labels=np.asarray(labels))


def _grid(path, **changes):
    path.write_text(yaml.safe_dump({**GRID, **changes}))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("src") / "run"
    result = CliRunner().invoke(cli, [*TRAIN, "--loss", "supcon", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _user_files(d: Path, run: Path) -> None:
    """What a user has in their folder when they make the mistake."""
    rng = np.random.default_rng(0)
    shutil.copytree(run, d / "run", symlinks=True)
    shutil.copytree(run, d / "badlog", symlinks=True)
    with open(d / "badlog" / "train_log.jsonl", "a") as fh:
        fh.write("[1, 2]\n{\"kind\": \"epoch\", \"epoch\": 1}\n")
    shutil.copytree(run, d / "badeval", symlinks=True)
    (d / "badeval" / "eval.json").write_text("[]\n")
    (d / "afile").write_text("a user's notes\n")
    (d / "empty").mkdir()
    (d / "userdir").mkdir()
    (d / "userdir" / "config.json").write_text('{"my": "own settings"}\n')
    _npz(d / "emb.npz", rng.normal(size=(40, 8)), np.arange(40) % 4)
    _npz(d / "emb_other_labels.npz", rng.normal(size=(40, 8)), (np.arange(40) + 1) % 4)
    _npz(d / "emb_fewer.npz", rng.normal(size=(36, 8)), np.arange(36) % 4)
    _npz(d / "zero_width.npz", np.zeros((10, 0)), np.arange(10) % 2)
    _npz(d / "singletons.npz", rng.normal(size=(6, 4)), np.arange(6))
    _npz(d / "huge_label.npz", rng.normal(size=(10, 4)), [0, 1] * 4 + [0, 10**9])
    (d / "empty.npz").write_bytes(b"")
    (d / "json.pt").write_text('{"epoch": 1}\n')
    (d / "latin1.yaml").write_bytes("lr: 0.1 # r\xe9glage\n".encode("latin-1"))
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "wd_inf.yaml").write_text("weight_decay: .inf\n")
    (d / "momentum.yaml").write_text("momentum: 2\n")
    (d / "classes.yaml").write_text("num_classes: 3\n")
    (d / "grid_latin1.yaml").write_bytes("base: {epochs: 1} # r\xe9glage\n".encode("latin-1"))
    _grid(d / "grid_gpus.yaml", gpus="two")
    _grid(d / "grid_escape.yaml", name="../../../x")
    _grid(d / "grid_list_name.yaml", name=["a", "b"])
    _grid(d / "grid_dataset.yaml", base={**GRID["base"], "dataset": "nosuch"})
    _grid(d / "grid_baseline.yaml", baseline="supcn")
    _grid(d / "grid_ok.yaml")


# (id, argv with {d} for the user's folder, exit code, a fragment of the error line)
CASES = [
    # --- paths that do not exist ---------------------------------------------------------------
    ("train-config-missing", ["train", "--config", "{d}/nosuch.yaml"], 2, "does not exist"),
    ("train-resume-missing", ["train", "--resume", "{d}/nosuch"], 2, "does not exist"),
    ("train-resume-not-a-run", ["train", "--resume", "{d}/empty"], 1, "holds no run"),
    ("train-resume-json-as-checkpoint", ["train", "--resume", "{d}/json.pt"], 1,
     "not a readable PyTorch checkpoint (neither a zip archive nor a pickle)"),
    ("train-dataset-missing-files", ["train", "--dataset", "cifar100", "--data-root", "{d}/empty",
                                     "-q", "--out", "{d}/c"], 1, "cifar"),
    ("eval-missing", ["eval", "{d}/nosuch.pt"], 1, "does not exist"),
    ("eval-json-as-checkpoint", ["eval", "{d}/json.pt"], 1, "not a readable PyTorch checkpoint"),
    ("analyze-missing", ["analyze", "{d}/nosuch.npz"], 2, "does not exist"),
    ("analyze-json-as-checkpoint", ["analyze", "{d}/json.pt", "--out", "{d}/o.html"], 1,
     "not a readable PyTorch checkpoint"),
    ("report-missing", ["report", "{d}/nosuch"], 2, "does not exist"),
    ("report-not-a-run", ["report", "{d}/empty", "--out", "{d}/r.html"], 1, "empty"),
    ("sweep-missing", ["sweep", "{d}/nosuch.yaml"], 2, "does not exist"),
    ("embed-missing", ["embed", "{d}/nosuch.pt", "--out", "{d}/e.npz"], 2, "does not exist"),
    ("embed-json-as-checkpoint", ["embed", "{d}/json.pt", "--out", "{d}/e.npz"], 1,
     "not a readable PyTorch checkpoint"),
    # --- outputs that cannot be written (checked before any work) --------------------------------
    ("train-out-under-file", [*TRAIN, "--out", "{d}/afile/run"], 2, "is a file, not a folder"),
    ("train-out-proc", [*TRAIN, "--out", "/proc/run"], 2, "/proc is not writable"),
    ("train-out-is-file", [*TRAIN, "--out", "{d}/afile"], 2, "is a file"),
    ("eval-out-under-file", ["eval", "{d}/run", "--out", "{d}/afile/e.json"], 2,
     "is a file, not a folder"),
    ("eval-out-proc", ["eval", "{d}/run", "--out", "/proc/e.json"], 2, "/proc is not writable"),
    ("analyze-out-under-file", ["analyze", "{d}/emb.npz", "--out", "{d}/afile/r.html"], 2,
     "is a file"),
    ("analyze-out-proc", ["analyze", "{d}/emb.npz", "--out", "/proc/r.html"], 2,
     "/proc is not writable"),
    ("analyze-out-is-folder", ["analyze", "{d}/emb.npz", "--out", "{d}/empty"], 2,
     "is a directory"),
    ("report-out-proc", ["report", "{d}/run", "--out", "/proc/r.html"], 2, "/proc is not writable"),
    ("report-latex-under-file",
     ["report", "{d}/run", "--out", "{d}/r.html", "--latex", "{d}/afile/t"], 2,
     "is a file, not a folder"),
    ("demo-report-proc", ["demo", "--quick", "--out", "{d}/demo", "--report", "/proc/x.html"], 2,
     "/proc is not writable"),
    ("demo-out-under-file",
     ["demo", "--quick", "--out", "{d}/afile/demo", "--report", "{d}/d.html"], 2,
     "is a file, not a folder"),
    ("embed-out-under-file", ["embed", "{d}/run", "--out", "{d}/afile/e.npz"], 2,
     "is a file, not a folder"),
    ("embed-out-proc", ["embed", "{d}/run", "--out", "/proc/e.npz"], 2, "/proc is not writable"),
    ("sweep-out-under-file", ["sweep", "{d}/grid_ok.yaml", "--out", "{d}/afile/s"], 2,
     "is a file, not a folder"),
    # --- outputs that are inputs or a user's file of another kind: refused, never replaced --------
    ("train-out-empty", [*TRAIN, "--out", ""], 2, "is empty"),
    ("train-out-foreign-config", [*TRAIN, "--out", "{d}/userdir"], 1,
     "is not the config of a rascal run"),
    ("train-resume-out-elsewhere", ["train", "--resume", "{d}/run", "--out", "{d}/elsewhere"], 1,
     "differs from the run being resumed"),
    ("analyze-out-is-input", ["analyze", "{d}/emb.npz", "--out", "{d}/emb.npz"], 2,
     "is not a .html file"),
    ("analyze-out-json-is-input", ["analyze", "{d}/emb.npz", "--out", "{d}/emb.html", "--compare",
                                   "{d}/emb.json"], 2, "does not exist"),
    ("embed-out-is-checkpoint", ["embed", "{d}/run", "--out", "{d}/run/checkpoints/last.pt"], 2,
     "is not a .npz file"),
    ("embed-out-is-user-file", ["embed", "{d}/run", "--out", "{d}/afile"], 2, "is not a .npz file"),
    ("eval-out-is-checkpoint", ["eval", "{d}/run", "--out", "{d}/run/checkpoints/epoch_0001.pt"], 2,
     "is not a .json file"),
    ("report-out-is-input", ["report", "{d}/run/config.json", "--out", "{d}/run/config.json"], 2,
     "is not a .html file"),
    ("report-same-run-twice", ["report", "{d}/run", "{d}/run/", "--out", "{d}/r.html"], 1,
     "is given twice"),
    # --- malformed contents --------------------------------------------------------------------
    ("train-config-not-utf8", ["train", "--config", "{d}/latin1.yaml"], 1, "is not UTF-8 text"),
    ("train-config-list", ["train", "--config", "{d}/list.yaml"], 1, "must hold a mapping"),
    ("report-log-line-not-object", ["report", "{d}/badlog", "--out", "{d}/r.html"], 1,
     "holds a JSON list"),
    ("report-eval-json-list", ["report", "{d}/badeval", "--out", "{d}/r.html"], 1,
     "holds a JSON list"),
    ("report-similarity-not-json",
     ["report", "{d}/run", "--out", "{d}/r.html", "--similarity", "{d}/latin1.yaml"], 1,
     "is not readable JSON"),
    ("report-similarity-not-compare",
     ["report", "{d}/run", "--out", "{d}/r.html", "--similarity", "{d}/run/config.json"], 1,
     "not a comparison of runs"),
    ("analyze-zero-width", ["analyze", "{d}/zero_width.npz", "--out", "{d}/o.html"], 1,
     "shape (10, 0)"),
    ("analyze-singletons", ["analyze", "{d}/singletons.npz", "--out", "{d}/o.html"], 1,
     "no class with two samples"),
    ("analyze-huge-label", ["analyze", "{d}/huge_label.npz", "--out", "{d}/o.html"], 1,
     "renumber them"),
    ("analyze-empty-npz", ["analyze", "{d}/empty.npz", "--out", "{d}/o.html"], 1,
     "not a readable .npz"),
    ("sweep-grid-not-utf8", ["sweep", "{d}/grid_latin1.yaml", "--dry-run"], 1, "is not UTF-8 text"),
    ("sweep-gpus-word", ["sweep", "{d}/grid_gpus.yaml", "--print-commands"], 1,
     "`gpus` must be an int"),
    # --- values that pass the first checks and used to crash later ------------------------------
    ("train-seed-overflow", [*TRAIN, "--seed", "99999999999999999999", "--out", "{d}/o"], 2,
     "--seed"),
    ("train-device-cuda-abc", [*TRAIN, "--device", "cuda:abc", "--out", "{d}/o"], 1,
     "cuda or cuda:N"),
    ("train-lr-inf", [*TRAIN, "--lr", "inf", "--out", "{d}/o"], 1,
     "'lr' parameter must be a float in (0, inf)"),
    ("train-lr-nan", [*TRAIN, "--lr", "nan", "--out", "{d}/o"], 1, "'lr' parameter"),
    ("train-weight-decay-inf",
     ["train", "--config", "{d}/wd_inf.yaml", *TRAIN[1:], "--out", "{d}/o"], 1,
     "'weight_decay' parameter must be a float in [0, inf)"),
    ("analyze-seed-negative", ["analyze", "{d}/emb.npz", "--seed", "-1"], 2, "--seed"),
    ("eval-device-cuda-abc", ["eval", "{d}/run", "--device", "cuda:abc", "-q"], 1, "cuda:abc"),
    ("eval-batch-size-zero", ["eval", "{d}/run", "--batch-size", "0"], 2, "--batch-size"),
    ("embed-layer-unknown", ["embed", "{d}/run", "--layer", "nosuch", "--out", "{d}/e.npz", "-q"],
     1, "nosuch"),
    ("embed-unknown-dataset",
     ["embed", "{d}/run", "--dataset", "nosuch", "--out", "{d}/e.npz", "-q"], 1, "nosuch"),
    ("analyze-k-zero", ["analyze", "{d}/emb.npz", "--k", "0"], 2, "--k"),
    ("demo-seeds-zero", ["demo", "--seeds", "0"], 2, "--seeds"),
    ("train-epochs-zero", [*TRAIN, "--epochs", "0"], 2, "--epochs"),
    # --- nonsense that used to be accepted ------------------------------------------------------
    ("train-imbalance-huge", [*TRAIN, "--imbalance", "1e300", "--out", "{d}/o"], 1,
     "classes without a training image; lower --imbalance"),
    ("train-num-classes-contradicts",
     ["train", "--config", "{d}/classes.yaml", *TRAIN[1:], "--out", "{d}/o"], 1, "num_classes=3"),
    ("eval-empty-corruptions-root",
     ["eval", "{d}/run", "--corruptions", "--corruptions-root", "{d}/empty"], 1,
     "holds no CIFAR-100-C .npy files"),
    ("sweep-name-escapes", ["sweep", "{d}/grid_escape.yaml", "--dry-run"], 1,
     "must be one folder name"),
    ("sweep-name-list", ["sweep", "{d}/grid_list_name.yaml", "--dry-run"], 1,
     "must be one folder name"),
    ("sweep-unknown-dataset", ["sweep", "{d}/grid_dataset.yaml", "--dry-run"], 1,
     "'nosuch', which does not exist"),
    ("sweep-bad-baseline", ["sweep", "{d}/grid_baseline.yaml", "--out", "{d}/s"], 1,
     "`baseline` 'supcn' names no run group"),
    ("compare-missing", ["compare", "{d}/emb.npz", "{d}/nosuch.npz"], 2, "does not exist"),
    ("compare-one-input", ["compare", "{d}/emb.npz", "--out", "{d}/c.html"], 2,
     "at least two inputs"),
    ("compare-other-labels",
     ["compare", "{d}/emb.npz", "{d}/emb_other_labels.npz", "--out", "{d}/c.html"], 1,
     "does not hold the same samples"),
    ("compare-fewer-samples",
     ["compare", "{d}/emb.npz", "{d}/emb_fewer.npz", "--out", "{d}/c.html"], 1, "36 vs 40 samples"),
    ("compare-layers-of-npz", ["compare", "{d}/emb.npz", "{d}/emb.npz", "--layers", "all", "--out",
                               "{d}/c.html"], 1, "exactly two models"),
    ("compare-layers-empty",
     ["compare", "{d}/run", "{d}/run", "--layers", ",", "--out", "{d}/c.html"], 1,
     "--layers is empty"),
    ("compare-out-under-file",
     ["compare", "{d}/emb.npz", "{d}/emb.npz", "--out", "{d}/afile/c.html"], 2, "is a file"),
    ("compare-bad-alpha", ["compare", "{d}/emb.npz", "{d}/emb.npz", "--alpha", "2"], 2, "--alpha"),
    # --- messages that named flags that do not exist --------------------------------------------
    ("train-momentum-message", ["train", "--config", "{d}/momentum.yaml", "--out", "{d}/o"], 1,
     "set it with `momentum:` in the --config file"),
]


def _snapshot(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv, code, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(tmp_path, monkeypatch, finished_run, argv, code,
                                                   fragment):
    d = tmp_path / "user"
    d.mkdir()
    _user_files(d, finished_run)
    monkeypatch.chdir(d)  # default outputs (reports/, runs/) land in the user's folder too
    before = _snapshot(d)
    result = CliRunner().invoke(cli, [a.format(d=d) for a in argv])

    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    if code == 1:
        assert lines == errors, result.stderr  # a run-time failure: exactly one line
    else:
        assert lines[0].startswith("Usage: ") and all(
            line.startswith(("Usage: ", "Try ", "Error: ")) for line in lines), result.stderr
    assert fragment in errors[0].replace("\n", " "), errors[0]
    assert "Traceback" not in result.output
    after = _snapshot(d)
    # nothing of the user's changed
    assert {p: h for p, h in after.items() if p in before} == before
    assert not [p for p in d.rglob("*.tmp")]


def test_case_count_covers_every_command():
    commands = {argv[0] for _, argv, _, _ in CASES}
    assert commands == {"train", "eval", "analyze", "report", "sweep", "demo", "embed", "compare"}


def test_flag_keys_are_the_train_commands_options():
    from rascal_cli.commands.train import command
    from rascal_train.config import FLAG_KEYS

    # --tensorboard chooses an extra output, not a setting of the run, so it is no config key.
    options = {p.name for p in command.params} - {"config_file", "quiet", "tensorboard"}
    assert options == FLAG_KEYS


def test_quiet_sweep_prints_nothing_but_its_result(tmp_path):
    grid = tmp_path / "g.yaml"
    _grid(grid, grid={"loss": ["supcon"]})
    result = CliRunner().invoke(cli, ["sweep", str(grid), "--out", str(tmp_path / "s"),
                                      "--no-analysis", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout == f"Trained 1 runs in {tmp_path / 's'}\n"
