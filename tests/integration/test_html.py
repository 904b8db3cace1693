"""The HTML report: a mixed document shows its machine part, and a real headless browser renders it."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from conftest import HUMAN_TEXT, HUMAN_TEXT_2, SEED

from detector_cli.main import main

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def mixed_document() -> tuple[str, int]:
    """Human paragraphs with machine-written paragraphs after them; returns the text and the split."""
    human = HUMAN_TEXT + "\n\n" + HUMAN_TEXT_2
    machine = "\n\n".join(SEED.read_text(encoding="utf-8").split("\n\n")[1:9])
    return human + "\n\n" + machine, len(human)


def test_mixed_document_shows_the_machine_part(default_detector):
    text, split = mixed_document()
    [result] = default_detector.score([text], explain=True)
    sentences = [s for s in result.explanation["sentences"] if s["p_machine"] is not None]
    human_p = np.mean([s["p_machine"] for s in sentences if s["end"] <= split])
    machine_p = np.mean([s["p_machine"] for s in sentences if s["start"] > split])
    assert machine_p > human_p + 0.2, (human_p, machine_p)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    text, _ = mixed_document()
    (folder / "mixed.txt").write_text(text, encoding="utf-8")
    (folder / "seed.txt").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    html = folder / "report.html"
    assert main(["score", str(folder / "mixed.txt"), str(folder / "seed.txt"), "--explain", "--html", str(html),
                 "-q"]) == 0
    return html


def test_html_is_self_contained(report):
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count('class="doc"') == 2 and 'class="verdict machine"' in page
    assert page.count('class="sent"') > 20


def test_html_renders_in_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed for this test (bash tests/run.sh installs it)"
    shot = tmp_path / "report.png"
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert "verdict machine" in dom.stdout
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1100,1400", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
