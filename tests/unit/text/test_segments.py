"""Words, sentences and language: spans cover the text, abbreviations do not end sentences, the
language identifier is py3langid's own."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import LONG
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from detector.core import settings
from detector.decision.verdict import text_problem
from detector.text import segments as text
from detector.text.segments import language_of, sentence_spans

SAMPLES = ["The committee met on Tuesday and decided nothing, as usual.",
           "Der Hund läuft schnell über die Straße und bellt den Briefträger an.",
           "Le chat dort sur le canapé depuis ce matin.", "El tren sale a las ocho de la mañana.",
           "x", "12 34 56", ""]


def test_the_unpacked_copy_identifies_as_the_packed_model(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path)
    packed = Path(MODEL_DIR) / MODEL_FILE
    own = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    first = text._unpacked_identifier(LanguageIdentifier, packed)  # unpacks into the cache
    [copy] = (tmp_path / "langid").glob("*.npz")
    again = text._unpacked_identifier(LanguageIdentifier, packed)  # reads the copy
    for sample in SAMPLES:
        assert first.classify(sample) == again.classify(sample) == own.classify(sample)
    assert not [p for p in copy.parent.iterdir() if p.name.endswith(".partial")]


def test_a_damaged_copy_falls_back_to_py3langids_loader_and_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "CACHE_DIR", tmp_path)
    packed = Path(MODEL_DIR) / MODEL_FILE
    text._unpacked_identifier(LanguageIdentifier, packed)
    [copy] = (tmp_path / "langid").glob("*.npz")
    copy.write_bytes(b"not an npz")
    text._load_identifier.cache_clear()
    try:
        assert text.language_of(SAMPLES[1]) == "de"
        assert not copy.exists()  # removed, so the next start unpacks it again
    finally:
        text._load_identifier.cache_clear()


def test_french_is_not_english_and_a_list_of_fruits_is():
    french = ("La Révolution française est une période de bouleversements politiques et sociaux en France, "
              "dans ses colonies et en Europe à la fin du XVIIIe siècle.")
    assert "not English" in text_problem(french)
    fruits = "apples, bananas, oranges, pears, grapes, plums, cherries, strawberries, kiwis, mangoes, lemons, limes"
    assert text_problem(fruits) is None
    assert text_problem(LONG) is None
    assert language_of(LONG) == "en"


def test_abbreviations_do_not_end_sentences():
    text = "Dr. Smith flew to Washington, D.C. on Monday. He met the senator at 3 p.m. in her office."
    pieces = [text[lo:hi] for lo, hi in sentence_spans(text)]
    assert 1 <= len(pieces) <= 2, pieces
    assert pieces[0].startswith("Dr. Smith")


def test_sentence_spans_cover_lines_and_repeats():
    text = "Yes. Yes. Yes.\nA title\n\nLast one!"
    spans = sentence_spans(text)
    assert [text[lo:hi] for lo, hi in spans] == ["Yes.", "Yes.", "Yes.", "A title", "Last one!"]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # in order, not overlapping


def test_sentence_splitting_stays_fast_on_pathological_text():
    started = time.perf_counter()
    assert len(sentence_spans("a!" * 10_000)) == 10_000  # pysbd alone: ~13 s (quadratic); in pieces: < 1 s
    assert time.perf_counter() - started < 5


def test_sentence_spans_cover_sentences():
    text = "First one. Second one?  Third!\nFourth line"
    pieces = [text[a:b] for a, b in sentence_spans(text)]
    assert pieces == ["First one.", "Second one?", "Third!", "Fourth line"]
