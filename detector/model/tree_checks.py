"""Checks on trees before scikit-learn walks them in C: node arrays, children, features, thresholds.

A crafted child index past the end, a negative or too large feature index, or children that form a
cycle would make `predict_proba` read memory it does not own or loop forever.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.preprocessing import LabelEncoder
from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier
from sklearn.tree._tree import TREE_LEAF, Tree

from detector.core.errors import UnsafeModel
from detector.model.array_checks import CLASSES, check_classes, checked_array, fitted_width


def check_tree(tree, where: str, n_features: int) -> None:
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
    value = checked_array(tree.value, f"{where} value", (n, 1, len(CLASSES)))
    if (value < 0).any():
        raise UnsafeModel(f"{where}: negative class weights in a node")


def _check_decision_tree(tree: DecisionTreeClassifier, where: str, n_features: int) -> None:
    if type(tree) not in (DecisionTreeClassifier, ExtraTreeClassifier):
        raise UnsafeModel(f"{where}: {type(tree).__name__}, not a decision tree classifier")
    fitted_width(tree, where, n_features)
    check_classes(tree, where)
    if getattr(tree, "n_outputs_", None) != 1:
        raise UnsafeModel(f"{where}: n_outputs_ is {getattr(tree, 'n_outputs_', None)!r}, expected 1")
    check_tree(getattr(tree, "tree_", None), f"{where} tree_", n_features)


def check_forest(forest, where: str, width: int | None) -> int:
    n = fitted_width(forest, where, width)
    check_classes(forest, where)
    trees = getattr(forest, "estimators_", None)
    if not isinstance(trees, list) or not trees:
        raise UnsafeModel(f"{where}: no fitted trees (estimators_)")
    for i, tree in enumerate(trees):
        _check_decision_tree(tree, f"{where} tree {i}", n)
    return n


def _check_predictor(predictor, where: str, n_features: int) -> None:
    """A gradient-boosting TreePredictor: the same promises as `check_tree`, on its record array."""
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


def check_boosting(model: HistGradientBoostingClassifier, where: str, width: int | None) -> int:
    n = fitted_width(model, where, width)
    check_classes(model, where)
    per_iteration = getattr(model, "n_trees_per_iteration_", None)
    if per_iteration != 1:
        raise UnsafeModel(f"{where}: n_trees_per_iteration_ is {per_iteration!r}, expected 1 (two classes)")
    checked_array(getattr(model, "_baseline_prediction", None), f"{where} baseline", (1, 1))
    encoder = getattr(model, "_label_encoder", None)  # scikit-learn >= 1.6 keeps one; predict maps through it
    if encoder is not None:
        if not isinstance(encoder, LabelEncoder):
            raise UnsafeModel(f"{where}: _label_encoder is a {type(encoder).__name__}, not a LabelEncoder")
        check_classes(encoder, f"{where} label encoder")
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
