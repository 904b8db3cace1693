"""A self-contained HTML report: each text highlighted by how machine-like each sentence is.

Sentences are shaded from blue (human-like) to red (machine-like) by their own p(machine); with
`tokens=True` each token is instead coloured by its rank under the LM, GLTR-style. No scripts, no
external resources: the file opens anywhere, offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detector.detector import Result
from detector.explain import sentence_scores
from detector.features import Analysis
from detector.inputs import Item
from detector.model import DetectorModel

GLTR_COLOURS = ("#8fd694", "#f5e663", "#f2a65a", "#c39bd3")  # rank 1-10, 11-100, 101-1000, >1000

_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} .doc{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1.5rem 0}
.head{display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap}
.verdict{font-weight:bold;padding:.1rem .5rem;border-radius:4px;color:#fff}
.machine{background:#c0392b}.human{background:#2471a3}.uncertain{background:#7f8c8d}
.reason{color:#555;font-size:.9rem}.text{white-space:pre-wrap;line-height:1.7;margin-top:.8rem}
.legend span{display:inline-block;padding:0 .4rem;margin-right:.3rem;border-radius:3px}
table{border-collapse:collapse;font-size:.85rem;margin-top:.8rem}td,th{padding:.2rem .6rem;border-bottom:1px solid #eee}
"""


def _sentence_colour(p: float | None) -> str:
    if p is None:
        return "transparent"
    # blue (p=0) -> white (0.5) -> red (1); alpha keeps the text readable
    if p >= 0.5:
        return f"rgba(192,57,43,{(p - 0.5) * 1.2:.2f})"
    return f"rgba(36,113,163,{(0.5 - p) * 0.9:.2f})"


def _sentences_html(text: str, sentences: list[dict]) -> str:
    out, pos = [], 0
    for s in sentences:
        out.append(html.escape(text[pos : s["start"]]))
        p = s["p_machine"]
        title = f"p(machine) {p:.2f}" if p is not None else "not scored"
        out.append(f'<span class="sent" data-p="{p if p is not None else ""}" title="{title}" '
                   f'style="background:{_sentence_colour(p)}">{html.escape(text[s["start"]:s["end"]])}</span>')
        pos = s["end"]
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _tokens_html(analysis: Analysis) -> str:
    text, stats = analysis.text, analysis.stats
    buckets = np.digitize(stats.rank, [11, 101, 1001])
    out, pos = [], 0
    for lo, hi, rank, b in zip(stats.start, stats.end, stats.rank, buckets, strict=True):
        if lo < pos:
            continue
        out.append(html.escape(text[pos:lo]))
        out.append(f'<span class="tok" title="rank {int(rank)}" style="background:{GLTR_COLOURS[b]}">'
                   f"{html.escape(text[lo:hi])}</span>")
        pos = hi
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _legend(tokens: bool) -> str:
    if tokens:
        names = ("rank 1-10", "11-100", "101-1000", "&gt;1000")
        spans = "".join(f'<span style="background:{c}">{n}</span>' for c, n in zip(GLTR_COLOURS, names, strict=True))
        return f'<p class="legend">Tokens by rank under the language model: {spans}</p>'
    steps = (0.0, 0.25, 0.5, 0.75, 1.0)
    spans = "".join(f'<span style="background:{_sentence_colour(p)}">{p:.1f}</span>' for p in steps)
    return f'<p class="legend">Sentences by p(machine) of a window around them: {spans}</p>'


def document_html(item: Item, analysis: Analysis, result: Result, model: DetectorModel, tokens: bool) -> str:
    p = "–" if result.p_machine is None else f"{result.p_machine:.3f}"
    body = _tokens_html(analysis) if tokens else _sentences_html(analysis.text, sentence_scores(model, analysis))
    features = ""
    if result.explanation and result.explanation.get("top_features"):
        rows = "".join(
            f"<tr><td>{html.escape(f['feature'])}</td><td>{f['value']:.3f}</td><td>{f['human_median']:.3f}</td>"
            f"<td>{f['machine_median']:.3f}</td><td>{f['push']:+.3f}</td></tr>"
            for f in result.explanation["top_features"]
        )
        features = ("<table><tr><th>feature</th><th>value</th><th>human median</th><th>machine median</th>"
                    f"<th>push on p(machine)</th></tr>{rows}</table>")
    note = f'<div class="reason">{html.escape(item.note)}</div>' if item.note else ""
    return (f'<section class="doc"><div class="head"><strong>{html.escape(item.source)}</strong>'
            f'<span class="verdict {result.verdict}">{result.verdict}</span><span>p(machine) {p}</span>'
            f"<span>{result.n_tokens} tokens</span></div>"
            f'<div class="reason">{html.escape(result.reason)}</div>{note}{features}'
            f'<div class="text">{body}</div></section>')


def write_html(scored: Sequence[tuple[Item, Analysis, Result]], model: DetectorModel, path: str | Path,
               tokens: bool = False) -> Path:
    docs = "".join(document_html(i, a, r, model, tokens) for i, a, r in scored)
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Detector report</title>'
            f"<style>{_CSS}</style></head><body><h1>Machine-generated text report</h1>{_legend(tokens)}"
            f"{docs}</body></html>")
    path = Path(path)
    with open(path, "x", encoding="utf-8") as f:  # "x": a report never replaces an existing file
        f.write(page)
    return path
