"""The model card record and the model loader: what it refuses, in one line, before anything is built."""

from __future__ import annotations

import json
import shutil

import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from detector.core.errors import ModelError
from detector.features.engine import FEATURE_VERSION
from detector.model.card import ModelCard, read_card
from detector.model.detector_model import CARD_FILE, DEFAULT_MODEL_DIR, MODEL_FILE, DetectorModel
from detector.model.extractor import FeatureExtractor


def test_the_shipped_card_reads_into_the_record_and_writes_back_unchanged(tmp_path):
    raw = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    card = read_card(DEFAULT_MODEL_DIR / CARD_FILE)
    assert card.to_json() == raw and list(card.to_json()) == list(raw)
    assert card.thresholds.machine_fpr == 0.01 and card.feature_version == raw["feature_version"]
    # the shipped card reports held-out sets through the protocol rows; the balance and train.default's
    # in-distribution rule table are keys it keeps as they are
    assert card.held_out_protocol and set(card.extra) <= {"training_balance", "in_distribution_rule"}
    card.write(tmp_path / CARD_FILE)
    assert json.loads((tmp_path / CARD_FILE).read_text()) == raw


def test_an_older_or_newer_card_keeps_what_it_holds():
    old = {"name": "mgt-detector", "classifier": "logreg", "thresholds": {"machine": 0.9, "machine_fpr": 0.01,
           "borderline": 0.7, "borderline_fpr": 0.05}, "feature_version": 1, "from_the_future": [1, 2]}
    card = ModelCard.from_json(old)
    assert card.thresholds.min_tokens == 16 and card.cv_auroc == [] and card.manifest is None
    assert card.extra == {"from_the_future": [1, 2]}
    assert {k: v for k, v in card.to_json().items() if k in old} == {**old, "thresholds": {
        **old["thresholds"], "min_tokens": 16, "by_length": None}}


@pytest.fixture
def model_copy(tmp_path):
    """The shipped model, its card marked with this detector's feature version (the pipeline does not
    depend on it), so each test below meets only the fault it makes."""
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    card = json.loads((folder / CARD_FILE).read_text())
    (folder / CARD_FILE).write_text(json.dumps({**card, "feature_version": FEATURE_VERSION}))
    return folder


@pytest.mark.parametrize("missing", [MODEL_FILE, CARD_FILE])
def test_a_folder_without_its_files_is_refused(model_copy, missing):
    (model_copy / missing).unlink()
    with pytest.raises(ModelError, match="not a detector model"):
        DetectorModel.load(model_copy)


@pytest.mark.parametrize("version", [FEATURE_VERSION + 1, None])
def test_a_model_of_another_or_no_feature_version_is_refused(model_copy, version):
    card = json.loads((model_copy / CARD_FILE).read_text())
    if version is None:
        del card["feature_version"]
    (model_copy / CARD_FILE).write_text(json.dumps({**card, **({} if version is None else {
        "feature_version": version})}))
    with pytest.raises(ModelError, match="retrain"):
        DetectorModel.load(model_copy)


def test_a_card_of_the_wrong_shape_is_refused(model_copy):
    card = json.loads((model_copy / CARD_FILE).read_text())
    (model_copy / CARD_FILE).write_text(json.dumps({**card, "thresholds": {"machine": 0.5}}))
    with pytest.raises(ModelError, match="broken model card"):
        DetectorModel.load(model_copy)


class Foreign(FunctionTransformer):
    """A class the allow-list has never heard of: loading it would import and build foreign code."""


def test_types_outside_the_allow_list_are_refused_before_loading(model_copy):
    sio.dump(Pipeline([("features", FeatureExtractor()), ("f", Foreign())]), model_copy / MODEL_FILE)
    with pytest.raises(ModelError, match="allow-list: .*Foreign"):
        DetectorModel.load(model_copy)


def test_the_shipped_model_loads_whole(model_copy):
    model = DetectorModel.load(model_copy)
    assert isinstance(model.pipeline.named_steps["features"], FeatureExtractor)
    assert model.pipeline.named_steps["features"].engine is None  # saved before `engine` was a parameter
    assert model.scoring_engine.engine is None  # the default engine
    assert [name for name, _ in model.pipeline.steps] == ["features", "select", "impute", "scale", "classify"]
    assert model.thresholds == model.card.thresholds


def test_a_detector_changes_a_copy_of_the_model_it_is_given_never_the_model():
    from detector import Detector

    model = DetectorModel.load()
    settings, extractor = model.lm_params(), model.pipeline.named_steps["features"].get_params()
    detector = Detector(model, engine="torch", dtype="float32")
    assert detector.model.lm_params()["dtype"] == "float32" and detector.model.engine == "torch-float32"
    assert model.lm_params() == settings and model.pipeline.named_steps["features"].get_params() == extractor
    # the fitted steps are shared, not copied
    assert detector.model.pipeline.named_steps["classify"] is model.pipeline.named_steps["classify"]
