"""The trained detector: its pipeline and card, safe loading (allow-list, checks), forest arrays, model URIs.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "ModelCard": "card",
    "read_card": "card",
    "CARD_FILE": "detector_model",
    "DEFAULT_MODEL_DIR": "detector_model",
    "DetectorModel": "detector_model",
    "FOREST_CACHE": "detector_model",
    "MODEL_FILE": "detector_model",
    "FeatureExtractor": "extractor",
    "ForestArrays": "forest_arrays",
    "export": "forest_arrays",
    "p_machine_of": "prediction",
    "score_or_nan": "prediction",
    "score_or_none": "prediction",
    "single_openmp_thread": "prediction",
    "SAVED_NAMES": "skops_file",
    "TRUSTED_TYPES": "skops_file",
    "load_pipeline": "skops_file",
    "load_model": "uri",
})
