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

import json
import zipfile
from pathlib import Path

import numpy as np
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, LabelEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier
from sklearn.tree._tree import TREE_LEAF, Tree

CLASSES = (0, 1)  # human, machine: p(machine) is column 1
MAX_UNPACKED_BYTES = 2 * 2**30  # the shipped forest unpacks to a few MB


class UnsafeModel(ValueError):
    """A fitted array that prediction would read is malformed; the message says which, in one line."""


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


def check_skops_file(model_file: str | Path) -> None:
    """Raise UnsafeModel if the skops file itself, before skops builds anything, declares more than it
    stores: arrays that unpack past MAX_UNPACKED_BYTES (a zip bomb of tree nodes), or a tree whose
    `node_count` differs from the nodes it holds (scikit-learn would clamp it, but it is not a file
    scikit-learn wrote)."""
    with zipfile.ZipFile(model_file) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_UNPACKED_BYTES:
            raise UnsafeModel(f"unpacks to {unpacked / 2**30:.1f} GiB, over the {MAX_UNPACKED_BYTES // 2**30} GiB "
                              "a detector model may hold")
        schema = json.loads(archive.read("schema.json"))
        for tree in _schema_objects(schema, "TreeNode"):
            state = tree.get("content", {}).get("content", {})
            declared = json.loads(state["node_count"]["content"])
            with archive.open(state["nodes"]["file"]) as npy:
                major, _ = np.lib.format.read_magic(npy)
                header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape = header(npy)[0]
            if declared != shape[0]:
                raise UnsafeModel(f"a tree declares {declared} nodes and stores {shape[0]}")


def _schema_objects(schema, loader: str):
    """Every object of a skops schema built by `loader` (e.g. "TreeNode")."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("__loader__") == loader:
                yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# ------------------------------------------------------------------------------------------ helpers


def _array(value, where: str, shape: tuple[int, ...] | None = None, *, finite: bool = True) -> np.ndarray:
    """`value` as a numeric array of `shape` (None: any), finite unless said otherwise."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise UnsafeModel(f"{where}: not a numeric array ({type(value).__name__})")
    if shape is not None and value.shape != shape:
        raise UnsafeModel(f"{where}: shape {value.shape}, expected {shape}")
    if finite and value.dtype.kind == "f" and not np.isfinite(value).all():
        raise UnsafeModel(f"{where}: holds NaN or infinite values")
    return value


def _scalar(value, where: str) -> float:
    """A finite number (a 0-d array or a Python/numpy scalar)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number | np.ndarray):
        raise UnsafeModel(f"{where}: not a number ({type(value).__name__})")
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "biuf" or not np.isfinite(array).all():
        raise UnsafeModel(f"{where}: not a finite number")
    return float(array.reshape(()))


def _n_features(estimator, where: str, width: int | None) -> int:
    """The estimator's input width, which must match what the previous step produces."""
    n = getattr(estimator, "n_features_in_", None)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise UnsafeModel(f"{where}: n_features_in_ is {n!r}")
    if width is not None and n != width:
        raise UnsafeModel(f"{where}: expects {n} features, the previous step gives {width}")
    return int(n)


def _classes(estimator, where: str, attribute: str = "classes_") -> None:
    classes = getattr(estimator, attribute, None)
    # Integer labels, or their float codes in a forest's trees (fitted on the encoded labels).
    if not isinstance(classes, np.ndarray) or classes.dtype.kind not in "iuf" or classes.tolist() != list(CLASSES):
        raise UnsafeModel(f"{where}: {attribute} is {classes!r}, expected [0, 1]")


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
    n = _n_features(step, where, width)
    # A NaN statistic drops its column at transform time, changing the width the next step sees.
    _array(getattr(step, "statistics_", None), f"{where} statistics_", (n,))
    if getattr(step, "add_indicator", False):
        raise UnsafeModel(f"{where}: missing-value indicators are not part of a detector model")
    return n


def _check_scaler(step: StandardScaler, where: str, width, feature_names) -> int:
    n = _n_features(step, where, width)
    if step.with_mean:
        _array(getattr(step, "mean_", None), f"{where} mean_", (n,))
    if step.with_std:
        scale = _array(getattr(step, "scale_", None), f"{where} scale_", (n,))
        if (scale <= 0).any():
            raise UnsafeModel(f"{where}: scale_ has values <= 0")
    return n


# ------------------------------------------------------------------------------------------ classifiers


def _check_tree(tree, where: str, n_features: int) -> None:
    """A scikit-learn Tree: every path from the root ends at a leaf inside the arrays.

    Read `node_count` and `capacity` first: the array properties are views of `node_count` nodes over
    a buffer of `capacity`, so reading them when node_count > capacity would itself read past the end.
    """
    if not isinstance(tree, Tree):
        raise UnsafeModel(f"{where}: tree_ is {type(tree).__name__}, not a Tree")
    n = tree.node_count
    if n < 1 or n != tree.capacity:
        raise UnsafeModel(f"{where}: node_count {n} does not match its {tree.capacity} stored nodes")
    if tree.n_features != n_features or tree.n_outputs != 1 or list(tree.n_classes) != [len(CLASSES)]:
        raise UnsafeModel(f"{where}: built for {tree.n_features} features, {tree.n_outputs} output(s), "
                          f"classes {list(tree.n_classes)}; the model has {n_features} features, 1 output, 2 classes")
    left, right = tree.children_left, tree.children_right
    leaf = left == TREE_LEAF
    if not np.array_equal(leaf, right == TREE_LEAF):
        raise UnsafeModel(f"{where}: a node has one child marked as a leaf and the other not")
    # Nodes are stored depth-first: a child's index is above its parent's, so there are no cycles.
    index = np.arange(n)
    split = ~leaf
    for children in (left, right):
        if ((children[split] <= index[split]) | (children[split] >= n)).any():
            raise UnsafeModel(f"{where}: a child index lies outside the tree or before its parent")
    feature = tree.feature[split]
    if ((feature < 0) | (feature >= n_features)).any():
        raise UnsafeModel(f"{where}: a split uses a feature index outside [0, {n_features})")
    if not np.isfinite(tree.threshold[split]).all():
        raise UnsafeModel(f"{where}: a split threshold is NaN or infinite")
    value = _array(tree.value, f"{where} value", (n, 1, len(CLASSES)))
    if (value < 0).any():
        raise UnsafeModel(f"{where}: negative class weights in a node")


def _check_decision_tree(tree: DecisionTreeClassifier, where: str, n_features: int) -> None:
    if type(tree) not in (DecisionTreeClassifier, ExtraTreeClassifier):
        raise UnsafeModel(f"{where}: {type(tree).__name__}, not a decision tree classifier")
    _n_features(tree, where, n_features)
    _classes(tree, where)
    if getattr(tree, "n_outputs_", None) != 1:
        raise UnsafeModel(f"{where}: n_outputs_ is {getattr(tree, 'n_outputs_', None)!r}, expected 1")
    _check_tree(getattr(tree, "tree_", None), f"{where} tree_", n_features)


def _check_forest(forest, where: str, width: int | None) -> int:
    n = _n_features(forest, where, width)
    _classes(forest, where)
    trees = getattr(forest, "estimators_", None)
    if not isinstance(trees, list) or not trees:
        raise UnsafeModel(f"{where}: no fitted trees (estimators_)")
    for i, tree in enumerate(trees):
        _check_decision_tree(tree, f"{where} tree {i}", n)
    return n


def _check_predictor(predictor, where: str, n_features: int) -> None:
    """A gradient-boosting TreePredictor: the same promises as `_check_tree`, on its record array."""
    nodes = getattr(predictor, "nodes", None)
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1 or not len(nodes):
        raise UnsafeModel(f"{where}: nodes is not a non-empty array of tree-predictor records")
    n = len(nodes)
    leaf = nodes["is_leaf"].astype(bool)
    split = ~leaf
    index = np.arange(n)
    for side in ("left", "right"):
        children = nodes[side][split].astype(np.int64)
        if ((children <= index[split]) | (children >= n)).any():
            raise UnsafeModel(f"{where}: a child index lies outside the tree or before its parent")
    feature = nodes["feature_idx"][split]
    if ((feature < 0) | (feature >= n_features)).any():
        raise UnsafeModel(f"{where}: a split uses a feature index outside [0, {n_features})")
    # Detector features are all numeric: a categorical split would index bitsets this model never fitted.
    if nodes["is_categorical"][split].any():
        raise UnsafeModel(f"{where}: categorical splits are not part of a detector model")
    # +inf is legitimate (scikit-learn's split that sends only missing values right); NaN never is.
    if np.isnan(nodes["num_threshold"][split]).any():
        raise UnsafeModel(f"{where}: a split threshold is NaN")
    if not np.isfinite(nodes["value"][leaf]).all():
        raise UnsafeModel(f"{where}: a leaf value is NaN or infinite")


def _check_boosting(model: HistGradientBoostingClassifier, where: str, width: int | None) -> int:
    n = _n_features(model, where, width)
    _classes(model, where)
    per_iteration = getattr(model, "n_trees_per_iteration_", None)
    if per_iteration != 1:
        raise UnsafeModel(f"{where}: n_trees_per_iteration_ is {per_iteration!r}, expected 1 (two classes)")
    _array(getattr(model, "_baseline_prediction", None), f"{where} baseline", (1, 1))
    encoder = getattr(model, "_label_encoder", None)  # scikit-learn >= 1.6 keeps one; predict maps through it
    if encoder is not None:
        if not isinstance(encoder, LabelEncoder):
            raise UnsafeModel(f"{where}: _label_encoder is a {type(encoder).__name__}, not a LabelEncoder")
        _classes(encoder, f"{where} label encoder")
    categorical = getattr(getattr(model, "_bin_mapper", None), "is_categorical_", None)
    if getattr(model, "is_categorical_", None) is not None or (categorical is not None and np.any(categorical)):
        raise UnsafeModel(f"{where}: categorical features are not part of a detector model")
    if categorical is not None and np.shape(categorical) != (n,):
        raise UnsafeModel(f"{where}: bin mapper describes {np.shape(categorical)} features, not {n}")
    iterations = getattr(model, "_predictors", None)
    if not isinstance(iterations, list) or not iterations:
        raise UnsafeModel(f"{where}: no fitted trees (_predictors)")
    for i, predictors in enumerate(iterations):
        if not isinstance(predictors, list) or len(predictors) != 1:
            raise UnsafeModel(f"{where}: iteration {i} does not hold exactly one tree")
        _check_predictor(predictors[0], f"{where} tree {i}", n)
    return n


def _check_logistic(model: LogisticRegression, where: str, width: int | None) -> int:
    n = _n_features(model, where, width)
    _classes(model, where)
    _array(getattr(model, "coef_", None), f"{where} coef_", (1, n))
    _array(getattr(model, "intercept_", None), f"{where} intercept_", (1,))
    return n


_CLASSIFIER_CHECKS = {
    RandomForestClassifier: _check_forest,
    ExtraTreesClassifier: _check_forest,
    HistGradientBoostingClassifier: _check_boosting,
    LogisticRegression: _check_logistic,
}


def _check_calibrator(calibrator, where: str) -> None:
    if type(calibrator) is _SigmoidCalibration:
        _scalar(getattr(calibrator, "a_", None), f"{where} a_")
        _scalar(getattr(calibrator, "b_", None), f"{where} b_")
    elif type(calibrator) is IsotonicRegression:
        x = _array(getattr(calibrator, "X_thresholds_", None), f"{where} X_thresholds_")
        _array(getattr(calibrator, "y_thresholds_", None), f"{where} y_thresholds_", x.shape)
        if x.ndim != 1 or not len(x):
            raise UnsafeModel(f"{where}: X_thresholds_ is not a non-empty vector")
    else:
        raise UnsafeModel(f"{where}: calibrator {type(calibrator).__name__} is not one this detector can check")


def _check_calibrated(step: CalibratedClassifierCV, where: str, width, feature_names) -> int:
    _classes(step, where)
    fitted = getattr(step, "calibrated_classifiers_", None)
    if not isinstance(fitted, list) or not fitted:
        raise UnsafeModel(f"{where}: no calibrated classifiers")
    n = width
    for i, calibrated in enumerate(fitted):
        inner = f"{where} fold {i}"
        _classes(calibrated, inner, "classes")
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
