"""Zero-shot scores over token statistics: each is its feature column times its sign, oriented
higher = machine."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import synthetic_stats

from detector.features import zero_shot as metrics
from detector.lm.token_stats import TokenStats


def test_each_zero_shot_score_is_its_feature_column_times_its_sign():
    from detector.features.engine import ZERO_SHOT_FEATURES, lm_features

    stats = synthetic_stats([-0.5, -3.0, -1.2, -2.2] * 5, [1, 40, 3, 900] * 5, entropy=np.linspace(0.5, 3, 20))
    features = lm_features(stats, "x" * 200)
    for name, (score, _) in metrics.ZERO_SHOT.items():
        column, sign = ZERO_SHOT_FEATURES[name]
        assert sign in (1, -1) and features[column] == pytest.approx(sign * score(stats)), name


def test_zero_shot_scores_are_oriented_higher_is_machine():
    machine_like = synthetic_stats([-0.5] * 20, [1] * 20, entropy=np.full(20, 1.5))
    human_like = synthetic_stats([-4.0] * 20, [200] * 20, entropy=np.full(20, 1.5))
    for name, (score, _) in metrics.ZERO_SHOT.items():
        if name == "entropy":
            continue  # entropy does not depend on the observed tokens
        assert score(machine_like) > score(human_like), name
    assert metrics.entropy(synthetic_stats([-1.0], [1], entropy=np.array([0.5]))) > metrics.entropy(
        synthetic_stats([-1.0], [1], entropy=np.array([3.0])))


def test_fast_detectgpt_is_zero_when_text_is_typical():
    # log p equal to its expectation (-entropy) everywhere: no discrepancy
    stats = synthetic_stats([-2.0] * 10, [3] * 10, entropy=np.full(10, 2.0))
    assert metrics.fast_detectgpt(stats) == pytest.approx(0.0, abs=1e-3)


def test_gltr_fractions_sum_to_one():
    stats = synthetic_stats([-1.0] * 4, [1, 50, 500, 5000])
    assert metrics.gltr_fractions(stats).tolist() == [0.25, 0.25, 0.25, 0.25]
    assert np.isnan(metrics.gltr_fractions(TokenStats.empty())).all()
