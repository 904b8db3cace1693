"""Texts -> the feature table: zero-shot scores, stylometry, surprisal dynamics, and the scoring engine.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DYNAMICS_FEATURES": "dynamics",
    "MIN_SERIES": "dynamics",
    "dynamics_features": "dynamics",
    "ordinal_entropy": "dynamics",
    "Analysis": "engine",
    "FEATURES": "engine",
    "FEATURE_NAMES": "engine",
    "FEATURE_VERSION": "engine",
    "LM_FEATURES": "engine",
    "MACHINE_DIRECTION": "engine",
    "ScoringEngine": "engine",
    "ZERO_SHOT_FEATURES": "engine",
    "as_texts": "engine",
    "features_of": "engine",
    "features_table": "engine",
    "lm_features": "engine",
    "STYLOMETRIC_FEATURES": "stylometry",
    "mattr": "stylometry",
    "stylometric_features": "stylometry",
    "GLTR_BUCKETS": "zero_shot",
    "GLTR_COLOURS": "zero_shot",
    "GLTR_LABELS": "zero_shot",
    "ZERO_SHOT": "zero_shot",
    "fast_detectgpt": "zero_shot",
    "gltr_bucket": "zero_shot",
    "gltr_fractions": "zero_shot",
})
