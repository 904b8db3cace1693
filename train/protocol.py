"""The held-out protocol: train without a whole dataset (or domain), test on it.

For each held-out set it reports the detector's AUROC beside the best zero-shot score of the same LM
on the same texts, and what the verdict rule does to its human texts (called `machine`, `uncertain`)
and to its machine texts (TPR at the rule). Recipes are compared by their worst held-out set.

    python -m train.protocol data/features/default-v2.parquet [--references refs.parquet]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.features import ZERO_SHOT_FEATURES
from detector.model import DetectorModel, score_or_none, single_openmp_thread
from detector.verdict import MACHINE, UNCERTAIN, verdict_rule
from train import eval_metrics
from train.fit import FeatureData, fit_detector
from train.recipes import RECIPES
from train.splits import train_val_test


def zero_shot_scores(features: pd.DataFrame) -> pd.DataFrame:
    """Each zero-shot detector's score (higher = machine) from the feature table."""
    return pd.DataFrame({name: sign * features[column] for name, (column, sign) in ZERO_SHOT_FEATURES.items()})


def verdicts(model: DetectorModel, data: FeatureData, p: np.ndarray) -> np.ndarray:
    novel = model.novelty_reasons(data.features)
    return np.array([verdict_rule(score_or_none(pi), int(n), prob or None, model.thresholds, nov)[0]
                     for pi, n, prob, nov in zip(p, data.n_tokens, data.problem, novel, strict=True)])


def held_out_row(model: DetectorModel, test: FeatureData) -> dict:
    """What the detector does on a set it never saw, beside the zero-shot scores on the same texts."""
    y = test.table["label"].to_numpy()
    p = model.p_machine_from_features(test.features)
    said = verdicts(model, test, p)
    zero = zero_shot_scores(test.features)
    zero_auroc = {name: eval_metrics.auroc(y, zero[name]) for name in zero}
    best = max(zero_auroc, key=lambda k: -np.inf if np.isnan(zero_auroc[k]) else zero_auroc[k])
    human, machine = y == 0, y == 1
    return {
        "n_human": int(human.sum()), "n_machine": int(machine.sum()),
        "auroc": eval_metrics.auroc(y, p), "best_zero_shot": best, "best_zero_shot_auroc": zero_auroc[best],
        "human_called_machine": float(np.mean(said[human] == MACHINE)) if human.any() else np.nan,
        "human_uncertain": float(np.mean(said[human] == UNCERTAIN)) if human.any() else np.nan,
        "tpr_at_rule": float(np.mean(said[machine] == MACHINE)) if machine.any() else np.nan,
        "machine_uncertain": float(np.mean(said[machine] == UNCERTAIN)) if machine.any() else np.nan,
        "threshold": model.thresholds.machine, "min_tokens": model.thresholds.min_tokens,
    }


@dataclass(frozen=True)
class Setting:
    """A recipe and the verdict rule around it: what the protocol compares."""

    recipe: str
    novelty: bool = True
    rule: str = "by-length"  # or "worst-group", or "pooled" (v1)
    references: bool = False  # also set thresholds and novelty on the human reference texts

    def fit(self, data: FeatureData, keep: np.ndarray, split: np.ndarray, seed: int = 0,
            references: FeatureData | None = None) -> DetectorModel:
        """Fit on the rows `keep`: the classifier on their train part, thresholds and novelty on their val part."""
        with single_openmp_thread():
            return fit_detector(data.subset(keep & (split == "train")), data.subset(keep & (split == "val")),
                                self.recipe, seed, references=references if self.references else None,
                                novelty=self.novelty, rule=self.rule)

    @property
    def name(self) -> str:
        extras = [self.rule] + (["refs"] if self.references else []) + (["novelty"] if self.novelty else [])
        return f"{self.recipe} ({', '.join(extras)})"


# v1, as shipped before the protocol: every feature, gradient boosting, one pooled threshold.
BEFORE = Setting("hgb-all", novelty=False, rule="pooled", references=False)


def leave_one_out(data: FeatureData, by: str, setting: Setting, seed: int = 0,
                  references: FeatureData | None = None, extra: FeatureData | None = None) -> pd.DataFrame:
    """One row per held-out value of `by` (dataset or domain): fit without it, test on all of it.

    `extra` (e.g. the project's own generated machine text) only ever trains: rows of the held-out
    value are dropped from it, and the test sets stay those of `data`.
    """
    rows = []
    pool = FeatureData.concat([data, extra]) if extra is not None else data
    from_data = np.arange(len(pool.table)) < len(data.table)
    split = train_val_test(pool.table, val=0.2, test=0.0, seed=seed).to_numpy()
    for value in sorted(data.table[by].unique()):
        held = (pool.table[by] == value).to_numpy()
        test = pool.subset(held & from_data)
        if test.table["label"].nunique() < 2:
            continue
        row = held_out_row(setting.fit(pool, ~held, split, seed, references), test)
        name = setting.name + (" + generated" if extra is not None else "")
        rows.append({"setting": name, "held_out_by": by, "held_out": value, **row})
    return pd.DataFrame(rows)


def reference_check(data: FeatureData, setting: Setting, references: FeatureData, seed: int = 0) -> pd.DataFrame:
    """Out-of-domain humans (man pages, package docs) that no fit has seen: the share called `machine`
    and `uncertain` per domain, by a model fitted on all of `data` (train/val split)."""
    split = train_val_test(data.table, val=0.2, test=0.0, seed=seed).to_numpy()
    model = setting.fit(data, np.ones(len(split), dtype=bool), split, seed, references)
    said = verdicts(model, references, model.p_machine_from_features(references.features))
    domains = references.table["domain"].to_numpy()
    return pd.DataFrame([{"setting": setting.name, "domain": d, "n_human": int((domains == d).sum()),
                          "human_called_machine": float(np.mean(said[domains == d] == MACHINE)),
                          "human_uncertain": float(np.mean(said[domains == d] == UNCERTAIN))}
                         for d in sorted(set(domains))])


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


def run_protocol(data: FeatureData, settings: Sequence[Setting], by: Sequence[str] = ("dataset", "domain"),
                 seed: int = 0, references: FeatureData | None = None,
                 extra: FeatureData | None = None) -> pd.DataFrame:
    return pd.concat([leave_one_out(data, b, s, seed, references, extra) for s in settings for b in by],
                     ignore_index=True)


def worst_case(protocol: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: the worst held-out AUROC, its margin over the best zero-shot score, and the worst
    share of humans called machine. The recipe is chosen on these, never on an in-distribution split."""
    frame = protocol.assign(margin=protocol["auroc"] - protocol["best_zero_shot_auroc"])
    return frame.groupby("setting", sort=False).agg(
        worst_auroc=("auroc", "min"), mean_auroc=("auroc", "mean"), worst_margin=("margin", "min"),
        worst_human_called_machine=("human_called_machine", "max"),
        mean_tpr_at_rule=("tpr_at_rule", "mean")).reset_index()


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
    parser.add_argument("--by", nargs="+", default=["dataset", "domain"], choices=["dataset", "domain"])
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
