"""Calibration on the held-out protocol: what a profile set on half of a new set's humans does to the rest.

For each dataset and each domain held out, the protocol's recipe is fitted on everything else
(`train.protocol.Setting.fit`, as `leave_one_out` does). Its held-out humans are split at random (seeded):
at most 300 calibrate a profile (`detector.calibration.build_profile`, the code behind `detector
calibrate`), the others and all of the set's machine texts test it. Reported before (the fitted model's
own rule) and after (the profile): humans called `machine` (observed, with its 95% Clopper-Pearson
bound) and TPR at the rule; and TPR against the number of calibration humans (mean over seeded draws).
Works from a feature table alone (no LM, no texts):

    python -m detector_bench.calibration data/features/all-v3.parquet
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis import plots
from detector.calibration import CalibrationError, build_profile, fpr_upper_bound, minimum_humans
from detector.model import DetectorModel
from detector.verdict import MACHINE
from detector_bench.markdown import table as markdown_table
from train.default import SETTING
from train.fit import FeatureData
from train.protocol import Setting, verdicts
from train.splits import train_val_test

MAX_CALIBRATION = 300
SIZES = (25, 50, 100, 300)
DRAWS = 5
OUT = Path(__file__).resolve().parent


def held_out_models(data: FeatureData, setting: Setting, by: Sequence[str] = ("dataset", "domain"),
                    seed: int = 0) -> list[tuple[str, str, DetectorModel, FeatureData]]:
    """(by, value, model fitted without it, its texts) for every held-out set with both classes."""
    split = train_val_test(data.table, val=0.2, test=0.0, seed=seed).to_numpy()
    sets = [(column, value) for column in by for value in sorted(data.table[column].unique())]
    out = []
    for column, value in tqdm(sets, desc="fitting without each held-out set", unit="set"):
        held = (data.table[column] == value).to_numpy()
        test = data.subset(held)
        if test.table["label"].nunique() < 2:
            continue
        out.append((column, str(value), setting.fit(data, ~held, split, seed), test))
    return out


def _rate(said: np.ndarray) -> float:
    return float(np.mean(said == MACHINE)) if len(said) else float("nan")


def calibrate_and_test(model: DetectorModel, test: FeatureData, n_calibration: int, fpr: float,
                       rng: np.random.Generator) -> dict:
    """Calibrate on `n_calibration` random humans of `test`; the other humans and all machines test it."""
    y = test.table["label"].to_numpy()
    humans = rng.permutation(np.flatnonzero(y == 0))
    cal, held_humans, machines = humans[:n_calibration], humans[n_calibration:], np.flatnonzero(y == 1)
    p = model.p_machine_from_features(test.features)
    before = verdicts(model, test, p)
    novelty_rows = None if model.novelty is None else test.features[list(model.novelty.features)].to_numpy()
    row = {"n_calibration": len(cal), "n_test_human": len(held_humans), "n_machine": len(machines),
           "before_human_called_machine": _rate(before[held_humans]), "before_tpr": _rate(before[machines]),
           "before_threshold": model.thresholds.machine}
    try:
        profile = build_profile("benchmark", model, p[cal], test.n_tokens[cal], test.problem[cal],
                                None if novelty_rows is None else novelty_rows[cal],
                                test.table["id"].astype(str).to_numpy()[cal].tolist(), fpr)
    except CalibrationError as err:
        return {**row, "after_human_called_machine": np.nan, "after_judged_human_called_machine": np.nan,
                "after_fpr_upper95": np.nan, "after_tpr": np.nan,
                "promised_upper95": np.nan, "after_threshold": np.nan, "machine_like_share": np.nan,
                "note": str(err).split(":")[0]}
    after = verdicts(profile.apply(model), test, p)
    called = int(np.sum(after[held_humans] == MACHINE))
    # The guarantee is about the humans the rule judges (scored, long enough, no text problem).
    judged = held_humans[np.isfinite(p[held_humans]) & (test.n_tokens[held_humans] >= model.thresholds.min_tokens)
                         & (test.problem[held_humans] == "")]
    return {**row, "after_human_called_machine": _rate(after[held_humans]),
            "after_judged_human_called_machine": _rate(after[judged]),
            "after_fpr_upper95": fpr_upper_bound(called, len(held_humans)), "after_tpr": _rate(after[machines]),
            "promised_upper95": profile.guarantee.fpr_upper, "after_threshold": profile.thresholds.machine,
            "machine_like_share": profile.machine_like_share, "note": ""}


def calibration_table(models, fpr: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """One row per held-out set: half its humans (at most 300) calibrate, the rest test."""
    rows = []
    for column, value, model, test in models:
        n_humans = int((test.table["label"] == 0).sum())
        rng = np.random.default_rng(seed)
        rows.append({"held_out_by": column, "held_out": value, "fpr": fpr,
                     **calibrate_and_test(model, test, min(MAX_CALIBRATION, n_humans // 2), fpr, rng)})
    return pd.DataFrame(rows)


def tpr_by_size(models, sizes: Sequence[int] = SIZES, fprs: Sequence[float] = (0.01, 0.05),
                draws: int = DRAWS, seed: int = 0) -> pd.DataFrame:
    """Mean TPR and humans called machine after calibrating on n humans, over `draws` seeded draws; a
    size is tried on a set only when at least as many of its humans remain to test on."""
    rows = []
    for column, value, model, test in models:
        n_humans = int((test.table["label"] == 0).sum())
        for fpr in fprs:
            for size in sizes:
                if size > n_humans // 2:
                    continue
                runs = [calibrate_and_test(model, test, size, fpr, np.random.default_rng([seed, draw]))
                        for draw in range(draws)]
                frame = pd.DataFrame(runs)
                rows.append({"held_out_by": column, "held_out": value, "fpr": fpr, "n_calibration": size,
                             "draws": draws, "refused": bool(frame["note"].ne("").all()),
                             "tpr": frame["after_tpr"].fillna(0.0).mean(),
                             "human_called_machine": frame["after_human_called_machine"].mean(),
                             "judged_human_called_machine": frame["after_judged_human_called_machine"].mean(),
                             "before_tpr": frame["before_tpr"].mean()})
    return pd.DataFrame(rows)


TABLE_COLUMNS = ["held_out_by", "held_out", "n_calibration", "n_test_human", "n_machine",
                 "before_human_called_machine", "after_human_called_machine",
                 "after_judged_human_called_machine", "after_fpr_upper95",
                 "promised_upper95", "before_tpr", "after_tpr", "before_threshold", "after_threshold",
                 "machine_like_share", "note"]


def write_report(table: pd.DataFrame, curve: pd.DataFrame, figure: Path, out: Path, source: str,
                 command: str) -> Path:
    """CALIBRATION.md: the before/after table, the mean over sets, and the TPR-by-size figure."""
    fpr = float(table["fpr"].iloc[0])
    done = table[table["note"] == ""]
    mean = done[["before_human_called_machine", "after_human_called_machine", "before_tpr", "after_tpr"]].mean()
    lines = [
        "# Calibrating to a new set's own humans (held-out protocol)", "",
        f"Regenerate: `{command}` (feature table `{source}`, setting {SETTING.name}, no LM).", "",
        "Each row fits the recipe without one dataset (or domain), as the held-out protocol does; then half of "
        f"that set's humans (at most {MAX_CALIBRATION}, seeded) calibrate a profile for {fpr:.0%} false positives "
        "(split-conformal thresholds per length band, their feature rows added to the novelty references), and "
        "the other humans and all its machine texts test it. `before_*`: the fitted model's own rule; `after_*`: "
        "the profile. `after_judged_human_called_machine`: the same among the held-back humans the rule "
        "judges (scored, long enough, no text problem), which is what the guarantee is about. "
        "`after_fpr_upper95`: Clopper-Pearson 95% upper bound on the observed test rate; "
        "`promised_upper95`: the bound the profile states from its calibration humans alone. "
        "`machine_like_share`: calibration humans above the model's own borderline threshold (the profile warns "
        "above 50%). A note means the set has too few humans for the rate "
        f"(the conformal rule needs {minimum_humans(fpr)} for {fpr:.0%}): the profile is refused.", "",
        markdown_table(table[TABLE_COLUMNS]), "",
        f"Mean over the {len(done)} calibrated sets: humans called machine {mean['before_human_called_machine']:.3f} "
        f"before, {mean['after_human_called_machine']:.3f} after; TPR {mean['before_tpr']:.3f} before, "
        f"{mean['after_tpr']:.3f} after.", "",
        "## TPR against the number of calibration humans", "",
        f"Mean of {int(curve['draws'].max())} seeded draws per size; a size is tried on a set with at least "
        "twice as many humans. Below the conformal minimum (99 humans for 1%, 19 for 5%) no threshold exists "
        "and nothing is called machine (TPR 0).", "",
        markdown_table(curve.pivot_table(index=["held_out_by", "held_out", "fpr"], columns="n_calibration",
                                         values="tpr").reset_index()), "",
        f"![TPR by calibration size]({figure.relative_to(out).as_posix()})", "",
        "## Held-back humans called machine against the number of calibration humans", "",
        "Among the held-back humans the rule judges, which is what the guarantee is about: the mean over "
        "draws should stay at or under the rate (sets and sizes where the profile was refused call nothing "
        "machine and are left out).", "",
        markdown_table(curve[~curve["refused"]].pivot_table(index=["held_out_by", "held_out", "fpr"],
                                                            columns="n_calibration",
                                                            values="judged_human_called_machine").reset_index()), "",
        "Mean over sets and sizes: " + ", ".join(
            f"{rate:.0%} profiles call {share:.4f} of the judged held-back humans machine"
            for rate, share in curve[~curve["refused"]].groupby("fpr")["judged_human_called_machine"].mean().items())
        + ".",
        "",
    ]
    path = out / "CALIBRATION.md"
    path.write_text("\n".join(lines))
    return path


def report_from_results(out: Path = OUT, source: str = "all-v3.parquet",
                        command: str = "python -m detector_bench.calibration data/features/all-v3.parquet") -> Path:
    """Rewrite CALIBRATION.md and the figure from the CSVs a `run` wrote (no refitting)."""
    table = pd.read_csv(out / "results" / "calibration.csv", keep_default_na=False, na_values=[""])
    table["note"] = table["note"].fillna("")
    curve = pd.read_csv(out / "results" / "calibration_by_size.csv")
    figure = plots.save(plots.tpr_by_calibration_size(curve), out / "plots" / "calibration_tpr_by_size.png")
    return write_report(table, curve, figure, out, source, command)


def run(features: str | Path, out: Path = OUT, fpr: float = 0.01, seed: int = 0,
        command: str = "python -m detector_bench.calibration data/features/all-v3.parquet") -> Path:
    """Everything above from one feature table: CSVs in results/, the figure in plots/, CALIBRATION.md."""
    data, _ = FeatureData.load(features)
    models = held_out_models(data, SETTING, seed=seed)
    table = calibration_table(models, fpr, seed)
    curve = tpr_by_size(models, seed=seed)
    (out / "results").mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "results" / "calibration.csv", index=False)
    curve.to_csv(out / "results" / "calibration_by_size.csv", index=False)
    figure = plots.save(plots.tpr_by_calibration_size(curve), out / "plots" / "calibration_tpr_by_size.png")
    return write_report(table, curve, figure, out, Path(features).name, command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="feature table (train.fit.FeatureData parquet), e.g. "
                        "data/features/all-v3.parquet")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for CALIBRATION.md, results/ and plots/")
    parser.add_argument("--fpr", type=float, default=0.01, help="false-positive rate of the profiles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report and figure from the CSVs of an earlier run (no fitting)")
    args = parser.parse_args(argv)
    if args.report_only:
        print(f"wrote {report_from_results(args.out, Path(args.features).name)}")
        return
    path = run(args.features, args.out, args.fpr, args.seed,
               command=f"python -m detector_bench.calibration {args.features}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
