"""Fill the token-statistics cache for a manifest's texts (the slow, resumable part of training).

    python -m train.extract data/default_training.json

Texts go through the LM cell by cell in turn (a cell is a dataset, domain, generator and attack; in a
seeded random order inside each), so a run stopped part-way has every small cell complete and the
large ones equally far along: the most balanced sample the time allowed. A rerun skips what is
cached. Run it alone or with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from detector.features import ScoringEngine
from detector.normalize import normalize
from train.data import load_manifest


def interleaved_order(table: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Row positions taking the first text of every cell, then the second of every cell, and so on."""
    rng = np.random.default_rng(seed)
    cells = table[["dataset", "domain", "generator"]].astype(str).agg("|".join, axis=1) + "|" + \
        table["attack"].fillna("none").astype(str)
    turn = np.empty(len(table), dtype=np.int64)
    for positions in cells.groupby(cells).indices.values():
        turn[rng.permutation(positions)] = np.arange(len(positions))
    tie = rng.random(len(table))  # cells in a random order within each turn
    return np.lexsort((tie, turn))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--chunk", type=int, default=256, help="texts per cache write (default 256)")
    args = parser.parse_args(argv)
    table, manifest = load_manifest(args.manifest)
    print(f"{manifest['name']}: {len(table)} texts; {table.groupby('dataset').size().to_dict()}", flush=True)
    engine = ScoringEngine(progress=True)
    order = interleaved_order(table, manifest.get("seed", 0))
    texts = [normalize(t).text for t in table["text"].to_numpy()[order]]
    for start in range(0, len(texts), args.chunk):
        engine.token_stats(texts[start : start + args.chunk])
        print(f"{min(start + args.chunk, len(texts))}/{len(texts)} texts cached", flush=True)


if __name__ == "__main__":
    main()
