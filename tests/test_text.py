"""detector.text.segments: the language identifier read from its unpacked copy answers as py3langid's own loader."""

from __future__ import annotations

from pathlib import Path

from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from detector.core import settings
from detector.text import segments as text

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
