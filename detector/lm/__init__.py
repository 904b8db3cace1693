"""The causal language model: packaged weights, tokenizer, engines (OpenVINO, torch), the runtime choice, token
statistics and their on-disk cache.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "check_engine": "engines",
    "default_engine": "engines",
    "engine_name": "engines",
    "known_stats_key": "engines",
    "stats_key": "engines",
    "DEFAULT_DTYPE": "language_model",
    "DEFAULT_LM": "language_model",
    "DEFAULT_MAX_TOKENS": "language_model",
    "LanguageModel": "language_model",
    "PACKAGED": "packaged",
    "packaged_tokenizer": "packaged",
    "preparing": "packaged",
    "cpu_name": "runtime",
    "load_ahead": "shared",
    "shared_lm": "shared",
    "StatsCache": "stats_cache",
    "STATS_VERSION": "token_stats",
    "TokenStats": "token_stats",
    "FileTokenizer": "tokenizer",
    "right_pad": "torch_engine",
    "stats_from_logits": "torch_engine",
})
