"""`detector bench --protocol`: the held-out protocol written to detector_bench/PROTOCOL.md.

Runs on the committed feature tables (data/features/*.parquet: numbers, no texts), so it needs no LM
pass and no research data. Each dataset and each domain is held out in turn; what a user gets is the
TPR at the shipped rule, under the promise that at most 1% of humans are called `machine` on every
held-out dataset, domain and human reference. It compares:
- last round's shipped setting, trained on last round's table (`--before` table: the 12,134 texts its LM
  pass had reached), on the same held-out texts;
- the chosen setting, and the other forest recipes (every feature; the version-2 features) under the same
  rule, through the whole protocol and the reference check: the rivals the selection rule picks among;
- the chosen classifier under each verdict gate (novelty check off / looser, one threshold for all
  lengths, the pooled v1 rule, thresholds on the references too) and with or without learning from the
  human references: what each costs and saves;
- each feature family left out, other recipes, and no balancing (datasets held out).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from analysis import plots
from detector_bench.markdown import table as markdown_table
from train.fit import FeatureData
from train.protocol import Setting, attacked_essays, choose, reference_check, run_protocol, worst_case
from train.recipes import FAMILIES

# Last round's shipped setting: a random forest on every feature, balanced 300 per cell, length-banded
# worst-group thresholds and the novelty veto, fitted on last round's table (data/features/all-v3-round4.parquet).
BEFORE = Setting("rf-all", balance=300)
BEFORE_LABEL = f"{BEFORE.name} [last round's table]"
COLUMNS = ["held_out", "part", "n_human", "n_machine", "auroc", "tpr_at_1fpr", "tpr_at_rule",
           "human_called_machine", "human_uncertain", "machine_uncertain"]


def gate_settings(chosen: Setting) -> list[Setting]:
    """The chosen classifier under each verdict rule: what each gate adds or costs."""
    out = [replace(chosen, novelty=not chosen.novelty),
           replace(chosen, novelty=True, novelty_quantile=0.99 if chosen.novelty_quantile != 0.99 else 0.9),
           *(replace(chosen, novelty=True, novelty_rule=rule) for rule in ("veto", "two-sided", "threshold")),
           replace(chosen, rule="worst-group"), replace(chosen, rule="pooled"), replace(chosen, references=True),
           replace(chosen, learn_references=not chosen.learn_references)]
    return [s for s in dict.fromkeys(out) if s != chosen]


def rival_settings(chosen: Setting) -> list[Setting]:
    """The chosen rule around the other forest recipes: held out by dataset and by domain and checked on the
    references like the chosen one, so the selection can pick them."""
    return [s for s in (replace(chosen, recipe=r) for r in ("rf-all-but-dynamics", "rf-all", "rf-v2")) if s != chosen]


def ablation_settings(chosen: Setting) -> list[Setting]:
    """What each part adds, on held-out datasets: each feature family left out of gradient boosting on every
    feature (a fast stand-in for the forest: 35 forest fits would take the better part of an hour on 2
    cores), gradient boosting without balancing, the chosen classifier on the version-2 features and a
    logistic regression (each unless it is a rival: those run the whole protocol). The first row is the base
    the family rows are compared with."""
    fast = replace(chosen, recipe="hgb-all")
    out = [fast, *(replace(fast, recipe=f"hgb-all-minus-{family}") for family in FAMILIES),
           replace(fast, balance=None), replace(chosen, recipe=f"{chosen.recipe.split('-')[0]}-v2"),
           replace(chosen, recipe="logreg-all")]
    run_whole = {chosen, *rival_settings(chosen)}
    return [s for s in dict.fromkeys(out) if s not in run_whole]


def pivot(frame: pd.DataFrame, value: str, settings: list[str]) -> pd.DataFrame:
    """One row per held-out set (whole sets), one column per setting."""
    whole = frame[frame["part"] == "all"]
    out = whole.pivot_table(index=["held_out_by", "held_out"], columns="setting", values=value, sort=False)
    return out[[s for s in settings if s in out.columns]].reset_index()


def protocol_figure(frame: pd.DataFrame, names: list[str], folder: Path) -> Path:
    """TPR at the rule and what the ranking allows at 1% FPR, per held-out set: before and now."""
    whole = frame[(frame["part"] == "all") & frame["setting"].isin(names)]
    rows = [{"held_out": f"{r.held_out_by}: {r.held_out}", "who": f"{r.setting}: {what}", "tpr": getattr(r, column)}
            for r in whole.itertuples() for what, column in (("at the rule", "tpr_at_rule"),
                                                                ("at 1% FPR, own humans", "tpr_at_1fpr"))]
    fig = plots.metric_bars(pd.DataFrame(rows), "tpr", by="held_out", hue="who",
                            title="Machine texts caught with a whole dataset or domain held out")
    return plots.save(fig, folder / "protocol_tpr.png")


def _main_and_gates(data, refs, chosen):
    frame = run_protocol(data, [chosen, *gate_settings(chosen)], references=refs)
    checks = (pd.concat([reference_check(data, s, refs) for s in [chosen, *gate_settings(chosen)]], ignore_index=True)
              if refs is not None else pd.DataFrame())
    return frame, checks


def _rivals(data, refs, chosen):
    rivals = rival_settings(chosen)
    frame = run_protocol(data, rivals, references=refs)
    checks = (pd.concat([reference_check(data, s, refs) for s in rivals], ignore_index=True)
              if refs is not None else pd.DataFrame())
    return frame, checks


def _before(data, before_table, refs):
    frame = run_protocol(data, [BEFORE], references=refs, train_on=before_table)
    checks = reference_check(before_table, BEFORE, refs) if refs is not None else pd.DataFrame()
    return (frame.assign(setting=BEFORE_LABEL),
            checks.assign(setting=BEFORE_LABEL) if not checks.empty else checks)


def _ablations(data, refs, chosen):
    return run_protocol(data, ablation_settings(chosen), by=("dataset",), references=refs), pd.DataFrame()


def run_all(data: FeatureData, before_table: FeatureData | None, refs: FeatureData | None,
            chosen: Setting, jobs: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(protocol rows of every setting, reference-check rows). The three groups of settings run in
    `jobs` processes (settings that differ only in their verdict rule share fits inside one group)."""
    from joblib import Parallel, delayed

    tasks = [delayed(_main_and_gates)(data, refs, chosen), delayed(_rivals)(data, refs, chosen),
             delayed(_ablations)(data, refs, chosen)]
    if before_table is not None:
        tasks.insert(1, delayed(_before)(data, before_table, refs))
    parts = Parallel(n_jobs=jobs)(tasks)
    return (pd.concat([f for f, _ in parts], ignore_index=True),
            pd.concat([c for _, c in parts if not c.empty], ignore_index=True) if refs is not None else pd.DataFrame())


def write_protocol(out: Path, features: Path, references: Path | None, chosen: Setting, command: str,
                   before: Path | None = None) -> Path:
    data, metadata = FeatureData.load(features)
    refs = FeatureData.load(references)[0] if references and references.exists() else None
    before_table = FeatureData.load(before, missing_features=True)[0] if before and before.exists() else None
    frame, checks = run_all(data, before_table, refs, chosen)
    essays = attacked_essays(data, chosen, references=refs)
    (out / "results").mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results" / "protocol.csv", index=False)
    checks.to_csv(out / "results" / "protocol_reference_check.csv", index=False)
    essays.to_csv(out / "results" / "protocol_attacked_essays.csv", index=False)
    summary = worst_case(frame, checks)
    candidates = [chosen, *gate_settings(chosen), *rival_settings(chosen)]
    picked = choose(summary[summary["setting"].isin([s.name for s in candidates])])
    before_name = BEFORE_LABEL
    main = [n for n in (before_name, chosen.name) if n in set(frame["setting"])]
    figure = protocol_figure(frame, main, out / "plots")
    n_by_dataset = data.table.groupby("dataset").size().to_dict()
    lines = [
        "# Held-out protocol: datasets and domains the detector never saw", "",
        f"Regenerate: `{command}` (from `{features.name}`: {len(data.table)} texts, "
        + ", ".join(f"{k} {v}" for k, v in n_by_dataset.items())
        + f"; features by {metadata.get('lm')} on {metadata.get('engine', 'torch')} {metadata.get('dtype')}, "
        f"first {metadata.get('max_tokens')} tokens; "
        + (f"{len(refs.table)} human reference texts ("
           + ", ".join(f"{k} {v}" for k, v in refs.table.groupby("domain").size().items()) + ")" if refs is not None
           else "no references") + ").", "",
        "Each row trains on every other dataset (or domain) and tests on all texts of the held-out one. "
        "`tpr_at_rule` is the share of its machine texts the shipped rule calls `machine`; `tpr_at_1fpr` what "
        "the same p(machine) would catch with a threshold set on the held-out set's own humans (an oracle: "
        "what the ranking allows, and what `detector calibrate` can recover from a user's own human texts); "
        "`human_called_machine` the share of its humans called `machine` (the promise: at most 1%). "
        "`best_zero_shot_auroc` (results CSV) is the best single zero-shot score of the same LM, picked with "
        "hindsight.", "",
        "## What a user gets, per setting", "",
        "Mean and worst TPR at the rule over held-out datasets; the worst share of humans called `machine` over "
        "held-out datasets, their domains, held-out domains and the references; whether every held-out dataset "
        "gets at least half of what its ranking allows at 1% FPR. Settings are chosen by the mean TPR at the "
        "rule among those that keep the promise (rows with a dataset-only protocol have no domain check).", "",
        markdown_table(summary), "",
        f"Chosen: **{chosen.name}**; among it, its gate variants and the rival recipes the selection rule "
        f"picks **{picked}**.", "",
        f"![TPR per held-out set]({figure.relative_to(out).as_posix()})", "",
    ]
    for name in main:
        for by in ("dataset", "domain"):
            part = frame[(frame["setting"] == name) & (frame["held_out_by"] == by)]
            lines += [f"## {name}: one {by} held out (whole set, length bands, domains)", "",
                      markdown_table(part[COLUMNS]), ""]
    gates = [chosen.name, *(s.name for s in gate_settings(chosen))]
    for value, title in (("tpr_at_rule", "TPR at the rule"), ("human_called_machine", "humans called machine"),
                         ("human_uncertain", "humans called uncertain")):
        lines += [f"## Gates: {title} per held-out set", "", markdown_table(pivot(frame, value, gates)), ""]
    ablations = [s.name for s in [*ablation_settings(chosen), *rival_settings(chosen), chosen]]
    datasets = frame[(frame["held_out_by"] == "dataset") & (frame["part"] == "all")]
    family = (datasets[datasets["setting"].isin(ablations)].groupby("setting", sort=False)
              [["auroc", "tpr_at_1fpr", "tpr_at_rule", "human_called_machine"]].mean().reindex(ablations)
              .reset_index())
    base = family.iloc[0]
    for column in ("auroc", "tpr_at_1fpr", "tpr_at_rule"):
        family[f"Δ {column}"] = family[column] - base[column]
    lines += ["## Ablation: feature families, recipes and balancing (mean over held-out datasets)", "",
              f"Δ against the first row ({ablations[0]}): what leaving a family out, or the other changes, cost.",
              "",
              markdown_table(family), "",
              "## Ablation per held-out dataset: AUROC", "", markdown_table(pivot(frame, "auroc", ablations)), ""]
    lines += ["## Attacked essays, the generator's essays (all attacks) held out", "", markdown_table(essays), ""]
    if not checks.empty:
        lines += ["## Out-of-domain human check: man pages, package docs, Python docs", "",
                  "Human prose of this machine, of the kind a small LM finds easy to predict; the model is "
                  "fitted on all the development sets. A setting that learns from the references (or sets "
                  "thresholds on them) is checked on each reference domain with a model fitted without that "
                  "domain: every row is writing of a kind the model never saw.", "", markdown_table(checks), ""]
    path = out / "PROTOCOL.md"
    path.write_text("\n".join(lines))
    return path

