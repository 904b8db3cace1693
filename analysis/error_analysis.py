"""Error analysis over a scored data set: outcomes, the mistakes, error rates by length / domain /
generator, and the features that separate the classes. Length bands and the reliable length are
`detector.decision.lengths`'; AUROC is `train.eval_metrics.auroc`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detector.decision.lengths import length_band
from detector.features.engine import FEATURE_NAMES, FEATURES, features_table
from detector.model.prediction import score_or_nan, score_or_none
from train import eval_metrics


def outcome(label: int, verdict: str) -> str:
    """What a verdict means for a text of known label."""
    if verdict == "uncertain":
        return "uncertain"
    if verdict == "machine":
        return "correct" if label == 1 else "false positive"
    return "correct" if label == 0 else "false negative"


def _finish(scored: pd.DataFrame) -> pd.DataFrame:
    scored["length_band"] = length_band(scored["n_tokens"])
    scored["outcome"] = [outcome(y, v) for y, v in zip(scored["label"], scored["verdict"], strict=True)]
    return scored


def score_table(detector, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every text once (one LM pass): (scored rows with p_machine, verdict, reason, n_tokens,
    length band and outcome; the feature table of the same rows)."""
    analyses = detector.analyse(table["text"].tolist())
    results = detector.results(analyses)
    features = features_table(analyses)
    scored = table.reset_index(drop=True).copy()
    scored["n_tokens"] = [r.n_tokens for r in results]
    scored["p_machine"] = [score_or_nan(r.p_machine) for r in results]
    scored["verdict"] = [r.verdict for r in results]
    scored["reason"] = [r.reason for r in results]
    return _finish(scored), features


def score_features(model, data) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`score_table` from a feature table (FeatureData, no texts needed, no LM): the same verdict rule
    on the stored token counts and text problems."""
    from detector.decision.verdict import verdict_rule

    p = model.p_machine_from_features(data.features)
    novel = model.novelty_reasons(data.features)
    scored = data.table.reset_index(drop=True).copy()
    scored["n_tokens"] = data.n_tokens
    scored["p_machine"] = p
    decided = [verdict_rule(score_or_none(pi), int(n), problem or None, model.thresholds, why)
               for pi, n, problem, why in zip(p, data.n_tokens, data.problem, novel, strict=True)]
    scored["verdict"] = [v for v, _ in decided]
    scored["reason"] = [r for _, r in decided]
    return _finish(scored), data.features.reset_index(drop=True)


def outcome_counts(scored: pd.DataFrame) -> pd.DataFrame:
    """Texts per true class and outcome."""
    table = pd.crosstab(scored["label"].map({0: "human", 1: "machine"}), scored["outcome"], margins=True)
    table.index.name, table.columns.name = "actual", "outcome"
    return table


def errors(scored: pd.DataFrame, width: int = 100) -> pd.DataFrame:
    """False positives and false negatives, the most confident first, with the start of each text
    (when the texts are there)."""
    wrong = scored[scored["outcome"].isin(["false positive", "false negative"])].copy()
    wrong["confidence"] = (wrong["p_machine"] - 0.5).abs()
    columns = ["outcome", "id", "dataset", "domain", "generator", "n_tokens", "p_machine"]
    if "text" in wrong and wrong["text"].notna().any():
        wrong["start_of_text"] = wrong["text"].str.replace(r"\s+", " ", regex=True).str[:width]
        columns.append("start_of_text")
    columns = [c for c in columns if c in wrong]
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
            "auroc": eval_metrics.auroc(part["label"], part["p_machine"]),
        })
    out = pd.DataFrame(rows)
    if isinstance(scored[by].dtype, pd.CategoricalDtype) and not out.empty:  # keep bands in length order
        out[by] = pd.Categorical(out[by], categories=scored[by].cat.categories, ordered=True)
    return out


RATE_NAMES = {"false_positive_rate": "false positives (of humans)",
              "false_negative_rate": "false negatives (of machine)", "uncertain_rate": "uncertain (of all)"}


def error_rates_long(scored: pd.DataFrame, by: str) -> pd.DataFrame:
    """`error_rates` reshaped for `plots.metric_bars(table, 'rate', by=by, hue='kind')`."""
    long = error_rates(scored, by).melt(id_vars=[by], value_vars=list(RATE_NAMES), var_name="kind",
                                        value_name="rate")
    long["kind"] = long["kind"].map(RATE_NAMES)
    return long


def separating_features(features: pd.DataFrame, labels, top: int = 8) -> pd.DataFrame:
    """Features ranked by how far apart the classes are: |difference of medians| over the pooled IQR,
    with each class's median (a robust, scale-free effect size) and the feature's own AUROC."""
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
                     "auroc": eval_metrics.auroc(np.r_[np.zeros(len(human)), np.ones(len(machine))],
                                            np.r_[human, machine])})
    table = pd.DataFrame(rows).sort_values("separation", ascending=False, ignore_index=True)
    return table.head(top)
