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
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from detector.adaptation import Adaptation, BadMachineRows, MachineRows
from detector.errors import UserError, first_line
from detector.features import FEATURE_NAMES, FEATURE_VERSION, ScoringEngine
from detector.forest_arrays import BadArrays, ForestArrays, export
from detector.lm import check_engine
from detector.novelty import BadNovelty, Novelty
from detector.settings import CACHE_DIR, CARD_FILE, DEFAULT_MODEL_DIR
from detector.thresholds import Thresholds

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

MODEL_FILE = "model.skops"

# The exact types, beyond primitives, containers and numpy, that the shipped model and models trained by
# train/fit.py (logreg, hgb, rf) contain, as `skops.io.get_untrusted_types` names them. Exact names,
# no prefixes: a prefix like "builtins." would let a file call builtins.exec while loading. Anything
# else is refused before a single object is built.
TRUSTED_TYPES = frozenset({
    "detector.extractor.FeatureExtractor",
    "detector.features.FeatureExtractor",  # its name in models saved before it moved to detector.extractor
    "numpy.dtype",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._forest.ExtraTreesClassifier",  # a forest recipe may hold (model_check validates it)
    "sklearn.ensemble._forest.RandomForestClassifier",  # rf
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",  # hgb
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hgb
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",  # logreg
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",  # hgb: its classes (checked to be 0 and 1)
    "sklearn.tree._classes.DecisionTreeClassifier",  # rf
    "sklearn.tree._classes.ExtraTreeClassifier",  # extra trees
    "sklearn.tree._tree.Tree",  # rf
})


def _skops_io():
    """`skops.io`, imported without its list of every scikit-learn estimator.

    skops builds that default allow-list at import by importing every scikit-learn module (seconds at
    each start-up); our own exact list above names every estimator our models hold, so skops' list is
    not needed: while skops is first imported it sees no estimators, which only makes it trust less.
    """
    import importlib
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    every_estimator = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        return importlib.import_module("skops.io")
    finally:
        sklearn.utils.all_estimators = every_estimator


def single_openmp_thread():
    """Run scikit-learn's OpenMP code (gradient boosting) on one thread.

    Beside torch's own thread pool on a small machine, OpenMP workers spin against each other: fitting
    the gradient-boosting classifier took ~100 s instead of ~1 s on 2 cores. One thread avoids that.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


class ModelError(UserError):
    """A model cannot be loaded or used; the message says why, in one line."""


def p_machine_of(classifier: Pipeline, table: pd.DataFrame) -> np.ndarray:
    """p(machine) of each row of a feature table from fitted classifier steps (the pipeline after its
    feature extractor); rows without LM features (a text without tokens) get NaN, not a guess. Other
    missing features (a series too short for its ordinal patterns, say) are imputed by the steps."""
    from joblib import parallel_config

    def predict(rows: pd.DataFrame) -> np.ndarray:
        # The forest's trees one after another: its thread pool cost more than it saved here (0.12 s
        # against 0.02 s for one text, 0.034 against 0.021 s for 2,000) and summed the trees in a varying
        # order (p(machine) differing by 4e-16 between runs); in sequence it is reproducible to the bit.
        with single_openmp_thread(), parallel_config(backend="sequential"):
            return classifier.predict_proba(rows)[:, 1]

    return _where_scored(table, predict)


def _where_scored(table: pd.DataFrame, predict: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
    """`predict` of the rows with LM features; NaN for the others."""
    p = np.full(len(table), np.nan)
    # logp_mean is missing exactly when a text has no scored token (detector.features.lm_features)
    ok = (table["logp_mean"].notna() if "logp_mean" in table else table.notna().all(axis=1)).to_numpy()
    if ok.any():
        p[ok] = predict(table[ok])
    return p


def score_or_none(p: float) -> float | None:
    """A p(machine) for records and JSON: None where there is no score (NaN in arrays)."""
    return None if p is None or np.isnan(p) else float(p)


def score_or_nan(p: float | None) -> float:
    """A p(machine) for arrays: NaN where there is no score (None in records)."""
    return float("nan") if p is None else float(p)


@dataclass
class ModelCard:
    """model_card.json as a record: what a user needs to trust a model. Written by `DetectorModel.save`
    (which fills in the thresholds, features and LM of the model it describes) and read by `load`.

    Keys this version does not know (a card from a newer detector) are kept in `extra` and written back.
    """

    name: str = "mgt-detector"
    classifier: str = ""  # the recipe name or v1 alias it was trained as
    trained: str = ""  # date
    training_data: dict[str, dict[str, Any]] = field(default_factory=dict)  # per dataset: n, digest, generators
    split: dict[str, int] = field(default_factory=dict)
    split_rule: str = ""
    recipe: str = ""
    novelty: dict[str, Any] | None = None
    test_metrics: dict[str, Any] = field(default_factory=dict)
    test_metrics_all_lengths: dict[str, Any] = field(default_factory=dict)
    feature_reference: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    data_specs: list[str] = field(default_factory=list)
    cv_auroc: list[float] = field(default_factory=list)
    holdout_auroc: dict[str, dict[str, float]] = field(default_factory=dict)  # by -> held-out value -> AUROC
    thresholds: Thresholds | None = None
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    feature_version: int | None = FEATURE_VERSION
    lm: dict[str, Any] = field(default_factory=dict)  # the feature extractor's settings
    engine: str = ""
    manifest: dict[str, Any] | None = None  # the shipped model: its training sample
    recipe_choice: str | None = None
    held_out_protocol: list[dict[str, Any]] | None = None
    out_of_domain_human_check: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "holdout_auroc":  # flat keys, as cards have always had them
                out.update({f"holdout_{by}_auroc": table for by, table in value.items()})
            elif f.name == "thresholds":
                # `novel` is written only where set, so cards from before it round-trip unchanged
                out["thresholds"] = None if value is None else {k: v for k, v in asdict(value).items()
                                                                if k != "novel" or v is not None}
            elif f.name == "cv_auroc" and not value:
                continue
            elif f.name == "extra":
                out.update(value)
            elif value is not None or f.name == "novelty":
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        """A card from its JSON object; TypeError/KeyError where a known key has the wrong shape."""
        known = {f.name for f in fields(cls)} - {"holdout_auroc", "extra"}
        card = cls(**{k: v for k, v in data.items() if k in known and k != "thresholds"})
        card.feature_version = data.get("feature_version")  # absent: unknown, never assumed current
        if data.get("thresholds") is not None:
            card.thresholds = Thresholds(**data["thresholds"])
        holdouts = [k for k in data if k.startswith("holdout_") and k.endswith("_auroc")]
        card.holdout_auroc = {k.removeprefix("holdout_").removesuffix("_auroc"): data[k] for k in holdouts}
        card.extra = {k: v for k, v in data.items() if k not in known and k not in holdouts}
        return card

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, default=_json_default) + "\n")


class DetectorModel:
    """A trained detector: the pipeline (feature extractor, then classifier steps), the verdict
    thresholds, the model card and the novelty check.

    The LM settings (`scoring_engine`) are the model's own, set with `set_lm`; the pipeline's feature
    extractor follows them. A forest model loaded from disk predicts with its arrays
    (`detector.forest_arrays`, kept in the user cache) and builds the skops pipeline only when something
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
            self._pipeline = _load_pipeline(self._source)
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
        with the trained engine's (detector.runtime: measured once per machine, then remembered). The
        engine chosen, or None where the model's settings decide."""
        from detector import runtime
        from detector.lm import default_engine

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
        return _where_scored(table, lambda rows: forest.p_machine(rows[list(forest.columns)].to_numpy(dtype=float)))

    def predict_proba(self, texts) -> np.ndarray:
        return self.pipeline.predict_proba(texts)

    # ----- disk -----

    def save(self, folder: str | Path) -> Path:
        sio = _skops_io()

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
            pipeline = _load_pipeline(model_file)
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


def read_card(card_file: str | Path) -> ModelCard:
    """A model_card.json as a `ModelCard`; a ModelError saying what is wrong otherwise."""
    try:
        data = json.loads(Path(card_file).read_bytes())
    except (OSError, ValueError, RecursionError) as err:  # ValueError covers JSON and decoding errors
        raise ModelError(f"{card_file}: broken model card ({type(err).__name__}: "
                         f"{first_line(err, 120)})") from err
    if not isinstance(data, dict):
        raise ModelError(f"{card_file}: broken model card (not a JSON object)")
    try:
        return ModelCard.from_json(data)
    except (KeyError, TypeError, AttributeError) as err:
        raise ModelError(f"{card_file}: broken model card ({first_line(err, 120)})") from err


def _load_pipeline(model_file: Path) -> Pipeline:
    """skops load that builds only allow-listed types (checked before anything is constructed), then
    the fitted arrays a prediction reads (`detector.model_check`), before anything is predicted."""
    from sklearn.pipeline import Pipeline

    import detector.extractor  # noqa: F401  (the file's feature extractor type, under its old name too)
    from detector.model_check import UnsafeModel, check_pipeline, check_skops_file

    sio = _skops_io()

    try:
        untrusted = sio.get_untrusted_types(file=model_file)
    except Exception as err:  # zipfile, JSON, schema errors: the file is not a skops dump we can read
        raise ModelError(f"{model_file}: not a readable skops model file ({type(err).__name__})") from err
    try:
        check_skops_file(model_file)
    except (UnsafeModel, KeyError, TypeError, AttributeError, ValueError) as err:
        raise ModelError(f"{model_file}: refusing a malformed model: {first_line(err, 300)}") from err
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelError(f"{model_file}: refusing to load types outside the allow-list: "
                         f"{', '.join(refused)[:300]} (see README, trusted sources)")
    try:
        pipeline = sio.load(model_file, trusted=untrusted)
    except Exception as err:  # a damaged but well-typed file fails while building
        raise ModelError(f"{model_file}: cannot load the model ({type(err).__name__}: "
                         f"{first_line(err, 120)})") from err
    if not isinstance(pipeline, Pipeline) or "features" not in pipeline.named_steps:
        raise ModelError(f"{model_file}: not a detector pipeline ({type(pipeline).__name__})")
    try:
        check_pipeline(pipeline, list(FEATURE_NAMES))
    except UnsafeModel as err:
        raise ModelError(f"{model_file}: refusing a malformed model: {first_line(err, 300)}") from err
    return pipeline


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
