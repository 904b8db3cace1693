"""The held-out protocol: train without a whole dataset (or domain), test on it.

For each held-out set it reports the detector's AUROC beside the best zero-shot score of the same LM
on the same texts, and what the verdict rule does to its human texts (called `machine`, `uncertain`)
and to its machine texts (TPR at the rule). Recipes are compared by their worst held-out set.

    python -m train.protocol data/features/default-v2.parquet [--references refs.parquet]
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.decision.verdict import MACHINE, UNCERTAIN, verdict_rule
from detector.features.engine import ZERO_SHOT_FEATURES
from detector.model.detector_model import DetectorModel
from detector.model.prediction import score_or_none, single_openmp_thread
from train import eval_metrics
from train.balance import balanced_rows
from train.families import HUMAN, families
from train.fit import FeatureData, fit_classifier, fit_detector, with_learned
from train.recipes import RECIPES
from train.splits import group_keys, in_group_share, train_val_test

# The plain mean log-likelihood of the detector's own LM: the backbone every row is compared with.
MEAN_LOGP = "likelihood"


def zero_shot_scores(features: pd.DataFrame) -> pd.DataFrame:
    """Each zero-shot detector's score (higher = machine) from the feature table."""
    return pd.DataFrame({name: sign * features[column] for name, (column, sign) in ZERO_SHOT_FEATURES.items()})


def verdicts(model: DetectorModel, data: FeatureData, p: np.ndarray) -> np.ndarray:
    novel = model.novelty_reasons(data.features)
    return np.array([verdict_rule(score_or_none(pi), int(n), prob or None, model.thresholds, nov)[0]
                     for pi, n, prob, nov in zip(p, data.n_tokens, data.problem, novel, strict=True)])


# The length bands every protocol table is also reported by: long texts carry more evidence.
REPORT_BANDS = ((0, 128, "<128"), (128, 256, "128-255"), (256, np.inf, "256+"))


def rule_row(y: np.ndarray, p: np.ndarray, said: np.ndarray) -> dict:
    """What the verdict rule did to one set of texts: AUROC, TPR at 1% FPR on the set's own humans (what
    the ranking allows), TPR at the rule, humans called `machine` and `uncertain`."""
    human, machine = y == 0, y == 1
    return {
        "n_human": int(human.sum()), "n_machine": int(machine.sum()), "auroc": eval_metrics.auroc(y, p),
        "tpr_at_1fpr": _tpr_at_1fpr(y, p),
        "human_called_machine": float(np.mean(said[human] == MACHINE)) if human.any() else np.nan,
        "human_uncertain": float(np.mean(said[human] == UNCERTAIN)) if human.any() else np.nan,
        "tpr_at_rule": float(np.mean(said[machine] == MACHINE)) if machine.any() else np.nan,
        "machine_uncertain": float(np.mean(said[machine] == UNCERTAIN)) if machine.any() else np.nan,
    }


def _zero_shot_aurocs(y: np.ndarray, zero: pd.DataFrame) -> tuple[dict[str, float], str]:
    """Each zero-shot score's AUROC on these texts, and the name of the best (NaN counts as worst)."""
    aurocs = {name: eval_metrics.auroc(y, zero[name]) for name in zero}
    return aurocs, max(aurocs, key=lambda k: -np.inf if np.isnan(aurocs[k]) else aurocs[k])


def fold_zero_shot(train: FeatureData) -> str:
    """The zero-shot score a user would pick knowing only the training rows: the best AUROC on them."""
    return _zero_shot_aurocs(train.table["label"].to_numpy(), zero_shot_scores(train.features))[1]


def held_out_rows(model: DetectorModel, test: FeatureData, chosen_zero_shot: str | None = None) -> list[dict]:
    """What the detector does on a set it never saw: the whole set (`part` "all", beside the zero-shot
    scores on the same texts: the LM's mean log-likelihood, the zero-shot score chosen on the training rows
    (`chosen_zero_shot`) and the best one in hindsight), each length band and each domain of it."""
    y = test.table["label"].to_numpy()
    p = model.p_machine_from_features(test.features)
    said = verdicts(model, test, p)
    zero = zero_shot_scores(test.features)
    zero_auroc, best = _zero_shot_aurocs(y, zero)
    chosen = chosen_zero_shot or best
    rows = [{"part": "all", **rule_row(y, p, said), "mean_logp_auroc": zero_auroc[MEAN_LOGP],
             "mean_logp_tpr_at_1fpr": _tpr_at_1fpr(y, zero[MEAN_LOGP]),
             "fold_zero_shot": chosen, "fold_zero_shot_auroc": zero_auroc[chosen],
             "fold_zero_shot_tpr_at_1fpr": _tpr_at_1fpr(y, zero[chosen]),
             "best_zero_shot": best, "best_zero_shot_auroc": zero_auroc[best], "threshold": model.thresholds.machine,
             "min_tokens": model.thresholds.min_tokens}]
    for lo, hi, label in REPORT_BANDS:
        inside = (test.n_tokens >= lo) & (test.n_tokens < hi)
        if inside.any():
            rows.append({"part": f"tokens {label}", **rule_row(y[inside], p[inside], said[inside]),
                         "mean_logp_auroc": eval_metrics.auroc(y[inside], zero[MEAN_LOGP][inside]),
                         "fold_zero_shot_auroc": eval_metrics.auroc(y[inside], zero[chosen][inside])})
    domains = test.table["domain"].astype(str).to_numpy()
    if len(set(domains)) > 1:
        for domain in sorted(set(domains)):
            inside = domains == domain
            rows.append({"part": f"domain {domain}", **rule_row(y[inside], p[inside], said[inside])})
    return rows


def _tpr_at_1fpr(y: np.ndarray, score) -> float:
    """TPR at 1% FPR on the set's own humans; NaN with fewer than 20 of them (no such quantile)."""
    return eval_metrics.tpr_at_fpr(y, score, 0.01) if (y == 0).sum() >= 20 else np.nan


def in_distribution_rows(model: DetectorModel, data: FeatureData, seed: int = 0,
                         from_tokens: Sequence[int] = (16, 96)) -> pd.DataFrame:
    """The rule on the test split the model was trained beside (train_detector's default split): texts
    from each length in `from_tokens` up, and each report band: what `rule_row` measures."""
    test = data.subset((train_val_test(data.table, seed=seed) == "test").to_numpy())
    y = test.table["label"].to_numpy()
    p = model.p_machine_from_features(test.features)
    said = verdicts(model, test, p)
    parts = [(f"{n}+ tokens", test.n_tokens >= n) for n in from_tokens]
    parts += [(f"tokens {label}", (test.n_tokens >= lo) & (test.n_tokens < hi)) for lo, hi, label in REPORT_BANDS]
    return pd.DataFrame([{"part": name, **rule_row(y[inside], p[inside], said[inside])} for name, inside in parts])


_FITTED: dict[tuple, object] = {}  # fitted classifier steps by (recipe, seed, training rows, table)


@dataclass(frozen=True)
class Setting:
    """A recipe and the verdict rule around it: what the protocol compares."""

    recipe: str
    novelty: bool = True
    rule: str = "by-length"  # or "worst-group", or "pooled" (v1)
    references: bool = False  # also set thresholds and novelty on the human reference texts
    balance: int | None = None  # train on train.balance's subset with this cap per cell (None: every row)
    novelty_quantile: float = 0.9  # the novelty cut: this quantile of validation humans' novelty scores
    # Novel texts: "veto" (never `machine`), "threshold" (a stricter one) or "two-sided" (vetoed unless
    # they lie among the training machine texts, see detector.decision.novelty).
    novelty_rule: str = "veto"
    learn_references: bool = False  # the classifier also learns from the human references

    def fit(self, data: FeatureData, keep: np.ndarray, split: np.ndarray, seed: int = 0,
            references: FeatureData | None = None) -> DetectorModel:
        """Fit on the rows `keep`: the classifier on their (balanced) train part, thresholds and novelty on
        all of their val part."""
        train = keep & (split == "train")
        if self.balance:
            train &= balanced_rows(data.table, data.n_tokens, self.balance, seed) | ~train
        train_data = data.subset(train)
        learned = references if self.learn_references and references is not None else None
        if learned is not None:
            train_data = with_learned(train_data, learned)
        # Settings that differ only in their verdict rule share one fitted classifier per training set.
        key = (self.recipe, seed, hashlib.sha256(np.packbits(train).tobytes()).hexdigest(), id(data),
               None if learned is None else tuple(learned.table["id"]))
        if key not in _FITTED:
            _FITTED[key] = fit_classifier(train_data, self.recipe, seed)
        with single_openmp_thread():
            return fit_detector(train_data, data.subset(keep & (split == "val")),
                                self.recipe, seed, references=references if self.references else None,
                                novelty=self.novelty, rule=self.rule, novelty_quantile=self.novelty_quantile,
                                classifier=_FITTED[key], novelty_rule=self.novelty_rule)

    @property
    def name(self) -> str:
        novelty = [("novelty" if self.novelty_quantile == 0.9 else f"novelty q{self.novelty_quantile:g}")
                   + {"threshold": " as threshold", "two-sided": " two-sided"}.get(self.novelty_rule, "")]
        extras = ([self.rule] + (["refs"] if self.references else []) + (novelty if self.novelty else [])
                  + ([f"balanced {self.balance}"] if self.balance else [])
                  + (["learns refs"] if self.learn_references else []))
        return f"{self.recipe} ({', '.join(extras)})"


# v1, as shipped before the protocol: every feature, gradient boosting, one pooled threshold.
BEFORE = Setting("hgb-all", novelty=False, rule="pooled", references=False)


def held_out_masks(pool: FeatureData, by: str, value: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(held out of training, tested) for one held-out `value` of `by`.

    A dataset or domain: all of its rows, both. A generator family: its machine texts, and the humans of
    the datasets and domains it appears in whose documents fall in a seeded half of the groups, are
    tested; those documents (every row of their groups, machine texts of other families made from them
    included) and the family's texts are kept out of training.
    """
    table = pool.table
    if by != "family":
        held = (table[by].astype(str) == value).to_numpy()
        return held, held
    kind = families(table).to_numpy()
    machine = kind == value
    corners = set(zip(table.loc[machine, "dataset"], table.loc[machine, "domain"], strict=True))
    in_corner = np.array([c in corners for c in zip(table["dataset"], table["domain"], strict=True)])
    groups = group_keys(table)
    humans = (kind == HUMAN) & in_corner & in_group_share(table, 0.5, seed + 7)
    tested = machine | humans
    held = tested | groups.isin(set(groups[humans])).to_numpy()
    return held, tested


def leave_one_out(data: FeatureData, by: str, setting: Setting, seed: int = 0,
                  references: FeatureData | None = None, extra: FeatureData | None = None,
                  train_on: FeatureData | None = None) -> pd.DataFrame:
    """Rows per held-out value of `by` (dataset, domain or generator family): fit without it, test on it
    (`held_out_masks`).

    `extra` (e.g. the project's own generated machine text) only ever trains: rows of the held-out
    value are dropped from it, and the test sets stay those of `data`. `train_on` replaces `data` as
    what is fitted on (e.g. a previous round's sample, to test its recipe on the same held-out texts).
    """
    rows = []
    other = extra if extra is not None else train_on
    pool = FeatureData.concat([data, other]) if other is not None else data
    from_data = np.arange(len(pool.table)) < len(data.table)
    trainable = ~from_data if train_on is not None else np.ones(len(pool.table), dtype=bool)
    split = train_val_test(pool.table, val=0.2, test=0.0, seed=seed).to_numpy()
    values = families(data.table) if by == "family" else data.table[by].astype(str)
    for value in sorted(set(values) - {HUMAN}):
        held, tested = held_out_masks(pool, by, value, seed)
        test = pool.subset(tested & from_data)
        if test.table["label"].nunique() < 2:
            continue
        name = setting.name + (" + generated" if extra is not None else "")
        train = ~held & trainable
        chosen = fold_zero_shot(pool.subset(train & (split == "train")))
        for row in held_out_rows(setting.fit(pool, train, split, seed, references), test, chosen):
            rows.append({"setting": name, "held_out_by": by, "held_out": value, **row})
    return pd.DataFrame(rows)


def source_separability(table: pd.DataFrame, features: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """How well each feature alone tells one dataset's human texts from the other datasets' humans: the
    AUROC of each dataset against the rest, folded (0.5 = cannot tell, 1 = tells perfectly), per feature
    and dataset, with the worst. Among humans only, a feature that separates sources reads how a source
    was formatted or sampled, not who wrote it."""
    humans = (table["label"] == 0).to_numpy()
    datasets = table["dataset"].astype(str).to_numpy()[humans]
    rows = []
    for name in names:
        values = features[name].to_numpy()[humans]
        row = {"feature": name}
        for dataset in sorted(set(datasets)):
            value = eval_metrics.auroc((datasets == dataset).astype(int), values)
            row[dataset] = max(value, 1 - value)
        row["worst"] = max(v for k, v in row.items() if k != "feature")
        rows.append(row)
    return pd.DataFrame(rows)


def reference_check(data: FeatureData, setting: Setting, references: FeatureData, seed: int = 0) -> pd.DataFrame:
    """Out-of-domain humans (man pages, package docs, Python docs) by a model fitted on all of `data`
    (train/val split): the share called `machine` and `uncertain` per reference domain. A setting that
    learns from the references or sets its thresholds on them too is checked one domain at a time, fitted
    with the other domains only: each check is on a kind of writing the model never saw."""
    split = train_val_test(data.table, val=0.2, test=0.0, seed=seed).to_numpy()
    domains = references.table["domain"].astype(str).to_numpy()
    uses_references = setting.references or setting.learn_references
    rows = []
    everything = np.ones(len(split), dtype=bool)
    model = None if uses_references else setting.fit(data, everything, split, seed, references)  # one fit serves all
    for domain in sorted(set(domains)):
        checked = references.subset(domains == domain)
        if uses_references:
            model = setting.fit(data, everything, split, seed, references.subset(domains != domain))
        said = verdicts(model, checked, model.p_machine_from_features(checked.features))
        rows.append({"setting": setting.name, "domain": domain, "n_human": len(checked.table),
                     "human_called_machine": float(np.mean(said == MACHINE)),
                     "human_uncertain": float(np.mean(said == UNCERTAIN))})
    return pd.DataFrame(rows)


def attacked_essays(data: FeatureData, setting: Setting, seed: int = 0,
                    references: FeatureData | None = None) -> pd.DataFrame:
    """Essays of each generator held out with all their attacked versions (paraphrase, evasion): AUROC
    per attack against essay humans that were not trained on (the validation part of the split)."""
    table = data.table
    essays = (table["dataset"] == "essays").to_numpy()
    split = train_val_test(table, val=0.2, test=0.0, seed=seed).to_numpy()
    humans = essays & (table["label"] == 0).to_numpy() & (split == "val")
    rows = []
    for generator in sorted(table.loc[essays & (table["label"] == 1).to_numpy(), "generator"].unique()):
        held = essays & (table["generator"] == generator).to_numpy()
        model = setting.fit(data, ~held & ~humans, split, seed, references)
        for attack, part in table[held].groupby(table.loc[held, "attack"].fillna("none")):
            rows_mask = humans | (held & (table["attack"].fillna("none") == attack).to_numpy())
            test = data.subset(rows_mask)
            y = test.table["label"].to_numpy()
            p = model.p_machine_from_features(test.features)
            zero = zero_shot_scores(test.features)
            said = verdicts(model, test, p)
            rows.append({"setting": setting.name, "generator": generator, "attack": attack, "n_machine": len(part),
                         "n_human": int(humans.sum()), "auroc": eval_metrics.auroc(y, p),
                         "best_zero_shot_auroc": max(eval_metrics.auroc(y, zero[c]) for c in zero),
                         "tpr_at_rule": float(np.mean(said[y == 1] == MACHINE))})
    return pd.DataFrame(rows)


def run_protocol(data: FeatureData, settings: Sequence[Setting], by: Sequence[str] = ("family", "dataset", "domain"),
                 seed: int = 0, references: FeatureData | None = None,
                 extra: FeatureData | None = None, train_on: FeatureData | None = None) -> pd.DataFrame:
    return pd.concat([leave_one_out(data, b, s, seed, references, extra, train_on) for s in settings for b in by],
                     ignore_index=True)


# The promise the rule must keep on every held-out dataset, domain and reference: the selection constraint.
MAX_FPR = 0.01


def worst_case(protocol: pd.DataFrame, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per setting, what a user gets on data it never saw: the mean and worst TPR at the shipped rule over
    held-out datasets, the worst share of humans called `machine` over held-out datasets, their domains,
    held-out domains and (if given, from `reference_check`) the human references, whether every held-out
    dataset gets at least half of what its own ranking allows at 1% FPR, and the AUROCs. Settings are
    chosen by `mean_tpr_at_rule` among those with `keeps_promise` (worst FPR <= MAX_FPR)."""
    rows = []
    for setting, frame in protocol.groupby("setting", sort=False):
        whole = frame[frame["part"] == "all"] if "part" in frame else frame
        datasets = whole[whole["held_out_by"] == "dataset"]
        human_parts = frame[(frame["part"] == "all") | frame["part"].str.startswith("domain ")] \
            if "part" in frame else frame
        fpr = [human_parts["human_called_machine"].max()]
        if references is not None and not references.empty:
            fpr.append(references.loc[references["setting"] == setting, "human_called_machine"].max())
        worst_fpr = float(np.nanmax(fpr))
        half = (datasets["tpr_at_rule"] >= 0.5 * datasets["tpr_at_1fpr"]).all() if len(datasets) else False
        rows.append({
            "setting": setting,
            "mean_tpr_at_rule": datasets["tpr_at_rule"].mean(), "worst_tpr_at_rule": datasets["tpr_at_rule"].min(),
            "mean_tpr_at_1fpr": datasets["tpr_at_1fpr"].mean(),
            "worst_human_called_machine": worst_fpr, "keeps_promise": bool(worst_fpr <= MAX_FPR),
            "half_of_ranking_everywhere": bool(half),
            "mean_auroc": datasets["auroc"].mean(), "worst_auroc": whole["auroc"].min(),
            "worst_margin": (whole["auroc"] - whole["best_zero_shot_auroc"]).min(),
        })
    return pd.DataFrame(rows)


def choose(summary: pd.DataFrame) -> str:
    """The setting a user is best served by: the highest mean TPR at the rule on held-out datasets among
    those that keep the false-positive promise everywhere; if none does, the one that breaks it least."""
    keeping = summary[summary["keeps_promise"]]
    if keeping.empty:
        return str(summary.sort_values("worst_human_called_machine").iloc[0]["setting"])
    return str(keeping.sort_values("mean_tpr_at_rule", ascending=False).iloc[0]["setting"])


def load_alike(path: str, signature: dict[str, str], parser: argparse.ArgumentParser) -> FeatureData:
    """A second feature table, refused unless made with the same features, engine and statistics as the
    first: mixing them would compare numbers that do not mean the same thing."""
    data, other = FeatureData.load(path)
    differ = {k: (other.get(k), v) for k, v in signature.items() if other.get(k) != v}
    if differ:
        parser.error(f"{path} was made with other settings than the main table: "
                     + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in differ.items()) + " (recompute it)")
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="feature table written by FeatureData.save (no texts)")
    parser.add_argument("--references", help="feature table of human reference texts (train.references)")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--by", nargs="+", default=["family", "dataset", "domain"],
                        choices=["family", "dataset", "domain"])
    parser.add_argument("--out", help="CSV to write the protocol table to")
    parser.add_argument("--novelty", nargs="+", default=["on"], choices=["on", "off"],
                        help="with and/or without the novelty check of machine verdicts")
    parser.add_argument("--before", action="store_true", help="also the v1 setting (hgb-all, pooled threshold)")
    parser.add_argument("--extra", help="feature table of training-only texts (e.g. detector generate's)")
    args = parser.parse_args(argv)
    data, signature = FeatureData.load(args.features)
    references = load_alike(args.references, signature, parser) if args.references else None
    settings = [Setting(r, novelty=n == "on", references=references is not None)
                for r in args.recipes for n in args.novelty]
    extra = load_alike(args.extra, signature, parser) if args.extra else None
    table = run_protocol(data, ([BEFORE] if args.before else []) + settings, args.by, references=references)
    if extra is not None:
        table = pd.concat([table, run_protocol(data, settings, args.by, references=references, extra=extra)],
                          ignore_index=True)
    if args.out:
        table.to_csv(args.out, index=False)
    pd.set_option("display.width", 250)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(worst_case(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
