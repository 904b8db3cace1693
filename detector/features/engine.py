"""Texts -> feature table: the feature definitions and the scoring engine.

`ScoringEngine` is plain Python: normalisation, the LM, the token-statistics cache and the features
of each text. `detector.model.extractor.FeatureExtractor` is a thin scikit-learn transformer over it (strings
in, feature table out) that holds only the engine's settings, so a whole detector (text in, p(machine)
out) is one `Pipeline`, fitted, saved and logged to mlflow whole. The LM is loaded on the first text
that is not in the stats cache and is never saved with the pipeline, so a text is never passed
through the LM twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from detector.core.settings import LMSettings
from detector.features import zero_shot
from detector.features.dynamics import DYNAMICS_FEATURES, dynamics_features
from detector.features.stylometry import STYLOMETRIC_FEATURES, stylometric_features
from detector.lm.engines import engine_name, known_stats_key
from detector.lm.language_model import LanguageModel
from detector.lm.shared import shared_lm  # here, where ScoringEngine looks it up (tests replace it)
from detector.lm.stats_cache import StatsCache
from detector.lm.token_stats import TokenStats
from detector.text.normalize import Normalized, normalize
from detector.text.segments import sentence_spans

# Bump when a feature's definition changes: models record it and refuse a mismatch.
# 2: sentences from pysbd (sent_len_mean, sent_len_std, burstiness), homoglyphs from Unicode's confusables.
# 3: the surprisal-series features of detector/features/dynamics.py.
# 4: whitespace collapsed before the LM and the stylometry; paragraph_len_mean dropped (layout tells the
#    source, not the author).
FEATURE_VERSION = 4

LM_FEATURES = {
    "logp_mean": "mean token log-probability (likelihood)",
    "logp_std": "spread (std) of token log-probability",
    "logp_q10": "10th percentile of token log-probability",
    "logp_q25": "25th percentile of token log-probability",
    "logp_q50": "median token log-probability",
    "logp_q75": "75th percentile of token log-probability",
    "logp_q90": "90th percentile of token log-probability",
    "logrank_mean": "mean log-rank of the actual token",
    "lrr": "log-likelihood / log-rank ratio (DetectLLM LRR)",
    "entropy_mean": "mean entropy of the predictive distribution, nats",
    "fast_detectgpt": "Fast-DetectGPT analytic sampling discrepancy",
    "binoculars": "minus log-perplexity / mean entropy (Binoculars-style, one model)",
    "gltr_top10": "share of tokens ranked 1-10 (GLTR)",
    "gltr_top100": "share of tokens ranked 11-100 (GLTR)",
    "gltr_top1000": "share of tokens ranked 101-1000 (GLTR)",
    "gltr_rest": "share of tokens ranked beyond 1000 (GLTR)",
    "burstiness": "spread (std) of per-sentence mean log-probability",
}

# +1 where a higher value means more machine-like, -1 where lower does, 0 where the direction depends
# on the text (used for monotone constraints: a text that looks more machine-like on such a feature
# must never get a lower p(machine) from it).
MACHINE_DIRECTION = {
    "logp_mean": 1, "logp_std": 0, "logp_q10": 1, "logp_q25": 1, "logp_q50": 1, "logp_q75": 1, "logp_q90": 1,
    "logrank_mean": -1, "lrr": 1, "entropy_mean": -1, "fast_detectgpt": 1, "binoculars": 1,
    "gltr_top10": 1, "gltr_top100": 0, "gltr_top1000": -1, "gltr_rest": -1, "burstiness": 0,
}

# The zero-shot detectors (`zero_shot.ZERO_SHOT`) as (feature, sign): score = sign * feature, higher = machine.
ZERO_SHOT_FEATURES = {name: (z.feature, MACHINE_DIRECTION[z.feature]) for name, z in zero_shot.ZERO_SHOT.items()}

FEATURES: dict[str, str] = {**LM_FEATURES, **DYNAMICS_FEATURES, **STYLOMETRIC_FEATURES}
FEATURE_NAMES: list[str] = list(FEATURES)


def sentence_logp(stats: TokenStats, text: str,
                  spans: list[tuple[int, int]] | None = None) -> list[tuple[int, int, float, int]]:
    """(start, end, mean log p, n tokens) of each sentence that has scored tokens; `spans` are the
    text's sentence spans if the caller has them already (splitting is the costly part)."""
    out = []
    spans = sentence_spans(text) if spans is None else spans
    token_sentence = np.searchsorted([hi for _, hi in spans], stats.start, side="right")
    for k, (lo, hi) in enumerate(spans):
        logp = stats.logp[token_sentence == k]
        if len(logp):
            out.append((lo, hi, float(np.mean(logp)), len(logp)))
    return out


def lm_features(stats: TokenStats, text: str, spans: list[tuple[int, int]] | None = None) -> dict[str, float]:
    if not len(stats):
        return dict.fromkeys(LM_FEATURES, float("nan"))
    q10, q25, q50, q75, q90 = np.percentile(stats.logp, [10, 25, 50, 75, 90])
    per_sentence = [m for _, _, m, n in sentence_logp(stats, text, spans) if n >= 3]
    gltr = zero_shot.gltr_fractions(stats)
    return {
        "logp_mean": zero_shot.likelihood(stats),
        "logp_std": float(np.std(stats.logp)),
        "logp_q10": q10,
        "logp_q25": q25,
        "logp_q50": q50,
        "logp_q75": q75,
        "logp_q90": q90,
        "logrank_mean": -zero_shot.log_rank(stats),
        "lrr": zero_shot.lrr(stats),
        "entropy_mean": -zero_shot.entropy(stats),
        "fast_detectgpt": zero_shot.fast_detectgpt(stats),
        "binoculars": zero_shot.binoculars(stats),
        "gltr_top10": gltr[0],
        "gltr_top100": gltr[1],
        "gltr_top1000": gltr[2],
        "gltr_rest": gltr[3],
        "burstiness": float(np.std(per_sentence)) if len(per_sentence) >= 2 else 0.0,
    }


def features_of(stats: TokenStats, text: str) -> dict[str, float]:
    """All features of one (normalised) text from its token statistics."""
    spans = sentence_spans(text)  # once: both families use the sentences
    return {**lm_features(stats, text, spans), **dynamics_features(stats, text), **stylometric_features(text, spans)}


@dataclass
class Analysis:
    """What the detector knows about one text after its LM pass: enough for scores and explanations."""

    original: str
    normalized: Normalized
    stats: TokenStats

    @property
    def text(self) -> str:
        return self.normalized.text

    def features(self) -> dict[str, float]:
        return features_of(self.stats, self.text)


def features_table(analyses: Sequence[Analysis]) -> pd.DataFrame:
    """One row of `FEATURE_NAMES` per analysed text (NaN for LM features of a text without tokens)."""
    return pd.DataFrame([a.features() for a in analyses], columns=FEATURE_NAMES, dtype=float)


def as_texts(X) -> list[str]:
    """A list of strings, a Series of them, or a DataFrame with a `text` column -> list of texts.

    Anything else (one string, a 2-D array, numbers, None) is a TypeError or ValueError that names it:
    the features of `str(x)` of a number would be silently meaningless.
    """
    if isinstance(X, str):
        raise TypeError("expected a sequence of texts, got a single string (wrap it in a list)")
    if isinstance(X, pd.DataFrame):
        if "text" not in X.columns:
            raise ValueError("expected a DataFrame with a 'text' column")
        X = X["text"]
    if getattr(X, "ndim", 1) != 1:
        raise ValueError(f"expected a 1-D sequence of texts, got an array of shape {X.shape}")
    texts = list(X)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"expected texts (str), got {type(bad[0]).__name__}")
    return [str(t) for t in texts]


@dataclass(frozen=True)
class ScoringEngine(LMSettings):
    """The scoring engine: texts -> normalised texts -> token statistics (stats cache, else one LM pass)
    -> features. Plain Python, not an estimator: `FeatureExtractor.scoring_engine` builds one from the
    transformer's settings. Its parameters are the `LMSettings`.
    """

    @property
    def engine_name(self) -> str:
        """The engine that runs: the chosen one, else this install's default where it can run."""
        return engine_name(self.engine, self.device, self.dtype)

    def language_model(self) -> LanguageModel:
        """The LM, loaded once per configuration and process (seconds; only on first use)."""
        return shared_lm(self.lm, self.device, self.dtype, self.max_tokens, self.engine_name)

    def token_stats(self, texts: Sequence[str]) -> list[TokenStats]:
        """Statistics of already-normalised texts: from the cache where there, else one LM pass."""
        key, cache, found = self._cached(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:  # only now is the LM loaded: fully cached texts need none
            lm = self.language_model()
            bar = tqdm(total=len(missing), unit="text", desc="LM pass", disable=not self.progress)
            # Chunks keep the cache current, so an interrupted run resumes where it stopped.
            for start in range(0, len(missing), self.chunk_size):
                chunk = missing[start : start + self.chunk_size]
                computed = dict(zip(chunk, lm.token_stats(chunk), strict=True))
                found.update(computed)
                if cache is not None:
                    cache.put_many(key, computed)
                bar.update(len(chunk))
            bar.close()
        if cache is not None:
            cache.close()
        return [found[t] for t in texts]

    def _cached(self, texts: Sequence[str]) -> tuple[str, StatsCache | None, dict[str, TokenStats]]:
        """(stats-cache key, the open cache or None, the cached statistics of those texts that have them)."""
        key = (known_stats_key(self.lm, self.dtype, self.max_tokens, engine=self.engine_name)
               or self.language_model().cache_key)
        cache = StatsCache(None if self.cache == "default" else self.cache) if self.cache else None
        return key, cache, cache.get_many(key, texts) if cache is not None else {}

    def cached_analyses(self, texts: Iterable[str]) -> list[Analysis | None]:
        """As `analyse`, with no LM pass: None for each text whose statistics are not in the cache."""
        originals = list(texts)
        normalized = [normalize(t) for t in originals]
        _, cache, found = self._cached([n.text for n in normalized])
        if cache is not None:
            cache.close()
        return [Analysis(o, n, found[n.text]) if n.text in found else None
                for o, n in zip(originals, normalized, strict=True)]

    def analyse(self, texts: Iterable[str]) -> list[Analysis]:
        """Normalise each text and compute its token statistics (one LM pass per uncached text)."""
        originals = list(texts)
        normalized = [normalize(t) for t in originals]
        stats = self.token_stats([n.text for n in normalized])
        return [Analysis(o, n, s) for o, n, s in zip(originals, normalized, stats, strict=True)]

    def features(self, texts: Iterable[str]) -> pd.DataFrame:
        return features_table(self.analyse(texts))
