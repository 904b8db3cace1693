"""The whole benchmark in one function: data -> scores -> views -> tables, plots and RESULTS.md."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from detector.features.engine import ScoringEngine
from detector.model.prediction import single_openmp_thread
from detector_bench import attacks, fpr, published, results_report, sample, throughput, views
from detector_bench.bench_results import BenchConfig, BenchResults
from detector_bench.contenders import DETECTOR, Scored, fit_gltr
from detector_bench.environment import machine
from detector_bench.shipped import shipped_model


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Headline per set x contender: ours with the generator held out (mean over held-out generator
    cells); the shipped detector on the test split; published detectors on their matched subset."""
    macro = views.macro_by_set(metrics[metrics["view"].isin([views.GENERATOR_HELD_OUT, views.PUBLISHED_SUBSET])])
    ours = macro[macro["view"] == views.GENERATOR_HELD_OUT]
    ours_names = set(ours["contender"])
    theirs = macro[(macro["view"] == views.PUBLISHED_SUBSET) & ~macro["contender"].isin(ours_names)]
    shipped = metrics[(metrics["view"] == views.TEST_SPLIT) & (metrics["group"] == "all")
                      & (metrics["contender"] == DETECTOR)].assign(contender="detector (shipped)", n_cells=1)
    columns = ["set", "contender", "view", "n_cells", "n", *views.METRIC_COLUMNS]
    return pd.concat([ours[columns], shipped[columns], theirs[columns]], ignore_index=True)


def attack_sample(scored: Scored, n: int, seed: int) -> tuple[list[str], list[str], str]:
    """Up to n machine and n human texts of the test split, fixed by the seed, and where they come from."""
    rng = np.random.default_rng(seed)
    test = scored.table[(scored.split == "test").to_numpy()]
    picked, origin = [], []
    for label, kind in ((1, "machine"), (0, "human")):
        part = test[test["label"] == label]
        part = part.iloc[sorted(rng.permutation(len(part))[:n])]
        picked.append(part["text"].tolist())
        by_set = part["dataset"].value_counts().sort_index()
        origin.append(f"{kind}: " + ", ".join(f"{d} {k}" for d, k in by_set.items()))
    return picked[0], picked[1], "; ".join(origin)


def throughput_sample(scored: Scored, n: int, seed: int) -> list[str]:
    """A fixed set of n texts of the whole table, drawn by the seed (every set has a chance)."""
    rng = np.random.default_rng(seed + 1)
    texts = scored.table["text"].tolist()
    return [texts[i] for i in sorted(rng.permutation(len(texts))[:n])]


def run_bench(config: BenchConfig) -> BenchResults:
    seconds: dict[str, float] = {}
    started = clock = time.time()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = time.time() - clock
        clock = time.time()

    table, source = sample.load_table(config.data, config.manifest, config.quick, config.seed)
    manifest_name = None if config.data else sample.manifest_name(config.manifest)
    print(f"bench: {len(table)} texts ({source})", flush=True)
    scored = Scored.compute(table, ScoringEngine(progress=True), config.seed)
    notes = []
    if len(scored.table) < len(table):
        notes.append(f"{len(table) - len(scored.table)} texts without a single scored token were left out.")
    lap("LM statistics and features")

    with single_openmp_thread():
        shipped = shipped_model(scored, manifest_name, config.quick)
    classifier = shipped.model.card.classifier or "hgb"
    found = published.load_published(config.published)
    subset = None
    if found is not None:
        def subset(cell: views.Cell) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
            return published.matched_subset(cell.rows, scored.y, found.arrays(scored.table["id"], cell.value))
    if found is None:
        notes.append(f"no published scores at {config.published}: published detectors left out.")
    elif found.unverified_files:
        notes.append("glimpse files not mapped per sample (item order unverified): "
                     + ", ".join(found.unverified_files))
    with single_openmp_thread():
        by_generator, curves, skipped = views.heldout_view(scored, "generator", classifier, config.seed, subset)
        by_domain, _, skipped_domains = views.heldout_view(scored, "domain", classifier, config.seed)
    for by, values in (("generator", skipped), ("domain", skipped_domains)):
        if values:
            notes.append(f"{by} held out: not enough training texts without {', '.join(values)} "
                         f"(< {views.MIN_PER_CLASS} of a class), left out.")
    shipped_p = shipped.model.p_machine_from_features(scored.data.features)
    in_split, split_curves = views.test_split_view(scored, shipped_p)
    metrics = pd.concat([by_generator, by_domain, in_split], ignore_index=True)
    lap("held-out fits and metrics")

    test_humans = ((scored.split == "test") & (scored.table["label"] == 0)).to_numpy()
    humans = fpr.human_verdicts(scored.table[test_humans], scored.data.n_tokens[test_humans],
                                shipped_p[test_humans], shipped.model)
    fpr_by_domain, fpr_by_length = fpr.fpr_tables(humans)
    machine_texts, human_texts, origin = attack_sample(scored, config.attack_texts, config.seed)
    notes.append(f"attack texts (test split) by set: {origin}.")
    attack_rows = attacks.attack_table(shipped.model, machine_texts, human_texts, config.seed)
    lap("false positives and attacks")

    gltr = fit_gltr(scored, (scored.split == "train").to_numpy())
    with throughput.OtherLoad() as other:
        speed = throughput.throughput_table(shipped.model, gltr, throughput_sample(scored, config.throughput_texts,
                                                                                    config.seed), config.repeats)
    load = other.describe()
    lap("throughput")

    full = found.full_set[found.full_set["set"].isin(scored.table["dataset"])] if found else pd.DataFrame()
    results = BenchResults(config, source, scored, shipped, metrics, summary_table(metrics), full, fpr_by_domain,
                           fpr_by_length, attack_rows, speed, curves + split_curves, {**machine(), "load": load},
                           seconds, notes)
    seconds["total"] = time.time() - started
    results_report.write_all(results)
    return results
