"""The feature transformer as a scikit-learn estimator, and the scoring engine under it."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils import estimator_checks as checks

from detector.core.settings import DEFAULT_DTYPE, DEFAULT_LM, DEFAULT_MAX_TOKENS
from detector.features.engine import FEATURE_NAMES, FEATURE_VERSION, ScoringEngine, as_texts
from detector.lm.engines import known_stats_key
from detector.lm.stats_cache import StatsCache
from detector.lm.token_stats import TokenStats
from detector.model.extractor import FeatureExtractor
from detector.text.normalize import normalize

TEXTS = ["The committee met on Tuesday and agreed on nothing at all, as usual.",
         "Rain fell all afternoon. We stayed in and mended the nets by the stove.",
         "She wrote three letters, posted two, and kept the third in her coat for a year.",
         ""]


# scikit-learn's API checks that feed the estimator numeric arrays (they cannot generate texts): a
# transformer of texts refuses numbers, so these fail by design.
EXPECTED_FAILED_CHECKS = {
    name: "feeds a numeric array; this transformer takes a sequence of texts and refuses numbers"
    for name in ("check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
                 "check_estimators_fit_returns_self", "check_readonly_memmap_input",
                 "check_positive_only_tag_during_fit")
}


def synthetic_stats(text: str) -> TokenStats:
    """One 'token' per word, with made-up but well-formed statistics."""
    spans = np.array([m.span() for m in re.finditer(r"\S+", text)], dtype=np.int32).reshape(-1, 2)
    n = len(spans)
    ramp = np.linspace(-4.0, -1.0, n, dtype=np.float32)
    return TokenStats(ramp, np.arange(1, n + 1, dtype=np.float32), np.full(n, 2.0, np.float32),
                      np.full(n, 1.5, np.float32), spans[:, 0].copy(), spans[:, 1].copy())


@pytest.fixture
def cached(tmp_path) -> str:
    """A stats cache holding TEXTS' statistics under the default LM's key; its path."""
    path = tmp_path / "stats.sqlite"
    cache = StatsCache(path)
    key = known_stats_key(DEFAULT_LM, DEFAULT_DTYPE, DEFAULT_MAX_TOKENS)
    cache.put_many(key, {normalize(t).text: synthetic_stats(normalize(t).text) for t in TEXTS})
    cache.close()
    return str(path)


def test_check_estimator_passes_where_its_checks_apply():
    extractor = FeatureExtractor(cache=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = checks.check_estimator(extractor, on_fail=None)
    # scikit-learn runs its data checks only on 2-D numeric input, which a text transformer is not.
    assert [(r["check_name"], r["status"]) for r in results] == [("check_estimator_cloneable", "passed")]
    assert any("two_d_array=False" in str(w.message) for w in caught)
    failed = {}
    # Its API checks, and the legacy ones that need no data, run here one by one on the transformer.
    no_data = (checks.check_get_params_invariance, checks.check_set_params,
               checks.check_parameters_default_constructible)
    for check in [*checks._yield_api_checks(extractor), *no_data]:
        try:
            check(type(extractor).__name__, clone(extractor))
        except Exception as err:  # each check raises its own assertion or the estimator's refusal
            failed[checks._check_name(check)] = err
    assert set(failed) == set(EXPECTED_FAILED_CHECKS), failed
    assert all(("expected texts" in str(e) or "1-dimensional" in str(e) or "raised TypeError" in str(e))
               for e in failed.values()), failed


def test_tags_declare_a_sequence_of_strings():
    tags = FeatureExtractor().__sklearn_tags__()
    assert tags.input_tags.string and tags.input_tags.one_d_array and not tags.input_tags.two_d_array
    assert not tags.requires_fit


def test_init_stores_params_and_fit_learns_only_names(cached):
    extractor = FeatureExtractor(cache=cached, max_tokens=256)
    assert extractor.get_params()["max_tokens"] == 256
    assert not [k for k in vars(extractor) if k.endswith("_")]
    assert extractor.fit(TEXTS) is extractor
    assert list(extractor.feature_names_out_) == FEATURE_NAMES == list(extractor.get_feature_names_out())
    assert extractor.feature_version_ == FEATURE_VERSION
    assert extractor.get_params()["max_tokens"] == 256  # fit changed no parameter
    assert clone(extractor).get_params() == extractor.get_params()


def test_transform_is_row_wise(cached):
    extractor = FeatureExtractor(cache=cached).fit(TEXTS)
    table = extractor.transform(TEXTS)
    assert list(table.columns) == FEATURE_NAMES and len(table) == len(TEXTS)
    from detector.features.dynamics import DYNAMICS_FEATURES

    # every feature of a text with tokens, but series features too long for these short texts (NaN,
    # imputed by the classifier steps): ordinal patterns every 4th token need ~56 tokens
    series = [f for f in DYNAMICS_FEATURES if f.startswith("ordinal_entropy")]
    assert table.iloc[:3].drop(columns=series).notna().all(axis=None)
    assert table.iloc[3][["logp_mean", "lrr"]].isna().all()  # no tokens: no LM features, not zeros
    reordered = extractor.transform(TEXTS[::-1])
    pd.testing.assert_frame_equal(reordered.iloc[::-1].reset_index(drop=True), table)
    pd.testing.assert_frame_equal(extractor.transform(TEXTS[1:2]), table.iloc[1:2].reset_index(drop=True))
    frame = pd.DataFrame({"text": TEXTS, "other": range(len(TEXTS))})
    pd.testing.assert_frame_equal(extractor.transform(frame), table)


def test_the_engine_is_the_transformers_settings(cached):
    extractor = FeatureExtractor(cache=cached, dtype="float32")
    assert extractor.scoring_engine == ScoringEngine(cache=cached, dtype="float32")
    extractor.set_params(dtype=DEFAULT_DTYPE)
    assert extractor.scoring_engine.dtype == DEFAULT_DTYPE
    analyses = extractor.scoring_engine.analyse(TEXTS)
    assert [len(a.stats) for a in analyses] == [len(t.split()) for t in TEXTS]


@pytest.mark.parametrize(("bad", "error", "words"), [
    ("one text", TypeError, "single string"),
    (np.zeros((2, 3)), ValueError, "1-D"),
    ([1.5, 2.5], TypeError, "float"),
    (["fine", None], TypeError, "NoneType"),
    (pd.DataFrame({"body": ["x"]}), ValueError, "'text' column"),
])
def test_what_is_not_texts_is_refused(bad, error, words):
    with pytest.raises(error, match=words):
        as_texts(bad)
    with pytest.raises(error):
        FeatureExtractor(cache=None).fit(bad)
