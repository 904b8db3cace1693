"""Work over many items: the one batch-scoring loop and the calibrate workflow on top of it.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "resume_filter": "batch",
    "score_items": "batch",
    "score_values": "batch",
})
