"""Undo cheap evasion: bytes that change but leave the text a reader sees the same.

Homoglyphs (Cyrillic/Greek look-alikes of Latin letters), zero-width and other invisible format
characters, and unusual whitespace are mapped back, and what was altered is reported: an attempt to
evade a detector is itself worth telling the user about.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# Look-alikes of basic Latin letters, as used by homoglyph attacks: Cyrillic, Greek, and two letters of
# the Latin extensions (ɡ U+0261 script g, ᴠ U+1D20 small capital v).
HOMOGLYPHS = {
    # Cyrillic (and the two Latin-extension letters ɡ and ᴠ)
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ᴠ": "v",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԍ": "G", "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}

# Invisible characters that carry no text: zero-width space/joiners, word joiner, BOM, soft hyphen...
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f")
# Spaces a reader cannot tell from an ordinary space.
ODD_SPACES = frozenset("\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                       "\u200a\u202f\u205f\u3000")

_WORD = re.compile(r"\w+")


@dataclass
class Normalized:
    """A text as the detector reads it, and what had to be changed to get there."""

    text: str
    alterations: dict[str, int] = field(default_factory=dict)  # kind -> number of characters changed

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
    count = 0

    def fix(match: re.Match) -> str:
        nonlocal count
        word = match.group(0)
        if not any(c in HOMOGLYPHS for c in word):
            return word
        if not (latin_text or any(map(_is_latin_letter, word))):
            return word
        count += sum(c in HOMOGLYPHS for c in word)
        return "".join(HOMOGLYPHS.get(c, c) for c in word)

    return _WORD.sub(fix, text), count


def normalize(text: str) -> Normalized:
    """NFC, then invisible characters removed, odd spaces made plain, homoglyphs mapped to Latin."""
    alterations: dict[str, int] = {}
    text = unicodedata.normalize("NFC", text)
    out = []
    for ch in text:
        if ch in INVISIBLE or (unicodedata.category(ch) == "Cf" and ch not in "\u200e\u200f"):
            alterations["invisible_characters"] = alterations.get("invisible_characters", 0) + 1
        elif ch in ODD_SPACES:
            alterations["unusual_spaces"] = alterations.get("unusual_spaces", 0) + 1
            out.append(" ")
        else:
            out.append(ch)
    text, n_homoglyphs = _map_homoglyphs("".join(out))
    if n_homoglyphs:
        alterations["homoglyphs"] = n_homoglyphs
    return Normalized(text, alterations)
