"""The lowest layer: settings declared once, the typed errors, interrupt points, typed JSON fields.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "InvalidField": "errors",
    "UserError": "errors",
    "first_line": "errors",
    "printable": "errors",
    "POINTS": "interrupts",
    "interrupt_point": "interrupts",
    "Fields": "json_fields",
    "is_number": "json_fields",
    "CACHE_DIR": "settings",
    "CACHE_DIR_ENV": "settings",
    "CARD_FILE": "settings",
    "DEFAULT_DTYPE": "settings",
    "DEFAULT_ENGINE": "settings",
    "DEFAULT_LM": "settings",
    "DEFAULT_MAX_TOKENS": "settings",
    "DEFAULT_MODEL_DIR": "settings",
    "DEFAULT_TRACKING_URI": "settings",
    "DTYPES": "settings",
    "ENGINES": "settings",
    "INTERRUPT_AT_ENV": "settings",
    "STATS_CACHE_ENV": "settings",
    "TOKEN_ENV": "settings",
    "TRACKING_URI_ENV": "settings",
    "WINDOW": "settings",
    "cpu_threads": "settings",
})
