"""Machine-generated-text detector: small-LM token statistics + stylometry -> calibrated classifier.

    from detector import Detector
    Detector().score(["a text"])
"""

from __future__ import annotations

__all__ = ["Detector", "Result"]


def __getattr__(name: str):
    # `import detector` stays light: Detector and Result (and with them scikit-learn and the LM) are
    # imported on first use, so a module such as detector.decision.verdict or detector.io.inputs costs no torch.
    if name in __all__:
        from detector.facade import detector as _detector

        return getattr(_detector, name)
    raise AttributeError(name)
