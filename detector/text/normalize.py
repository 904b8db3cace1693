"""Undo cheap evasion: bytes that change but leave the text a reader sees the same.

Homoglyphs (Cyrillic/Greek look-alikes of Latin letters), zero-width and other invisible format
characters, and unusual whitespace are mapped back, and what was altered is reported: an attempt to
evade a detector is itself worth telling the user about.

Only the first `MAX_READ_CHARS` characters of a text are read: the LM scores its first 512 tokens (~2,500
characters of English) and the costlier text steps (sentence splitting, stylometry, the language check)
grow with the text, on pathological texts faster than linearly (`"a!" * 50_000` takes seconds to split into
sentences). 20,000 characters is twice the longest research text (10,301), so ordinary texts are read
whole, and `detector score`, the server, Spark and training all read the same part.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

# Not in Unicode's confusables data (or, for the palochka, given there as "i"), but used as these Latin
# letters in homoglyph attacks.
_EXTRA_HOMOGLYPHS = {"κ": "k", "τ": "t", "Ԁ": "D", "Ԛ": "Q", "ӏ": "l"}


@lru_cache(maxsize=1)
def homoglyphs() -> dict[str, str]:
    """Non-ASCII letters that look like an ASCII letter -> that letter, from Unicode's confusables data
    (confusables.txt, as shipped by the confusable_homoglyphs package), plus a few it lacks.

    Only letters are mapped, and only to one ASCII letter: punctuation such as ’ or – is left alone, so
    ordinary English text is unchanged. Unicode's prototype of I-like letters is "l"; a capital keeps
    its case ("І" -> "I").
    """
    from confusable_homoglyphs import confusables

    table = {}
    for char, entries in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii() or not unicodedata.category(char).startswith("L"):
            continue
        targets = [e["c"] for e in entries if len(e["c"]) == 1 and e["c"].isascii() and e["c"].isalpha()]
        if not targets:
            continue
        target = targets[0]
        if char.isupper() and target == "l":
            target = "I"
        table[char] = target
    table.update(_EXTRA_HOMOGLYPHS)
    return table


# Invisible characters that carry no text: zero-width space/joiners, word joiner, BOM, soft hyphen...
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f")
# Spaces a reader cannot tell from an ordinary space.
ODD_SPACES = frozenset("\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                       "\u200a\u202f\u205f\u3000")

_WORD = re.compile(r"\w+")

MAX_READ_CHARS = 20_000


@dataclass
class Normalized:
    """A text as the detector reads it, and what had to be changed to get there."""

    text: str
    alterations: dict[str, int] = field(default_factory=dict)  # kind -> number of characters changed
    unread: int = 0  # characters past MAX_READ_CHARS, not read

    @property
    def altered(self) -> bool:
        return bool(self.alterations)

    def describe(self) -> str:
        return ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in self.alterations.items())


def _is_latin_letter(ch: str) -> bool:
    return ch.isalpha() and ch.isascii()


def _map_homoglyphs(text: str) -> tuple[str, int]:
    """Replace look-alikes inside words that also hold Latin letters, or anywhere in a Latin text.

    A genuine Russian or Greek text keeps its letters: only mixed words, or look-alikes scattered in a
    text whose letters are mostly Latin, are mapped.
    """
    letters = [c for c in text if c.isalpha()]
    latin_text = bool(letters) and sum(map(_is_latin_letter, letters)) / len(letters) > 0.5
    table = homoglyphs()
    count = 0

    def fix(match: re.Match) -> str:
        nonlocal count
        word = match.group(0)
        if not any(c in table for c in word):
            return word
        if not (latin_text or any(map(_is_latin_letter, word))):
            return word
        count += sum(c in table for c in word)
        return "".join(table.get(c, c) for c in word)

    return _WORD.sub(fix, text), count


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace (line breaks, tabs, repeated spaces) as one space, none at the ends.

    Line breaks and spacing tell the source of a text, not its author: several research sets flattened
    their human texts and kept the machine texts' paragraphs, and a model that reads the layout learns
    which set a text came from. The LM and the stylometry read the words only (FEATURE_VERSION 4).
    """
    return " ".join(text.split())


def normalize(text: str, keep_layout: bool = False) -> Normalized:
    """The first MAX_READ_CHARS characters; NFC, then invisible characters removed, odd spaces made plain,
    homoglyphs mapped to Latin, whitespace collapsed to single spaces (not reported: layout is not an
    evasion; `keep_layout` leaves it, as versions 1-3 read texts)."""
    alterations: dict[str, int] = {}
    unread = max(len(text) - MAX_READ_CHARS, 0)
    text = unicodedata.normalize("NFC", text[:MAX_READ_CHARS])
    out = []
    for ch in text:
        if ch in INVISIBLE or (unicodedata.category(ch) == "Cf" and ch not in "\u200e\u200f"):
            alterations["invisible_characters"] = alterations.get("invisible_characters", 0) + 1
        elif ch in ODD_SPACES:
            alterations["unusual_spaces"] = alterations.get("unusual_spaces", 0) + 1
            out.append(" ")
        else:
            out.append(ch)
    # Mapping a mixed word can make the text mostly Latin, which maps the look-alikes of other words too:
    # map until nothing changes, so that normalising a normalised text changes nothing (each round only
    # adds Latin letters, so it ends).
    text, n_homoglyphs = _map_homoglyphs("".join(out))
    changed = n_homoglyphs
    while changed:
        text, changed = _map_homoglyphs(text)
        n_homoglyphs += changed
    if n_homoglyphs:
        alterations["homoglyphs"] = n_homoglyphs
    return Normalized(text if keep_layout else collapse_whitespace(text), alterations, unread)
