"""`detector bench --quick` on the fixture set with the real LM: every output exists with sane numbers;
and the pure parts of the benchmark (attacks, published-score matching) on small inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import MINI

from detector.text.normalize import normalize
from detector_bench.attacks import ATTACKS, attacked
from detector_bench.contenders import OURS
from detector_bench.published import matched_subset
from detector_cli.main import main


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", "--quick", "--data", str(MINI), "--out", str(out)]) == 0
    return out


def read(out, name: str) -> pd.DataFrame:
    return pd.read_csv(out / "results" / f"{name}.csv")


def test_results_md_names_command_machine_and_sections(bench_out):
    text = (bench_out / "RESULTS.md").read_text()
    assert f"detector bench --quick --data {MINI} --out {bench_out}" in text
    assert "Machine:" in text and "cores" in text
    for section in ("## Goals", "## Summary: AUROC, generator held out", "## Published detectors",
                    "## False positives on human texts", "## Attacks", "## Throughput", "## Per set"):
        assert section in text, section


def test_metrics_long_format_with_every_contender(bench_out):
    metrics = read(bench_out, "metrics")
    for column in ("view", "set", "group", "value", "contender", "auroc", "tpr_at_1fpr", "tpr_at_5fpr"):
        assert column in metrics.columns
    assert set(OURS) <= set(metrics["contender"])
    assert {"generator held out", "test split"} <= set(metrics["view"])
    for column in ("auroc", "tpr_at_1fpr", "tpr_at_5fpr"):
        assert metrics[column].notna().any()
    # the fixture's LM-made texts are easy for the LM's own statistics
    zero_shot = metrics[(metrics["contender"] == "fast_detectgpt") & (metrics["view"] == "test split")]
    assert zero_shot["auroc"].max() > 0.8


def test_summary_has_one_row_per_set_and_contender(bench_out):
    summary = read(bench_out, "summary")
    assert not summary.duplicated(["set", "contender"]).any()
    assert set(OURS) | {"detector (shipped)"} <= set(summary["contender"])
    assert summary.loc[summary["contender"] == "fast_detectgpt", "auroc"].max() > 0.8  # as in the metrics


def test_plots_are_pngs(bench_out):
    pngs = sorted((bench_out / "plots").glob("*.png"))
    names = {p.name for p in pngs}
    assert "roc_mini_test_split.png" in names and "summary_auroc.png" in names
    assert any(n.startswith("roc_mini_heldout_") for n in names)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_fpr_attack_and_throughput_tables(bench_out):
    by_domain, by_length = read(bench_out, "fpr_by_domain"), read(bench_out, "fpr_by_length")
    assert by_domain.iloc[0]["n_human"] == by_length.iloc[0]["n_human"] > 0
    assert by_domain["fpr_at_threshold"].between(0, 1).all()
    attacks = read(bench_out, "attacks")
    assert set(attacks["attack"]) == set(ATTACKS)
    assert set(attacks["stage"]) == {"before normalisation", "after normalisation"}
    after = attacks[attacks["stage"] == "after normalisation"].set_index("attack")
    # invisible characters and look-alikes are undone: the normal path sees the unattacked text
    for attack in ("homoglyph", "zero_width", "odd_whitespace"):
        assert after.loc[attack, "auroc"] == pytest.approx(after.loc["none", "auroc"])
        assert after.loc[attack, "reported_altered"] == 1.0
    speed = read(bench_out, "throughput").set_index("contender")
    assert {"LM forward pass (bare)", "detector"} <= set(speed.index)
    assert (speed["tokens_per_s"] > 0).all() and (speed["texts_per_s"] > 0).all()


def test_attacks_change_the_text_and_normalisation_undoes_the_invisible_ones():
    text = "The committee will meet again in the spring to review the proposal once more."
    for attack in ATTACKS:
        out = attacked([text], attack, seed=1)[0]
        if attack == "none":
            assert out == text
            continue
        assert out != text
        if attack != "case_typo":
            assert normalize(out).text == normalize(text).text
    assert attacked([text], "homoglyph", seed=1) == attacked([text], "homoglyph", seed=1)  # deterministic


def test_matched_subset_is_the_intersection_of_covering_detectors():
    y = np.array([1, 1, 0, 0, 1, 0])
    rows = np.array([True, True, True, True, False, False])
    published = {
        "a": np.array([0.9, 0.8, 0.1, np.nan, 0.7, 0.2]),
        "b": np.array([0.9, np.nan, 0.2, 0.3, np.nan, np.nan]),
        "humans only": np.array([np.nan, np.nan, 0.1, 0.2, np.nan, np.nan]),
    }
    subset, covering = matched_subset(rows, y, published)
    assert set(covering) == {"a", "b"}
    assert subset.tolist() == [True, False, True, False, False, False]
    assert matched_subset(rows, y, {"none": np.full(6, np.nan)}) is None
