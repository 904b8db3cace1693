"""The scoring engine as a scikit-learn transformer: the first step of every detector pipeline.

Apart from detector.features so that scoring with a loaded model imports no scikit-learn
(detector.forest_arrays); training, saving and loading a pipeline import this module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from detector import features
from detector.features import FEATURE_NAMES, FEATURE_VERSION, ScoringEngine, as_texts
from detector.lm import DEFAULT_DTYPE, DEFAULT_LM, DEFAULT_MAX_TOKENS


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Texts -> DataFrame of `FEATURE_NAMES` (see `FEATURES` for what each one means).

    A thin scikit-learn transformer over `ScoringEngine`: it takes a 1-D sequence of strings (its tags
    say so), holds only the engine's settings, and learns nothing from the texts it is fitted on (`fit`
    records the feature names and version it produces; `requires_fit` is False). The classifier
    steps after it are what a training run fits.

    Parameters
    ----------
    lm : LM name: the packaged default, another packaged name, or any transformers model id or path.
    device, dtype : where and in what precision to run the LM.
    max_tokens : only the first `max_tokens` tokens of a text are scored.
    cache : "default" (the user cache directory), a path to a cache file, or None to keep nothing.
    chunk_size : texts per LM call; the cache is written after each, so an interrupted run resumes.
    progress : show a progress bar over texts.
    engine : "torch" or "openvino" (see detector.lm.ENGINES); None: this install's default engine.
    """

    def __init__(
        self,
        lm: str = DEFAULT_LM,
        device: str = "cpu",
        dtype: str = DEFAULT_DTYPE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        cache: str | None = "default",
        chunk_size: int = 64,
        progress: bool = False,
        engine: str | None = None,
    ):
        self.lm = lm
        self.device = device
        self.dtype = dtype
        self.max_tokens = max_tokens
        self.cache = cache
        self.chunk_size = chunk_size
        self.progress = progress
        self.engine = engine

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


# Models saved before this class moved here name it `detector.features.FeatureExtractor`, where skops
# looks it up: that name stays this class (set from here, so detector.features imports no scikit-learn).
features.FeatureExtractor = FeatureExtractor
