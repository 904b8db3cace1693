"""The held-out protocol: recipes, balanced rows, what each fold holds out, the selection, references,
the capped LM pass and the report that compares settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import synthetic_data

from detector.decision.verdict import MACHINE
from detector.features.engine import FEATURE_NAMES, MACHINE_DIRECTION, ZERO_SHOT_FEATURES
from train.balance import balanced_rows
from train.fit import META_COLUMNS, FeatureData
from train.protocol import BEFORE, Setting, choose, leave_one_out, worst_case, zero_shot_scores
from train.recipes import RECIPES, get_recipe


def test_recipes_and_monotone_directions():
    assert get_recipe("hgb").name == "hgb-all" and get_recipe("logreg-core").features
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("nope")
    for recipe in RECIPES.values():
        assert set(recipe.features) <= set(FEATURE_NAMES)
    cst = get_recipe("hgb-lm-monotone").classifier_estimator().monotonic_cst
    assert cst[list(get_recipe("hgb-lm-monotone").features).index("logp_mean")] == 1


def test_feature_table_keeps_no_text(tmp_path):
    data = synthetic_data()
    data.table["text"] = "a text that must not be written"
    data.save(tmp_path / "f.parquet", lm="x")
    assert "text" not in pq.read_schema(tmp_path / "f.parquet").names
    loaded, metadata = FeatureData.load(tmp_path / "f.parquet")
    assert metadata["lm"] == "x" and list(loaded.table[META_COLUMNS[:3]].columns) == META_COLUMNS[:3]
    assert np.allclose(loaded.features.to_numpy(), data.features.to_numpy())


def test_protocol_holds_out_each_dataset():
    data = synthetic_data()
    rows = leave_one_out(data, "dataset", Setting("logreg-core", references=False), seed=0)
    whole = rows[rows["part"] == "all"]
    assert list(whole["held_out"]) == ["a", "b", "c"]
    assert (whole["auroc"] > 0.8).all()  # the synthetic shift is learnable across sets
    assert set(rows["part"]) == {"all", "tokens 128-255"}  # every text has 200 tokens: one length band
    zero = zero_shot_scores(data.features)
    assert set(zero.columns) == set(ZERO_SHOT_FEATURES)
    assert whole["human_called_machine"].between(0, 1).all() and whole["n_human"].sum() == 120
    assert (whole["tpr_at_1fpr"] >= 0).all()
    before = leave_one_out(data, "dataset", BEFORE)
    summary = worst_case(pd.concat([rows, before]))
    assert len(summary) == 2 and (summary["worst_auroc"] <= summary["mean_auroc"]).all()
    assert (summary["worst_tpr_at_rule"] <= summary["mean_tpr_at_rule"]).all()


def test_the_selection_keeps_the_promise_before_it_counts_detections():
    summary = pd.DataFrame({"setting": ["bold", "careful", "timid"], "mean_tpr_at_rule": [0.9, 0.5, 0.1],
                            "worst_human_called_machine": [0.05, 0.01, 0.0],
                            "keeps_promise": [False, True, True]})
    assert choose(summary) == "careful"
    assert choose(summary.iloc[:1]) == "bold"  # none keeps it: the one that breaks it least


def test_a_previous_rounds_table_trains_and_the_new_one_tests(tmp_path):
    data = synthetic_data()
    old = synthetic_data(seed=1)
    old.features["zlib_ratio"] = np.nan  # a feature the older table lacks
    rows = leave_one_out(data, "dataset", Setting("logreg-core", references=False), train_on=old)
    assert (rows.loc[rows["part"] == "all", "n_human"] == 40).all()  # tested on the new table's sets


def test_balanced_rows_cap_each_cell_and_match_humans_to_machines():
    rng = np.random.default_rng(0)
    n = 3000
    table = pd.DataFrame({"dataset": "d", "domain": "x", "label": (rng.random(n) < 0.8).astype(int),
                          "attack": None})
    table["generator"] = np.where(table["label"] == 1, rng.choice(["g1", "g2"], n, p=[0.9, 0.1]), "human")
    keep = balanced_rows(table, np.full(n, 300), cap=100)
    kept = table[keep]
    assert kept.groupby("generator").size().to_dict() == {"g1": 100, "g2": 100, "human": 200}
    assert (balanced_rows(table, np.full(n, 300), cap=100) == keep).all()  # seeded


def test_cli_recipe_and_novelty_rule_names_match_the_library():
    from detector_cli.train import NOVELTY_RULES, RECIPE_CHOICES
    from train.fit import NOVELTY_RULES as LIBRARY_RULES
    from train.recipes import ALIASES

    assert list(RECIPE_CHOICES) == [*ALIASES, *RECIPES]
    assert NOVELTY_RULES == LIBRARY_RULES


def test_protocol_refuses_an_extra_table_of_other_features(tmp_path, capsys):
    from train.protocol import main

    data = synthetic_data()
    data.save(tmp_path / "main.parquet", feature_version="2", engine="openvino")
    data.save(tmp_path / "extra.parquet", feature_version="1", engine="openvino")
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "main.parquet"), "--extra", str(tmp_path / "extra.parquet")])
    assert stop.value.code == 2
    assert "feature_version 1 vs 2" in capsys.readouterr().err


def test_the_protocol_report_compares_before_rivals_gates_and_ablations(tmp_path):
    from detector_bench.protocol_report import BEFORE_LABEL, OLD_DATASETS, rival_settings, write_protocol

    data = synthetic_data()
    data.table["dataset"] = np.repeat(["gpt2era", "essays", "lastde"], len(data.table) // 3)  # two old sets, a new one
    data.table["generator"] = np.where(data.table["label"] == 1, np.repeat(["gpt2-xl", "chatgpt", "gpt-4o"],
                                                                           len(data.table) // 3), "human")
    data.save(tmp_path / "now.parquet", lm="x", engine="openvino", dtype="bfloat16", max_tokens="512")
    chosen, rivals = Setting("hgb-all", balance=300), ("logreg-core",)
    path = write_protocol(tmp_path, tmp_path / "now.parquet", None, chosen, "test", rivals=rivals)
    text = path.read_text()
    frame = pd.read_csv(tmp_path / "results" / "protocol.csv")
    assert {chosen.name, BEFORE_LABEL} <= set(frame["setting"]) and "lastde" not in OLD_DATASETS
    assert set(frame.loc[frame["setting"] == chosen.name, "held_out_by"]) == {"family", "dataset", "domain"}
    assert any("minus-dynamics" in s for s in frame["setting"])  # a family ablation ran
    for rival in rival_settings(chosen, rivals):  # the rival recipes hold out each family and dataset
        assert set(frame.loc[frame["setting"] == rival.name, "held_out_by"]) == {"family", "dataset"}
    assert not frame.duplicated(["setting", "held_out_by", "held_out", "part"]).any()  # no setting runs twice
    assert "Shipped: **" in text and "## Gates on held-out families: TPR at the rule" in text
    assert "## Targets: " + chosen.name in text and "Formatting cues" in text


def synthetic_references(n: int = 60, seed: int = 2) -> FeatureData:
    """Human-only texts of two reference domains, shifted towards the machine direction (easy prose)."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(rng.normal(0, 1, (n, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    for name in FEATURE_NAMES:
        features[name] += 1.0 * MACHINE_DIRECTION.get(name, 0)
    table = pd.DataFrame({"id": [f"r:{i}" for i in range(n)], "label": 0, "dataset": "references",
                          "domain": np.repeat(["docs", "pages"], n // 2), "generator": "human", "attack": None,
                          "pair_id": None})
    return FeatureData(table, features, np.full(n, 200))


def test_learning_the_references_adds_them_as_humans_and_refuses_machine_rows():
    from train.fit import DataError, with_learned

    data, refs = synthetic_data(), synthetic_references()
    both = with_learned(data, refs)
    assert len(both.table) == len(data.table) + len(refs.table)
    assert (both.table["label"].to_numpy()[len(data.table):] == 0).all()
    with pytest.raises(DataError, match="only human texts"):
        with_learned(data, data)


def test_the_reference_check_holds_out_each_domain_a_setting_learns_from():
    from train.protocol import reference_check

    data, refs = synthetic_data(), synthetic_references()
    plain = reference_check(data, Setting("logreg-core"), refs)
    learning = reference_check(data, Setting("logreg-core", learn_references=True), refs)
    assert list(plain["domain"]) == list(learning["domain"]) == ["docs", "pages"]
    assert (learning["n_human"] == 30).all()
    assert "learns refs" in learning["setting"].iloc[0]
    # Each domain is judged by a model that learned the other domain only.
    from train.protocol import verdicts
    from train.splits import train_val_test

    setting = Setting("logreg-core", learn_references=True)
    split = train_val_test(data.table, val=0.2, test=0.0, seed=0).to_numpy()
    docs = (refs.table["domain"] == "docs").to_numpy()
    model = setting.fit(data, np.ones(len(split), dtype=bool), split, 0, refs.subset(~docs))
    checked = refs.subset(docs)
    said = verdicts(model, checked, model.p_machine_from_features(checked.features))
    assert learning["human_called_machine"].iloc[0] == pytest.approx(np.mean(said == MACHINE))


def test_the_capped_pass_completes_small_cells_first_and_counts_what_is_done():
    from train.extract import capped, interleaved_order

    rows = [("d", "x", g, 1) for g in ("g1", "g2") for _ in range(10)] + [("d", "x", "human", 0)] * 30
    table = pd.DataFrame(rows, columns=["dataset", "domain", "generator", "label"]).assign(attack=None)
    done = table.iloc[:4]  # four g1 texts passed already
    rest = table.iloc[4:].reset_index(drop=True)
    order = capped(interleaved_order(rest), rest, done, cap=5)
    chosen = rest.iloc[order]
    # g1 needs one more to reach 5, g2 five; the humans 5 per machine cell (two cells): 10.
    assert chosen.groupby("generator").size().to_dict() == {"g1": 1, "g2": 5, "human": 10}
    assert len(set(order)) == len(order)


def test_the_in_distribution_rule_table_covers_each_length_and_band():
    from train.protocol import in_distribution_rows
    from train.splits import train_val_test

    data = synthetic_data()
    split = train_val_test(data.table, val=0.2, test=0.0, seed=0).to_numpy()
    model = Setting("logreg-core").fit(data, np.ones(len(split), dtype=bool), split)
    rows = in_distribution_rows(model, data)
    assert list(rows["part"]) == ["16+ tokens", "96+ tokens", "tokens <128", "tokens 128-255", "tokens 256+"]
    tested = (train_val_test(data.table, seed=0) == "test").sum()
    whole = rows.iloc[0]
    assert whole["n_human"] + whole["n_machine"] == tested  # every text has 200 tokens
    assert rows.iloc[3]["n_human"] == whole["n_human"] and rows.iloc[2]["n_human"] == 0
