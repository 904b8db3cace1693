"""Checks on a loaded model's fitted arrays, before its first prediction.

skops rebuilds only allow-listed types, but it cannot vouch for the numbers inside them. scikit-learn's
tree code walks node arrays in C without bounds checks: a crafted file whose child index points past the
end, whose feature index is negative or too large, or whose children form a cycle makes `predict_proba`
read memory it does not own (a segfault, or a verdict computed from garbage) or loop forever. So every
step of a detector pipeline is checked here against what prediction will read: the trees' node arrays,
the scaler's and imputer's vectors, the calibration's parameters and the classes. Anything this module
does not know how to check is refused rather than trusted.
"""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from detector.core.errors import UnsafeModel
from detector.model.array_checks import check_classes, checked_array, checked_scalar, fitted_width
from detector.model.tree_checks import check_boosting, check_forest


def check_pipeline(pipeline: Pipeline, feature_names: list[str]) -> None:
    """Raise UnsafeModel unless every step after the feature extractor holds well-formed fitted arrays.

    feature_names : the columns the feature extractor produces, in order (the first step's input).
    """
    width = None  # columns entering the current step; the column selector fixes it
    for name, step in pipeline.steps[1:]:
        where = f"step {name!r} ({type(step).__name__})"
        check = _STEP_CHECKS.get(type(step))
        if check is None:
            raise UnsafeModel(f"{where}: not a step type this detector can check")
        width = check(step, where, width, feature_names)
    if not isinstance(pipeline.steps[-1][1], (CalibratedClassifierCV, *_CLASSIFIER_CHECKS)):
        raise UnsafeModel(f"last step ({type(pipeline.steps[-1][1]).__name__}) is not a classifier")


# ------------------------------------------------------------------------------------------ helpers


# ------------------------------------------------------------------------------------- pre-processing


def _check_selector(step: ColumnTransformer, where: str, width, feature_names) -> int:
    """Only passthrough/drop column lists of known feature names: the output is those columns."""
    out = 0
    known = set(feature_names)
    transformers = getattr(step, "transformers_", None)
    if not isinstance(transformers, list):
        raise UnsafeModel(f"{where}: not fitted (no transformers_)")
    for entry in transformers:
        if not isinstance(entry, tuple) or len(entry) != 3:
            raise UnsafeModel(f"{where}: malformed transformers_ entry")
        name, transformer, columns = entry
        # A fitted "passthrough" is an identity FunctionTransformer (no function of its own).
        if isinstance(transformer, FunctionTransformer) and transformer.func is None:
            transformer = "passthrough"
        if not isinstance(transformer, str) or transformer not in ("passthrough", "drop"):
            raise UnsafeModel(f"{where}: transformer {name!r} is {type(transformer).__name__}, "
                              "not passthrough or drop")
        if name == "remainder" and transformer == "drop":
            continue  # the fitted remainder entry lists the dropped column indices
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise UnsafeModel(f"{where}: transformer {name!r} columns are not a list of feature names")
        unknown = sorted(set(columns) - known)
        if unknown:
            raise UnsafeModel(f"{where}: selects unknown feature(s) {', '.join(unknown)[:200]}")
        if transformer == "passthrough":
            out += len(columns)
    if out == 0:
        raise UnsafeModel(f"{where}: selects no columns")
    return out


def _check_imputer(step: SimpleImputer, where: str, width, feature_names) -> int:
    n = fitted_width(step, where, width)
    # A NaN statistic drops its column at transform time, changing the width the next step sees.
    checked_array(getattr(step, "statistics_", None), f"{where} statistics_", (n,))
    if getattr(step, "add_indicator", False):
        raise UnsafeModel(f"{where}: missing-value indicators are not part of a detector model")
    return n


def _check_scaler(step: StandardScaler, where: str, width, feature_names) -> int:
    n = fitted_width(step, where, width)
    if step.with_mean:
        checked_array(getattr(step, "mean_", None), f"{where} mean_", (n,))
    if step.with_std:
        scale = checked_array(getattr(step, "scale_", None), f"{where} scale_", (n,))
        if (scale <= 0).any():
            raise UnsafeModel(f"{where}: scale_ has values <= 0")
    return n


# ------------------------------------------------------------------------------------------ classifiers


def _check_logistic(model: LogisticRegression, where: str, width: int | None) -> int:
    n = fitted_width(model, where, width)
    check_classes(model, where)
    checked_array(getattr(model, "coef_", None), f"{where} coef_", (1, n))
    checked_array(getattr(model, "intercept_", None), f"{where} intercept_", (1,))
    return n


_CLASSIFIER_CHECKS = {
    RandomForestClassifier: check_forest,
    ExtraTreesClassifier: check_forest,
    HistGradientBoostingClassifier: check_boosting,
    LogisticRegression: _check_logistic,
}


def _check_calibrator(calibrator, where: str) -> None:
    if type(calibrator) is _SigmoidCalibration:
        checked_scalar(getattr(calibrator, "a_", None), f"{where} a_")
        checked_scalar(getattr(calibrator, "b_", None), f"{where} b_")
    elif type(calibrator) is IsotonicRegression:
        x = checked_array(getattr(calibrator, "X_thresholds_", None), f"{where} X_thresholds_")
        checked_array(getattr(calibrator, "y_thresholds_", None), f"{where} y_thresholds_", x.shape)
        if x.ndim != 1 or not len(x):
            raise UnsafeModel(f"{where}: X_thresholds_ is not a non-empty vector")
    else:
        raise UnsafeModel(f"{where}: calibrator {type(calibrator).__name__} is not one this detector can check")


def _check_calibrated(step: CalibratedClassifierCV, where: str, width, feature_names) -> int:
    check_classes(step, where)
    fitted = getattr(step, "calibrated_classifiers_", None)
    if not isinstance(fitted, list) or not fitted:
        raise UnsafeModel(f"{where}: no calibrated classifiers")
    n = width
    for i, calibrated in enumerate(fitted):
        inner = f"{where} fold {i}"
        check_classes(calibrated, inner, "classes")
        check = _CLASSIFIER_CHECKS.get(type(calibrated.estimator))
        if check is None:
            raise UnsafeModel(f"{inner}: classifier {type(calibrated.estimator).__name__} is not one this "
                              "detector can check")
        n = check(calibrated.estimator, f"{inner} {type(calibrated.estimator).__name__}", n)
        calibrators = getattr(calibrated, "calibrators", None)
        if not isinstance(calibrators, list) or len(calibrators) != 1:  # binary: one calibrator
            raise UnsafeModel(f"{inner}: expected one calibrator")
        _check_calibrator(calibrators[0], f"{inner} calibrator")
    return n


_STEP_CHECKS = {
    ColumnTransformer: _check_selector,
    SimpleImputer: _check_imputer,
    StandardScaler: _check_scaler,
    CalibratedClassifierCV: _check_calibrated,
    **{kind: (lambda step, where, width, _names, check=check: check(step, where, width))
       for kind, check in _CLASSIFIER_CHECKS.items()},
}
