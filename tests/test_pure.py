"""Pure functions: metrics over token statistics, text helpers, thresholds, splits, data mapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector.decision.thresholds import threshold_for_fpr
from detector.features import zero_shot as metrics
from detector.features.stylometry import mattr, stylometric_features
from detector.lm.token_stats import TokenStats
from detector.lm.torch_engine import stats_from_logits
from detector.text.segments import sentence_spans
from train import eval_metrics
from train.data import DataError, map_labels, strip_shared_prefix
from train.splits import holdouts, train_val_test


def synthetic_stats(logp, rank, entropy=None, var=None) -> TokenStats:
    """Synthetic statistics: allowed here, for pure functions only."""
    n = len(logp)
    entropy = np.full(n, 2.0) if entropy is None else entropy
    var = np.full(n, 1.0) if var is None else var
    return TokenStats(np.asarray(logp, np.float32), np.asarray(rank, np.float32), np.asarray(entropy, np.float32),
                      np.asarray(var, np.float32), np.arange(n, dtype=np.int32), np.arange(1, n + 1, dtype=np.int32))


def test_stats_from_logits_matches_definitions():
    torch = pytest.importorskip("torch")
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    targets = torch.tensor([1, 2])
    stats = stats_from_logits(logits.clone(), targets)
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    assert torch.allclose(stats["logp"], logp[[0, 1], [1, 2]])
    assert stats["rank"].tolist() == [2, 1]
    assert torch.allclose(stats["entropy"], -(p * logp).sum(-1))
    assert torch.allclose(stats["var_logp"], (p * logp**2).sum(-1) - (p * logp).sum(-1) ** 2, atol=1e-6)


def test_token_stats_bytes_round_trip():
    stats = synthetic_stats([-1.0, -2.5, -0.1], [1, 40, 2])
    back = TokenStats.from_bytes(stats.to_bytes())
    for field in ("logp", "rank", "entropy", "var_logp", "start", "end"):
        assert np.array_equal(getattr(back, field), getattr(stats, field))


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


def test_sentence_spans_cover_sentences():
    text = "First one. Second one?  Third!\nFourth line"
    pieces = [text[a:b] for a, b in sentence_spans(text)]
    assert pieces == ["First one.", "Second one?", "Third!", "Fourth line"]


def test_stylometry_values():
    feats = stylometric_features("The cat sat. The cat sat. The cat sat on the mat today.")
    assert feats["sent_len_mean"] == pytest.approx(13 / 3)
    assert feats["repeated_trigram_rate"] > 0.3
    assert 0 < feats["function_word_rate"] < 1
    assert mattr(["a", "b", "a", "b"]) == 0.5


def test_threshold_for_fpr_lets_through_at_most_that_share():
    humans = np.linspace(0, 1, 1000)
    t = threshold_for_fpr(humans, 0.01)
    assert np.mean(humans > t) <= 0.01
    assert np.mean(humans > t) > 0.005


def test_tpr_at_fpr_and_auroc():
    y = np.array([0] * 100 + [1] * 100)
    scores = np.concatenate([np.linspace(0, 1, 100), np.linspace(0.5, 1.5, 100)])
    assert eval_metrics.auroc(y, scores) > 0.8
    tpr = eval_metrics.tpr_at_fpr(y, scores, 0.05)
    assert 0.3 < tpr < 0.7


def test_metric_table_pairs_generators_with_their_humans():
    table = pd.DataFrame({"label": [0, 0, 1, 1], "dataset": ["d"] * 4, "domain": ["x"] * 4,
                          "generator": ["human", "human", "g1", "g2"]})
    out = eval_metrics.metric_table(table, [0.1, 0.2, 0.9, 0.8], threshold=0.5)
    row = out[(out["group"] == "generator") & (out["value"] == "g1")].iloc[0]
    assert row["n"] == 3 and row["auroc"] == 1.0


def test_split_is_grouped_and_stable():
    table = pd.DataFrame({"id": [str(i) for i in range(200)], "pair_id": [f"p{i // 2}" for i in range(200)]})
    split = train_val_test(table)
    assert split.groupby(table["pair_id"]).nunique().max() == 1
    assert (split == train_val_test(table.iloc[::-1]).sort_index()).all()
    assert set(split) == {"train", "val", "test"}


def test_holdout_by_generator_never_trains_on_it():
    table = pd.DataFrame({"id": [str(i) for i in range(12)], "pair_id": None, "label": [0] * 6 + [1] * 6,
                          "dataset": "d", "domain": "x", "generator": ["human"] * 6 + ["a"] * 3 + ["b"] * 3})
    split = pd.Series(["train", "test"] * 6)
    for value, train_mask, test_mask in holdouts(table, "generator", split):
        assert not (table.loc[train_mask, "generator"] == value).any()
        assert (table.loc[test_mask, "generator"] == value).any()
        assert not (train_mask & test_mask).any()


def test_map_labels():
    assert map_labels(pd.Series(["human", "AI", 1, "0"])).tolist() == [0, 1, 1, 0]
    assert map_labels(pd.Series(["gpt"]), {"gpt": 1}).tolist() == [1]
    with pytest.raises(DataError, match="cannot map label"):
        map_labels(pd.Series(["maybe"]))


def test_strip_shared_prefix_removes_the_prompt_from_both_sides():
    table = pd.DataFrame({
        "id": ["h", "m"], "label": [0, 1], "pair_id": ["p", "p"],
        "text": ["The storm hit the coast at dawn and people ran.", "The storm hit the coast at noon, said officials."],
    })
    out = strip_shared_prefix(table)
    assert out["text"].tolist() == ["dawn and people ran.", "noon, said officials."]


def test_first_line_of_an_error():
    from detector.core.errors import first_line

    assert first_line(ValueError("bad thing\nmore detail")) == "bad thing"
    assert first_line(ValueError("x" * 300), 10) == "x" * 10
    assert first_line(OSError()) == "OSError"  # an empty message names the error instead of raising
