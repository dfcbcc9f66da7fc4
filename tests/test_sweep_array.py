"""`rascal sweep --print-commands --array`: line i is run i, and each line decides when it runs."""

import os
import subprocess
from pathlib import Path

import yaml
from click.testing import CliRunner
from rascal_cli.main import cli


def test_array_lines_skip_resume_or_start_their_run_when_run(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({"base": {"epochs": 2, "monitor": False},
                                    "grid": {"seed": [0, 1, 2]}}))
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, ["sweep", str(grid), "--out", str(out), "--print-commands",
                                   "--array"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 3 and all(f"--seed {s} " in line for s, line in zip((0, 1, 2), lines))
    # After printing: seed=0 finished, seed=1 interrupted, seed=2 never started.
    for name, files in (("seed=0", ["epoch_0002.pt", "last.pt"]), ("seed=1", ["last.pt"])):
        (out / name / "checkpoints").mkdir(parents=True)
        for f in files:
            (out / name / "checkpoints" / f).touch()
    # A stand-in `rascal` that records its arguments, first on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.txt"
    (bin_dir / "rascal").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (bin_dir / "rascal").chmod(0o755)
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(res.output)
    script = Path(__file__).resolve().parents[1] / "examples" / "slurm" / "sweep_array.sbatch"
    for i in (1, 2, 3):  # the array's tasks, run by the example script itself
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_ARRAY_TASK_ID=str(i))
        assert subprocess.run(["bash", str(script), str(jobs)], env=env,
                              capture_output=True).returncode == 0
    env["SLURM_ARRAY_TASK_ID"] = "4"
    assert subprocess.run(["bash", str(script), str(jobs)], env=env,
                          capture_output=True).returncode == 1
    calls = log.read_text().splitlines()
    assert len(calls) == 2  # the finished run is skipped
    assert "--seed 1" in calls[0] and f"--resume {out / 'seed=1'}" in calls[0]
    assert "--seed 2" in calls[1] and "--resume" not in calls[1]
