"""What a user calls: `Detector` (texts in, results out), explanations, and LM work started ahead.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "Detector": "detector",
    "Result": "detector",
    "feature_reference": "explain",
    "sentence_scores": "explain",
})
