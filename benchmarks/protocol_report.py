"""`detector bench --protocol`: the held-out-dataset protocol written to benchmarks/PROTOCOL.md.

Runs on the committed feature tables (data/features/*.parquet: numbers, no texts), so it needs no LM
pass and no research data: every setting of `train.protocol` with each dataset and each domain held
out, the worst held-out set per setting, the chosen setting beside v1 per held-out set, attacked essays
with their generator held out, and a plot.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import plots
from benchmarks.markdown import table as markdown_table
from train.fit import FeatureData
from train.protocol import BEFORE, Setting, attacked_essays, reference_check, run_protocol, worst_case

COLUMNS = ["held_out", "n_human", "n_machine", "auroc", "best_zero_shot", "best_zero_shot_auroc",
           "human_called_machine", "human_uncertain", "tpr_at_rule", "machine_uncertain", "threshold", "min_tokens"]


def settings_to_compare(chosen: Setting) -> list[Setting]:
    """v1, the main recipes with the new verdict rule, and the chosen one without the novelty check and
    with one threshold for all lengths (what each part of the rule adds). The full recipe sweep with
    the worst-group rule is results/protocol_recipes_worst_group.csv (`python -m train.protocol`)."""
    out = [BEFORE, *(Setting(name) for name in ("hgb-all", "rf-all", "logreg-lm", "hgb-lm-monotone")), chosen,
           Setting(chosen.recipe, novelty=False), Setting(chosen.recipe, rule="worst-group"),
           Setting(chosen.recipe, references=True)]
    return list(dict.fromkeys(out))


def protocol_figure(frame: pd.DataFrame, chosen: str, folder: Path) -> Path:
    """AUROC per held-out set: v1, the chosen setting, and the best zero-shot score on the same texts."""
    rows = []
    for setting, label in ((BEFORE.name, "v1 (hgb-all, pooled threshold)"), (chosen, "chosen")):
        part = frame[frame["setting"] == setting]
        rows += [{"held_out": f"{r.held_out_by}: {r.held_out}", "who": label, "auroc": r.auroc}
                 for r in part.itertuples()]
    part = frame[frame["setting"] == chosen]
    rows += [{"held_out": f"{r.held_out_by}: {r.held_out}", "who": "best zero-shot (oracle pick)",
              "auroc": r.best_zero_shot_auroc} for r in part.itertuples()]
    fig = plots.metric_bars(pd.DataFrame(rows), "auroc", by="held_out", hue="who",
                            title="AUROC with a whole dataset or domain held out")
    return plots.save(fig, folder / "protocol_auroc.png")


def write_protocol(out: Path, features: Path, references: Path | None, chosen: Setting, command: str) -> Path:
    data, metadata = FeatureData.load(features)
    refs = FeatureData.load(references)[0] if references and references.exists() else None
    frame = run_protocol(data, settings_to_compare(chosen), references=refs)
    essays = pd.concat([attacked_essays(data, s, references=refs) for s in (BEFORE, chosen)], ignore_index=True)
    checked = (BEFORE, chosen, Setting(chosen.recipe, novelty=False))
    checks = (pd.concat([reference_check(data, s, refs) for s in checked], ignore_index=True)
              if refs is not None else pd.DataFrame())
    (out / "results").mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results" / "protocol.csv", index=False)
    essays.to_csv(out / "results" / "protocol_attacked_essays.csv", index=False)
    figure = protocol_figure(frame, chosen.name, out / "plots")
    worst = worst_case(frame)
    lines = [
        "# Held-out protocol: datasets and domains the detector never saw", "",
        f"Regenerate: `{command}` (from `{features.name}`: {len(data.table)} texts of the manifest's sample, "
        f"features by {metadata.get('lm')} on {metadata.get('engine', 'torch')} {metadata.get('dtype')}, "
        f"first {metadata.get('max_tokens')} tokens; "
        + (f"{len(refs.table)} human reference texts (man pages, package docs)" if refs is not None
           else "no references") + ").", "",
        "Each row trains on every other dataset (or domain) and tests on all texts of the held-out one. "
        "`best_zero_shot_auroc` is the best single zero-shot score of the same LM on the same texts, picked "
        "with hindsight (an upper bound for any one zero-shot detector). `human_called_machine` is the share "
        "of the held-out humans the verdict rule calls `machine` (the promise is 1%), `tpr_at_rule` the share "
        "of its machine texts called `machine`; the rest are `uncertain` (too short, borderline, or novel: "
        "unlike every human reference) or `human`.", "",
        "## Worst held-out set per setting (the recipe is chosen on these)", "",
        markdown_table(worst), "",
        f"Chosen: **{chosen.name}**.", "",
        f"![AUROC per held-out set]({figure.relative_to(out).as_posix()})", "",
    ]
    for setting in (BEFORE.name, chosen.name):
        for by in ("dataset", "domain"):
            part = frame[(frame["setting"] == setting) & (frame["held_out_by"] == by)]
            lines += [f"## {setting}: one {by} held out", "", markdown_table(part[COLUMNS]), ""]
    lines += ["## Attacked essays, the generator's essays (all attacks) held out", "",
              markdown_table(essays), ""]
    if not checks.empty:
        lines += ["## Out-of-domain human check: man pages and package docs (never fitted on)", "",
                  "Human prose of this machine, of the kind a small LM finds easy to predict; the model is "
                  "fitted on all the development sets.", "", markdown_table(checks), ""]
        checks.to_csv(out / "results" / "protocol_reference_check.csv", index=False)
    path = out / "PROTOCOL.md"
    path.write_text("\n".join(lines))
    return path
