"""Cheap evasion attacks on machine texts, and the shipped detector before / after normalisation.

"Before" is what a detector without `detector/text/normalize.py` would see: token statistics and features of
the raw attacked text. "After" is the normal `Detector.score` path, which undoes look-alike letters,
invisible characters and odd spaces first. Typos and case changes cannot be undone, so they are a
control: both paths see nearly the same text. Human texts are left as they are.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pandas as pd

from detector import Detector
from detector.features.engine import FEATURE_NAMES, features_of
from detector.model.detector_model import DetectorModel
from detector.model.prediction import score_or_nan
from train import eval_metrics

# The attacker's table: Cyrillic and Greek look-alikes of Latin letters, as homoglyph attacks use them
# (the normaliser undoes them with Unicode's full confusables data, detector/text/normalize.py).
ATTACK_HOMOGLYPHS = {
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ᴠ": "v",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԍ": "G", "Ԛ": "Q", "Ԝ": "W",
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}
# Latin letter -> its first (Cyrillic) look-alike.
LOOKALIKE: dict[str, str] = {}
for _fake, _latin in ATTACK_HOMOGLYPHS.items():
    LOOKALIKE.setdefault(_latin, _fake)
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
ODD_SPACES = ("\u00a0", "\u2002", "\u2009", "\u202f", "\u205f")


def homoglyph(text: str, rng: random.Random, rate: float = 0.5) -> str:
    """Swap each Latin letter that has a look-alike with probability `rate`."""
    return "".join(LOOKALIKE[c] if c in LOOKALIKE and rng.random() < rate else c for c in text)


def zero_width(text: str, rng: random.Random, rate: float = 0.2) -> str:
    """Insert an invisible character after a letter with probability `rate`."""
    return "".join(c + rng.choice(ZERO_WIDTH) if c.isalpha() and rng.random() < rate else c for c in text)


def odd_whitespace(text: str, rng: random.Random) -> str:
    """Replace every ordinary space by a space-like character."""
    return "".join(rng.choice(ODD_SPACES) if c == " " else c for c in text)


def case_typo(text: str, rng: random.Random, rate: float = 0.15) -> str:
    """In a share `rate` of words (3+ letters): swap, drop or double a letter, or flip one's case."""
    def perturb(word: str) -> str:
        if len(word) < 3 or not word.isalpha() or rng.random() >= rate:
            return word
        i = rng.randrange(len(word) - 1)
        kind = rng.choice(("swap", "drop", "double", "case"))
        if kind == "swap":
            return word[:i] + word[i + 1] + word[i] + word[i + 2:]
        if kind == "drop":
            return word[:i] + word[i + 1:]
        if kind == "double":
            return word[:i] + word[i] + word[i:]
        return word[:i] + word[i].swapcase() + word[i + 1:]

    return " ".join(perturb(w) for w in text.split(" "))


ATTACKS: dict[str, Callable[[str, random.Random], str] | None] = {
    "none": None,
    "homoglyph": homoglyph,
    "zero_width": zero_width,
    "odd_whitespace": odd_whitespace,
    "case_typo": case_typo,
}


def attacked(texts: list[str], attack: str, seed: int = 0) -> list[str]:
    fn = ATTACKS[attack]
    if fn is None:
        return list(texts)
    return [fn(t, random.Random(f"{seed}:{attack}:{i}")) for i, t in enumerate(texts)]


def raw_p(model: DetectorModel, texts: list[str]) -> np.ndarray:
    """p(machine) without normalisation: statistics and features of the texts exactly as given."""
    stats = model.scoring_engine.token_stats(texts)
    table = pd.DataFrame([features_of(s, t) for s, t in zip(stats, texts, strict=True)], columns=FEATURE_NAMES)
    return model.p_machine_from_features(table)


def normalised_p(detector: Detector, texts: list[str]) -> tuple[np.ndarray, float]:
    """p(machine) on the normal path, and the share of texts the normaliser reported as altered."""
    results = detector.score(texts)
    p = np.array([score_or_nan(r.p_machine) for r in results])
    return p, float(np.mean([bool(r.altered) for r in results]))


def attack_table(model: DetectorModel, machine: list[str], human: list[str], seed: int = 0) -> pd.DataFrame:
    """AUROC, TPR at 1% FPR (threshold on these humans) and recall at the shipped threshold, per attack."""
    detector = Detector(model)
    threshold = model.thresholds.machine
    y = np.r_[np.ones(len(machine)), np.zeros(len(human))]
    human_p = {"before normalisation": raw_p(model, human), "after normalisation": normalised_p(detector, human)[0]}
    rows = []
    for attack in ATTACKS:
        texts = attacked(machine, attack, seed)
        after_p, altered = normalised_p(detector, texts)
        for stage, p in (("before normalisation", raw_p(model, texts)), ("after normalisation", after_p)):
            scores = np.r_[p, human_p[stage]]
            rows.append({"attack": attack, "stage": stage, "n_machine": len(machine), "n_human": len(human),
                         "auroc": eval_metrics.auroc(y, scores),
                         "tpr_at_1fpr": eval_metrics.tpr_at_fpr(y, scores, 0.01),
                         "tpr_at_threshold": float(np.mean(p > threshold)),
                         "fpr_at_threshold": float(np.mean(human_p[stage] > threshold)),
                         "reported_altered": altered if stage == "after normalisation" else float("nan")})
    return pd.DataFrame(rows)
