"""The surprisal-series features (detector/features/dynamics.py) on synthetic token statistics (pure, no LM)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.features.dynamics import DYNAMICS_FEATURES, MIN_SERIES, dynamics_features, ordinal_entropy
from detector.features.engine import FEATURE_NAMES, MACHINE_DIRECTION
from detector.lm.token_stats import TokenStats


def stats_of(logp, entropy=None, var=None, text_len=None) -> TokenStats:
    logp = np.asarray(logp, dtype=np.float32)
    n = len(logp)
    entropy = np.full(n, 2.0, np.float32) if entropy is None else np.asarray(entropy, np.float32)
    var = np.full(n, 4.0, np.float32) if var is None else np.asarray(var, np.float32)
    ends = np.arange(1, n + 1, dtype=np.int32) * 5
    return TokenStats(logp, np.ones(n, np.int32), entropy, var, ends - 5, ends)


def test_ordinal_entropy_is_zero_for_a_monotone_series_and_near_one_for_noise():
    assert ordinal_entropy(np.arange(100.0)) == 0.0
    noise = np.random.default_rng(0).normal(size=5000)
    assert ordinal_entropy(noise) > 0.99
    assert math.isnan(ordinal_entropy(np.arange(5.0)))  # too few patterns to estimate
    # a period-2 zigzag has two patterns at scale 1, and is monotone (one pattern) at scale 2
    zigzag = np.tile([0.0, 1.0], 50)
    assert 0 < ordinal_entropy(zigzag) < 0.5 and ordinal_entropy(zigzag, scale=2) == 0.0


def test_min_k_is_the_mean_of_the_least_likely_tokens():
    logp = -np.arange(1, 21, dtype=float)  # -1 ... -20
    out = dynamics_features(stats_of(logp), "x" * 100)
    assert out["mink10_logp"] == pytest.approx(np.mean([-20, -19]))
    assert out["mink25_logp"] == pytest.approx(np.mean([-20, -19, -18, -17, -16]))


def test_standardised_surprisal_and_zlib_ratio():
    logp = np.full(20, -1.0)
    out = dynamics_features(stats_of(logp, entropy=np.full(20, 3.0), var=np.full(20, 4.0)), "ab" * 50)
    assert out["zsurprisal_mean"] == pytest.approx((-1 + 3) / 2, rel=1e-4)
    assert out["zsurprisal_std"] == pytest.approx(0.0, abs=1e-6)
    # zlib only reads the part of the text the LM scored (up to the last token's end: 100 chars here)
    short = dynamics_features(stats_of(logp), "ab" * 50)["zlib_ratio"]
    assert dynamics_features(stats_of(logp), "ab" * 50 + "zq" * 400)["zlib_ratio"] == short
    assert short > 0


def test_series_features_need_a_series():
    out = dynamics_features(stats_of(np.full(MIN_SERIES - 1, -2.0)), "x" * 50)
    assert math.isnan(out["surprisal_skew"]) and math.isnan(out["ordinal_entropy_s1"])
    assert not math.isnan(out["mink10_logp"])
    empty = dynamics_features(TokenStats.empty(), "")
    assert set(empty) == set(DYNAMICS_FEATURES) and all(math.isnan(v) for v in empty.values())


def test_dynamics_of_a_bursty_series():
    rng = np.random.default_rng(1)
    smooth = -2 + 0.1 * rng.normal(size=200)
    spiky = smooth.copy()
    spiky[::20] -= 8  # rare, very unlikely tokens: right-skewed surprisal with heavy tails
    a, b = (dynamics_features(stats_of(x), "y" * 1000) for x in (smooth, spiky))
    assert b["surprisal_skew"] > a["surprisal_skew"] + 1
    assert b["surprisal_kurtosis"] > a["surprisal_kurtosis"] + 1
    assert b["surprisal_diff_std"] > a["surprisal_diff_std"]
    autocorrelated = np.cumsum(rng.normal(size=200)) * 0.1 - 2
    assert dynamics_features(stats_of(autocorrelated), "y" * 1000)["surprisal_acf1"] > 0.8


def test_every_dynamics_feature_is_a_model_feature_with_a_description():
    assert set(DYNAMICS_FEATURES) <= set(FEATURE_NAMES)
    assert all(desc for desc in DYNAMICS_FEATURES.values())
    assert all(MACHINE_DIRECTION.get(name, 0) in (-1, 0, 1) for name in DYNAMICS_FEATURES)
