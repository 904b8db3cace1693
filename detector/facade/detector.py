"""The detector a user calls: texts in, one `Result` each (p(machine), verdict, reason, tokens).

    from detector import Detector
    detector = Detector()                    # the shipped default model
    [r.verdict for r in detector.score(["some text", ...])]
    detector.score("one text")[0]            # a single string is one text
    detector.inference(texts)                # RAID's contract: list of floats, higher = machine
    Detector(profile="essays.json")          # thresholds set on your own human texts (`detector calibrate`)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from detector.decision.profile import CalibrationProfile
from detector.decision.verdict import decide
from detector.features.engine import Analysis, features_table
from detector.model.detector_model import DetectorModel
from detector.model.prediction import score_or_nan, score_or_none
from detector.text.normalize import MAX_READ_CHARS


@dataclass
class Result:
    """What the detector says about one text."""

    p_machine: float | None
    verdict: str
    reason: str
    n_tokens: int
    altered: dict[str, int] = field(default_factory=dict)  # what normalisation had to undo
    explanation: dict | None = None  # per-sentence scores and top features, with explain=True

    def to_dict(self) -> dict:
        """The result as JSON-ready fields (no `explanation` key unless one was asked for)."""
        out = asdict(self)
        if out["explanation"] is None:
            del out["explanation"]
        return out


class Detector:
    """A trained `DetectorModel` plus its LM: scoring and explanations from one LM pass per text."""

    def __init__(self, model: DetectorModel | None = None, engine: str | None = None, dtype: str | None = None,
                 profile: str | Path | CalibrationProfile | None = None, fastest_runtime: bool = True):
        """Wrap `model`, or load the shipped default model when none is given; `engine` ("torch",
        "openvino") and `dtype` override the model's LM settings (None keeps them). Where neither is
        given and the model leaves its engine open, the LM runs on the engine measured fastest on this
        machine at the trained precision (`DetectorModel.use_fastest_runtime`), unless `fastest_runtime`
        is False (processes sharing a machine's cores, whose timings would measure each other).
        `profile` (a file from `detector calibrate`, made for this model) replaces the verdict thresholds
        with those set on the user's own human texts and adds those texts to the novelty references."""
        # The caller's model is left as it was: the engine and profile change a copy (the fitted steps are shared).
        self.model = copy.copy(model) if model is not None else DetectorModel.load()
        if isinstance(profile, (str, Path)):
            profile = CalibrationProfile.load(profile)
        if profile is not None:  # a profile made for another model is refused before the runtime is measured
            profile.check_model(self.model)
        if engine is not None or dtype is not None:
            self.model.use_engine(engine, dtype)
        elif fastest_runtime:
            self.model.use_fastest_runtime()
        self.profile = profile
        if profile is not None:
            self.model = profile.apply(self.model)

    @classmethod
    def load(cls, location: str | None = None, engine: str | None = None, dtype: str | None = None,
             profile: str | Path | CalibrationProfile | None = None, tracking_uri: str | None = None,
             fastest_runtime: bool = True) -> Detector:
        """A model folder, an mlflow model URI (models:/..., runs:/..., looked up in `tracking_uri`, else
        $MLFLOW_TRACKING_URI), or None for the default."""
        if location is None:
            return cls(engine=engine, dtype=dtype, profile=profile, fastest_runtime=fastest_runtime)
        from detector.model.uri import load_model

        return cls(load_model(location, tracking_uri), engine=engine, dtype=dtype, profile=profile,
                   fastest_runtime=fastest_runtime)

    def analyse(self, texts: Sequence[str]) -> list[Analysis]:
        """Normalise each text and run the LM over it once: what `results` scores and explains."""
        return self.model.scoring_engine.analyse(texts)

    def score(self, texts: Sequence[str] | str, explain: bool = False) -> list[Result]:
        """One `Result` per text (a single string is one text, not a sequence of characters)."""
        if isinstance(texts, str):
            texts = [texts]
        analyses = self.analyse(texts)
        return self.results(analyses, explain=explain)

    def results(self, analyses: Sequence[Analysis], explain: bool = False) -> list[Result]:
        """One `Result` per analysis (from `analyse`): p(machine), verdict with its reason, tokens and,
        with `explain`, per-sentence scores and the features that moved p(machine) most."""
        table = features_table(analyses)
        p = self.model.p_machine_from_features(table)
        novel = self.model.novelty_reasons(table)
        out = []
        for k, (analysis, p_machine, why_novel) in enumerate(zip(analyses, p, novel, strict=True)):
            p_value = score_or_none(p_machine)
            verdict, reason = decide(p_value, len(analysis.stats), analysis.text, self.model.thresholds, why_novel,
                                     self.profile.name if self.profile is not None else None)
            if analysis.normalized.altered:
                reason += f"; the text was altered in ways a reader cannot see ({analysis.normalized.describe()})"
            if analysis.normalized.unread:
                reason += (f"; only its first {MAX_READ_CHARS:,} characters were read "
                           f"({analysis.normalized.unread:,} more were not)")
            result = Result(p_value, verdict, reason, len(analysis.stats), analysis.normalized.alterations)
            if explain:
                from detector.facade.explain import explain as explain_analysis

                result.explanation = explain_analysis(self.model, analysis, features=table.iloc[k].to_dict())
            out.append(result)
        return out

    def inference(self, texts: Sequence[str]) -> list[float]:
        """RAID's detector contract: one float per text, higher = more likely machine."""
        return [score_or_nan(r.p_machine) for r in self.score(texts)]
