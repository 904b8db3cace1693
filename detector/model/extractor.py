"""The scoring engine as a scikit-learn transformer: the first step of every detector pipeline.

Apart from detector.features.engine so that scoring with a loaded model imports no scikit-learn
(detector.model.forest_arrays); training, saving and loading a pipeline import this module.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from detector.core.settings import LMSettings
from detector.features.engine import FEATURE_NAMES, FEATURE_VERSION, ScoringEngine, as_texts

_DEFAULTS = {f.name: f.default for f in fields(LMSettings)}
SETTING_NAMES = tuple(_DEFAULTS)


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Texts -> DataFrame of `FEATURE_NAMES` (see `FEATURES` for what each one means).

    A thin scikit-learn transformer over `ScoringEngine`: it takes a 1-D sequence of strings (its tags
    say so), holds only the engine's settings, and learns nothing from the texts it is fitted on (`fit`
    records the feature names and version it produces; `requires_fit` is False). The classifier
    steps after it are what a training run fits.

    Its parameters are the `LMSettings` fields, declared there once; `__init__` takes them by keyword
    and its signature lists them, as scikit-learn's `get_params` and `clone` read it.
    """

    def __init__(self, **settings: Any):
        unknown = sorted(set(settings) - set(SETTING_NAMES))
        if unknown:
            raise TypeError(f"FeatureExtractor got unknown settings: {', '.join(unknown)}")
        for name, default in _DEFAULTS.items():
            setattr(self, name, settings.get(name, default))

    def __setstate__(self, state: dict) -> None:
        # Models saved before `engine` was a parameter have none: the default engine.
        super().__setstate__({"engine": None, **state})

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True  # a sequence of texts
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False  # nothing is learned from texts
        tags.target_tags.required = False
        return tags

    @property
    def scoring_engine(self) -> ScoringEngine:
        """The scoring engine with this transformer's current settings (cheap: the LM is loaded once
        per configuration and process, on the first text not in the stats cache)."""
        return ScoringEngine(**self.get_params())

    @property
    def engine_name(self) -> str:
        return self.scoring_engine.engine_name

    def fit(self, X, y=None) -> FeatureExtractor:
        as_texts(X)  # refuse what is not texts, as transform would
        self.feature_names_out_ = np.array(FEATURE_NAMES, dtype=object)
        self.feature_version_ = FEATURE_VERSION
        return self

    def transform(self, X) -> pd.DataFrame:
        return self.scoring_engine.features(as_texts(X))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array(FEATURE_NAMES, dtype=object)


# scikit-learn reads an estimator's parameters from its `__init__` signature: the settings, by keyword.
FeatureExtractor.__init__.__signature__ = inspect.Signature([
    inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default) for name, default in _DEFAULTS.items()),
])
