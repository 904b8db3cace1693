"""The notebooks run as a user opens them: from a checkout, with no DETECTOR_NB_* variable set, in a real
Jupyter kernel (nbclient) with the real LM, and are stored without outputs. Each falls back to files
committed in the repository (the shipped model, data/features, detector_bench/results, the example texts).

The kernel imports this checkout (PYTHONPATH), inherits the session's token statistics cache
(DETECTOR_STATS_CACHE) and gets a temporary user cache folder (XDG_CACHE_HOME), where the notebooks
save their figures by default. The helpers behind the notebooks are tested in test_analysis.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "mgt-detector-tests"
CELL_TIMEOUT = 600


def test_the_five_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "**Needs:**" in first.source and "DETECTOR_NB_" in first.source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None, f"{path.name}: stored with execution counts"
            assert cell.outputs == [], f"{path.name}: stored with outputs (clear them before committing)"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernel spec for this very interpreter, in a temporary Jupyter path: a fresh machine has none
    registered, and the notebooks must run in the environment under test."""
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mgt-detector (tests)", "language": "python",
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("JUPYTER_PATH")])))
        yield KERNEL


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_as_is(path, kernel_name, tmp_path):
    nb = nbformat.read(path, as_version=4)
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("DETECTOR_NB_")]:
            patch.delenv(key)
        patch.setenv("XDG_CACHE_HOME", str(cache))
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        started = time.perf_counter()
        # A scratch working folder: the notebooks must not depend on it nor write into it.
        NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=kernel_name,
                       resources={"metadata": {"path": str(work)}}).execute()
        print(f"{path.name}: {time.perf_counter() - started:.0f} s")
    assert not any(work.iterdir()), f"{path.name} wrote into its working folder: {list(work.iterdir())}"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    figures = sorted((cache / "mgt-detector" / "notebook-figures").glob(f"{path.name[:2]}_*.png"))
    assert figures, f"{path.name} saved no figure"
    assert all(f.stat().st_size > 5000 for f in figures)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(shown) == len(figures), "every saved figure is also shown"
    out = _stdout(nb)
    if path.name.startswith("02"):
        assert "training two small ones" in out and "2 runs in" in out
    if path.name.startswith("03"):
        assert "reliable (AUROC >= " in out and "test split" in out
    if path.name.startswith("04"):
        assert "benchmark results:" in out
    if path.name.startswith("05"):
        assert "guarantee: expected false-positive rate at most 5.0%" in out and "(model) ->" in out


def test_the_computed_side_by_side_of_notebook_04(mini_table):
    """What notebook 04 shows with DETECTOR_NB_BENCHMARK=none: every zero-shot score and the detector's
    recipe scored out of fold, on the same texts (real LM)."""
    from analysis import benchmark
    from detector.features.engine import ScoringEngine
    from detector.features.zero_shot import ZERO_SHOT

    table, scores, long = benchmark.side_by_side(mini_table, ScoringEngine(), set_name="mini")
    trained = "trained logreg (5-fold)"
    assert list(scores.columns) == [*ZERO_SHOT, trained] and len(scores) == len(table) > 0.9 * len(mini_table)
    assert not scores[trained].isna().any()  # every text scored by a model that never saw it
    overall = benchmark.overall_rows(long).set_index("contender")
    assert set(overall.index) == set(scores.columns) and set(overall["set"]) == {"mini"}
    assert overall.loc[trained, "n"] == len(table)
