"""The analysis room's helpers on small made-up inputs (no LM): length bands and the reliable length,
GLTR buckets, error tables, mlflow run parsing, the benchmark tables and the figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import benchmark, error_analysis, notebook, plots, runs, text_view
from detector.decision import lengths
from detector.decision.thresholds import Thresholds
from detector.features.engine import FEATURE_NAMES
from detector.features.zero_shot import GLTR_BUCKETS, GLTR_COLOURS, GLTR_LABELS, gltr_bucket, gltr_fractions
from detector.lm.token_stats import TokenStats


def _stats(ranks, spans=None) -> TokenStats:
    n = len(ranks)
    spans = spans or [(i, i + 1) for i in range(n)]
    return TokenStats(np.zeros(n, np.float32), np.asarray(ranks, dtype=np.float32), np.zeros(n, np.float32),
                      np.zeros(n, np.float32), np.array([s for s, _ in spans]), np.array([e for _, e in spans]))


def _scored(rng: np.random.Generator, n: int = 2000) -> pd.DataFrame:
    """Made-up scores: texts under 32 tokens are coin flips, longer ones are well separated."""
    n_tokens = rng.integers(4, 300, n)
    label = rng.integers(0, 2, n)
    p = np.where(n_tokens < 32, rng.random(n), np.clip(0.25 + 0.5 * label + rng.normal(0, 0.1, n), 0, 1))
    verdict = np.where(n_tokens < 16, "uncertain", np.where(p > 0.5, "machine", "human"))
    scored = pd.DataFrame({"n_tokens": n_tokens, "label": label, "p_machine": p, "verdict": verdict,
                           "domain": rng.choice(["news", "code"], n),
                           "generator": np.where(label == 1, "gen-1.5", "human"), "id": [str(i) for i in range(n)],
                           "text": ["some   words\nhere"] * n})
    scored["length_band"] = lengths.length_band(scored["n_tokens"])
    scored["outcome"] = [error_analysis.outcome(y, v) for y, v in zip(label, verdict, strict=True)]
    return scored


# ----- one definition of length bands, the reliable length and GLTR buckets -----


def test_length_bands_are_half_open_and_ordered():
    bands = lengths.length_band([0, 7, 8, 15, 16, 511, 512, 10_000])
    assert list(bands.astype(str)) == ["0-7", "0-7", "8-15", "8-15", "16-23", "256-511", "512+", "512+"]
    assert list(bands.categories) == lengths.band_labels() and bands.ordered
    assert set(lengths.THRESHOLD_EDGES) <= set(lengths.LENGTH_EDGES)
    # The per-length thresholds start their bands at the shared edges.
    rng = np.random.default_rng(0)
    human_p, n_tokens = rng.random(2000), rng.integers(1, 600, 2000)
    banded = Thresholds.worst_group_by_length(human_p, np.zeros(2000), n_tokens)
    assert [band[0] for band in banded.by_length] == list(lengths.THRESHOLD_EDGES)


def test_reliable_length_is_where_every_longer_band_reaches_the_cut_off():
    scored = _scored(np.random.default_rng(0))
    curve = lengths.reliability_by_length(scored["n_tokens"], scored["label"], scored["p_machine"], scored["verdict"])
    assert list(curve["from_tokens"]) == list(lengths.LENGTH_EDGES)
    assert curve["n"].sum() == len(scored)
    assert lengths.reliable_length(curve) == 32  # coin flips below 32 tokens
    assert lengths.reliable_length(curve, floor=64) == 64
    assert lengths.reliable_length(curve.assign(judged=False)) is None
    assert lengths.reliable_length(curve, min_auroc=1.01) is None
    short = curve[curve["from_tokens"] == 16].iloc[0]
    assert short["share_uncertain"] == 0.0 and curve.loc[0, "share_uncertain"] == 1.0
    assert curve.loc[curve["from_tokens"] == 128, "accuracy_of_verdicts"].iloc[0] > 0.95
    assert "accuracy_of_verdicts" not in lengths.reliability_by_length([20, 40], [0, 1], [0.1, 0.9]).columns


def test_gltr_buckets_have_one_definition():
    assert GLTR_BUCKETS == ((1, 10), (11, 100), (101, 1000), (1001, None))
    assert len(GLTR_LABELS) == len(GLTR_COLOURS) == len(GLTR_BUCKETS)
    assert list(gltr_bucket([1, 10, 11, 100, 101, 1000, 1001, 50_000])) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert list(gltr_fractions(_stats([1, 2, 3, 50, 500, 5000]))) == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6])
    assert np.isnan(gltr_fractions(_stats([]))).all()
    table = text_view.gltr_table({"a": _stats([1, 2000])})
    assert list(table.columns) == list(GLTR_LABELS) and table.loc["a", ">1000"] == 0.5


def test_token_strings_join_back_to_the_text():
    source = "Hello world,  again\nand again."
    spans = [(5, 11), (11, 12), (14, 19), (19, 20), (20, 23), (24, 29), (29, 30)]  # gaps at 12-14, 23-24
    tokens = text_view.token_strings(source, _stats(range(1, 8), spans))
    assert tokens[0] == " world" and tokens[2] == "  again" and tokens[5] == " again"
    assert "".join(tokens) == source[5:]
    assert plots.token_heatmap(tokens, np.arange(1, 8)).axes


def test_closer_compares_in_units_of_each_class_spread():
    human, machine = [0, 1, 2, 3, 4], [0, 9, 10, 11, 20]
    assert text_view.closer(3.5, human, machine) == "human"
    assert text_view.closer(9.5, human, machine) == "machine"
    assert text_view.closer(float("nan"), human, machine) == "unknown"


# ----- error analysis -----


def test_error_tables():
    scored = _scored(np.random.default_rng(1))
    rates = error_analysis.error_rates(scored, "length_band")
    assert list(rates["length_band"].astype(str))[:2] == ["0-7", "8-15"]  # in length order
    assert rates.loc[0, "uncertain_rate"] == 1.0
    long = error_analysis.error_rates_long(scored, "domain")
    assert set(long["kind"]) == set(error_analysis.RATE_NAMES.values()) and len(long) == 2 * 3
    wrong = error_analysis.errors(scored)
    assert set(wrong["outcome"]) <= {"false positive", "false negative"} and len(wrong) > 0
    assert wrong.loc[0, "start_of_text"] == "some words here"
    assert "start_of_text" not in error_analysis.errors(scored.assign(text=None)).columns
    assert error_analysis.outcome_counts(scored).loc["All", "All"] == len(scored)
    features = pd.DataFrame({name: np.random.default_rng(2).random(len(scored)) for name in FEATURE_NAMES})
    features["gltr_top10"] += scored["label"]
    top = error_analysis.separating_features(features, scored["label"], top=3)
    assert top.loc[0, "feature"] == "gltr_top10" and top.loc[0, "auroc"] > 0.99 and len(top) == 3


def test_score_features_applies_the_verdict_rule_without_texts():
    from train.fit import FeatureData

    class Model:  # what score_features reads of a DetectorModel
        thresholds = Thresholds(0.8, 0.01, 0.6, 0.05, min_tokens=16)

        def p_machine_from_features(self, features):
            return features["gltr_top10"].to_numpy()

        def novelty_reasons(self, features):
            return [None] * len(features)

    table = pd.DataFrame({"id": list("abcd"), "label": [1, 0, 1, 0], "dataset": "d", "domain": "x",
                          "generator": ["g", "human", "g", "human"]})
    features = pd.DataFrame({name: [0.9, 0.9, 0.9, np.nan] for name in FEATURE_NAMES})
    data = FeatureData(table, features, np.array([100, 100, 5, 100]),
                       np.array(["", "", "", ""], dtype=object))
    scored, _ = error_analysis.score_features(Model(), data)
    assert list(scored["verdict"]) == ["machine", "machine", "uncertain", "uncertain"]
    assert list(scored["outcome"]) == ["correct", "false positive", "uncertain", "uncertain"]
    assert "too short" in scored.loc[2, "reason"]


# ----- tracked runs -----


def test_runs_breakdown_parses_metric_names_with_dots():
    tracked = pd.DataFrame({
        "run_id": ["a1", "b2"], "label": ["logreg · x", "rf · y"],
        "metrics.test.auroc": [0.9, 0.8],
        "metrics.test.generator.gpt-3.5-turbo.auroc": [0.7, 0.6],
        "metrics.test.generator.gpt-3.5-turbo.tpr_at_1fpr": [0.5, 0.4],
        "metrics.test.domain.news.auroc": [0.95, 0.85],
        "metrics.holdout_generator.gpt-3.5-turbo.auroc": [0.55, 0.65],
        "params.min_tokens": ["16", "48"],
    })
    test = runs.runs_breakdown(tracked, "test")
    row = test[(test["run"] == "rf · y") & (test["value"] == "gpt-3.5-turbo")].iloc[0]
    assert row["group"] == "generator" and row["auroc"] == 0.6 and row["tpr_at_1fpr"] == 0.4
    assert set(test["where"]) == {"generator: gpt-3.5-turbo", "domain: news"}
    held = runs.runs_breakdown(tracked, "holdout_generator")
    assert list(held["auroc"]) == [0.55, 0.65] and set(held["group"]) == {"generator"}
    overview = runs.runs_overview(tracked.assign(**{"params.classifier": ["logreg", "rf"]}))
    assert overview.loc["rf · y", "test.auroc"] == 0.8 and overview.loc["rf · y", "min_tokens"] == 48
    assert set(runs.overview_long(overview)["metric"]) == {"test.auroc", "test.tpr_at_1fpr", "test.tpr_at_5fpr",
                                                          "test.f1"}


def test_search_runs_lists_top_level_runs_only(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs.ensure_experiment(uri, "e")
    mlflow.set_experiment("e")
    with mlflow.start_run(run_name="parent"):
        mlflow.log_param("classifier", "logreg")
        with mlflow.start_run(run_name="fold-0", nested=True):
            mlflow.log_metric("auroc", 0.5)
    found = runs.search_runs(uri, "e")
    assert list(found["label"]) == ["logreg · parent"]
    assert runs.search_runs(uri, "no-such-experiment").empty


def test_feature_tables_are_told_from_text_data(tmp_path):
    assert notebook.is_feature_table(notebook.FEATURE_TABLE)
    plain = tmp_path / "texts.parquet"
    pd.DataFrame({"text": ["a"], "label": [0]}).to_parquet(plain)
    assert not notebook.is_feature_table(plain) and not notebook.is_feature_table(None)
    table, data = runs.load_run_data(str(notebook.FEATURE_TABLE), sample=500)
    assert abs(len(table) - 500) < 30 and set(data.features.columns) >= set(FEATURE_NAMES)
    unseen = notebook.unseen_rows(data)
    assert 0 < len(unseen.table) < len(table)


# ----- benchmark tables -----


def test_committed_benchmark_results_are_read_with_their_views():
    overall, per_group = benchmark.read_benchmark(notebook.BENCHMARK_RESULTS)
    assert set(overall["view"]) == {benchmark.HEADLINE_VIEW}
    assert overall.groupby(["set", "contender"]).size().max() == 1  # one row per set and contender
    by_generator = benchmark.per_generator(per_group)
    assert not by_generator.empty and "generator" in by_generator.columns
    assert isinstance(plots.contender_bars(overall, "auroc", by="contender", hue="set"), Figure)


def test_benchmark_tables_from_made_up_scores(tmp_path):
    assert benchmark.read_benchmark(tmp_path / "missing") is None and benchmark.read_benchmark(None) is None
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a benchmark table"):
        benchmark.read_benchmark(bad)
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"label": np.r_[np.zeros(50), np.ones(50)].astype(int), "dataset": "d",
                          "domain": rng.choice(["a", "b"], 100)})
    table["generator"] = np.where(table["label"] == 1, "g", "human")
    scores = pd.DataFrame({"perfect": table["label"] + 0.0, "noise": rng.random(100)})
    long = benchmark.contender_table(table, scores, "made-up")
    assert list(long.columns[:4]) == ["set", "group", "value", "contender"]
    overall = benchmark.overall_rows(long).set_index("contender")
    assert overall.loc["perfect", "auroc"] == 1.0 and overall.loc["perfect", "tpr_at_1fpr"] == 1.0
    assert overall.loc["noise", "auroc"] < 0.8
    assert list(benchmark.per_generator(long)["generator"].unique()) == ["g"]


# ----- settings and figures -----


def test_settings_and_figures(tmp_path):
    settings = notebook.NotebookSettings.from_env({})
    assert settings.data is None and settings.model is None
    assert settings.benchmark == notebook.BENCHMARK_RESULTS and settings.figures == notebook.default_figures_folder()
    settings = notebook.NotebookSettings.from_env({"DETECTOR_NB_BENCHMARK": "none", "DETECTOR_NB_FIGURES": "f",
                                                   "DETECTOR_NB_MODEL": "models:/x/1"})
    assert settings.benchmark is None and str(settings.figures) == "f" and settings.model == "models:/x/1"
    figures = notebook.Figures(tmp_path / "new", "09")
    figures.show(plots.sentence_scores([], title="empty"), "empty")
    assert [p.name for p in figures.saved] == ["09_empty.png"] and figures.saved[0].stat().st_size > 1000


def test_figures_from_scikit_learn_displays():
    import matplotlib.pyplot as plt

    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    p = np.r_[np.linspace(0, 0.6, 50), np.linspace(0.4, 1, 50)]
    roc = plots.roc_curves({"good": (y, p), "one class": (np.ones(5), np.ones(5)),
                            "with nan": (y, np.r_[p[:-1], np.nan])})
    labels = [t.get_text() for t in roc.axes[0].get_legend().get_texts()]
    assert len(labels) == 3 and labels[0].startswith("good") and "AUC" in labels[0]  # chance level is the third
    matrix = plots.confusion(y, p, 0.5)
    counts = sorted(int(t.get_text()) for t in matrix.axes[0].texts)
    assert counts == sorted([(p[:50] > 0.5).sum(), (p[:50] <= 0.5).sum(), (p[50:] > 0.5).sum(),
                             (p[50:] <= 0.5).sum()])
    assert isinstance(plots.pr_curve(y, p), Figure) and isinstance(plots.calibration_plot(y, p), Figure)
    scored = _scored(np.random.default_rng(3))
    curve = lengths.reliability_by_length(scored["n_tokens"], scored["label"], scored["p_machine"])
    assert isinstance(plots.reliability_by_length(curve, lengths.MIN_AUROC, lengths.reliable_length(curve)), Figure)
    plt.close("all")


def test_permutation_importance_finds_the_informative_feature():
    from train.evaluate import permutation_importance
    from train.fit import FeatureData, detector_pipeline, fit_classifier

    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame({"label": np.r_[np.zeros(n // 2), np.ones(n // 2)].astype(int), "id": range(n)})
    features = pd.DataFrame({name: rng.random(n) for name in FEATURE_NAMES})
    features["lrr"] += 2 * table["label"]
    data = FeatureData(table, features, np.full(n, 100))
    from detector.model.detector_model import DetectorModel

    model = DetectorModel(detector_pipeline(fit_classifier(data, "logreg")), Thresholds(0.5, 0.01, 0.4, 0.05))
    importance = permutation_importance(model, data)
    assert importance.index[0] == "lrr" and importance.iloc[0] > 0.2
    assert importance.drop("lrr").abs().max() < 0.05


def test_imports_point_into_analysis_only_for_plots():
    """detector/ never imports analysis/; train/ and detector_bench/ import only analysis.plots."""
    import ast

    from conftest import ROOT

    root = ROOT
    found = {}
    for package in ("detector", "detector_cli", "train", "detector_bench"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom)
                         and node.module else [])
                for name in names:
                    if name.split(".")[0] == "analysis":
                        found.setdefault(package, set()).add(name)
    assert "detector" not in found
    assert set().union(*found.values()) <= {"analysis.plots"}
    assert found.get("train") == {"analysis.plots"}  # train/evaluate.py draws the run's figures
