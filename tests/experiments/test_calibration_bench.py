"""experiments/calibration.py: both profile versions compared on each held-out set."""

from __future__ import annotations

import numpy as np
from conftest import synthetic_data

from train.protocol import Setting


def test_the_calibration_bench_compares_both_profiles_on_each_held_out_set(tmp_path):
    from experiments import calibration as bench

    data = synthetic_data(n=1200)
    data.table["dataset"] = np.repeat(["gpt2era", "essays", "lastde"], len(data.table) // 3)
    data.table["generator"] = np.where(data.table["label"] == 1, np.repeat(["gpt2-xl", "chatgpt", "gpt-4o"],
                                                                           len(data.table) // 3), "human")
    models = bench.held_out_models(data, Setting("hgb-all", balance=300, novelty_rule="two-sided"), by=("dataset",))
    assert [m[1] for m in models] == ["essays", "gpt2era", "lastde"]
    assert all(model.machine_rows is not None for _, _, model, _ in models)  # what the new profile refits against
    table = bench.calibration_table(models)
    assert (table["n_calibration"] == 100).all()  # half of each set's 200 humans
    for variant in ("old", "new", "new_machines"):
        assert table[f"{variant}_tpr"].notna().all() and table[f"{variant}_judged_human_called_machine"].notna().all()
    assert table["new_expected_tpr"].notna().all() and table["old_expected_tpr"].isna().all()
    curve = bench.tpr_by_size(models, draws=1)
    assert set(curve["n_calibration"]) == {25, 50, 100}  # 200 and more need more humans than a set has
    path = bench.write_report(table, curve, tmp_path / "fig.png", tmp_path, "synthetic", "test")
    assert "## Targets (new profile, no --machines)" in path.read_text()
