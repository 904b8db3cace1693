"""Fill the token-statistics cache for a manifest's texts (the slow, resumable part of training).

    python -m train.extract data/default_training.json
"""

from __future__ import annotations

import argparse

from detector.features import FeatureExtractor
from detector.normalize import normalize
from train.data import load_manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    args = parser.parse_args(argv)
    table, manifest = load_manifest(args.manifest)
    print(f"{manifest['name']}: {len(table)} texts")
    extractor = FeatureExtractor(progress=True)
    for dataset, part in table.groupby("dataset", sort=False):
        print(dataset, len(part))
        extractor.token_stats([normalize(t).text for t in part["text"]])


if __name__ == "__main__":
    main()
