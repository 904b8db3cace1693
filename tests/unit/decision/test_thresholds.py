"""Verdict thresholds: set for a false-positive rate overall, per length band and in every group."""

from __future__ import annotations

import numpy as np
from conftest import BANDED

from detector.decision.thresholds import Thresholds, threshold_for_fpr


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


def test_worst_group_threshold_holds_the_rate_in_every_group():
    rng = np.random.default_rng(0)
    easy = rng.normal(0.6, 0.1, 400)  # a domain the LM finds easy: humans score high
    hard = rng.normal(0.2, 0.1, 400)
    p, groups = np.r_[easy, hard], np.r_[["easy"] * 400, ["hard"] * 400]
    pooled = Thresholds.from_human_scores(p, 0.01)
    worst = Thresholds.worst_group(p, groups, 0.01)
    assert np.mean(easy > pooled.machine) > 0.01  # the pooled rule overshoots in the easy domain
    for scores in (easy, hard):
        assert np.mean(scores > worst.machine) <= 0.01
    assert worst.borderline <= worst.machine
    lengths = np.r_[np.full(400, 300), np.full(400, 40)]  # the easy domain here has long texts
    banded = Thresholds.worst_group_by_length(p, groups, lengths, 0.01, min_humans=100)
    assert banded.for_length(40) == (banded.machine, banded.borderline)
    assert banded.for_length(300)[0] <= banded.machine  # long texts: their own humans set it
    assert np.mean(easy > banded.for_length(300)[0]) <= 0.01


def test_threshold_for_fpr_lets_through_at_most_that_share():
    humans = np.linspace(0, 1, 1000)
    t = threshold_for_fpr(humans, 0.01)
    assert np.mean(humans > t) <= 0.01
    assert np.mean(humans > t) > 0.005
