"""What notebook 05 (calibrating to your own writing) needs: a folder of human texts found on this
machine, a seeded split of them, and the verdicts before and after a profile from one LM pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def human_texts_folder(folder: str | Path, n: int = 100, seed: int = 0) -> Path:
    """Write `n` prose paragraphs of this machine's man pages and package READMEs (written by people,
    `train.references`) into `folder`, one .txt file each: a folder of human texts to calibrate on."""
    from train.references import reference_table

    texts = reference_table(per_source=n, seed=seed)["text"].tolist()
    if len(texts) < n:
        raise RuntimeError(f"found only {len(texts)} prose paragraphs in man pages and /usr/share/doc on this "
                           "machine; set DETECTOR_NB_DATA to a folder of your own human texts")
    texts = [texts[i] for i in np.random.default_rng(seed).permutation(len(texts))[:n]]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (folder / f"paragraph_{i:03d}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def split(texts: Sequence[str], share: float = 0.5, seed: int = 0) -> tuple[list[str], list[str]]:
    """(calibration, held back): a seeded random split, `share` of the texts to calibrate on."""
    order = np.random.default_rng(seed).permutation(len(texts))
    cut = int(round(share * len(texts)))
    return [texts[i] for i in order[:cut]], [texts[i] for i in order[cut:]]


def verdicts_before_after(detector, calibrated, groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One row per text of each group: p(machine) and verdict of `detector` (the model's own) and of
    `calibrated` (the same model with a profile: its refitted p(machine) and thresholds), and tokens,
    from one LM pass per text."""
    rows = []
    for group, texts in groups.items():
        analyses = detector.analyse(list(texts))
        for before, after in zip(detector.results(analyses), calibrated.results(analyses), strict=True):
            rows.append({"group": group, "p_machine": before.p_machine, "p_after": after.p_machine,
                         "n_tokens": before.n_tokens, "before": before.verdict, "after": after.verdict})
    return pd.DataFrame(rows)


def verdict_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Per group: the share of texts called machine, human and uncertain, before and after."""
    parts = []
    for when in ("before", "after"):
        shares = pd.crosstab(frame["group"], frame[when], normalize="index")
        parts.append(shares.add_prefix(f"{when}: "))
    return pd.concat(parts, axis=1).fillna(0.0).round(3)
