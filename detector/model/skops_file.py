"""The model file (skops): what it may name, what it may unpack to, and loading it safely.

Loading checks every type named in the file against an exact allow-list before anything is built, so a
file can only rebuild those types: it cannot name a function (exec, os.system) to call. Files saved before
the library's modules moved name some types by their old paths: `SAVED_NAMES` maps each such path, and only
those, to today's before the check. Then the fitted arrays those types hold are checked
(detector.model.validation), so a crafted tree cannot crash the process.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector.core.errors import ModelError, UnsafeModel, first_line
from detector.features.engine import FEATURE_NAMES

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# The exact types, beyond primitives, containers and numpy, that the shipped model and models trained by
# train/fit.py (logreg, hgb, rf) contain, as `skops.io.get_untrusted_types` names them. Exact names,
# no prefixes: a prefix like "builtins." would let a file call builtins.exec while loading. Anything
# else is refused before a single object is built.
TRUSTED_TYPES = frozenset({
    "detector.model.extractor.FeatureExtractor",
    "numpy.dtype",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._forest.ExtraTreesClassifier",  # a forest recipe may hold (model_check validates it)
    "sklearn.ensemble._forest.RandomForestClassifier",  # rf
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",  # hgb
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hgb
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",  # logreg
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",  # hgb: its classes (checked to be 0 and 1)
    "sklearn.tree._classes.DecisionTreeClassifier",  # rf
    "sklearn.tree._classes.ExtraTreeClassifier",  # extra trees
    "sklearn.tree._tree.Tree",  # rf
})


# The module paths that files saved by earlier versions give the detector's own types, and where those
# types live now; nothing else is renamed. Each is a whole module path, never a prefix.
SAVED_NAMES = {
    "detector.extractor": "detector.model.extractor",  # saved before detector/ had subpackages
    "detector.features": "detector.model.extractor",  # saved before the extractor had a module of its own
}


def skops_io():
    """`skops.io`, imported without its list of every scikit-learn estimator.

    skops builds that default allow-list at import by importing every scikit-learn module (seconds at
    each start-up); our own exact list above names every estimator our models hold, so skops' list is
    not needed: while skops is first imported it sees no estimators, which only makes it trust less.
    """
    import importlib
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    every_estimator = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        return importlib.import_module("skops.io")
    finally:
        sklearn.utils.all_estimators = every_estimator


def load_pipeline(model_file: Path) -> Pipeline:
    """skops load that builds only allow-listed types (checked before anything is constructed), then
    the fitted arrays a prediction reads (`detector.model.validation`), before anything is predicted."""
    from sklearn.pipeline import Pipeline

    from detector.model.validation import check_pipeline

    sio = skops_io()
    try:
        data = current_names(Path(model_file).read_bytes())
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as err:  # zipfile, JSON, schema errors: the file is not a skops dump we can read
        raise ModelError(f"{model_file}: not a readable skops model file ({type(err).__name__})") from err
    try:
        check_skops_file(io.BytesIO(data))
    except (UnsafeModel, KeyError, TypeError, AttributeError, ValueError) as err:
        raise ModelError(f"{model_file}: refusing a malformed model: {first_line(err, 300)}") from err
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelError(f"{model_file}: refusing to load types outside the allow-list: "
                         f"{', '.join(refused)[:300]} (see README, trusted sources)")
    try:
        pipeline = sio.loads(data, trusted=untrusted)
    except Exception as err:  # a damaged but well-typed file fails while building
        raise ModelError(f"{model_file}: cannot load the model ({type(err).__name__}: "
                         f"{first_line(err, 120)})") from err
    if not isinstance(pipeline, Pipeline) or "features" not in pipeline.named_steps:
        raise ModelError(f"{model_file}: not a detector pipeline ({type(pipeline).__name__})")
    try:
        check_pipeline(pipeline, list(FEATURE_NAMES))
    except UnsafeModel as err:
        raise ModelError(f"{model_file}: refusing a malformed model: {first_line(err, 300)}") from err
    return pipeline


def current_names(data: bytes) -> bytes:
    """A skops file's bytes with each saved module path of `SAVED_NAMES` replaced by today's (in the
    schema only; the arrays are copied as they are). A file without such paths is returned unchanged."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        renamed = _renamed(schema)
        if renamed == schema:
            return data
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as copy:
            for info in archive.infolist():
                body = json.dumps(renamed).encode() if info.filename == "schema.json" else archive.read(info)
                copy.writestr(info, body)
    return out.getvalue()


def _renamed(node):
    """The schema with every `__module__` named in SAVED_NAMES replaced (a new object; the input is kept)."""
    if isinstance(node, dict):
        return {k: (SAVED_NAMES.get(v, v) if k == "__module__" and isinstance(v, str) else _renamed(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v) for v in node]
    return node


MAX_UNPACKED_BYTES = 2 * 2**30  # the shipped forest unpacks to a few MB


def check_skops_file(model_file: str | Path | io.BytesIO) -> None:
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
