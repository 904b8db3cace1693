"""One text under the microscope: its tokens, GLTR shares, sentence scores and features as tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from detector.features.zero_shot import GLTR_LABELS, gltr_fractions
from detector.lm.token_stats import TokenStats


def token_strings(text: str, stats: TokenStats) -> list[str]:
    """The text of each scored token, cut from `text` by its span; any gap before a token (spaces the
    tokenizer left out of the span) is kept with it, so the strings join back to the text."""
    out, previous = [], int(stats.start[0]) if len(stats) else 0
    for start, end in zip(stats.start.tolist(), stats.end.tolist(), strict=True):
        out.append(text[min(previous, start):end])
        previous = max(previous, end)
    return out


def gltr_table(named: Mapping[str, TokenStats]) -> pd.DataFrame:
    """Share of tokens in each GLTR rank bucket, one row per text."""
    return pd.DataFrame([gltr_fractions(stats) for stats in named.values()], index=list(named),
                        columns=list(GLTR_LABELS))


def result_table(named: Mapping[str, object]) -> pd.DataFrame:
    """name -> Result: p(machine), verdict, tokens and reason side by side."""
    return pd.DataFrame([{"text": name, "p_machine": r.p_machine, "verdict": r.verdict, "n_tokens": r.n_tokens,
                          "reason": r.reason} for name, r in named.items()]).set_index("text")


def sentence_table(result) -> pd.DataFrame:
    """Per-sentence scores of an explained Result (`score(..., explain=True)`)."""
    rows = (result.explanation or {}).get("sentences", [])
    return pd.DataFrame(rows, columns=["start", "end", "n_tokens", "p_machine", "text"])


QUANTILES = (10, 25, 50, 75, 90)  # the percentiles of the model card's `feature_reference`


def feature_table(result, reference: Mapping[str, Mapping[str, list[float]]]) -> pd.DataFrame:
    """The top features of an explained Result with the human and machine percentiles (10/25/50/75/90)
    of the training texts, and which class's middle half the value falls closer to."""
    rows = []
    for item in (result.explanation or {}).get("top_features", []):
        ref = reference.get(item["feature"], {})
        human, machine = ref.get("human") or [np.nan] * 5, ref.get("machine") or [np.nan] * 5
        value = item["value"]
        rows.append({
            "feature": item["feature"], "description": item["description"], "value": value, "push": item["push"],
            **{f"human_p{q}": v for q, v in zip(QUANTILES, human, strict=True)},
            **{f"machine_p{q}": v for q, v in zip(QUANTILES, machine, strict=True)},
            "closer_to": closer(value, human, machine),
        })
    return pd.DataFrame(rows)


def closer(value: float, human: Sequence[float], machine: Sequence[float]) -> str:
    """'human' or 'machine': whose median is nearer, in units of that class's interquartile range."""
    def distance(q):
        spread = max(abs(q[3] - q[1]), 1e-9)
        return abs(value - q[2]) / spread

    if np.isnan(value) or np.isnan(human[2]) or np.isnan(machine[2]):
        return "unknown"
    return "human" if distance(human) < distance(machine) else "machine"
