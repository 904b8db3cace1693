"""A self-contained HTML report: each text highlighted by how machine-like each sentence is.

Sentences are shaded from blue (human-like) to red (machine-like) by their own p(machine); with
`tokens=True` each token can also be coloured by its rank under the LM, GLTR-style (a CSS-only toggle).
No scripts, no external resources: the file opens anywhere, offline. The view of one text is the
Jinja2 partial `templates/result.html.j2`, which the page of `detector serve` renders too.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import jinja2

from detector.facade.detector import Result
from detector.facade.explain import sentence_scores
from detector.features.engine import Analysis
from detector.features.zero_shot import GLTR_COLOURS, GLTR_LABELS, gltr_bucket
from detector.io.decoding import Item
from detector.model.detector_model import DetectorModel


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    """The package's templates, HTML-escaped by default."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("detector", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    env.globals["sentence_steps"] = [(f"{p:g}", _sentence_colour(p)) for p in (0.0, 0.25, 0.5, 0.75, 1.0)]
    env.globals["gltr_steps"] = list(zip(GLTR_LABELS, GLTR_COLOURS, strict=True))
    return env


def _sentence_colour(p: float | None) -> str:
    if p is None:
        return "transparent"
    # blue (p=0) -> white (0.5) -> red (1); alpha keeps the text readable
    if p >= 0.5:
        return f"rgba(192,57,43,{(p - 0.5) * 1.2:.2f})"
    return f"rgba(36,113,163,{(0.5 - p) * 0.9:.2f})"


def _sentence_segments(text: str, sentences: list[dict]) -> list[dict]:
    """The text cut into (gap before, sentence) pieces; the last piece holds the trailing gap."""
    out, pos = [], 0
    for s in sentences:
        p = s["p_machine"]
        out.append({"gap": text[pos : s["start"]], "text": text[s["start"] : s["end"]], "colour": _sentence_colour(p),
                    "data_p": "" if p is None else f"{p:.4f}",
                    "title": "not scored" if p is None else f"p(machine) {p:.2f}"})
        pos = s["end"]
    out.append({"gap": text[pos:], "text": ""})
    return out


def _token_segments(analysis: Analysis) -> list[dict]:
    text, stats = analysis.text, analysis.stats
    buckets = gltr_bucket(stats.rank)
    out, pos = [], 0
    for lo, hi, rank, b in zip(stats.start, stats.end, stats.rank, buckets, strict=True):
        if lo < pos:
            continue
        out.append({"gap": text[pos:lo], "text": text[lo:hi], "rank": int(rank), "colour": GLTR_COLOURS[b]})
        pos = hi
    out.append({"gap": text[pos:], "text": ""})
    return out


def _number(value: float | None, fmt: str = ".3f") -> str:
    return "–" if value is None else format(value, fmt)


def document_context(source: str, analysis: Analysis, result: Result, model: DetectorModel, *, tokens: bool = False,
                     tokens_on: bool = False, note: str | None = None, doc_id: int = 0) -> dict:
    """What the `document` partial shows of one scored text.

    tokens: include the GLTR token view (behind a toggle); tokens_on: show it first.
    """
    explanation = result.explanation or {}
    sentences = explanation.get("sentences")
    if sentences is None:  # not explained: score the sentences now (no second LM pass)
        sentences = sentence_scores(model, analysis)
    features = [{**f, "value": _number(f["value"]), "human_median": _number(f["human_median"]),
                 "machine_median": _number(f["machine_median"]), "push": _number(f["push"], "+.3f")}
                for f in explanation.get("top_features") or []]
    return {
        "id": doc_id, "source": source, "verdict": result.verdict, "p": _number(result.p_machine),
        "n_tokens": result.n_tokens, "reason": result.reason, "note": note, "features": features,
        "sentences": _sentence_segments(analysis.text, sentences),
        "tokens": _token_segments(analysis) if tokens else None, "tokens_on": tokens_on,
    }


def render_fragment(docs: Sequence[dict]) -> str:
    """The result view alone (no page around it), as the serve page inserts it."""
    return templates().get_template("fragment.html.j2").render(docs=docs)


def write_html(scored: Sequence[tuple[Item, Analysis, Result]], model: DetectorModel, path: str | Path,
               tokens: bool = False) -> Path:
    docs = [document_context(i.source, a, r, model, tokens=tokens, tokens_on=tokens, note=i.note, doc_id=k)
            for k, (i, a, r) in enumerate(scored)]
    page = templates().get_template("report.html.j2").render(docs=docs)
    path = Path(path)
    with open(path, "x", encoding="utf-8") as f:  # "x": a report never replaces an existing file
        f.write(page)
    return path
