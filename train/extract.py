"""Fill the token-statistics cache for a manifest's texts (the slow, resumable part of training).

    python -m train.extract data/default_training.json

Texts go through the LM in a seeded random order, so a run stopped part-way has a balanced sample of
every set in the cache; a rerun skips what is cached. Run it alone or with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse

import numpy as np

from detector.features import ScoringEngine
from detector.normalize import normalize
from train.data import load_manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--chunk", type=int, default=256, help="texts per cache write (default 256)")
    args = parser.parse_args(argv)
    table, manifest = load_manifest(args.manifest)
    print(f"{manifest['name']}: {len(table)} texts; {table.groupby('dataset').size().to_dict()}", flush=True)
    engine = ScoringEngine(progress=True)
    order = np.random.default_rng(manifest.get("seed", 0)).permutation(len(table))
    texts = [normalize(t).text for t in table["text"].to_numpy()[order]]
    for start in range(0, len(texts), args.chunk):
        engine.token_stats(texts[start : start + args.chunk])
        print(f"{min(start + args.chunk, len(texts))}/{len(texts)} texts cached", flush=True)


if __name__ == "__main__":
    main()
