"""Machine-generated-text detector: small-LM token statistics + stylometry -> calibrated classifier.

    from detector import Detector
    Detector().score(["a text"])
"""

from __future__ import annotations

__all__ = ["Detector", "Result"]


def __getattr__(name: str):
    # Lazy: `detector features` and `--help` should not pay for importing torch and transformers.
    if name in __all__:
        from detector import detector as _detector

        return getattr(_detector, name)
    raise AttributeError(name)
