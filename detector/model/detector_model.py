"""The trained detector on disk: a scikit-learn Pipeline in skops format plus a JSON model card.

The pipeline is `features -> scale -> calibrated classifier`, text in, p(machine) out. The card holds
what a user needs to trust it: the LM and its revision, feature names and version, training data
digests, validation metrics, and the verdict thresholds with the false-positive rates they were
chosen for. Loading checks every type named in the file against an exact allow-list before anything
is built, so a file can only rebuild those types: it cannot name a function (exec, os.system) to call;
then it checks the fitted arrays those types hold (`model_check`), so a crafted tree cannot crash it.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from detector.core.errors import BadArrays, BadMachineRows, BadNovelty, ModelError, first_line
from detector.core.settings import CACHE_DIR, CARD_FILE, DEFAULT_MODEL_DIR
from detector.decision.adaptation import Adaptation, MachineRows
from detector.decision.novelty import Novelty
from detector.decision.thresholds import Thresholds
from detector.features.engine import FEATURE_NAMES, FEATURE_VERSION, ScoringEngine
from detector.lm.engines import check_engine
from detector.model.card import ModelCard, read_card
from detector.model.forest_arrays import ForestArrays, export
from detector.model.prediction import p_machine_of, where_scored
from detector.model.skops_file import load_pipeline, skops_io

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

MODEL_FILE = "model.skops"


class DetectorModel:
    """A trained detector: the pipeline (feature extractor, then classifier steps), the verdict
    thresholds, the model card and the novelty check.

    The LM settings (`scoring_engine`) are the model's own, set with `set_lm`; the pipeline's feature
    extractor follows them. A forest model loaded from disk predicts with its arrays
    (`detector.model.forest_arrays`, kept in the user cache) and builds the skops pipeline only when something
    asks for `pipeline` (saving, training code): scoring then imports no scikit-learn.
    """

    def __init__(self, pipeline: Pipeline | None, thresholds: Thresholds, card: ModelCard | None = None,
                 novelty: Novelty | None = None, *, forest: ForestArrays | None = None,
                 source: Path | None = None, lm: ScoringEngine | None = None,
                 machine_rows: MachineRows | None = None):
        """`pipeline` may be None only with the `source` file it is loaded from when asked for and the
        `lm` settings its feature extractor holds."""
        if pipeline is None and (source is None or lm is None):
            raise ValueError("a model without its pipeline needs the file to load it from and its LM settings")
        self._pipeline = pipeline
        self.thresholds = thresholds
        self.card = card if card is not None else ModelCard()
        self.novelty = novelty  # out-of-distribution check of `machine` verdicts
        self.forest = forest  # the classifier steps as arrays, where the recipe allows
        # Training machine texts' feature rows: the positives of a calibration profile's refit.
        self.machine_rows = machine_rows
        self.adaptation: Adaptation | None = None  # a calibration profile's refit of the last stage
        self._source = source
        self._lm = lm if lm is not None else pipeline.named_steps["features"].scoring_engine

    @property
    def pipeline(self) -> Pipeline:
        """The scikit-learn pipeline, loaded (and checked) from the model file on first use."""
        if self._pipeline is None:
            self._pipeline = load_pipeline(self._source)
            self._pipeline.named_steps["features"].set_params(**self.lm_params())
        return self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Pipeline) -> None:
        """Replace the pipeline: its extractor's settings become the model's, and arrays exported from
        the one it replaces no longer describe it."""
        self._pipeline, self.forest = pipeline, None
        self._lm = pipeline.named_steps["features"].scoring_engine

    def with_rule(self, thresholds: Thresholds, novelty: Novelty | None,
                  adaptation: Adaptation | None = None) -> DetectorModel:
        """A copy with other verdict thresholds, novelty check and refit of the last stage (a calibration
        profile's); the classifier and LM settings are shared, and this model is left as it was."""
        model = copy.copy(self)
        model.thresholds, model.novelty, model.adaptation = thresholds, novelty, adaptation
        return model

    def novelty_reasons(self, table: pd.DataFrame) -> list[str | None]:
        """Per row, why it lies outside the human reference texts (None if it does not, or no check)."""
        return self.novelty.reasons(table) if self.novelty is not None else [None] * len(table)

    @property
    def scoring_engine(self) -> ScoringEngine:
        """The scoring engine with the model's current LM settings."""
        return self._lm

    def lm_params(self) -> dict[str, Any]:
        """The LM settings as the feature extractor's parameters (what a model card records)."""
        return asdict(self._lm)

    def set_lm(self, **params: Any) -> None:
        """Change LM settings (device, cache, progress, engine, dtype, ...), in the pipeline's extractor too.
        The pipeline gets a new extractor rather than a changed one: a copy of this model (`with_rule`,
        `Detector`) shares the fitted steps, never another model's settings."""
        self._lm = replace(self._lm, **params)
        if self._pipeline is not None:
            from sklearn.base import clone
            from sklearn.pipeline import Pipeline

            extractor = clone(self._pipeline.named_steps["features"]).set_params(**params)
            self._pipeline = Pipeline([("features", extractor), *self._pipeline.steps[1:]])

    @property
    def classifier(self) -> Pipeline:
        """The steps after feature extraction: feature table in, probabilities out."""
        return self.pipeline[1:]

    @property
    def engine(self) -> str:
        """The LM engine and precision the statistics come from, e.g. "openvino-bfloat16"."""
        return f"{self._lm.engine_name}-{self._lm.dtype}"

    def use_engine(self, engine: str | None = None, dtype: str | None = None) -> None:
        """Run the LM with `engine` and/or in `dtype` (None keeps each), warning if the model was trained
        on statistics of another precision: its scores then shift (up to ~0.1 in p(machine) between
        float32 and bfloat16, detector_bench/SPEED.md). Engines of one precision agree as closely as
        SPEED.md shows, which is logged only."""
        params = {}
        if engine is not None:
            params["engine"] = check_engine(engine)
        if dtype is not None:
            params["dtype"] = dtype
        self.set_lm(**params)
        self.check_engine()

    def use_fastest_runtime(self) -> str | None:
        """Where the model leaves its LM engine open (the shipped one does) and the LM runs on the CPU at
        the trained precision, run it on the engine measured fastest on this CPU whose statistics agree
        with the trained engine's (detector.lm.runtime: measured once per machine, then remembered). The
        engine chosen, or None where the model's settings decide."""
        from detector.lm import runtime
        from detector.lm.engines import default_engine

        lm = self._lm
        if not runtime.decides_engine(self.lm_params(), self.card.engine):
            return None
        chosen = runtime.choose(lm.lm, lm.dtype, self.card.engine.rpartition("-")[0]).engine
        if chosen != default_engine(lm.device, lm.dtype):
            self.set_lm(engine=chosen)
        return chosen

    def check_engine(self) -> str | None:
        """A note if this model runs on another engine or precision than it was trained with."""
        trained = self.card.engine
        if not trained or trained == self.engine:
            return None
        note = f"model trained on {trained} statistics, scoring with {self.engine}"
        if trained.rsplit("-", 1)[-1] != self._lm.dtype:
            warnings.warn(f"{note}: another precision shifts p(machine)", stacklevel=3)
        else:
            log.info("%s (same precision; engine parity in detector_bench/SPEED.md)", note)
        return note

    def p_machine_from_features(self, table: pd.DataFrame) -> np.ndarray:
        """p(machine) from a feature table (adapted to a calibration profile's humans where one is
        applied); rows with missing features get NaN."""
        p = self.shipped_p_machine(table)
        return p if self.adaptation is None else self.adaptation.p_machine(table, p)

    def shipped_p_machine(self, table: pd.DataFrame) -> np.ndarray:
        """p(machine) of the trained classifier itself, before any profile's refit."""
        forest = self.forest
        if forest is None:
            return p_machine_of(self.classifier, table)
        return where_scored(table, lambda rows: forest.p_machine(rows[list(forest.columns)].to_numpy(dtype=float)))

    def predict_proba(self, texts) -> np.ndarray:
        return self.pipeline.predict_proba(texts)

    # ----- disk -----

    def save(self, folder: str | Path) -> Path:
        sio = skops_io()

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sio.dump(self.pipeline, folder / MODEL_FILE)
        self.card = replace(self.card, thresholds=self.thresholds, feature_names=list(FEATURE_NAMES),
                            feature_version=FEATURE_VERSION, lm=self.lm_params(), engine=self.engine)
        self.card.write(folder / CARD_FILE)
        if self.novelty is not None:
            self.novelty.save(folder)
        if self.machine_rows is not None:
            self.machine_rows.save(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path = DEFAULT_MODEL_DIR, cache_dir: Path | None = CACHE_DIR) -> DetectorModel:
        """Load a model folder; any problem (missing file, broken card, foreign types) is a ModelError.

        A forest model's arrays are kept in `cache_dir` (None: not kept) under its file's SHA-256: the
        next load reads them and leaves the skops pipeline unbuilt until asked for."""
        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        model_file, card_file = folder / MODEL_FILE, folder / CARD_FILE
        if not model_file.is_file() or not card_file.is_file():
            raise ModelError(f"{folder}: not a detector model (needs {MODEL_FILE} and {CARD_FILE})")
        card = read_card(card_file)
        if card.feature_version != FEATURE_VERSION:
            raise ModelError(f"{folder}: model built with feature version {card.feature_version}, "
                             f"this detector computes version {FEATURE_VERSION}: retrain it")
        if card.thresholds is None:
            raise ModelError(f"{card_file}: broken model card (thresholds: missing)")
        kept = _forest_file(model_file, cache_dir) if cache_dir is not None else None
        forest, lm = _kept_forest(kept, card)
        if forest is not None:
            model = cls(None, card.thresholds, card, _novelty(folder), forest=forest, source=model_file, lm=lm,
                        machine_rows=_machine_rows(folder))
        else:
            pipeline = load_pipeline(model_file)
            forest = export(pipeline[1:], list(FEATURE_NAMES))
            if forest is not None and kept is not None:
                _keep_forest(forest, kept)
            model = cls(pipeline, card.thresholds, card, _novelty(folder), forest=forest, source=model_file,
                        machine_rows=_machine_rows(folder))
        model.check_engine()
        return model


def _novelty(folder: Path) -> Novelty | None:
    try:
        return Novelty.load(folder)
    except BadNovelty as err:
        raise ModelError(first_line(err, 300)) from err


def _machine_rows(folder: Path) -> MachineRows | None:
    try:
        return MachineRows.load(folder)
    except BadMachineRows as err:
        raise ModelError(first_line(err, 300)) from err


FOREST_CACHE = "forests"  # under the user cache directory: <model file's SHA-256>.npz


def _forest_file(model_file: Path, cache_dir: Path) -> Path:
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    return cache_dir / FOREST_CACHE / f"{digest}.npz"


def _kept_forest(path: Path | None, card: ModelCard) -> tuple[ForestArrays | None, ScoringEngine | None]:
    """The kept arrays and the LM settings from the card, or (None, None) where either cannot be used:
    the model is then loaded from its skops file (which also writes the arrays again)."""
    if path is None or not path.is_file():
        return None, None
    try:
        forest, lm = ForestArrays.load(path), ScoringEngine(**card.lm)
    except (BadArrays, OSError, TypeError) as err:  # TypeError: a card's LM settings of another version
        log.info("not using kept forest arrays %s: %s", path, first_line(err, 200))
        return None, None
    if not set(forest.columns) <= set(FEATURE_NAMES):
        return None, None
    return forest, lm


def _keep_forest(forest: ForestArrays, path: Path) -> None:
    try:
        forest.save(path)
    except OSError as err:  # a read-only cache costs speed only
        log.info("cannot keep forest arrays in %s: %s", path, first_line(err, 200))


