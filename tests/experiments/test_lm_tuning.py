"""experiments/lm_tuning.py: the differentiable criterion it tunes is the detector's own Fast-DetectGPT."""

import numpy as np
import torch

from detector.features.zero_shot import fast_detectgpt
from detector.lm.token_stats import TokenStats
from detector.lm.torch_engine import stats_from_logits
from experiments.lm_tuning import batches, discrepancy_from_logits


def test_the_tuned_criterion_equals_the_detectors_fast_detectgpt_on_each_padded_row():
    generator = torch.Generator().manual_seed(0)
    seqs = [[5, 9, 2, 7, 1, 3], [4, 8, 6]]
    (input_ids, mask), = batches(seqs, size=2, pad=0)
    logits = torch.randn(2, input_ids.shape[1], 11, generator=generator) * 3
    got = discrepancy_from_logits(logits, input_ids, mask)
    for row, seq in enumerate(seqs):
        n = len(seq) - 1  # positions that predict a real token; padding never counts
        stats = stats_from_logits(logits[row, :n].clone(), input_ids[row, 1 : n + 1])
        arrays = {k: v.numpy().astype(np.float64) for k, v in stats.items()}
        expected = fast_detectgpt(TokenStats(**arrays, start=np.zeros(n, int), end=np.zeros(n, int)))
        assert abs(float(got[row]) - expected) < 1e-4


def test_batches_pad_on_the_right_and_mask_only_the_tokens():
    (input_ids, mask), = batches([[1, 2, 3], [4]], size=2, pad=0)
    assert input_ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
