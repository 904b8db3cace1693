"""Normalisation against cheap evasion, and the verdict's text checks."""

from __future__ import annotations

import json

from conftest import MINI, any_text
from hypothesis import given

from detector.decision.verdict import text_problem
from detector.text.normalize import normalize


def test_homoglyphs_are_mapped_and_reported():
    attacked = "Thе quick brоwn fox"  # Cyrillic е and о
    result = normalize(attacked)
    assert result.text == "The quick brown fox"
    assert result.alterations == {"homoglyphs": 2}


def test_invisible_characters_and_odd_spaces():
    result = normalize("in\u200bvisible\u00a0space\ufeff")
    assert result.text == "invisible space"
    assert result.alterations == {"invisible_characters": 2, "unusual_spaces": 1}


def test_layout_is_collapsed_to_single_spaces_and_not_reported_as_an_evasion():
    text = "A title\n\nFirst paragraph,  two spaces.\r\n\tSecond\u00a0\u00a0one.  "
    result = normalize(text)
    assert result.text == "A title First paragraph, two spaces. Second one."
    assert result.alterations == {"unusual_spaces": 2}  # the layout itself is no alteration
    assert normalize(text, keep_layout=True).text == "A title\n\nFirst paragraph,  two spaces.\r\n\tSecond  one.  "
    # The same words in another layout read the same: nothing downstream can learn the formatting.
    assert normalize("A title First paragraph, two spaces. Second one.").text == result.text


def test_real_russian_text_is_left_alone():
    text = "Москва — столица России, крупнейший город страны."
    assert normalize(text).text == text
    assert not normalize(text).altered


def test_text_problems():
    assert text_problem("   \n ") is not None
    assert "non-text" in text_problem("1234 5678 9999 #### $$$$ %%%% 0000")
    assert "not English" in text_problem("Москва — столица России, крупнейший город страны и важный центр.")
    french = ("Le petit chat dort sur le canapé pendant que la pluie tombe doucement sur les toits de la "
              "ville endormie, et personne ne semble pressé de sortir ce matin.")
    assert "not English" in text_problem(french)
    assert text_problem("This is an ordinary English sentence that a person might write today.") is None


def test_homoglyphs_come_from_unicode_confusables():
    attacked = "Тhе Іnternet is 𝐛𝐨𝐥𝐝 and ɑ pаypal scam"  # Cyrillic Т е І, mathematical bold, Latin alpha, Cyrillic а
    result = normalize(attacked)
    assert result.text == "The Internet is bold and a paypal scam"
    assert result.alterations["homoglyphs"] == 9


def test_ordinary_text_is_untouched_by_normalisation():
    text = "It’s a café — naïve “quotes”, Zoë’s façade, 3–4 pages… and ½ cup.\n\nNew paragraph."
    assert normalize(text).text == text.replace("\n\n", " ")  # every character kept; the layout read as spaces
    assert normalize(text, keep_layout=True).text == text
    assert not normalize(text).altered
    for line in MINI.read_text().splitlines():
        assert not normalize(json.loads(line)["text"]).altered


@given(any_text)
def test_normalize_is_total_and_idempotent(text):
    once = normalize(text)
    assert isinstance(once.text, str)
    assert normalize(once.text).text == once.text
