"""The shipped default model (detector/default_model) and what may honestly be said about it here.

It was trained by `python -m train.default` on the train split of the default manifest's sample, so on
that sample's test split it is in-distribution. If no shipped model is there yet, the same recipe is
trained in this run on this table's train split (thresholds on its validation split), and said so.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.model.detector_model import DEFAULT_MODEL_DIR, DetectorModel
from detector_bench.contenders import Scored
from train.fit import data_digest, train_detector


@dataclass
class Shipped:
    model: DetectorModel
    label: str  # how the model relates to this data, for the report
    in_distribution: bool  # trained on the train split of this very sample


def shipped_model(scored: Scored, manifest_name: str | None, quick: bool) -> Shipped:
    """The shipped model, or the default recipe trained now; `manifest_name` None = not the manifest."""
    if (DEFAULT_MODEL_DIR / "model.skops").exists():
        model = DetectorModel.load(DEFAULT_MODEL_DIR)
        trained_on = (model.card.manifest or {}).get("name")
        same_sample = manifest_name is not None and trained_on == manifest_name
        if same_sample and not quick:
            train = scored.table[(scored.split == "train").to_numpy()]
            same_sample = data_digest(train) == model.card.training_data
        if same_sample:
            return Shipped(model, f"shipped model (trained on the train split of {trained_on}; "
                                  "tested on its test split: in-distribution)", True)
        return Shipped(model, f"shipped model (trained on {trained_on or 'other data'}, not on this "
                              "table's train split)", False)
    model, _ = train_detector(scored.data, classifier="hgb", seed=0)
    return Shipped(model, "no shipped model found: the default recipe trained in this run on this "
                          "table's train split (thresholds on its validation split; in-distribution)", True)
