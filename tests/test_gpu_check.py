"""`make gpu-check` on a machine without CUDA, and its table against the issue's targets."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OUT": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "gpu-check: no CUDA device visible; nothing to check." in out.stdout
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["cuda"] is False and doc["missing"] == []
    assert "No CUDA device is visible" in (tmp_path / "gpu_check.md").read_text()


def test_missing_packages_are_named_in_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name in ("umap", "pynndescent") else real(name))
    assert gpu_check.missing_packages() == ["umap-learn", "pynndescent"]


def _results():
    points = [{"method": "rank_agreement", "n": 8192, "classes": 100, "ms": 4.1, "peak_mib": 700.0},
              {"method": "textbook_supcon", "n": 8192, "classes": 100, "ms": 5.3,
               "peak_mib": 2000.0}]
    ms = {"ce/fp32": 20.0, "supcon/fp32": 60.0, "rascal/fp32": 62.0,
          "ce/bf16+channels_last": 8.0, "supcon/bf16+channels_last": 10.0,
          "rascal/bf16+channels_last": 11.0}
    return {"tests": {"status": "ok", "seconds": 80.0,
                      "junit": {"tests": 20, "failures": 1, "errors": 0, "skipped": 3,
                                "failed": ["t::x"]}},
            "demo": {"status": "ok", "seconds": 70.0},
            "loss": {"status": "ok", "result": {"points": points}},
            "train": {"status": "ok",
                      "result": {"step_ms": ms,
                                 "images_per_s": {k: 512e3 / v for k, v in ms.items()},
                                 "augment_ms": 2.0, "augment_images_per_s": 256e3}},
            "analyze/torch": {"status": "timed out after 10 s"}}


def test_table_against_the_targets(tmp_path):
    rows = {row[0]: row[1:] for row in gpu_check.summarize(_results())}
    assert rows["gpu tests"] == ("16 passed, 1 failed, 3 skipped", "0 failed", "FAIL")
    assert rows["RASCAL loss fwd+bwd, N=8192, 100 classes"] == ("4.10 ms", "<= 5.4 ms", "ok")
    assert rows["RASCAL loss peak memory, same point"] == ("700 MiB", "<= 1024 MiB", "ok")
    assert rows["RASCAL step / SupCon step (bf16+channels_last)"] == ("1.100", "<= 1.05", "MISS")
    assert rows["SupCon step bf16+channels_last, images/s"] == ("51,200",
                                                                ">= 48,500 (2.5 x 19.4 k)", "ok")
    assert rows["SupCon step bf16+channels_last vs our fp32"] == ("6.00x", ">= 2.5x", "ok")
    assert rows["analyze/torch"] == ("timed out after 10 s", "runs", "FAIL")
    gpu_check.write(tmp_path,
                    {"cuda": True, "device": "NVIDIA H100", "missing": [], "results": _results()})
    md = (tmp_path / "gpu_check.md").read_text()
    assert md.startswith("# gpu-check: NVIDIA H100")
    assert "| RASCAL step / SupCon step (bf16+channels_last) | 1.100 |" in md
    assert json.loads((tmp_path / "gpu_check.json").read_text())["device"] == "NVIDIA H100"
    assert not list(tmp_path.glob(".*.tmp"))
