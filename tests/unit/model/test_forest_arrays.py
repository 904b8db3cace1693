"""detector.model.forest_arrays: a forest model as plain arrays gives the pipeline's p(machine) to the bit,
refuses arrays that would index outside themselves, and lets a loaded model score without scikit-learn.

The shipped default is gradient boosting (it predicts through its pipeline); the forest recipes remain
among those `detector train` offers, so a forest of 50 trees fitted on random numbers stands in for them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, tiny_detector_folder
from sklearn.ensemble import RandomForestClassifier

from detector.core.errors import BadArrays
from detector.features.engine import FEATURE_NAMES
from detector.model.detector_model import FOREST_CACHE, DetectorModel
from detector.model.forest_arrays import ForestArrays, export
from detector.model.prediction import p_machine_of


@pytest.fixture(scope="module")
def forest_folder(tmp_path_factory):
    forest = RandomForestClassifier(n_estimators=50, min_samples_leaf=5, random_state=0)
    return tiny_detector_folder(tmp_path_factory.mktemp("forest") / "model", forest, n=600)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, forest_folder):
    return DetectorModel.load(forest_folder, cache_dir=tmp_path_factory.mktemp("cache"))


def feature_rows(model: DetectorModel, n: int, seed: int = 0) -> pd.DataFrame:
    """Rows spread around the training data (the scaler's means and scales), some features missing."""
    scale = model.pipeline.named_steps["scale"]
    columns = list(model.pipeline.named_steps["select"].get_feature_names_out())
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(np.nan, index=range(n), columns=list(FEATURE_NAMES))
    table[columns] = scale.mean_ + scale.scale_ * rng.normal(scale=1.5, size=(n, len(columns)))
    holes = rng.random(size=(n, len(columns))) < 0.05
    table[columns] = table[columns].mask(holes)
    table.loc[:2, "logp_mean"] = np.nan  # no LM features: no score
    return table


def test_arrays_give_the_pipelines_p_machine_to_the_bit(shipped):
    table = feature_rows(shipped, 2000)
    forest = export(shipped.classifier, list(FEATURE_NAMES))
    assert forest is not None
    by_pipeline = p_machine_of(shipped.classifier, table)
    assert np.isnan(by_pipeline[:3]).all()
    assert np.array_equal(shipped.p_machine_from_features(table), by_pipeline, equal_nan=True)
    assert 0.05 < np.nanmean(by_pipeline > 0.5) < 0.95  # the rows reach both sides of the forest


def test_other_recipes_export_nothing(shipped):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    steps = shipped.classifier
    calibrated = steps.named_steps["classify"]
    assert export(Pipeline(steps.steps[:-1] + [("classify", LogisticRegression())]), list(FEATURE_NAMES)) is None
    assert export(Pipeline(steps.steps[1:]), list(FEATURE_NAMES)) is None  # no column selector
    isotonic = replace_attribute(calibrated, "method", "isotonic")
    assert export(Pipeline(steps.steps[:-1] + [("classify", isotonic)]), list(FEATURE_NAMES)) is None


def replace_attribute(estimator, name: str, value):
    import copy

    out = copy.copy(estimator)
    setattr(out, name, value)
    return out


def test_saved_arrays_round_trip_and_crafted_ones_are_refused(shipped, tmp_path):
    forest = export(shipped.classifier, list(FEATURE_NAMES))
    path = tmp_path / "forest.npz"
    forest.save(path)
    rows = feature_rows(shipped, 50, seed=1)[list(forest.columns)].to_numpy(dtype=float)
    assert np.array_equal(ForestArrays.load(path).p_machine(rows), forest.p_machine(rows))

    inner = int(np.flatnonzero(forest.left != -1)[5])
    crafted = {
        "child past the end": {"left": _set(forest.left, inner, len(forest.left) + 7)},
        "child before its parent (a cycle)": {"right": _set(forest.right, inner, inner)},
        "negative feature": {"feature": _set(forest.feature, inner, -3)},
        "feature past the columns": {"feature": _set(forest.feature, inner, len(forest.columns))},
        "NaN threshold": {"threshold": _set(forest.threshold, inner, np.nan)},
        "one child": {"right": _set(forest.right, inner, -1)},
        "zero scale": {"scale": _set(forest.scale, 0, 0.0)},
        "root outside": {"roots": _set(forest.roots, 0, -1)},
    }
    for why, change in crafted.items():
        bad = tmp_path / f"{why}.npz"
        replace(forest, **change).save(bad)
        with pytest.raises(BadArrays):
            ForestArrays.load(bad)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=1, columns=np.array([object()], dtype=object))
    with pytest.raises(BadArrays):
        ForestArrays.load(pickled)


def _set(array: np.ndarray, at: int, value) -> np.ndarray:
    out = array.copy()
    out[at] = value
    return out


def test_a_second_load_reads_the_kept_arrays_and_builds_no_pipeline(tmp_path, forest_folder):
    first = DetectorModel.load(forest_folder, cache_dir=tmp_path)
    [kept] = (tmp_path / FOREST_CACHE).glob("*.npz")
    second = DetectorModel.load(forest_folder, cache_dir=tmp_path)
    assert second._pipeline is None and second.forest is not None
    assert second.scoring_engine == first.scoring_engine
    table = feature_rows(first, 300, seed=2)
    assert np.array_equal(second.p_machine_from_features(table), first.p_machine_from_features(table), equal_nan=True)
    # asked for, the pipeline is built from the model file, with the model's current LM settings
    second.set_lm(cache=None)
    assert second.pipeline.named_steps["features"].cache is None

    kept.write_bytes(b"not an npz")  # a damaged cache file: the skops file is read again, the arrays rewritten
    third = DetectorModel.load(forest_folder, cache_dir=tmp_path)
    assert third._pipeline is not None and ForestArrays.load(kept) is not None


def test_scoring_features_with_a_loaded_model_imports_no_scikit_learn(tmp_path, forest_folder):
    DetectorModel.load(forest_folder, cache_dir=tmp_path)  # keeps the arrays
    script = f"""
import sys
from pathlib import Path
import numpy as np, pandas as pd
from detector import Detector
from detector.features.engine import FEATURE_NAMES
from detector.model.detector_model import DetectorModel
model = DetectorModel.load(Path({str(forest_folder)!r}), cache_dir=Path({str(tmp_path)!r}))
row = pd.DataFrame([np.zeros(len(FEATURE_NAMES))], columns=list(FEATURE_NAMES))
p = model.p_machine_from_features(row)
reasons = model.novelty_reasons(row)
assert 0 <= p[0] <= 1, p
print(sorted(m for m in sys.modules if m == "sklearn" or m.startswith(("sklearn.", "scipy.stats", "skops"))))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
