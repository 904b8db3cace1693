"""Rebuild the shipped default model from ../shared/data in one command:

    python -m train.default [--manifest data/default_training.json] [--output detector/default_model]

Samples the development sets as the manifest says, fills the token-statistics cache (the slow part,
resumable), trains the gradient-boosting detector on a grouped train split, chooses the thresholds on
the validation split's human texts and reports test metrics. Nothing is tuned on the seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from detector.model import DEFAULT_MODEL_DIR
from train.data import load_manifest
from train.run import train_run

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=str(ROOT / "data" / "default_training.json"))
    parser.add_argument("--output", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--classifier", default="hgb")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    table, manifest = load_manifest(args.manifest)
    result = train_run(table, classifier=args.classifier, holdout_by=["generator", "domain"], cv=5,
                       data_specs=[f"manifest:{manifest['name']}"], tracking_uri=args.tracking_uri,
                       experiment="default-model", output=args.output)
    card_path = Path(args.output) / "model_card.json"
    card = json.loads(card_path.read_text())
    card["manifest"] = manifest
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(result.test_table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for by, frame in result.holdout.items():
        print(f"\nleave-one-{by}-out\n" + frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nsaved to {args.output}; seconds: {result.seconds}")


if __name__ == "__main__":
    main()
