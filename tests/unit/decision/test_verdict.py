"""The verdict rule at its boundaries and its reasons; a novel text is uncertain, not accused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BANDED

from detector.decision.thresholds import Thresholds
from detector.decision.verdict import HUMAN, MACHINE, UNCERTAIN, verdict_rule
from detector.model.prediction import score_or_nan, score_or_none


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


def test_novel_text_is_uncertain_not_accused():
    t = Thresholds(machine=0.8, machine_fpr=0.01, borderline=0.6, borderline_fpr=0.05, min_tokens=16)
    assert verdict_rule(0.9, 100, None, t)[0] == MACHINE
    verdict, reason = verdict_rule(0.9, 100, None, t, "novelty 9.0 > 4.0")
    assert verdict == UNCERTAIN and "unlike the human texts" in reason
    assert verdict_rule(0.1, 100, None, t, "novelty 9.0 > 4.0")[0] == HUMAN
    assert verdict_rule(0.9, 10, None, t)[0] == UNCERTAIN  # too short


def test_a_novel_text_needs_the_stricter_threshold_when_one_is_set():
    t = Thresholds(machine=0.8, machine_fpr=0.01, borderline=0.6, borderline_fpr=0.05, min_tokens=16, novel=0.95)
    assert verdict_rule(0.9, 100, None, t, "novelty 9.0 > 4.0")[0] == UNCERTAIN  # above 0.8, not 0.95
    verdict, reason = verdict_rule(0.97, 100, None, t, "novelty 9.0 > 4.0")
    assert verdict == MACHINE and "0.95" in reason and "least like the references" in reason
    assert verdict_rule(0.9, 100, None, t)[0] == MACHINE  # not novel: the usual threshold
