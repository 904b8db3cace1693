"""The notebooks run end to end on the fixture set, in a real Jupyter kernel (nbclient) with the real
LM, and are stored without outputs; the analysis helpers behind them give the expected answers on
small inputs made up here.

One tiny model (conftest's `tiny_model_dir`) is shared by the notebooks through DETECTOR_NB_MODEL, the
token statistics cache of the session (DETECTOR_STATS_CACHE) is inherited by the kernels, and notebook
02 writes its runs into a temporary SQLite tracking store.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import MINI, ROOT
from matplotlib.figure import Figure
from nbclient import NotebookClient

from detector import plots
from detector.features import FEATURE_NAMES
from detector.token_stats import TokenStats
from train import analysis

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "mgt-detector-tests"
CELL_TIMEOUT = 600


def test_the_four_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


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


@pytest.fixture(scope="module")
def notebook_env(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook_run")
    return {
        "DETECTOR_NB_DATA": str(MINI),
        "DETECTOR_NB_MODEL": str(tiny_model_dir),
        "DETECTOR_NB_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "DETECTOR_NB_EXPERIMENT": "notebook-tests",
        "DETECTOR_NB_BENCHMARK": "none",  # always exercise the computed side-by-side
        "DETECTOR_NB_FIGURES": str(folder / "figures"),
    }


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, notebook_env, kernel_name, tmp_path):
    nb = nbformat.read(path, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in notebook_env.items():
            patch.setenv(key, value)
        # A scratch working folder: the notebooks must not depend on it nor write into it.
        NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=kernel_name,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not any(tmp_path.iterdir()), f"{path.name} wrote into its working folder: {list(tmp_path.iterdir())}"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    figures = sorted(Path(notebook_env["DETECTOR_NB_FIGURES"]).glob(f"{path.name[:2]}_*.png"))
    assert figures, f"{path.name} saved no figure"
    assert all(f.stat().st_size > 5000 for f in figures)
    out = _stdout(nb)
    if path.name.startswith("02"):
        assert "2 runs in" in out
    if path.name.startswith("03"):
        assert "reliable" in out
    if path.name.startswith("04"):
        assert "computing a small side-by-side" in out


# ----- the helpers behind the notebooks (no LM) -----


def test_settings_from_the_environment(tmp_path):
    settings = analysis.NotebookSettings.from_env({})
    assert settings.data == str(analysis.FIXTURE) and settings.model is None and settings.figures is None
    assert settings.benchmark == str(analysis.BENCHMARK_SUMMARY)
    settings = analysis.NotebookSettings.from_env({"DETECTOR_NB_BENCHMARK": "none", "DETECTOR_NB_FIGURES": "f",
                                                   "DETECTOR_NB_MODEL": "models:/x/1"})
    assert settings.benchmark is None and str(settings.figures) == "f" and settings.model == "models:/x/1"
    figures = analysis.Figures(tmp_path, "09")
    figures.show(plots.sentence_scores([], title="empty"), "empty")
    assert [p.name for p in figures.saved] == ["09_empty.png"]


def test_token_strings_join_back_to_the_text():
    text = "Hello world,  again\nand again."
    spans = [(5, 11), (11, 12), (14, 19), (19, 20), (20, 23), (24, 29), (29, 30)]  # gaps at 12-14, 23-24
    n = len(spans)
    stats = TokenStats(np.zeros(n, np.float32), np.arange(1, n + 1, dtype=np.float32), np.zeros(n, np.float32),
                       np.zeros(n, np.float32), np.array([s for s, _ in spans]), np.array([e for _, e in spans]))
    tokens = analysis.token_strings(text, stats)
    assert tokens[0] == " world" and tokens[2] == "  again" and tokens[5] == " again"
    assert "".join(tokens) == text[5:]
    assert plots.token_heatmap(tokens, stats.rank).axes


def _scored(rng: np.random.Generator) -> pd.DataFrame:
    """Made-up scores: texts under 32 tokens are coin flips, longer ones are separated."""
    n_tokens = rng.integers(4, 300, 400)
    label = rng.integers(0, 2, 400)
    p = np.where(n_tokens < 32, rng.random(400), np.clip(0.25 + 0.5 * label + rng.normal(0, 0.1, 400), 0, 1))
    verdict = np.where(n_tokens < 16, "uncertain", np.where(p > 0.5, "machine", "human"))
    scored = pd.DataFrame({"n_tokens": n_tokens, "label": label, "p_machine": p, "verdict": verdict,
                           "domain": rng.choice(["news", "code"], 400),
                           "generator": np.where(label == 1, "gen-1.5", "human"),
                           "id": [str(i) for i in range(400)], "text": ["some words here"] * 400})
    scored["length_band"] = analysis.length_band(scored["n_tokens"])
    scored["outcome"] = [analysis.outcome(y, v) for y, v in zip(label, verdict, strict=True)]
    return scored


def test_reliable_length_and_error_tables():
    scored = _scored(np.random.default_rng(0))
    curve = analysis.reliability_by_length(scored, min_texts=10)
    assert list(curve["from_tokens"]) == list(analysis.LENGTH_EDGES)
    assert analysis.reliable_length(curve, 0.9) == 32
    assert analysis.reliable_length(curve.assign(judged=False)) is None
    assert isinstance(plots.reliability_by_length(curve, 0.9, 32), Figure)

    rates = analysis.error_rates(scored, "length_band")
    assert list(rates["length_band"].astype(str))[:2] == ["0-15", "16-31"]  # in length order
    assert rates.loc[0, "uncertain_rate"] == 1.0
    long = analysis.error_rates_long(scored, "domain")
    assert set(long["kind"]) == {"false positives (of humans)", "false negatives (of machine)", "uncertain (of all)"}
    wrong = analysis.errors(scored)
    assert set(wrong["outcome"]) <= {"false positive", "false negative"} and len(wrong) > 0
    counts = analysis.outcome_counts(scored)
    assert counts.loc["All", "All"] == 400
    features = pd.DataFrame({name: np.random.default_rng(1).random(400) for name in FEATURE_NAMES})
    features["gltr_top10"] += scored["label"]
    top = analysis.separating_features(features, scored["label"], top=3)
    assert top.loc[0, "feature"] == "gltr_top10" and top.loc[0, "auroc"] > 0.99


def test_runs_breakdown_parses_metric_names_with_dots():
    runs = pd.DataFrame({
        "run_id": ["a1", "b2"], "label": ["logreg · x", "rf · y"],
        "metrics.test.auroc": [0.9, 0.8],
        "metrics.test.generator.gpt-3.5-turbo.auroc": [0.7, 0.6],
        "metrics.test.generator.gpt-3.5-turbo.tpr_at_1fpr": [0.5, 0.4],
        "metrics.test.domain.news.auroc": [0.95, 0.85],
        "metrics.holdout_generator.gpt-3.5-turbo.auroc": [0.55, 0.65],
    })
    test = analysis.runs_breakdown(runs, "test")
    row = test[(test["run"] == "rf · y") & (test["value"] == "gpt-3.5-turbo")].iloc[0]
    assert row["group"] == "generator" and row["auroc"] == 0.6 and row["tpr_at_1fpr"] == 0.4
    assert set(test["where"]) == {"generator: gpt-3.5-turbo", "domain: news"}
    held = analysis.runs_breakdown(runs, "holdout_generator")
    assert list(held["auroc"]) == [0.55, 0.65] and set(held["group"]) == {"generator"}
    overview = analysis.runs_overview(runs.assign(**{"params.classifier": ["logreg", "rf"]}))
    assert overview.loc["rf · y", "test.auroc"] == 0.8
    assert set(analysis.overview_long(overview)["metric"]) == {"test.auroc", "test.tpr_at_1fpr",
                                                               "test.tpr_at_5fpr", "test.f1"}


def test_benchmark_summary_and_contender_table(tmp_path):
    assert analysis.read_benchmark_summary(tmp_path / "missing.csv") is None
    assert analysis.read_benchmark_summary(None) is None
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a benchmark summary"):
        analysis.read_benchmark_summary(bad)
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"label": np.r_[np.zeros(50), np.ones(50)].astype(int), "dataset": "d",
                          "domain": rng.choice(["a", "b"], 100)})
    table["generator"] = np.where(table["label"] == 1, "g", "human")
    scores = pd.DataFrame({"perfect": table["label"] + 0.0, "noise": rng.random(100)})
    long = analysis.contender_table(table, scores, "made-up")
    assert list(long.columns[:4]) == ["set", "group", "value", "contender"]
    overall = analysis.overall_rows(long).set_index("contender")
    assert overall.loc["perfect", "auroc"] == 1.0 and overall.loc["perfect", "tpr_at_1fpr"] == 1.0
    path = tmp_path / "summary.csv"
    long.to_csv(path, index=False)
    again = analysis.read_benchmark_summary(path)
    assert len(again) == len(long)
    assert isinstance(plots.contender_bars(analysis.overall_rows(again), "auroc"), Figure)


@pytest.mark.skipif(not analysis.BENCHMARK_SUMMARY.exists(), reason="no committed benchmark summary yet")
def test_the_committed_benchmark_summary_can_be_shown():
    summary = analysis.read_benchmark_summary(analysis.BENCHMARK_SUMMARY)
    overall = analysis.overall_rows(summary)
    assert not overall.empty
    assert isinstance(plots.contender_bars(overall, "auroc", by="contender", hue="set"), Figure)
