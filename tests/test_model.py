"""Thresholds, the verdict rule at its boundaries, the model card record and the model loader's
refusals: all pure (no LM)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from detector.core.errors import ModelError
from detector.decision.thresholds import Thresholds
from detector.decision.verdict import HUMAN, MACHINE, UNCERTAIN, verdict_rule
from detector.features.engine import FEATURE_VERSION
from detector.model.card import ModelCard, read_card
from detector.model.detector_model import CARD_FILE, DEFAULT_MODEL_DIR, MODEL_FILE, DetectorModel
from detector.model.extractor import FeatureExtractor
from detector.model.prediction import score_or_nan, score_or_none

BANDED = Thresholds(machine=0.9, machine_fpr=0.01, borderline=0.7, borderline_fpr=0.05, min_tokens=16,
                    by_length=[[64, 0.9, 0.7], [128, 0.8, 0.6], [256, 0.75, 0.55]])

# ----------------------------------------------------------------------------------------- thresholds


def test_for_length_takes_the_band_a_length_starts_in():
    assert BANDED.for_length(16) == (0.9, 0.7)
    assert BANDED.for_length(127) == (0.9, 0.7)
    assert BANDED.for_length(128) == (0.8, 0.6)  # a band starts at its own edge
    assert BANDED.for_length(255) == (0.8, 0.6)
    assert BANDED.for_length(10_000) == (0.75, 0.55)
    flat = Thresholds(0.9, 0.01, 0.7, 0.05)
    assert flat.for_length(10_000) == (0.9, 0.7)


def test_worst_group_holds_the_rate_in_each_group_and_not_only_in_the_pool():
    rng = np.random.default_rng(0)
    easy, hard = rng.uniform(0, 0.5, 900), rng.uniform(0.3, 1.0, 100)
    p, groups = np.r_[easy, hard], np.array(["easy"] * 900 + ["hard"] * 100)
    pooled = Thresholds.from_human_scores(p, fpr=0.01)
    worst = Thresholds.worst_group(p, groups, fpr=0.01)
    assert np.mean(hard > pooled.machine) > 0.01  # the pooled rule lets the hard group pay
    for g in ("easy", "hard"):
        assert np.mean(p[groups == g] > worst.machine) <= 0.01
        assert np.mean(p[groups == g] > worst.borderline) <= 0.05
    assert worst.machine == Thresholds.from_human_scores(hard, fpr=0.01).machine


def test_a_length_band_with_too_few_humans_keeps_the_band_below():
    rng = np.random.default_rng(1)
    p = np.r_[rng.uniform(0, 1, 400), rng.uniform(0, 0.2, 300), rng.uniform(0, 0.1, 5)]
    n_tokens = np.r_[np.full(400, 30), np.full(300, 100), np.full(5, 300)]
    t = Thresholds.worst_group_by_length(p, np.zeros(len(p)), n_tokens, edges=(64, 256), min_humans=100)
    short, middle, long = t.for_length(30), t.for_length(100), t.for_length(300)
    assert short == (t.machine, t.borderline) and short[0] > middle[0]  # longer humans score lower here
    assert long == middle  # 5 humans cannot set a threshold of their own
    assert np.mean(p[n_tokens == 100] > middle[0]) <= 0.01


# ----------------------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(("p", "n_tokens", "verdict"), [
    (0.9, 100, UNCERTAIN),  # equal to the machine threshold: the rule is `p > threshold`
    (0.9000001, 100, MACHINE),
    (0.7, 100, HUMAN),  # equal to the borderline threshold
    (0.7000001, 100, UNCERTAIN),
    (0.85, 128, MACHINE),  # the same score is `machine` where longer texts have a lower threshold
    (0.85, 127, UNCERTAIN),
    (0.99, 15, UNCERTAIN),  # one token under min_tokens
    (0.99, 16, MACHINE),
    (None, 100, UNCERTAIN),
    (float("nan"), 100, UNCERTAIN),
])
def test_verdict_boundaries(p, n_tokens, verdict):
    assert verdict_rule(p, n_tokens, None, BANDED)[0] == verdict


def test_verdict_reasons_say_why():
    assert "too short" in verdict_rule(0.99, 15, None, BANDED)[1]
    assert "no score" in verdict_rule(None, 100, None, BANDED)[1]
    assert "borderline" in verdict_rule(0.8, 100, None, BANDED)[1]
    assert verdict_rule(0.99, 100, "not English (mostly non-Latin script)", BANDED) == (
        UNCERTAIN, "not English (mostly non-Latin script)")
    verdict, reason = verdict_rule(0.99, 100, None, BANDED, "novelty 9.0 > 4.0")
    assert verdict == UNCERTAIN and "novelty 9.0" in reason


def test_p_machine_between_records_and_arrays():
    assert score_or_none(float("nan")) is None and score_or_none(np.float64(0.25)) == 0.25
    assert np.isnan(score_or_nan(None)) and score_or_nan(0.25) == 0.25
    assert type(score_or_none(np.float32(0.5))) is float  # JSON-serialisable


# ----------------------------------------------------------------------------------------- model card


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


# ----------------------------------------------------------------------------------------- loading


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
