"""The checks every fitted step's arrays go through: shapes, finiteness, widths and classes."""

from __future__ import annotations

import numpy as np

from detector.core.errors import UnsafeModel

CLASSES = (0, 1)  # human, machine: p(machine) is column 1


def checked_array(value, where: str, shape: tuple[int, ...] | None = None, *, finite: bool = True) -> np.ndarray:
    """`value` as a numeric array of `shape` (None: any), finite unless said otherwise."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise UnsafeModel(f"{where}: not a numeric array ({type(value).__name__})")
    if shape is not None and value.shape != shape:
        raise UnsafeModel(f"{where}: shape {value.shape}, expected {shape}")
    if finite and value.dtype.kind == "f" and not np.isfinite(value).all():
        raise UnsafeModel(f"{where}: holds NaN or infinite values")
    return value


def checked_scalar(value, where: str) -> float:
    """A finite number (a 0-d array or a Python/numpy scalar)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number | np.ndarray):
        raise UnsafeModel(f"{where}: not a number ({type(value).__name__})")
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "biuf" or not np.isfinite(array).all():
        raise UnsafeModel(f"{where}: not a finite number")
    return float(array.reshape(()))


def fitted_width(estimator, where: str, width: int | None) -> int:
    """The estimator's input width, which must match what the previous step produces."""
    n = getattr(estimator, "n_features_in_", None)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise UnsafeModel(f"{where}: n_features_in_ is {n!r}")
    if width is not None and n != width:
        raise UnsafeModel(f"{where}: expects {n} features, the previous step gives {width}")
    return int(n)


def check_classes(estimator, where: str, attribute: str = "classes_") -> None:
    classes = getattr(estimator, attribute, None)
    # Integer labels, or their float codes in a forest's trees (fitted on the encoded labels).
    if not isinstance(classes, np.ndarray) or classes.dtype.kind not in "iuf" or classes.tolist() != list(CLASSES):
        raise UnsafeModel(f"{where}: {attribute} is {classes!r}, expected [0, 1]")
