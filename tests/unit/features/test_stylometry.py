"""Stylometric features: their values, and no crash on any text."""

from __future__ import annotations

import math

import pytest
from conftest import any_text
from hypothesis import given, settings

from detector.decision.verdict import text_problem
from detector.features.engine import FEATURE_NAMES, features_of
from detector.features.stylometry import STYLOMETRIC_FEATURES, mattr, stylometric_features
from detector.lm.token_stats import TokenStats
from detector.text.segments import sentence_spans


def test_stylometry_values():
    feats = stylometric_features("The cat sat. The cat sat. The cat sat on the mat today.")
    assert feats["sent_len_mean"] == pytest.approx(13 / 3)
    assert feats["repeated_trigram_rate"] > 0.3
    assert 0 < feats["function_word_rate"] < 1
    assert mattr(["a", "b", "a", "b"]) == 0.5


@settings(deadline=None)  # the first example pays for loading py3langid's model and pysbd's rules
@given(any_text)
def test_text_features_never_crash(text):
    feats = stylometric_features(text)
    assert set(feats) == set(STYLOMETRIC_FEATURES)
    assert all(isinstance(v, float) and not math.isinf(v) for v in feats.values())
    all_feats = features_of(TokenStats.empty(), text)
    assert list(all_feats) == FEATURE_NAMES
    text_problem(text)
    for lo, hi in sentence_spans(text):
        assert 0 <= lo < hi <= len(text)
