"""Text before it is scored: normalisation against cheap evasion, words and sentence spans, language.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "MAX_READ_CHARS": "normalize",
    "Normalized": "normalize",
    "collapse_whitespace": "normalize",
    "FUNCTION_WORDS": "segments",
    "language_of": "segments",
    "load_language_identifier": "segments",
    "sentence_spans": "segments",
    "words": "segments",
})
