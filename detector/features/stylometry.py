"""Stylometric features: functions of the clean text alone, no language model.

The text arrives with its whitespace collapsed (`detector.text.normalize`), so nothing here reads layout:
paragraph length, the one layout feature of versions 1-3, was dropped in version 4.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from detector.text.segments import FUNCTION_WORDS, sentence_spans, words

_PUNCTUATION = set(".,;:!?-—–\"'()“”‘’…")
_MATTR_WINDOW = 50

# name -> one-line description, in output order
STYLOMETRIC_FEATURES = {
    "sent_len_mean": "mean sentence length, words",
    "sent_len_std": "spread (std) of sentence length, words",
    "word_len_mean": "mean word length, characters",
    "mattr": f"vocabulary richness: moving-average type/token ratio over {_MATTR_WINDOW}-word windows",
    "punct_rate": "punctuation marks per word",
    "function_word_rate": "share of words that are English function words",
    "repeated_trigram_rate": "share of word trigrams that occur more than once",
}


def mattr(tokens: list[str], window: int = _MATTR_WINDOW) -> float:
    """Moving-average type/token ratio: a vocabulary-richness measure that does not fall with length."""
    if not tokens:
        return float("nan")
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    counts = Counter(tokens[:window])
    ratios = [len(counts)]
    for old, new in zip(tokens, tokens[window:], strict=False):
        counts[new] += 1
        counts[old] -= 1
        if not counts[old]:
            del counts[old]
        ratios.append(len(counts))
    return float(np.mean(ratios) / window)


def stylometric_features(text: str, spans: list[tuple[int, int]] | None = None) -> dict[str, float]:
    tokens = [w.lower() for w in words(text)]
    n = len(tokens)
    nan = float("nan")
    sentence_lengths = [len(words(text[lo:hi])) for lo, hi in (sentence_spans(text) if spans is None else spans)]
    sentence_lengths = [k for k in sentence_lengths if k] or [0]
    trigrams = Counter(zip(tokens, tokens[1:], tokens[2:], strict=False))
    n_trigrams = max(n - 2, 0)
    return {
        "sent_len_mean": float(np.mean(sentence_lengths)),
        "sent_len_std": float(np.std(sentence_lengths)),
        "word_len_mean": float(np.mean([len(w) for w in tokens])) if n else nan,
        "mattr": mattr(tokens),
        "punct_rate": sum(c in _PUNCTUATION for c in text) / n if n else nan,
        "function_word_rate": sum(w in FUNCTION_WORDS for w in tokens) / n if n else nan,
        "repeated_trigram_rate": (
            sum(c for c in trigrams.values() if c > 1) / n_trigrams if n_trigrams else 0.0
        ),
    }
