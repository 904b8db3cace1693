"""Analysis helpers behind the notebooks: settings from the environment, a detector to explore,
tables for one text's explanation, tracked runs, error analysis by length / domain / generator, the
length from which the detector is reliable, and a small zero-shot vs trained side-by-side.

Everything returns plain pandas tables (figures are in `detector.plots`), so the notebooks stay thin
and the same analysis runs from a script:

    from train import analysis
    settings = analysis.NotebookSettings.from_env()
    detector, how = analysis.load_or_train(settings.model, settings.data)
    scored, features = analysis.score_table(detector, load_spec(settings.data))
    analysis.reliable_length(analysis.reliability_by_length(scored))
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from detector.features import FEATURE_NAMES, FEATURES, Analysis
from detector.metrics import ZERO_SHOT, gltr_fractions
from detector.token_stats import TokenStats
from train import metrics

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "mini.jsonl"
SEED_TEXT = REPO_ROOT / "seeds" / "000_8fefe67b85776a8f.txt"
BENCHMARK_SUMMARY = REPO_ROOT / "benchmarks" / "results" / "summary.csv"

# Token-length bands (lower edges) used for error analysis and the reliable length.
LENGTH_EDGES = (0, 16, 32, 48, 64, 96, 128, 256, 512)

ENV_VARS = {
    "DETECTOR_NB_DATA": "data spec to analyse / train on (JSONL, CSV, Parquet, folder); default: the test fixture",
    "DETECTOR_NB_MODEL": "model folder or mlflow URI; default: the shipped model, else a tiny one trained on the data",
    "DETECTOR_NB_TRACKING_URI": "mlflow tracking store to read runs from; default: a temporary SQLite store",
    "DETECTOR_NB_EXPERIMENT": "mlflow experiment to read (default: notebook-demo)",
    "DETECTOR_NB_BENCHMARK": "benchmark summary CSV (default: benchmarks/results/summary.csv; 'none' = compute)",
    "DETECTOR_NB_FIGURES": "folder where every figure is also saved as PNG (default: not saved)",
}


# ----- settings and figures -----


@dataclass
class NotebookSettings:
    """What a notebook reads from the environment (see `ENV_VARS`)."""

    data: str
    model: str | None
    tracking_uri: str | None
    experiment: str
    benchmark: str | None
    figures: Path | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotebookSettings:
        env = os.environ if environ is None else environ
        benchmark = env.get("DETECTOR_NB_BENCHMARK") or str(BENCHMARK_SUMMARY)
        figures = env.get("DETECTOR_NB_FIGURES")
        return cls(
            data=env.get("DETECTOR_NB_DATA") or str(FIXTURE),
            model=env.get("DETECTOR_NB_MODEL") or None,
            tracking_uri=env.get("DETECTOR_NB_TRACKING_URI") or None,
            experiment=env.get("DETECTOR_NB_EXPERIMENT") or "notebook-demo",
            benchmark=None if benchmark.lower() == "none" else benchmark,
            figures=Path(figures) if figures else None,
        )

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"setting": list(self.__dict__), "value": [str(v) for v in self.__dict__.values()]})


class Figures:
    """Shows each figure once in the notebook, saves it as `<prefix>_<name>.png` if a folder is set,
    and closes it (so memory stays flat and Jupyter does not show it a second time)."""

    def __init__(self, folder: str | Path | None, prefix: str):
        self.folder = Path(folder) if folder else None
        self.prefix = prefix
        self.saved: list[Path] = []

    def show(self, fig, name: str) -> None:
        import matplotlib.pyplot as plt

        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                display(fig)
        except ImportError:
            pass
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{self.prefix}_{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            self.saved.append(path)
        plt.close(fig)


# ----- the detector to explore -----


def default_model_available() -> bool:
    from detector.model import CARD_FILE, DEFAULT_MODEL_DIR, MODEL_FILE

    return (DEFAULT_MODEL_DIR / CARD_FILE).exists() and (DEFAULT_MODEL_DIR / MODEL_FILE).exists()


def train_tiny(data: str, folder: str | Path | None = None, classifier: str = "logreg"):
    """A small detector trained on `data` with the real LM (no mlflow); saved in `folder` if given."""
    from train.data import load_spec
    from train.run import train_run

    result = train_run(load_spec(data), classifier=classifier, mlflow_enabled=False, output=folder,
                       progress=False, data_specs=[str(data)])
    return result.model


def load_or_train(model: str | None, data: str, folder: str | Path | None = None):
    """(Detector, how it was obtained): `model` if given, else the shipped default model, else a
    tiny logistic-regression detector trained now on `data` (so the notebooks run before a default
    model is shipped)."""
    from detector.detector import Detector

    if model:
        return Detector.load(model), f"model {model}"
    if default_model_available():
        return Detector(), "the shipped default model"
    trained = train_tiny(data, folder)
    saved = f", saved in {folder}" if folder else ""
    return Detector(trained), f"no default model shipped yet: a tiny logreg detector trained now on {data}{saved}"


def trained_on(model, table: pd.DataFrame) -> list[str]:
    """Datasets of `table` whose name appears in the model's training data (results there are optimistic)."""
    seen = set(model.card.get("training_data", {}))
    return sorted(seen & {str(d) for d in table["dataset"].unique()})


# ----- one text: tokens, sentences, features -----


def token_strings(text: str, stats: TokenStats) -> list[str]:
    """The text of each scored token, cut from `text` by its span; any gap before a token (spaces the
    tokenizer left out of the span) is kept with it, so the strings join back to the text."""
    out, previous = [], int(stats.start[0]) if len(stats) else 0
    for start, end in zip(stats.start.tolist(), stats.end.tolist(), strict=True):
        out.append(text[min(previous, start):end])
        previous = max(previous, end)
    return out


def gltr_table(named: Mapping[str, TokenStats]) -> pd.DataFrame:
    """Share of tokens in each GLTR rank bucket, one row per text."""
    columns = ["rank 1-10", "11-100", "101-1000", ">1000"]
    return pd.DataFrame([gltr_fractions(stats) for stats in named.values()], index=list(named), columns=columns)


def result_table(named: Mapping[str, object]) -> pd.DataFrame:
    """name -> Result: p(machine), verdict, tokens and reason side by side."""
    return pd.DataFrame([{"text": name, "p_machine": r.p_machine, "verdict": r.verdict, "n_tokens": r.n_tokens,
                          "reason": r.reason} for name, r in named.items()]).set_index("text")


def sentence_table(result) -> pd.DataFrame:
    """Per-sentence scores of an explained Result (`score(..., explain=True)`)."""
    rows = (result.explanation or {}).get("sentences", [])
    return pd.DataFrame(rows, columns=["start", "end", "n_tokens", "p_machine", "text"])


def feature_table(result, reference: Mapping[str, Mapping[str, list[float]]]) -> pd.DataFrame:
    """The top features of an explained Result with the human and machine percentiles (10/25/50/75/90)
    of the training texts, and which class's middle half the value falls closer to."""
    rows = []
    for item in (result.explanation or {}).get("top_features", []):
        ref = reference.get(item["feature"], {})
        human, machine = ref.get("human") or [np.nan] * 5, ref.get("machine") or [np.nan] * 5
        value = item["value"]
        rows.append({
            "feature": item["feature"], "description": item["description"], "value": value, "push": item["push"],
            **{f"human_p{q}": v for q, v in zip((10, 25, 50, 75, 90), human, strict=True)},
            **{f"machine_p{q}": v for q, v in zip((10, 25, 50, 75, 90), machine, strict=True)},
            "closer_to": _closer(value, human, machine),
        })
    return pd.DataFrame(rows)


def _closer(value: float, human: Sequence[float], machine: Sequence[float]) -> str:
    """'human' or 'machine': whose median is nearer, in units of that class's interquartile range."""
    def distance(q):
        spread = max(abs(q[3] - q[1]), 1e-9)
        return abs(value - q[2]) / spread

    if np.isnan(value) or np.isnan(human[2]) or np.isnan(machine[2]):
        return "unknown"
    return "human" if distance(human) < distance(machine) else "machine"


# ----- tracked runs (mlflow) -----


def ensure_experiment(tracking_uri: str, experiment: str) -> None:
    """Create the experiment if needed; with a SQLite store its artifacts go next to the database file
    (not into ./mlruns of whatever folder the notebook runs in)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is not None:
        return
    location = None
    if tracking_uri.startswith("sqlite:///"):
        location = (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "artifacts").as_uri()
    mlflow.create_experiment(experiment, artifact_location=location)


def make_demo_runs(data: str, tracking_uri: str, experiment: str,
                   classifiers: Sequence[str] = ("logreg", "rf"), holdout_by: Sequence[str] = ("generator",)):
    """Small training runs on `data`, one per classifier, logged to the tracking store."""
    from train.data import load_spec
    from train.run import train_run

    ensure_experiment(tracking_uri, experiment)
    table = load_spec(data)
    return [train_run(table, classifier=c, holdout_by=list(holdout_by), data_specs=[str(data)],
                      tracking_uri=tracking_uri, experiment=experiment, progress=False) for c in classifiers]


def search_runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """All finished runs of an experiment, newest first, with a short readable `label` each."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    if "tags.mlflow.parentRunId" in runs:  # CV folds and hold-outs are child runs of their training run
        runs = runs[runs["tags.mlflow.parentRunId"].isna()].reset_index(drop=True)
    if runs.empty:
        return runs
    short_id = runs["run_id"].str[:8]
    names = runs["tags.mlflow.runName"].fillna(short_id) if "tags.mlflow.runName" in runs else short_id
    kinds = runs["params.classifier"].fillna("run") if "params.classifier" in runs else "run"
    runs["label"] = kinds + " · " + names
    return runs


OVERVIEW_METRICS = ("test.auroc", "test.tpr_at_1fpr", "test.tpr_at_5fpr", "test.average_precision", "test.f1",
                    "test.brier", "test.ece", "threshold", "min_tokens", "seconds.features", "seconds.fit")


def runs_overview(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: classifier, data and the headline test metrics."""
    columns = {"label": "run", "params.classifier": "classifier", "params.data_specs": "data"}
    out = runs[[c for c in columns if c in runs]].rename(columns=columns)
    for metric in OVERVIEW_METRICS:  # threshold and min_tokens are params (settings), older runs have metrics
        value = runs.get(f"metrics.{metric}", runs.get(f"params.{metric}", np.nan))
        out[metric] = pd.to_numeric(value, errors="coerce") if isinstance(value, pd.Series) else value
    return out.set_index("run")


def runs_breakdown(runs: pd.DataFrame, prefix: str = "test",
                   groups: Sequence[str] = ("dataset", "domain", "generator")) -> pd.DataFrame:
    """Long table (run, group, value, metric columns) from metrics logged as prefix.group.value.metric;
    with prefix 'holdout_generator' (or 'holdout_domain') the group is the held-out one."""
    rows: dict[tuple, dict] = {}
    start = f"metrics.{prefix}."
    for column in runs.columns:
        if not column.startswith(start):
            continue
        rest = column[len(start):]
        if prefix.startswith("holdout_"):
            group = prefix.removeprefix("holdout_")
            value, _, metric = rest.rpartition(".")
        else:
            group, _, tail = rest.partition(".")
            value, _, metric = tail.rpartition(".")
            if group not in groups or not value:
                continue
        for _, run in runs.iterrows():
            key = (run["label"], group, value)
            rows.setdefault(key, {"run": key[0], "group": group, "value": value,
                                  "where": f"{group}: {value}"})[metric] = run[column]
    if not rows:
        return pd.DataFrame(columns=["run", "group", "value", "where"])
    return pd.DataFrame(list(rows.values())).sort_values(["group", "value", "run"], ignore_index=True)


def overview_long(overview: pd.DataFrame, columns: Sequence[str] = ("test.auroc", "test.tpr_at_1fpr",
                                                                     "test.tpr_at_5fpr", "test.f1")) -> pd.DataFrame:
    """`runs_overview` reshaped for `plots.metric_bars(table, 'score', by='metric', hue='run')`."""
    present = [c for c in columns if c in overview.columns]
    return overview[present].reset_index().melt(id_vars="run", var_name="metric", value_name="score")


def run_test_scores(run: pd.Series, fallback_data: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(labels, p(machine), rows) of a run's own test split, rebuilt from its logged data spec and seed
    (the split is a stable hash of each text's group) and scored with the run's logged model."""
    from detector.detector import Detector
    from train.data import load_specs
    from train.splits import train_val_test

    specs = json.loads(run.get("params.data_specs") or "[]")
    specs = [s for s in specs if Path(s).exists()] or [fallback_data]
    table = load_specs(specs)
    seed = int(float(run.get("params.seed") or 0))
    test = table[train_val_test(table, seed=seed) == "test"].reset_index(drop=True)
    detector = Detector.load(f"runs:/{run['run_id']}/model")
    p = np.array(detector.inference(test["text"].tolist()))
    return test["label"].to_numpy(), p, test


# ----- error analysis over a data set -----


def length_band(n_tokens, edges: Sequence[int] = LENGTH_EDGES) -> pd.Categorical:
    """'0-15', '16-31', ..., '512+' for each token count."""
    labels = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)] + [f"{edges[-1]}+"]
    which = np.digitize(np.asarray(n_tokens), edges[1:])
    return pd.Categorical([labels[i] for i in which], categories=labels, ordered=True)


def outcome(label: int, verdict: str) -> str:
    """What a verdict means for a text of known label."""
    if verdict == "uncertain":
        return "uncertain"
    if verdict == "machine":
        return "correct" if label == 1 else "false positive"
    return "correct" if label == 0 else "false negative"


def score_table(detector, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every text once: (scored rows with p_machine, verdict, reason, n_tokens, length band and
    outcome; the feature table of the same rows)."""
    analyses: list[Analysis] = detector.analyse(table["text"].tolist())
    results = detector.results(analyses)
    features = detector.model.extractor.features_table(analyses)
    scored = table.reset_index(drop=True).copy()
    scored["n_tokens"] = [r.n_tokens for r in results]
    scored["p_machine"] = [np.nan if r.p_machine is None else r.p_machine for r in results]
    scored["verdict"] = [r.verdict for r in results]
    scored["reason"] = [r.reason for r in results]
    scored["length_band"] = length_band(scored["n_tokens"])
    scored["outcome"] = [outcome(y, v) for y, v in zip(scored["label"], scored["verdict"], strict=True)]
    return scored, features


def outcome_counts(scored: pd.DataFrame) -> pd.DataFrame:
    """Texts per true class and outcome."""
    table = pd.crosstab(scored["label"].map({0: "human", 1: "machine"}), scored["outcome"], margins=True)
    table.index.name, table.columns.name = "actual", "outcome"
    return table


def errors(scored: pd.DataFrame, width: int = 100) -> pd.DataFrame:
    """False positives and false negatives, the most confident first, with the start of each text."""
    wrong = scored[scored["outcome"].isin(["false positive", "false negative"])].copy()
    wrong["confidence"] = (wrong["p_machine"] - 0.5).abs()
    wrong["start_of_text"] = wrong["text"].str.replace(r"\s+", " ", regex=True).str[:width]
    columns = ["outcome", "id", "domain", "generator", "n_tokens", "p_machine", "start_of_text"]
    return wrong.sort_values(["outcome", "confidence"], ascending=[True, False])[columns].reset_index(drop=True)


def error_rates(scored: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of `by` (length_band, domain, generator, ...): counts, false-positive rate (share of
    human texts called machine), false-negative rate (machine texts called human), uncertain rate and
    AUROC where both classes are present."""
    rows = []
    for value, part in scored.groupby(by, observed=True, sort=True):
        human, machine = part[part["label"] == 0], part[part["label"] == 1]
        rows.append({
            by: value, "n": len(part), "n_human": len(human), "n_machine": len(machine),
            "false_positive_rate": (human["verdict"] == "machine").mean() if len(human) else np.nan,
            "false_negative_rate": (machine["verdict"] == "human").mean() if len(machine) else np.nan,
            "uncertain_rate": (part["verdict"] == "uncertain").mean(),
            "auroc": metrics.auroc(part["label"], part["p_machine"]),
        })
    out = pd.DataFrame(rows)
    if isinstance(scored[by].dtype, pd.CategoricalDtype) and not out.empty:  # keep bands in length order
        out[by] = pd.Categorical(out[by], categories=scored[by].cat.categories, ordered=True)
    return out


def error_rates_long(scored: pd.DataFrame, by: str) -> pd.DataFrame:
    """`error_rates` reshaped for `plots.metric_bars(table, 'rate', by=by, hue='kind')`."""
    wide = error_rates(scored, by)
    rates = {"false_positive_rate": "false positives (of humans)", "false_negative_rate": "false negatives "
             "(of machine)", "uncertain_rate": "uncertain (of all)"}
    long = wide.melt(id_vars=[by], value_vars=list(rates), var_name="kind", value_name="rate")
    long["kind"] = long["kind"].map(rates)
    return long


def separating_features(features: pd.DataFrame, labels, top: int = 8) -> pd.DataFrame:
    """Features ranked by how far apart the classes are: |difference of medians| over the pooled IQR,
    with each class's median (a robust, scale-free effect size)."""
    labels = np.asarray(labels)
    rows = []
    for name in FEATURE_NAMES:
        human, machine = features.loc[labels == 0, name].dropna(), features.loc[labels == 1, name].dropna()
        if not len(human) or not len(machine):
            continue
        spread = np.subtract(*np.percentile(pd.concat([human, machine]), [75, 25])) or 1e-9
        rows.append({"feature": name, "description": FEATURES[name], "human_median": human.median(),
                     "machine_median": machine.median(),
                     "separation": abs(machine.median() - human.median()) / spread,
                     "auroc": metrics.auroc(np.r_[np.zeros(len(human)), np.ones(len(machine))],
                                            np.r_[human, machine])})
    table = pd.DataFrame(rows).sort_values("separation", ascending=False, ignore_index=True)
    return table.head(top)


def reliability_by_length(scored: pd.DataFrame, edges: Sequence[int] = LENGTH_EDGES,
                          min_texts: int = 10) -> pd.DataFrame:
    """Per length band: texts, AUROC and accuracy of the verdicts given; `judged` when the band holds
    at least `min_texts` texts of both classes together; and the same from that band's lower edge up."""
    n_tokens = scored["n_tokens"].to_numpy()
    y, p = scored["label"].to_numpy(), scored["p_machine"].to_numpy(dtype=float)
    verdict = scored["verdict"].to_numpy()
    bounds = list(edges) + [np.inf]
    rows = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        band = (n_tokens >= lo) & (n_tokens < hi)
        up = n_tokens >= lo
        given = band & (verdict != "uncertain")
        correct = (verdict == np.where(y == 1, "machine", "human"))
        rows.append({
            "from_tokens": int(lo), "band": length_band([lo], edges)[0], "n": int(band.sum()),
            "n_human": int((band & (y == 0)).sum()), "n_machine": int((band & (y == 1)).sum()),
            "auroc": metrics.auroc(y[band], p[band]),
            "accuracy_of_verdicts": float(correct[given].mean()) if given.any() else np.nan,
            "share_uncertain": float((verdict[band] == "uncertain").mean()) if band.any() else np.nan,
            "judged": bool(band.sum() >= min_texts and len(set(y[band])) == 2),
            "n_from": int(up.sum()), "auroc_from": metrics.auroc(y[up], p[up]),
        })
    return pd.DataFrame(rows)


def reliable_length(curve: pd.DataFrame, min_auroc: float = 0.9) -> int | None:
    """Shortest length (tokens) from which every judged band reaches `min_auroc`; None if the longest
    judged band does not (or no band can be judged)."""
    judged = curve[curve["judged"]].sort_values("from_tokens", ascending=False)
    reliable = None
    for _, row in judged.iterrows():
        if not row["auroc"] >= min_auroc:
            break
        reliable = int(row["from_tokens"])
    return reliable


# ----- zero-shot vs trained, side by side -----


def zero_shot_scores(analyses: Sequence[Analysis]) -> pd.DataFrame:
    """One column per published zero-shot score (higher = machine), one row per text."""
    return pd.DataFrame({name: [fn(a.stats) for a in analyses] for name, fn in ZERO_SHOT.items()})


def out_of_fold_scores(features: pd.DataFrame, table: pd.DataFrame, classifier: str = "logreg", k: int = 5,
                       seed: int = 0) -> np.ndarray:
    """p(machine) of each text from a detector trained without its fold (folds grouped by pair_id), so
    every text is scored by a model that never saw it."""
    from train.fit import FeatureData, build_pipeline, fit_classifier
    from train.splits import cv_folds

    table = table.reset_index(drop=True)
    data = FeatureData(table, features.reset_index(drop=True), np.zeros(len(table), dtype=int))
    folds = cv_folds(table, k, seed)
    p = np.full(len(table), np.nan)
    for fold in range(k):
        held = folds == fold
        train = data.subset(~held)
        if not held.any() or train.table["label"].nunique() < 2:
            continue
        pipeline = fit_classifier(build_pipeline(classifier, seed), train)
        rows = data.features[held][FEATURE_NAMES]
        ok = rows.notna().all(axis=1).to_numpy()
        idx = np.flatnonzero(held)[ok]
        if len(idx):
            p[idx] = pipeline[1:].predict_proba(rows[ok])[:, 1]
    return p


def contender_table(table: pd.DataFrame, scores: pd.DataFrame, set_name: str) -> pd.DataFrame:
    """The benchmark's long format: set, group, value, contender, auroc, tpr_at_1fpr, tpr_at_5fpr, ...
    overall and per domain / generator, one block per score column."""
    frames = []
    for contender in scores.columns:
        part = metrics.metric_table(table.reset_index(drop=True), scores[contender].to_numpy(),
                                    by=("domain", "generator"))
        frames.append(part.assign(set=set_name, contender=contender))
    out = pd.concat(frames, ignore_index=True)
    first = ["set", "group", "value", "contender"]
    return out[first + [c for c in out.columns if c not in first]]


def side_by_side(table: pd.DataFrame, extractor, set_name: str = "fixture",
                 classifier: str = "logreg", k: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-text scores of every contender, their metric table): the zero-shot scores next to a small
    trained detector scored out of fold, on the same texts and one LM pass."""
    analyses = extractor.analyse(table["text"].tolist())
    scores = zero_shot_scores(analyses)
    features = extractor.features_table(analyses)
    scores[f"trained {classifier} ({k}-fold)"] = out_of_fold_scores(features, table, classifier, k)
    return scores, contender_table(table, scores, set_name)


def read_benchmark_summary(path: str | Path | None) -> pd.DataFrame | None:
    """The committed benchmark summary (long format) if the file exists, else None."""
    if not path or not Path(path).is_file():
        return None
    summary = pd.read_csv(path)
    missing = {"contender", "auroc"} - set(summary.columns)
    if missing:
        raise ValueError(f"{path}: not a benchmark summary (no column {', '.join(sorted(missing))})")
    return summary


def overall_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The 'all' rows of a long metric table (every row if it has no group column)."""
    return summary[summary["group"] == "all"] if "group" in summary.columns else summary
