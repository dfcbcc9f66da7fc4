"""Everything a GPU must confirm, in one go: ``make gpu-check`` (about 8 minutes on one H100).

Runs against the Python it is started with (nothing installed, nothing downloaded), with the
project imported from this tree, in this order, each step in its own process under a share of
the time budget:

1. the ``gpu``-marked tests (training with the monitor, resume on CUDA and across devices, fp16,
   the DataLoader path, fp32 loss and gradient against the CPU at N > 8,192, FAISS-GPU where
   importable);
2. ``rascal demo --quick --device cuda``, end to end;
3. the loss benchmark on CUDA at N = 1,024 ... 16,384, d = 128, 10 and 100 classes;
4. the training-step benchmark (CIFAR ResNet-18, batch 512; CE, SupCon, RASCAL; fp32 and the
   engine's low precision + channels-last; the on-device augmentation beside the step);
5. the analysis benchmark on the GPU (torch; FAISS-GPU where its GPU build imports).

It writes ``gpu_check.json`` and ``gpu_check.md`` (a table against the targets) to ``$OUT`` when
that is set, else ``reports/gpu-check/``, after every step, so that a run cut short still says
what it saw. Without CUDA it says so and exits 0 at once. A missing package is named in one line
(umap-learn, pynndescent and faiss travel as wheels: ``make gpu-wheels`` on a machine with the
package index, then carry ``gpu-wheels/``; ``make gpu-check`` installs them first).

    python benchmarks/gpu_check.py [--out DIR] [--budget-s 480]
        [--steps tests,demo,loss,train,analyze]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("tests", "demo", "loss", "train", "analyze")
#: Import name -> distribution, for the one-line report of what is missing.
REQUIRED = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "scipy": "scipy",
            "sklearn": "scikit-learn", "click": "click", "rich": "rich", "jinja2": "jinja2",
            "matplotlib": "matplotlib", "yaml": "pyyaml", "pytest": "pytest", "umap": "umap-learn",
            "pynndescent": "pynndescent"}
#: Each step's share of the budget (seconds at most); what a step leaves unused passes on.
STEP_LIMIT_S = {"tests": 200, "demo": 150, "loss": 150, "train": 120, "analyze": 120}
# The reference numbers of the issue (SupCon's reference code on an H100).
REF_LOSS_MS, REF_LOSS_GB = 5.40, 2.05
TARGET_LOSS_MS, TARGET_LOSS_MIB = 5.4, 1024.0
TARGET_STEP_RATIO = 1.05
REF_FP32_IMAGES_PER_S, TARGET_SPEEDUP = 19_400.0, 2.5


def missing_packages() -> list[str]:
    """Distributions whose import name cannot be found (none is imported)."""
    return [dist for name, dist in REQUIRED.items() if importlib.util.find_spec(name) is None]


def _tree_path(tmp: Path) -> str:
    """A PYTHONPATH that imports the project from this tree, ``cli/`` as ``rascal_cli``."""
    alias = tmp / "alias"
    alias.mkdir(exist_ok=True)
    link = alias / "rascal_cli"
    if not link.exists():
        link.symlink_to(ROOT / "cli", target_is_directory=True)
    parts = [str(alias), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)


def _run(cmd: list[str], limit_s: float, env: dict, log: Path) -> dict:
    """Run ``cmd`` under a time limit; its output goes to ``log``. Returns status and seconds."""
    start = time.perf_counter()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                timeout=max(1.0, limit_s)).returncode
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {limit_s:.0f} s"
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return {"status": status, "seconds": round(time.perf_counter() - start, 1), "tail": tail}


def _junit(path: Path) -> dict:
    if not path.is_file():
        return {}
    suite = ET.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return ({key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
            | {"failed": failed})


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def step_commands(step: str, tmp: Path,
                  faiss_gpu: bool) -> list[tuple[str, list[str], Path | None]]:
    """``(name, command, json result file)`` of each process a step runs."""
    py = sys.executable
    if step == "tests":
        return [("tests", [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={tmp / 'junit.xml'}", "tests"], None)]
    if step == "demo":
        # (rascal_cli.main defines the click group `cli` and no __main__ block.)
        return [("demo", [py, "-c", "from rascal_cli.main import cli; cli()", "demo", "--quick",
                          "--device", "cuda", "-q", "--out", str(tmp / "demo"), "--report",
                          str(tmp / "demo.html")], None)]
    if step == "loss":
        return [("loss", [py, "benchmarks/loss_bench.py", "--device", "cuda", "--sizes", "1024",
                          "2048", "4096", "8192", "16384", "--classes", "10", "100", "--dim", "128",
                          "--json", str(tmp / "loss.json")], tmp / "loss.json")]
    if step == "train":
        return [("train", [py, "benchmarks/train_bench.py", "--arch", "cifar_resnet18",
                           "--batch-size", "512", "--json", str(tmp / "train.json")],
                 tmp / "train.json")]
    backends = ["torch"] + (["faiss_gpu"] if faiss_gpu else [])
    return [(f"analyze/{b}", [py, "benchmarks/analyze_bench.py", "--no-umap", "--backend", b,
                              "--json", str(tmp / f"analyze_{b}.json")], tmp / f"analyze_{b}.json")
            for b in backends]


def summarize(results: dict) -> list[tuple[str, str, str, str]]:
    """``(check, measured, target, verdict)`` rows against the issue's targets."""
    rows = []
    tests = results.get("tests", {}).get("junit") or {}
    if tests:
        bad = tests["failures"] + tests["errors"]
        rows.append(("gpu tests",
                     f"{tests['tests'] - tests['skipped'] - bad} passed, {bad} failed, "
                     f"{tests['skipped']} skipped", "0 failed", "ok" if bad == 0 else "FAIL"))
    if "demo" in results:
        rows.append(("rascal demo --quick on CUDA",
                     f"{results['demo']['status']}, {results['demo']['seconds']} s", "runs",
                     "ok" if results["demo"]["status"] == "ok" else "FAIL"))
    loss = (results.get("loss") or {}).get("result")
    if loss:
        point = {(p["method"], p["n"], p["classes"]): p for p in loss["points"]}
        ra, tb = (point.get(("rank_agreement", 8192, 100), {}),
                  point.get(("textbook_supcon", 8192, 100), {}))
        if "ms" in ra:
            rows.append(("RASCAL loss fwd+bwd, N=8192, 100 classes", f"{ra['ms']:.2f} ms",
                         f"<= {TARGET_LOSS_MS} ms", "ok" if ra["ms"] <= TARGET_LOSS_MS else "MISS"))
            rows.append(("RASCAL loss peak memory, same point", f"{ra['peak_mib']:.0f} MiB",
                         f"<= {TARGET_LOSS_MIB:.0f} MiB",
                         "ok" if ra["peak_mib"] <= TARGET_LOSS_MIB else "MISS"))
        if "ms" in tb:
            rows.append(("textbook SupCon, same point (reference: 5.40 ms, 2.05 GB on an H100)",
                         f"{tb['ms']:.2f} ms, {tb['peak_mib']:.0f} MiB", "-", "info"))
    train = (results.get("train") or {}).get("result")
    if train:
        ips, ms = train["images_per_s"], train["step_ms"]
        low = next((k.split("/")[1] for k in ms if not k.endswith("/fp32")), None)
        if low:
            ratio = ms[f"rascal/{low}"] / ms[f"supcon/{low}"]
            rows.append((f"RASCAL step / SupCon step ({low})", f"{ratio:.3f}",
                         f"<= {TARGET_STEP_RATIO}", "ok" if ratio <= TARGET_STEP_RATIO else "MISS"))
            target = TARGET_SPEEDUP * REF_FP32_IMAGES_PER_S
            rows.append((f"SupCon step {low}, images/s", f"{ips[f'supcon/{low}']:,.0f}",
                         f">= {target:,.0f} (2.5 x 19.4 k)",
                         "ok" if ips[f"supcon/{low}"] >= target else "MISS"))
            rows.append((f"SupCon step {low} vs our fp32",
                         f"{ms['supcon/fp32'] / ms[f'supcon/{low}']:.2f}x", f">= {TARGET_SPEEDUP}x",
                         "ok" if ms["supcon/fp32"] / ms[f"supcon/{low}"] >= TARGET_SPEEDUP
                         else "MISS"))
        rows.append(("augmentation (two views), images/s", f"{train['augment_images_per_s']:,.0f}",
                     "faster than the step",
                     "ok" if train["augment_ms"] < min(ms.values()) else "MISS"))
    for name, entry in results.items():
        if name.startswith("analyze/") and entry.get("result"):
            r = entry["result"]
            rows.append((f"analyze {r['n']} x {r['dim']} ({r['backend']}, no UMAP)",
                         f"{r['total_s']:.1f} s", "-", "info"))
    for name, entry in results.items():
        if isinstance(entry, dict) and entry.get("status", "ok") != "ok" and name != "demo":
            rows.append((name, entry["status"], "runs", "FAIL"))
    return rows


def write(out: Path, doc: dict) -> None:
    """``gpu_check.json`` and ``gpu_check.md`` (atomically: a temp file, then a rename)."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# gpu-check: {doc.get('device', 'no CUDA')}", ""]
    if doc.get("missing"):
        lines += [f"Missing: {', '.join(doc['missing'])}", ""]
    if doc.get("cuda"):
        lines += ["| check | measured | target | verdict |", "| --- | --- | --- | --- |"]
        lines += [f"| {' | '.join(row)} |" for row in summarize(doc["results"])]
    else:
        lines.append("No CUDA device is visible: nothing was checked.")
    for name, text in (("gpu_check.json", json.dumps(doc, indent=2)),
                       ("gpu_check.md", "\n".join(lines) + "\n")):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(os.environ.get("OUT") or ROOT / "reports" / "gpu-check"))
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--steps", default=",".join(STEPS))
    args = parser.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step {unknown[0]!r}; choose from {', '.join(STEPS)}")
    missing = missing_packages()
    if missing:
        print(f"gpu-check: missing {', '.join(missing)}; run `make gpu-wheels` where the package "
              "index is reachable and carry gpu-wheels/ (make gpu-check installs it)", flush=True)
    if "torch" in missing:
        write(args.out, {"cuda": False, "missing": missing})
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device visible; nothing to check.", flush=True)
        write(args.out, {"cuda": False, "missing": missing, "torch": torch.__version__})
        return 0
    sys.path.insert(0, str(ROOT))
    from rascal_geom.neighbors import backend_note, faiss_build

    faiss = faiss_build()
    doc = {"cuda": True, "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "cuda_version": torch.version.cuda, "missing": missing, "faiss": faiss,
           "neighbours": backend_note(device="cuda"), "results": {}}
    print(f"gpu-check on {doc['device']} (torch {doc['torch']}, CUDA {doc['cuda_version']}); "
          f"{doc['neighbours']}", flush=True)
    deadline = time.perf_counter() + args.budget_s
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "PYTHONPATH": _tree_path(tmp), "PYTHONUNBUFFERED": "1",
               "RASCAL_CACHE_DIR": str(tmp / "cache")}
        for step in steps:
            for name, cmd, result_file in step_commands(step, tmp, faiss.get("build") == "gpu"):
                left = deadline - time.perf_counter()
                if left < 5:
                    doc["results"][name] = {"status": "skipped: the time budget ran out"}
                    continue
                print(f"gpu-check: {name} ...", flush=True)
                entry = _run(cmd, min(STEP_LIMIT_S[step], left), env,
                             tmp / f"{name.replace('/', '_')}.log")
                if step == "tests":
                    entry["junit"] = _junit(tmp / "junit.xml")
                if result_file is not None:
                    entry["result"] = _read_json(result_file)
                doc["results"][name] = entry
                print(f"gpu-check: {name}: {entry['status']} in {entry['seconds']} s", flush=True)
                write(args.out, doc)
    write(args.out, doc)
    print((args.out / "gpu_check.md").read_text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
