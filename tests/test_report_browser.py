"""The report page in headless Chromium: renders, runs its script, logs no console error.

Skips where no Chromium is installed (`.ci/run` installs Debian's `chromium`). The screenshot
is kept under pytest's tmp dir and copied to reports/test-artifacts/.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rascal_geom.report import render_report
from test_report import write_run


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="no Chromium installed (apt-get install chromium)")
ARTIFACTS = Path(__file__).resolve().parents[1] / "reports" / "test-artifacts"


def _run_chromium(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", *mode, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def _console_errors(stderr: str) -> list[str]:
    """Console messages at warning/error level and uncaught exceptions from the page."""
    lines = [ln for ln in stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    return [ln for ln in lines
            if re.search(r"Uncaught|Error|error|Failed|WARNING:CONSOLE|ERROR:CONSOLE", ln)]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    runs = [write_run(root, f"supcon_s{s}", "supcon", s) for s in (0, 1)]
    runs += [write_run(root, f"rascal_s{s}", "rascal", s, offset=0.1) for s in (0, 1)]
    return render_report(runs, baseline="supcon", out_html=root / "report.html", progress=False)


def test_report_renders_without_console_errors(page, tmp_path):
    shot = tmp_path / "report.png"
    res = _run_chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}",
                        "--window-size=1200,3000", "--hide-scrollbars")
    assert shot.is_file() and shot.stat().st_size > 10_000, res.stderr[-2000:]
    assert _console_errors(res.stderr) == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report.png")

    dom = _run_chromium(page, tmp_path / "profile-dom", "--dump-dom")
    assert _console_errors(dom.stderr) == []
    # The sorter ran to completion: it marks every sortable table once it has wired it.
    assert (dom.stdout.count('class="sortable js-sortable"')
            == dom.stdout.count("<table class=\"sortable") > 0)


def test_console_error_detection_catches_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    res = _run_chromium(bad, tmp_path / "profile", "--dump-dom")
    assert any("undefinedFunction" in ln for ln in _console_errors(res.stderr)), res.stderr[-2000:]
