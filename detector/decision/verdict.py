"""From p(machine) and a text's properties to a verdict with its reason.

Verdicts: `machine`, `human`, or `uncertain` when the detector should not judge (too short, mostly
non-text, not English) or when p(machine) falls between the borderline and the machine threshold.
"""

from __future__ import annotations

import math

from detector.decision.thresholds import Thresholds
from detector.text.segments import language_of

MACHINE, HUMAN, UNCERTAIN = "machine", "human", "uncertain"


def text_problem(text: str) -> str | None:
    """Why a text cannot be judged whatever its score (mostly non-text, not English), else None."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return "no text (whitespace only)"
    letters = [c for c in visible if c.isalpha()]
    if len(letters) < 0.5 * len(visible):
        return f"mostly non-text ({len(letters) / len(visible):.0%} of visible characters are letters)"
    latin = sum(c.isascii() for c in letters) / len(letters)
    if latin < 0.7:
        return "not English (mostly non-Latin script); the language model reads English"
    language = language_of(text)
    if language is not None and language != "en":
        return f"probably not English (identified as {language}); the model reads English"
    return None


def decide(p_machine: float | None, n_tokens: int, text: str, thresholds: Thresholds,
           novel: str | None = None, profile: str | None = None) -> tuple[str, str]:
    """(verdict, reason) for one scored text."""
    return verdict_rule(p_machine, n_tokens, text_problem(text), thresholds, novel, profile)


def verdict_rule(p_machine: float | None, n_tokens: int, problem: str | None, thresholds: Thresholds,
                 novel: str | None = None, profile: str | None = None) -> tuple[str, str]:
    """(verdict, reason) from what is known of a text: its score, length, what is wrong with it (from
    `text_problem`) and why it lies outside the human reference texts (None if it does not).
    `profile` names the calibration profile the thresholds come from (None: the model's own).

    A text is called `machine` only when nothing speaks against judging it: out of distribution, the
    detector says `uncertain` rather than risk accusing a human whose writing it has never seen.
    """
    if problem:
        return UNCERTAIN, problem
    if n_tokens < thresholds.min_tokens:
        return UNCERTAIN, (f"too short to judge: {n_tokens} tokens, the detector is reliable from "
                           f"{thresholds.min_tokens}")
    if p_machine is None or math.isnan(p_machine):
        return UNCERTAIN, "no score could be computed"
    machine, borderline = thresholds.for_length(n_tokens)
    of = f" of profile {profile}" if profile else ""
    if p_machine > machine:
        if novel and thresholds.novel is not None and p_machine > thresholds.novel:
            return MACHINE, (f"p(machine) {p_machine:.2f} is above the threshold {thresholds.novel:.2f}{of} set "
                             f"for at most {thresholds.machine_fpr:.0%} false positives on the human texts least "
                             f"like the references, as this one is ({novel})")
        if novel:
            return UNCERTAIN, (f"p(machine) {p_machine:.2f} is above the threshold {machine:.2f}{of}, but "
                               f"the text is unlike the human texts the threshold was set on ({novel})")
        return MACHINE, (f"p(machine) {p_machine:.2f} is above the threshold {machine:.2f}{of} set for at most "
                         f"{thresholds.machine_fpr:.0%} false positives on human texts of its length")
    if p_machine > borderline:
        return UNCERTAIN, (f"borderline: p(machine) {p_machine:.2f} is above the "
                           f"{thresholds.borderline_fpr:.0%}-FPR threshold {borderline:.2f}{of} but "
                           f"not the {thresholds.machine_fpr:.0%}-FPR threshold {machine:.2f}")
    return HUMAN, f"p(machine) {p_machine:.2f} is below the borderline threshold {borderline:.2f}{of}"
