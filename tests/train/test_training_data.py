"""Training data and evaluation: label mapping, shared prompts stripped, grouped splits, metrics, and
the warnings before a training run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from train import eval_metrics
from train.data import DataError, map_labels, strip_shared_prefix
from train.splits import holdouts, train_val_test


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


def test_unbalanced_classes_are_warned_about_up_front():
    from train.run import check_trainable

    table = pd.DataFrame({"id": [str(i) for i in range(460)], "pair_id": None,
                          "label": [0] * 420 + [1] * 40})
    [warning] = check_trainable(table)
    assert "unbalanced (420 human, 40 machine" in warning
    assert check_trainable(table.assign(label=[0, 1] * 230)) == []


def test_a_constant_classifier_and_few_threshold_humans_are_warned_about():
    import numpy as np

    from train.fit import TrainingReport
    from train.run import training_warnings

    class Model:
        thresholds = type("T", (), {"min_tokens": 10, "machine_fpr": 0.01})()

    class Data:
        def subset(self, mask):
            table = pd.DataFrame({"label": [0] * int(mask.sum())})
            return type("D", (), {"table": table, "n_tokens": np.full(int(mask.sum()), 50)})()

    report = TrainingReport(test_table=pd.DataFrame(), split=pd.Series(["val"] * 6 + ["test"] * 6), test=None,
                            test_p=np.full(6, 0.5), val_p=np.full(6, 0.5), seconds=0.0)
    warnings = training_warnings(Model(), Data(), report, [0.5, 0.5, 0.5])
    assert any("predicts a constant" in w for w in warnings)
    assert any("rests on 6 validation human texts" in w for w in warnings)
