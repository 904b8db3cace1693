"""`detector bench --speed`: each LM engine side by side, in one run on the same texts.

For every engine (precision) of the LM: tokens/s of its bare forward pass and of `Detector.score` end
to end (stats cache off), as ratios to the bare float32 forward of the same run (a loaded machine
slows every row alike, the ratios stay), plus its AUROC on a fixed labelled dev subset and the largest
change of p(machine) against float32 on it. Writes benchmarks/SPEED.md and results/speed.csv.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.environment import machine
from benchmarks.markdown import table as markdown_table
from benchmarks.throughput import OtherLoad
from detector.detector import Detector
from detector.lm import ENGINE, LanguageModel
from detector.normalize import normalize
from train import metrics

PRECISIONS = ("float32", "bfloat16")
REFERENCE = "float32"


def _at_precision(detector: Detector, precision: str, **params) -> Detector:
    """A copy of `detector` whose LM runs in `precision` (the shared model is left as it is)."""
    model = copy.deepcopy(detector.model)
    model.extractor.set_params(dtype=precision, **params)
    return Detector(model)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def speed_table(detector: Detector, texts: list[str], repeats: int = 2) -> pd.DataFrame:
    """Bare forward and end-to-end tokens/s per precision; best of `repeats` interleaved rounds."""
    runs, n_tokens = {}, {}
    for precision in PRECISIONS:
        engine_detector = _at_precision(detector, precision, cache=None, progress=False)
        lm: LanguageModel = engine_detector.model.scoring_engine.language_model()
        batches = lm.input_batches([normalize(t).text for t in texts])
        n_tokens[precision] = sum(len(lm.tokenize(normalize(t).text)[0]) for t in dict.fromkeys(texts))
        runs[(precision, "bare forward")] = lambda lm=lm, b=batches: lm.bare_forward(b)
        runs[(precision, "Detector.score")] = lambda d=engine_detector: d.score(texts)
    for run in runs.values():  # warm-up: every shape once
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):  # interleaved, so drift in machine load hits all alike
        for key, run in runs.items():
            best[key] = min(best[key], _timed(run))
    reference = n_tokens[REFERENCE] / best[(REFERENCE, "bare forward")]
    rows = []
    for (precision, what), seconds in best.items():
        rate = n_tokens[precision] / seconds
        own_bare = n_tokens[precision] / best[(precision, "bare forward")]
        rows.append({"engine": f"{ENGINE}-{precision}", "what": what, "tokens": n_tokens[precision],
                     "seconds": seconds, "tokens_per_s": rate, "x_bare_float32": rate / reference,
                     "share_of_own_bare": rate / own_bare})
    return pd.DataFrame(rows)


def accuracy_table(detector: Detector, dev: pd.DataFrame) -> pd.DataFrame:
    """AUROC per precision on `dev` (text, label) and the largest |p - p_float32|; the seed's verdict."""
    p = {}
    for precision in PRECISIONS:
        p[precision] = np.array(_at_precision(detector, precision, progress=True).inference(dev["text"].tolist()),
                                dtype=float)
    y = dev["label"].to_numpy()
    return pd.DataFrame([{"engine": f"{ENGINE}-{precision}", "n": len(dev), "auroc": metrics.auroc(y, p[precision]),
                          "max_abs_change_p": float(np.nanmax(np.abs(p[precision] - p[REFERENCE]))),
                          "mean_abs_change_p": float(np.nanmean(np.abs(p[precision] - p[REFERENCE])))}
                         for precision in PRECISIONS])


def write_speed(out: Path, speed: pd.DataFrame, accuracy: pd.DataFrame, load: str, command: str,
                seed_verdicts: dict[str, str]) -> Path:
    (out / "results").mkdir(parents=True, exist_ok=True)
    speed.to_csv(out / "results" / "speed.csv", index=False)
    accuracy.to_csv(out / "results" / "speed_accuracy.csv", index=False)
    facts = machine()
    lines = [
        "# LM engines side by side", "",
        f"Regenerate: `{command}`. Machine: {facts['cpu']}, {facts['cores']} cores, torch {facts['torch']}; "
        f"commit {facts['commit']}; {load}.", "",
        "Ratios are to the bare float32 forward pass of the same run (`x_bare_float32`) and to the engine's own "
        "bare forward (`share_of_own_bare`); the bare forward computes full logits at every position, "
        "`Detector.score` normalises, runs the LM body, the output layer on the scored positions only, the "
        "token statistics, features, classifier and verdicts (stats cache off).", "",
        markdown_table(speed, digits=2), "",
        "Accuracy of each engine with the shipped model on the fixed labelled dev subset:", "",
        markdown_table(accuracy, digits=4), "",
        "The seed: " + ", ".join(f"{k} `{v}`" for k, v in seed_verdicts.items()) + ".", "",
    ]
    path = out / "SPEED.md"
    path.write_text("\n".join(lines))
    return path


def run_speed(out: Path, texts: list[str], dev: pd.DataFrame, seed_text: str, command: str,
              repeats: int = 2) -> Path:
    detector = Detector()
    with OtherLoad() as other:
        speed = speed_table(detector, texts, repeats)
    accuracy = accuracy_table(detector, dev)
    seed_verdicts = {}
    for precision in PRECISIONS:
        seed_verdicts[f"{ENGINE}-{precision}"] = _at_precision(detector, precision).score(seed_text)[0].verdict
    return write_speed(out, speed, accuracy, other.describe(), command, seed_verdicts)
