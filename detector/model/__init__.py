"""The trained detector: its pipeline and card, safe loading (allow-list, checks), forest arrays, model URIs.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "CARD_FILE": "detector_model",
    "DEFAULT_MODEL_DIR": "detector_model",
    "DetectorModel": "detector_model",
    "FOREST_CACHE": "detector_model",
    "MODEL_FILE": "detector_model",
    "ModelCard": "detector_model",
    "ModelError": "detector_model",
    "TRUSTED_TYPES": "detector_model",
    "p_machine_of": "detector_model",
    "read_card": "detector_model",
    "score_or_nan": "detector_model",
    "score_or_none": "detector_model",
    "single_openmp_thread": "detector_model",
    "FeatureExtractor": "extractor",
    "BadArrays": "forest_arrays",
    "ForestArrays": "forest_arrays",
    "export": "forest_arrays",
    "load_model": "uri",
})
