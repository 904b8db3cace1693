"""The causal language model: packaged weights, tokenizer, engines (OpenVINO, torch), the runtime choice, token
statistics and their on-disk cache.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DEFAULT_DTYPE": "language_model",
    "DEFAULT_ENGINE": "language_model",
    "DEFAULT_LM": "language_model",
    "DEFAULT_MAX_TOKENS": "language_model",
    "FileTokenizer": "language_model",
    "LMUnavailable": "language_model",
    "LanguageModel": "language_model",
    "PACKAGED": "language_model",
    "check_engine": "language_model",
    "default_engine": "language_model",
    "engine_name": "language_model",
    "known_stats_key": "language_model",
    "load_ahead": "language_model",
    "packaged_tokenizer": "language_model",
    "shared_lm": "language_model",
    "stats_key": "language_model",
    "cpu_name": "runtime",
    "StatsCache": "stats_cache",
    "STATS_VERSION": "token_stats",
    "TokenStats": "token_stats",
    "right_pad": "torch_engine",
    "stats_from_logits": "torch_engine",
})
