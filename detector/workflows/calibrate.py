"""`detector calibrate` as a function: score a user's human (and machine) texts once with a `Detector`,
through the one batch loop every entry point uses, and make their calibration profile
(`detector.decision.profile_fit`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.errors import CalibrationError
from detector.decision.conformal import check_rate
from detector.decision.profile import CalibrationProfile, with_machines
from detector.decision.profile_fit import build_profile


def calibrate(detector: Any, humans: Sequence[str], name: str, fpr: float = 0.01,
              machines: Sequence[str] | None = None, source: str = "", batch_size: int = 16,
              progress: Any = None, adapt: bool = True) -> CalibrationProfile:
    """Score the human texts (and `machines`) once with `detector` (a `Detector` without a profile; the
    stats cache serves texts seen before) and build their profile: the ranking refitted to them unless
    `adapt` is False, and with `machines`, its TPR on them (out of fold where they trained the refit).
    `progress` (e.g. a tqdm bar) is advanced by the number of texts of each batch."""
    if getattr(detector, "profile", None) is not None:
        raise CalibrationError("calibrate with the model's own thresholds, not with another profile applied")
    check_rate(fpr, "--fpr")
    model = detector.model
    scored = _score(detector, humans, batch_size, progress)
    other = _score(detector, machines, batch_size, progress) if machines else None
    scored_machines = None if other is None else np.isfinite(other.p)  # the refit learns from scored texts only
    profile = build_profile(name, model, scored.p, scored.n_tokens, scored.problems, scored.novelty_rows(model),
                            humans, fpr, humans=source, features=scored.table, adapt=adapt,
                            machines=None if other is None else other.table[scored_machines],
                            machine_tokens=None if other is None else other.n_tokens[scored_machines])
    if other is not None:
        if profile.adaptation is not None:  # the refit learned from them: judged out of fold
            tpr = profile.expected_tpr["at_rule"]
        else:
            tpr = float(np.mean(other.verdicts(profile.apply(model), profile.name) == "machine"))
        tpr_shipped = float(np.mean(other.verdicts(model) == "machine"))
        profile = with_machines(profile, tpr, tpr_shipped, len(machines))
    return profile


@dataclass
class _Scored:
    """What the verdict rule needs of a batch of texts, from one LM pass."""

    table: Any  # the feature table
    p: np.ndarray
    n_tokens: np.ndarray
    problems: list[str]

    def novelty_rows(self, model: Any) -> np.ndarray | None:
        return None if model.novelty is None else self.table[list(model.novelty.features)].to_numpy(dtype=float)

    def verdicts(self, model: Any, profile: str | None = None) -> np.ndarray:
        from detector.decision.verdict import verdict_rule
        from detector.model.prediction import score_or_none

        novel = model.novelty_reasons(self.table)
        return np.array([verdict_rule(score_or_none(p), int(n), problem or None, model.thresholds, why, profile)[0]
                         for p, n, problem, why in zip(self.p, self.n_tokens, self.problems, novel, strict=True)])


def _score(detector: Any, texts: Sequence[str], batch_size: int, progress: Any) -> _Scored:
    """The texts through the one batch loop (`score_items`), in order; a text the LM cannot score stops
    the calibration with its reason (a profile judged without it would not be the one asked for)."""
    from detector.decision.verdict import text_problem
    from detector.features.engine import features_table
    from detector.io.decoding import Item
    from detector.workflows.batch import score_items

    analyses = []
    items = (Item(f"text {i + 1}", text) for i, text in enumerate(texts))
    for scored in score_items(detector, items, batch_size=batch_size):
        if scored.analysis is None:
            raise CalibrationError(f"{scored.item.source} of {len(texts)} could not be scored: "
                                   f"{scored.record.get('error')}")
        analyses.append(scored.analysis)
        if progress is not None:
            progress.update(1)
    table = features_table(analyses)
    n_tokens = np.array([len(a.stats) for a in analyses], dtype=int)
    problems = [text_problem(a.text) or "" for a in analyses]
    return _Scored(table, detector.model.p_machine_from_features(table), n_tokens, problems)
