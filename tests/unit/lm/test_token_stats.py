"""Token statistics: their definitions from logits and their bytes round trip (pure, no LM)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import synthetic_stats

from detector.lm.token_stats import TokenStats
from detector.lm.torch_engine import stats_from_logits


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
