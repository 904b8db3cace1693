"""The fitted classifier steps of a forest model as plain arrays, predicted with numpy alone.

Importing scikit-learn and rebuilding the skops pipeline took about 1.5 s of a 3.7 s `detector score`
(detector_bench/SPEED.md). A prediction of the forest recipes (select columns -> impute -> standardise ->
random forest -> sigmoid calibration, `CalibratedClassifierCV(ensemble=False)`) reads few numbers: the
columns, the imputed values, the scaler's means and scales, each tree's nodes and the two calibration
parameters. `export` takes them from a loaded and checked pipeline; `ForestArrays.p_machine` repeats
scikit-learn's arithmetic step by step (float32 features in the trees, trees summed in order, then the
sigmoid), so it gives the pipeline's p(machine) (tests/unit/model/test_forest_arrays.py). `DetectorModel.load` keeps
them in the user cache under the model file's SHA-256, as an .npz read with allow_pickle=False (data, not
code) and checked again when read. Other recipes (logistic regression, gradient boosting) export nothing
and predict through the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.errors import BadArrays

FORMAT = 1  # bump when the arrays or their meaning change: older cache files are then not read
LEAF = -1  # scikit-learn's TREE_LEAF: a node without children


@dataclass(frozen=True)
class ForestArrays:
    columns: tuple[str, ...]  # the feature columns the selector keeps, in its order
    fill: np.ndarray  # per column, the imputer's value for a missing feature
    mean: np.ndarray  # the scaler's
    scale: np.ndarray
    left: np.ndarray  # per node of all trees one after another: child indices into these arrays, or LEAF
    right: np.ndarray
    feature: np.ndarray  # the column a node splits on
    threshold: np.ndarray  # go left when the feature (as float32) <= threshold
    missing_left: np.ndarray  # where a NaN goes (none after imputation; kept to mirror the trees)
    p_leaf: np.ndarray  # the tree's p(machine) at each node
    roots: np.ndarray  # the first node of each tree
    depth: int  # the deepest tree's depth: the walk's number of steps
    a: float  # sigmoid calibration: p = 1 / (1 + exp(a * forest_p + b))
    b: float

    def p_machine(self, rows: np.ndarray) -> np.ndarray:
        """p(machine) of feature rows (columns in `columns`' order), as the pipeline computes it."""
        x = np.array(rows, dtype=float)  # a copy, imputed and scaled in place as the steps do
        missing = np.isnan(x)
        x[missing] = np.broadcast_to(self.fill, x.shape)[missing]
        x -= self.mean
        x /= self.scale
        x = x.astype(np.float32)  # the trees compare float32 features with float64 thresholds
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        row = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            inner = self.left[node] != LEAF
            if not inner.any():
                break
            value = x[row, np.where(inner, self.feature[node], 0)].astype(float)
            go_left = np.where(np.isnan(value), self.missing_left[node], value <= self.threshold[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        # trees added one after another from zero, as the forest does (cumsum adds in order, unlike sum)
        forest = np.cumsum(self.p_leaf[node], axis=1)[:, -1] / len(self.roots)
        return np.array([1.0 / (1.0 + math.exp(self.a * f + self.b)) for f in forest])

    # ----- disk

    def save(self, path: str | Path) -> None:
        """Write atomically: a reader never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        partial = path.with_name(f".{path.name}.partial")
        with open(partial, "wb") as out:
            np.savez(out, format=FORMAT, **arrays)
        partial.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> ForestArrays:
        """Read and check a saved file; BadArrays (or OSError) where it cannot be used."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != FORMAT:
                    raise BadArrays(f"{path}: format {int(z['format'])}, this detector reads {FORMAT}")
                values: dict[str, Any] = {f.name: z[f.name] for f in fields(cls)}
        except (KeyError, ValueError, EOFError) as err:  # ValueError: not an npz, or pickled objects
            raise BadArrays(f"{path}: unreadable forest arrays ({err})") from err
        values["columns"] = tuple(str(c) for c in values["columns"])
        values["depth"], values["a"], values["b"] = int(values["depth"]), float(values["a"]), float(values["b"])
        arrays = cls(**values)
        arrays.check()
        return arrays

    def check(self) -> None:
        """Raise BadArrays unless every index a prediction follows stays inside its array and every walk
        ends: children come after their parent (scikit-learn numbers nodes that way), so no cycle."""
        n, width = len(self.left), len(self.columns)
        if not all(len(v) == width for v in (self.fill, self.mean, self.scale)):
            raise BadArrays("column vectors of different lengths")
        if not all(len(v) == n for v in (self.right, self.feature, self.threshold, self.missing_left, self.p_leaf)):
            raise BadArrays("node arrays of different lengths")
        if len(self.roots) == 0 or self.roots.min() < 0 or self.roots.max() >= max(n, 1):
            raise BadArrays("tree roots outside the nodes")
        index = np.arange(n)
        leaf = self.left == LEAF
        if not np.array_equal(leaf, self.right == LEAF):
            raise BadArrays("a node with one child")
        for child in (self.left[~leaf], self.right[~leaf]):
            if (child <= index[~leaf]).any() or (child >= n).any():
                raise BadArrays("a child index before its parent or past the end")
        if ((self.feature[~leaf] < 0) | (self.feature[~leaf] >= width)).any():
            raise BadArrays("a split on a feature that does not exist")
        floats = (self.fill, self.mean, self.scale, self.threshold[~leaf], self.p_leaf, np.array([self.a, self.b]))
        if not all(np.isfinite(v).all() for v in floats) or (self.scale == 0).any():
            raise BadArrays("a value that is not finite, or a zero scale")


def export(steps: Any, feature_names: list[str]) -> ForestArrays | None:
    """The arrays of fitted classifier steps (a Pipeline after its feature extractor, already checked by
    detector.model.validation), or None where they are not the forest recipe this module reproduces."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    kinds = [type(step) for _, step in steps.steps]
    if kinds != [ColumnTransformer, SimpleImputer, StandardScaler, CalibratedClassifierCV]:
        return None
    select, impute, scale, calibrated = (step for _, step in steps.steps)
    columns = _kept_columns(select, feature_names)
    if (columns is None or impute.add_indicator or not _is_nan(impute.missing_values)
            or len(impute.statistics_) != len(columns) or not (scale.with_mean and scale.with_std)
            or calibrated.method != "sigmoid" or len(calibrated.calibrated_classifiers_) != 1):
        return None
    [one] = calibrated.calibrated_classifiers_
    forest = one.estimator
    if (type(forest) is not RandomForestClassifier or list(forest.classes_) != [0, 1] or forest.n_outputs_ != 1
            or list(calibrated.classes_) != [0, 1] or len(one.calibrators) != 1):
        return None
    trees = [e.tree_ for e in forest.estimators_]
    sizes = np.array([t.node_count for t in trees])
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def joined(name: str, shift: bool = False) -> np.ndarray:
        parts = [getattr(t, name) for t in trees]
        if shift:  # child indices of each tree -> indices into the joined arrays (leaves stay LEAF)
            parts = [np.where(p == LEAF, LEAF, p + r) for p, r in zip(parts, roots, strict=True)]
        return np.concatenate(parts)

    values = np.concatenate([t.value[:, 0, :] for t in trees])  # fractions per class at each node
    return ForestArrays(
        columns=tuple(columns), fill=np.asarray(impute.statistics_, dtype=float),
        mean=np.asarray(scale.mean_, dtype=float), scale=np.asarray(scale.scale_, dtype=float),
        left=joined("children_left", True), right=joined("children_right", True), feature=joined("feature"),
        threshold=joined("threshold"), missing_left=joined("missing_go_to_left").astype(bool),
        p_leaf=values[:, 1].astype(float), roots=roots, depth=max(t.max_depth for t in trees),
        a=float(one.calibrators[0].a_), b=float(one.calibrators[0].b_))


def _kept_columns(select: Any, feature_names: list[str]) -> list[str] | None:
    """The columns a ColumnTransformer passes through unchanged, in order; None for anything else."""
    from sklearn.preprocessing import FunctionTransformer

    kept = []
    for name, transformer, columns in select.transformers_:
        if name == "remainder" and transformer == "drop":
            continue
        if not (transformer == "passthrough" or (isinstance(transformer, FunctionTransformer)
                                                 and transformer.func is None)):
            return None
        names = [feature_names[c] if isinstance(c, (int, np.integer)) else c for c in columns]
        if not all(isinstance(c, str) and c in feature_names for c in names):
            return None
        kept += names
    return kept


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
