"""The real default LM: loading, token statistics, windows, batching and the cache."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEED

from detector.core.errors import LMUnavailable
from detector.features.engine import FEATURE_NAMES
from detector.lm.engines import stats_key
from detector.lm.language_model import LanguageModel
from detector.lm.stats_cache import StatsCache
from detector.model.extractor import FeatureExtractor


@pytest.fixture(scope="module")
def lm():
    return LanguageModel()


def test_seed_perplexity_is_plausible(lm):
    stats = lm.token_stats([SEED.read_text(encoding="utf-8")])[0]
    perplexity = float(np.exp(-stats.logp.mean()))
    assert 6 < perplexity < 14  # ~9.5 for SmolLM2-135M on this article
    assert len(stats) == len(lm.tokenize(SEED.read_text(encoding="utf-8"))[0])
    assert (stats.rank >= 1).all() and (stats.entropy >= 0).all() and (stats.var_logp >= 0).all()


def test_windows_score_every_token_once_with_context(lm):
    text = SEED.read_text(encoding="utf-8")
    full = lm.token_stats([text])[0]
    small = LanguageModel(window=96, max_tokens=lm.max_tokens)
    windowed = small.token_stats([text])[0]
    assert len(windowed) == len(full)
    assert np.array_equal(windowed.start, full.start)
    # the first window is identical; later tokens see less context, so only roughly equal
    assert np.allclose(windowed.logp[:90], full.logp[:90], atol=1e-3)
    assert abs(windowed.logp.mean() - full.logp.mean()) < 0.25


def test_batching_does_not_change_statistics(lm):
    texts = ["A short one.", "A somewhat longer sentence that needs more tokens than the first.", "A short one."]
    together = lm.token_stats(texts)
    alone = [lm.token_stats([t])[0] for t in texts[:2]]
    assert np.array_equal(together[1].logp, alone[1].logp)  # one pass per window: no batch effects
    assert np.allclose(together[0].logp, together[2].logp)


def test_cache_returns_what_the_lm_computed(tmp_path):
    cache_file = tmp_path / "c.sqlite"
    extractor = FeatureExtractor(cache=str(cache_file))
    texts = ["The committee met on Tuesday to discuss the budget.", "Rain is expected later this week."]
    first = extractor.transform(texts)
    assert StatsCache(cache_file).count() == 2
    second = extractor.transform(texts)
    assert list(first.columns) == FEATURE_NAMES
    assert np.allclose(first.to_numpy(), second.to_numpy(), equal_nan=True)


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(LMUnavailable, match="cannot load language model"):
        LanguageModel(str(tmp_path / "no-such-model"))


def test_any_transformers_path_loads_like_the_hub(lm):
    # The dequantized default LM in the user cache is an ordinary transformers folder: loading it by
    # path goes through the same code path as a hub id (from_pretrained), which needs no network here.
    from detector.lm.packaged import cache_folder

    folder = cache_folder("smollm2-135m-instruct")
    by_path = LanguageModel(str(folder))
    text = "The council approved the new library budget on Monday evening."
    assert np.allclose(by_path.token_stats([text])[0].logp, lm.token_stats([text])[0].logp, atol=1e-5)
    assert by_path.revision.startswith(str(folder))


def test_bfloat16_engine_stays_close_to_float32(lm):
    text = SEED.read_text(encoding="utf-8")
    reference = LanguageModel(dtype="float32").token_stats([text])[0]
    fast = lm.token_stats([text])[0]  # the default engine: bfloat16
    assert lm.dtype == "bfloat16" and len(fast) == len(reference)
    assert abs(fast.logp.mean() - reference.logp.mean()) < 0.03
    assert abs(fast.entropy.mean() - reference.entropy.mean()) < 0.03
    assert np.median(np.abs(fast.logp - reference.logp)) < 0.05
    # another precision never shares cache entries
    assert lm.cache_key != stats_key(lm.revision, "float32", lm.max_tokens, lm.window)


def test_fully_cached_texts_need_no_lm(tmp_path, monkeypatch):
    import detector.features.engine as features

    extractor = FeatureExtractor(cache=str(tmp_path / "c.sqlite"))
    texts = ["The committee met on Tuesday to discuss the budget."]
    first = extractor.transform(texts)

    def no_lm(*args, **kwargs):
        raise AssertionError("the LM was loaded although every text is cached")

    monkeypatch.setattr(features, "shared_lm", no_lm)
    assert np.allclose(extractor.transform(texts).to_numpy(), first.to_numpy(), equal_nan=True)
