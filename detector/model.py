"""The trained detector on disk: a scikit-learn Pipeline in skops format plus a JSON model card.

The pipeline is `features -> scale -> calibrated classifier`, text in, p(machine) out. The card holds
what a user needs to trust it: the LM and its revision, feature names and version, training data
digests, validation metrics, and the verdict thresholds with the false-positive rates they were
chosen for. Loading checks every type in the file against an allow-list, so it runs no code from it.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from detector.errors import UserError
from detector.features import FEATURE_NAMES, FEATURE_VERSION, FeatureExtractor
from detector.lengths import THRESHOLD_EDGES
from detector.lm import check_engine
from detector.novelty import Novelty

log = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
CARD_FILE = "model_card.json"
DEFAULT_MODEL_DIR = Path(str(resources.files("detector") / "default_model"))

# The exact types, beyond those skops trusts itself, that the shipped model and models trained by
# train/fit.py (logreg, hgb, rf) contain, as `skops.io.get_untrusted_types` names them. Exact names,
# no prefixes: a prefix like "builtins." would let a file call builtins.exec while loading. Anything
# else is refused before a single object is built.
TRUSTED_TYPES = frozenset({
    "detector.features.FeatureExtractor",
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hgb
    "sklearn.tree._tree.Tree",  # rf
})


def single_openmp_thread():
    """Run scikit-learn's OpenMP code (gradient boosting) on one thread.

    Beside torch's own thread pool on a small machine, OpenMP workers spin against each other: fitting
    the gradient-boosting classifier took ~100 s instead of ~1 s on 2 cores. One thread avoids that.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


class ModelError(UserError):
    """A model cannot be loaded or used; the message says why, in one line."""


@dataclass
class Thresholds:
    """Verdict thresholds on p(machine), each chosen on held-out human texts for a stated FPR."""

    machine: float  # p above this -> `machine`
    machine_fpr: float  # the false-positive rate it was chosen for
    borderline: float  # p above this (but not `machine`) -> `uncertain`, borderline
    borderline_fpr: float
    min_tokens: int = 16  # shorter texts -> `uncertain`, too short to judge
    # [[from_tokens, machine, borderline], ...] ascending: longer texts carry more evidence, so their
    # human scores spread less and a lower threshold keeps the same false-positive rate.
    by_length: list[list[float]] | None = None

    def for_length(self, n_tokens: int) -> tuple[float, float]:
        """(machine, borderline) thresholds for a text of `n_tokens` tokens."""
        machine, borderline = self.machine, self.borderline
        for start, band_machine, band_borderline in self.by_length or []:
            if n_tokens >= start:
                machine, borderline = band_machine, band_borderline
        return machine, borderline

    @classmethod
    def from_human_scores(cls, human_p: np.ndarray, fpr: float = 0.01, borderline_fpr: float = 0.05,
                          min_tokens: int = 16) -> Thresholds:
        return cls(threshold_for_fpr(human_p, fpr), fpr, threshold_for_fpr(human_p, borderline_fpr),
                   borderline_fpr, min_tokens)

    @classmethod
    def worst_group(cls, human_p: np.ndarray, groups: np.ndarray, fpr: float = 0.01, borderline_fpr: float = 0.05,
                    min_tokens: int = 16) -> Thresholds:
        """Thresholds that keep the false-positive rate at or under `fpr` in *every* group of human
        texts (domain, source), not just on their pool: the pooled rule lets one easy-to-predict domain
        take all the false positives."""
        human_p, groups = np.asarray(human_p, dtype=float), np.asarray(groups)
        by_group = [cls.from_human_scores(human_p[groups == g], fpr, borderline_fpr, min_tokens)
                    for g in np.unique(groups)]
        return cls(max(t.machine for t in by_group), fpr, max(t.borderline for t in by_group), borderline_fpr,
                   min_tokens)

    @classmethod
    def worst_group_by_length(cls, human_p: np.ndarray, groups: np.ndarray, n_tokens: np.ndarray,
                              fpr: float = 0.01, borderline_fpr: float = 0.05, min_tokens: int = 16,
                              edges: tuple[int, ...] = THRESHOLD_EDGES, min_humans: int = 100) -> Thresholds:
        """The worst-group rule over all lengths for texts shorter than `edges[0]`, and within each band
        that `edges` start for longer ones. A band with fewer than `min_humans` human texts keeps the
        thresholds of the band below it (set with more, shorter texts)."""
        human_p, groups, n_tokens = np.asarray(human_p, dtype=float), np.asarray(groups), np.asarray(n_tokens)
        base = cls.worst_group(human_p, groups, fpr, borderline_fpr, min_tokens)
        bands, current = [], base
        for lo, hi in zip(edges, [*edges[1:], np.inf], strict=True):
            inside = (n_tokens >= lo) & (n_tokens < hi)
            if inside.sum() >= min_humans:
                current = cls.worst_group(human_p[inside], groups[inside], fpr, borderline_fpr, min_tokens)
            bands.append([int(lo), current.machine, current.borderline])
        base.by_length = bands
        return base


def threshold_for_fpr(human_scores: np.ndarray, fpr: float) -> float:
    """Smallest t with share(human_scores > t) <= fpr: the verdict rule is `score > t`."""
    scores = np.sort(np.asarray(human_scores, dtype=float))
    if not len(scores):
        raise ValueError("no human scores to set a threshold on")
    k = int(np.floor(fpr * len(scores)))  # how many humans may lie above t
    return float(scores[len(scores) - k - 1])


@dataclass
class DetectorModel:
    pipeline: Pipeline
    thresholds: Thresholds
    card: dict = field(default_factory=dict)
    novelty: Novelty | None = None  # out-of-distribution check of `machine` verdicts

    def novelty_reasons(self, table: pd.DataFrame) -> list[str | None]:
        """Per row, why it lies outside the human reference texts (None if it does not, or no check)."""
        return self.novelty.reasons(table) if self.novelty is not None else [None] * len(table)

    @property
    def extractor(self) -> FeatureExtractor:
        return self.pipeline.named_steps["features"]

    @property
    def classifier(self) -> Pipeline:
        """The steps after feature extraction: feature table in, probabilities out."""
        return self.pipeline[1:]

    @property
    def engine(self) -> str:
        """The LM engine and precision the statistics come from, e.g. "openvino-bfloat16"."""
        return f"{self.extractor.engine_name}-{self.extractor.dtype}"

    def use_engine(self, engine: str | None = None, dtype: str | None = None) -> None:
        """Run the LM with `engine` and/or in `dtype` (None keeps each), warning if the model was trained
        on statistics of another precision: its scores then shift (up to ~0.1 in p(machine) between
        float32 and bfloat16, benchmarks/SPEED.md). Engines of one precision agree as closely as
        SPEED.md shows, which is logged only."""
        params = {}
        if engine is not None:
            params["engine"] = check_engine(engine)
        if dtype is not None:
            params["dtype"] = dtype
        self.extractor.set_params(**params)
        self.check_engine()

    def check_engine(self) -> str | None:
        """A note if this model runs on another engine or precision than it was trained with."""
        trained = self.card.get("engine")
        if not trained or trained == self.engine:
            return None
        note = f"model trained on {trained} statistics, scoring with {self.engine}"
        if trained.rsplit("-", 1)[-1] != self.extractor.dtype:
            warnings.warn(f"{note}: another precision shifts p(machine)", stacklevel=3)
        else:
            log.info("%s (same precision; engine parity in benchmarks/SPEED.md)", note)
        return note

    def p_machine_from_features(self, table: pd.DataFrame) -> np.ndarray:
        """p(machine) from a feature table; rows with missing features get NaN."""
        p = np.full(len(table), np.nan)
        ok = table.notna().all(axis=1).to_numpy()
        if ok.any():
            with single_openmp_thread():
                p[ok] = self.classifier.predict_proba(table[ok])[:, 1]
        return p

    def predict_proba(self, texts) -> np.ndarray:
        return self.pipeline.predict_proba(texts)

    # ----- disk -----

    def save(self, folder: str | Path) -> Path:
        import skops.io as sio

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sio.dump(self.pipeline, folder / MODEL_FILE)
        card = {**self.card, "thresholds": self.thresholds.__dict__, "feature_names": FEATURE_NAMES,
                "feature_version": FEATURE_VERSION, "lm": self.extractor.get_params(),
                "engine": self.engine}
        (folder / CARD_FILE).write_text(json.dumps(card, indent=2, default=_json_default) + "\n")
        if self.novelty is not None:
            self.novelty.save(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path = DEFAULT_MODEL_DIR) -> DetectorModel:
        """Load a model folder; any problem (missing file, broken card, foreign types) is a ModelError."""
        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        model_file, card_file = folder / MODEL_FILE, folder / CARD_FILE
        if not model_file.is_file() or not card_file.is_file():
            raise ModelError(f"{folder}: not a detector model (needs {MODEL_FILE} and {CARD_FILE})")
        card = _read_card(card_file)
        if card.get("feature_version") != FEATURE_VERSION:
            raise ModelError(f"{folder}: model built with feature version {card.get('feature_version')}, "
                             f"this detector computes version {FEATURE_VERSION}: retrain it")
        try:
            thresholds = Thresholds(**card["thresholds"])
        except (KeyError, TypeError) as err:
            raise ModelError(f"{card_file}: broken model card (thresholds: {err})") from err
        pipeline = _load_pipeline(model_file)
        if not isinstance(pipeline, Pipeline) or "features" not in pipeline.named_steps:
            raise ModelError(f"{model_file}: not a detector pipeline ({type(pipeline).__name__})")
        extractor = pipeline.named_steps["features"]
        if not hasattr(extractor, "engine"):  # saved before engines were a parameter: the default one
            extractor.engine = None
        model = cls(pipeline, thresholds, card, Novelty.load(folder))
        model.check_engine()
        return model


def _read_card(card_file: Path) -> dict:
    try:
        card = json.loads(card_file.read_bytes())
    except (OSError, ValueError, RecursionError) as err:  # ValueError covers JSON and decoding errors
        raise ModelError(f"{card_file}: broken model card ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:120] if str(err) else ''})") from err
    if not isinstance(card, dict):
        raise ModelError(f"{card_file}: broken model card (not a JSON object)")
    return card


def _load_pipeline(model_file: Path):
    """skops load that builds only allow-listed types; checked before anything is constructed."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=model_file)
    except Exception as err:  # zipfile, JSON, schema errors: the file is not a skops dump we can read
        raise ModelError(f"{model_file}: not a readable skops model file ({type(err).__name__})") from err
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelError(f"{model_file}: refusing to load types outside the allow-list: "
                         f"{', '.join(refused)[:300]} (see README, trusted sources)")
    try:
        return sio.load(model_file, trusted=untrusted)
    except Exception as err:  # a damaged but well-typed file fails while building
        raise ModelError(f"{model_file}: cannot load the model ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:120] if str(err) else ''})") from err


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
