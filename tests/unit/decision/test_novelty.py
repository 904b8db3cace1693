"""The novelty check: texts unlike the human references, two-sided, and crafted novelty files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector.core.errors import BadNovelty
from detector.decision.novelty import NOVELTY_FEATURES, Novelty


def novelty_frame(values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(values, columns=list(NOVELTY_FEATURES))


def test_novelty_flags_texts_unlike_the_references_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    humans = novelty_frame(rng.normal(0, 1, (300, len(NOVELTY_FEATURES))))
    val = novelty_frame(rng.normal(0, 1, (200, len(NOVELTY_FEATURES))))
    novelty = Novelty.fit(humans, val)
    near, far = rng.normal(0, 1, len(NOVELTY_FEATURES)), np.full(len(NOVELTY_FEATURES), 8.0)
    reasons = novelty.reasons(novelty_frame(np.vstack([near, far])))
    assert reasons[0] is None and "unlike every human reference" in reasons[1]
    assert np.mean(novelty.score(val) > novelty.cut) <= 0.101  # the cut flags ~10% of validation humans
    novelty.save(tmp_path)
    loaded = Novelty.load(tmp_path)
    assert np.allclose(loaded.score(val), novelty.score(val))
    with np.load(tmp_path / "novelty.npz", allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)


def test_a_two_sided_check_spares_novel_texts_that_lie_among_the_training_machine_texts(tmp_path):
    rng = np.random.default_rng(2)
    width = len(NOVELTY_FEATURES)
    humans, val_humans = (novelty_frame(rng.normal(0, 1, (300, width))) for _ in range(2))
    machines, val_machines = (novelty_frame(rng.normal(6, 1, (300, width))) for _ in range(2))
    one_sided = Novelty.fit(humans, val_humans)
    two_sided = Novelty.fit(humans, val_humans, machines=machines, val_machines=val_machines)
    machine_like, unknown = np.full(width, 6.0), np.full(width, -8.0)
    texts = novelty_frame(np.vstack([machine_like, unknown]))
    assert all(one_sided.reasons(texts))  # both are unlike every human
    spared, vetoed = two_sided.reasons(texts)
    assert spared is None and "unlike every human reference" in vetoed
    assert np.mean(two_sided.score(val_machines, two_sided.machine_reference) > two_sided.machine_cut) <= 0.101
    two_sided.save(tmp_path)
    loaded = Novelty.load(tmp_path)
    assert loaded.reasons(texts) == [spared, vetoed] and loaded.machine_cut == two_sided.machine_cut


@pytest.mark.parametrize("craft, why", [
    (lambda z: {**z, "reference": z["reference"][:, :3]}, "reference not rows of"),
    (lambda z: {**z, "scale": np.zeros_like(z["scale"])}, "not finite and non-zero"),
    (lambda z: {**z, "machine_reference": np.full((4, len(NOVELTY_FEATURES)), np.nan), "machine_cut": 1.0},
     "machine_reference not finite"),
    (lambda z: {**z, "features": np.array(["logp_mean", "os.system"] * (len(NOVELTY_FEATURES) // 2)
                                          + ["x"] * (len(NOVELTY_FEATURES) % 2))}, "features outside"),
    (lambda z: {k: v for k, v in z.items() if k != "cut"}, "not a novelty check"),
    (lambda z: {**z, "center": np.array([object()] * len(NOVELTY_FEATURES))}, "not a novelty check"),
])
def test_a_crafted_novelty_file_is_refused_when_loaded_not_when_scoring(tmp_path, craft, why):
    rng = np.random.default_rng(3)
    Novelty.fit(novelty_frame(rng.normal(0, 1, (50, len(NOVELTY_FEATURES)))),
                novelty_frame(rng.normal(0, 1, (50, len(NOVELTY_FEATURES))))).save(tmp_path)
    with np.load(tmp_path / "novelty.npz", allow_pickle=False) as z:
        arrays = craft(dict(z))
    np.savez(tmp_path / "novelty.npz", **arrays)
    with pytest.raises(BadNovelty, match=why):
        Novelty.load(tmp_path)
