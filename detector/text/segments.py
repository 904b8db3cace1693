"""Plain-text helpers shared by stylometry, burstiness and explanations: words, sentence spans, language.

Sentences come from pysbd (rule-based, knows abbreviations such as "Dr.", "D.C." and "p.m."), the
language from py3langid: maintained libraries, not hand-written rules.
"""

from __future__ import annotations

import logging
import lzma
import os
import re
import shutil
import threading
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_LINE_BREAKS = re.compile(r"\n+")
# pysbd's time grows with the square of the sentences it is given at once ("a!" * 10_000: 13 s), so a
# long line is cut into pieces of about CHUNK characters first, preferably after a word of 3+ lowercase
# letters ending a sentence before a capital (never after "Dr." or "D.C."), else after any . ! ?
# A piece also ends by its MAX_ENDS-th . ! ? (prose has a dozen per 1,000 characters, "a!a!a!..." 500): no
# research text has so many, so their sentences are as before.
CHUNK = 1000
MAX_ENDS = 96
_GOOD_CUT = re.compile(r"(?<=[a-z]{3}[.!?])[\"'”’)\]]*\s+(?=[\"“'(\[]?[A-Z])")
_ANY_CUT = re.compile(r"[.!?…]+[\"'”’)\]]*\s*")
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


def _chunks(line: str, limit: int = CHUNK, max_ends: int = MAX_ENDS) -> list[tuple[int, int]]:
    """Spans of `line` of about `limit` characters or `max_ends` sentence ends, cut where a sentence surely
    ends (see CHUNK)."""
    out, start = [], 0
    while True:
        ends = [m.end() for m in _ANY_CUT.finditer(line, start + 1, start + limit)]
        dense = len(ends) > max_ends
        if len(line) - start <= limit and not dense:
            break
        stop = ends[max_ends - 1] if dense else start + limit
        cut = None
        for pattern in (_GOOD_CUT, _ANY_CUT):
            found = [m.end() for m in pattern.finditer(line, start + 1, stop)]
            if found:
                cut = found[-1]
                break
        if cut is None:  # no punctuation for `limit` characters: cheap for pysbd, so run on to the next
            found = _ANY_CUT.search(line, start + limit)
            cut = found.end() if found else len(line)
        out.append((start, cut))
        start = cut
    if start < len(line):
        out.append((start, len(line)))
    return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text` (stripped, non-empty), line by line with pysbd."""
    out = []
    for line_lo, line_hi in _line_spans(text):
        line = text[line_lo:line_hi]
        if not line.strip():
            continue
        for chunk_lo, chunk_hi in _chunks(line):
            base = line_lo + chunk_lo
            for span in _segmenter().segment(line[chunk_lo:chunk_hi]):
                lo, hi = base + span.start, base + span.end
                piece = text[lo:hi]
                if piece.strip():
                    lo += len(piece) - len(piece.lstrip())
                    hi -= len(piece) - len(piece.rstrip())
                    out.append((lo, hi))
    return out


_identifier_lock = threading.Lock()  # loaded once, also when another thread loads it ahead (detector.facade.ahead)


def _identifier():
    with _identifier_lock:
        return _load_identifier()


@lru_cache(maxsize=1)
def _load_identifier():
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    try:
        return _unpacked_identifier(LanguageIdentifier, Path(MODEL_DIR) / MODEL_FILE)
    except Exception as err:  # noqa: BLE001 - any trouble with the kept copy: py3langid's own loader
        log.debug("language identifier from its packed model: %s", err)
        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _unpacked_identifier(identifier_type, packed: Path):
    """py3langid's identifier from its model unpacked once into the user cache.

    The model ships as an LZMA-packed .npz that takes ~0.6 s of CPU to unpack at every start (~0.2 s
    from the unpacked copy, read with allow_pickle=False); the copy is named by py3langid's version and
    the packed file's size and date, and built as py3langid's own loader builds it."""
    from importlib.metadata import version

    import numpy as np
    from py3langid.modelio import _to_array

    from detector.core.settings import CACHE_DIR

    stat = packed.stat()
    unpacked = CACHE_DIR / "langid" / f"{version('py3langid')}-{stat.st_size}-{int(stat.st_mtime)}.npz"
    if not unpacked.is_file():
        unpacked.parent.mkdir(parents=True, exist_ok=True)
        partial = unpacked.with_name(f".{unpacked.name}.{os.getpid()}.partial")
        with lzma.open(packed) as source, open(partial, "wb") as out:
            shutil.copyfileobj(source, out, length=1 << 20)
        partial.replace(unpacked)
    try:
        with np.load(unpacked, allow_pickle=False) as model:
            return identifier_type(model["ptc"], model["pc"], model["classes"].tolist(),
                                   _to_array(model["nextmove"]), model["out_feat"].tolist(), norm_probs=True,
                                   tk_row=_to_array(model["nextmove_row"]))
    except Exception:
        unpacked.unlink(missing_ok=True)  # damaged: the next start unpacks it again
        raise


def load_language_identifier() -> None:
    """Load the language identifier's model now (~0.2 s from its unpacked copy; the first time ~0.6 s,
    mostly LZMA, which releases the GIL)."""
    _identifier()


def language_of(text: str, confidence: float = LANGUAGE_CONFIDENCE) -> str | None:
    """The ISO 639-1 code of the text's language when py3langid is at least `confidence` sure, else None."""
    language, probability = _identifier().classify(text[:20_000])
    return str(language) if probability >= confidence else None


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]
