"""model_card.json: what a user needs to trust a model, as a record that reads and writes itself.

The card holds the LM and its revision, feature names and version, training data digests, validation
metrics, and the verdict thresholds with the false-positive rates they were chosen for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.errors import ModelError, first_line
from detector.decision.thresholds import Thresholds
from detector.features.engine import FEATURE_NAMES, FEATURE_VERSION


@dataclass
class ModelCard:
    """model_card.json as a record: what a user needs to trust a model. Written by `DetectorModel.save`
    (which fills in the thresholds, features and LM of the model it describes) and read by `load`.

    Keys this version does not know (a card from a newer detector) are kept in `extra` and written back.
    """

    name: str = "mgt-detector"
    classifier: str = ""  # the recipe name or v1 alias it was trained as
    trained: str = ""  # date
    training_data: dict[str, dict[str, Any]] = field(default_factory=dict)  # per dataset: n, digest, generators
    split: dict[str, int] = field(default_factory=dict)
    split_rule: str = ""
    recipe: str = ""
    novelty: dict[str, Any] | None = None
    test_metrics: dict[str, Any] = field(default_factory=dict)
    test_metrics_all_lengths: dict[str, Any] = field(default_factory=dict)
    feature_reference: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    data_specs: list[str] = field(default_factory=list)
    cv_auroc: list[float] = field(default_factory=list)
    holdout_auroc: dict[str, dict[str, float]] = field(default_factory=dict)  # by -> held-out value -> AUROC
    thresholds: Thresholds | None = None
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    feature_version: int | None = FEATURE_VERSION
    lm: dict[str, Any] = field(default_factory=dict)  # the feature extractor's settings
    engine: str = ""
    manifest: dict[str, Any] | None = None  # the shipped model: its training sample
    recipe_choice: str | None = None
    held_out_protocol: list[dict[str, Any]] | None = None
    out_of_domain_human_check: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "holdout_auroc":  # flat keys, as cards have always had them
                out.update({f"holdout_{by}_auroc": table for by, table in value.items()})
            elif f.name == "thresholds":
                # `novel` is written only where set, so cards from before it round-trip unchanged
                out["thresholds"] = None if value is None else {k: v for k, v in asdict(value).items()
                                                                if k != "novel" or v is not None}
            elif f.name == "cv_auroc" and not value:
                continue
            elif f.name == "extra":
                out.update(value)
            elif value is not None or f.name == "novelty":
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        """A card from its JSON object; TypeError/KeyError where a known key has the wrong shape."""
        known = {f.name for f in fields(cls)} - {"holdout_auroc", "extra"}
        card = cls(**{k: v for k, v in data.items() if k in known and k != "thresholds"})
        card.feature_version = data.get("feature_version")  # absent: unknown, never assumed current
        if data.get("thresholds") is not None:
            card.thresholds = Thresholds(**data["thresholds"])
        holdouts = [k for k in data if k.startswith("holdout_") and k.endswith("_auroc")]
        card.holdout_auroc = {k.removeprefix("holdout_").removesuffix("_auroc"): data[k] for k in holdouts}
        card.extra = {k: v for k, v in data.items() if k not in known and k not in holdouts}
        return card

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, default=json_default) + "\n")


def read_card(card_file: str | Path) -> ModelCard:
    """A model_card.json as a `ModelCard`; a ModelError saying what is wrong otherwise."""
    try:
        data = json.loads(Path(card_file).read_bytes())
    except (OSError, ValueError, RecursionError) as err:  # ValueError covers JSON and decoding errors
        raise ModelError(f"{card_file}: broken model card ({type(err).__name__}: "
                         f"{first_line(err, 120)})") from err
    if not isinstance(data, dict):
        raise ModelError(f"{card_file}: broken model card (not a JSON object)")
    try:
        return ModelCard.from_json(data)
    except (KeyError, TypeError, AttributeError) as err:
        raise ModelError(f"{card_file}: broken model card ({first_line(err, 120)})") from err


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
