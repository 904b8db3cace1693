"""The LM's windowing and batching, without loading an LM: a `LanguageModel` shell with only the
attributes windowing reads."""

from __future__ import annotations

import numpy as np
import pytest

from detector.lm.language_model import LanguageModel


def shell(window: int = 512, batch_tokens: int = 0) -> LanguageModel:
    lm = object.__new__(LanguageModel)
    lm.window, lm.batch_tokens = window, batch_tokens
    return lm


@pytest.mark.parametrize("window", [8, 16, 512])
@pytest.mark.parametrize("n_ids", [1, 2, 7, 8, 9, 15, 16, 17, 40, 513, 1500])
def test_every_token_is_scored_once_with_context(window, n_ids):
    """Window (start, stop, first) feeds ids[start:stop] and scores the tokens start+first+1 .. stop-1."""
    windows = shell(window)._windows(n_ids)
    scored = [t for start, stop, first in windows for t in range(start + first + 1, stop)]
    assert scored == list(range(1, n_ids))  # each target once, in order
    for k, (start, stop, first) in enumerate(windows):
        assert 0 <= start < stop <= n_ids and stop - start <= window
        if k:  # later windows see at least a quarter window of earlier text before their first target
            assert first >= window // 4


def test_jobs_are_shortest_first_and_skip_empty_texts():
    lm = shell(window=8)
    encoded = [(list(range(20)), None), ([], None), ([1, 2, 3], None)]
    jobs = lm._jobs(encoded)
    assert {i for i, *_ in jobs} == {0, 2}
    lengths = [stop - start for _, start, stop, _ in jobs]
    assert lengths == sorted(lengths)


def test_batches_are_one_window_each_unless_a_token_budget_is_given():
    jobs = [(i, 0, length, 0) for i, length in enumerate([3, 3, 4, 8, 8])]
    assert [len(b) for b in shell()._batches(jobs)] == [1] * 5
    packed = list(shell(batch_tokens=16)._batches(jobs))
    assert sum(len(b) for b in packed) == 5
    for batch in packed:  # padded to the longest (last: jobs come shortest first) within the budget
        assert len(batch) == 1 or (batch[-1][2] - batch[-1][1]) * len(batch) <= 16
    assert len(packed) < 5


def test_windows_of_a_text_stay_in_order_for_reassembly():
    windows = shell(16)._windows(100)
    assert [w[0] for w in windows] == sorted(w[0] for w in windows)
    assert np.all(np.diff([w[1] for w in windows]) > 0)
