"""Plain-text helpers shared by stylometry, burstiness and explanations: words, sentence spans, language.

Sentences come from pysbd (rule-based, knows abbreviations such as "Dr.", "D.C." and "p.m."), the
language from py3langid: maintained libraries, not hand-written rules.
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_LINE_BREAKS = re.compile(r"\n+")
# The identifier must be this sure of another language before a text is called not English: lists,
# names and code are short on cues, and an English text is better judged than refused.
LANGUAGE_CONFIDENCE = 0.9

# Common English function words: their rate is a stylometric feature and a cheap language check.
FUNCTION_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves""".split()
)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def _line_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the text between line breaks: a line break always ends a sentence (titles, lists)."""
    spans, start = [], 0
    for match in _LINE_BREAKS.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text` (stripped, non-empty), line by line with pysbd."""
    out = []
    for line_lo, line_hi in _line_spans(text):
        line = text[line_lo:line_hi]
        if not line.strip():
            continue
        for span in _segmenter().segment(line):
            lo, hi = line_lo + span.start, line_lo + span.end
            piece = text[lo:hi]
            if piece.strip():
                lo += len(piece) - len(piece.lstrip())
                hi -= len(piece) - len(piece.rstrip())
                out.append((lo, hi))
    return out


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language_of(text: str, confidence: float = LANGUAGE_CONFIDENCE) -> str | None:
    """The ISO 639-1 code of the text's language when py3langid is at least `confidence` sure, else None."""
    language, probability = _identifier().classify(text[:20_000])
    return str(language) if probability >= confidence else None


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]
