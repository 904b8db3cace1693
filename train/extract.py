"""Fill the token-statistics cache for a manifest's texts (the slow, resumable part of training).

    python -m train.extract data/all_data.json [--shard K/N]
    python -m train.extract data/all_data.json --table data/features/all-v3.parquet

Texts go through the LM cell by cell in turn (a cell is a dataset, domain, generator and attack; in a
seeded random order inside each; the humans of a dataset and domain take as many turns as its machine
cells together, since every threshold is set on humans), so a run stopped part-way has every small
cell complete and the large ones equally far along: the most balanced sample the time allowed. A rerun skips what is
cached. Run it alone or with OMP_NUM_THREADS=1. `--table` writes the numeric feature table (no texts) of
the manifest's texts the pass has reached so far, with no LM pass: what `python -m train.default` reads.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from detector.features import ScoringEngine
from detector.normalize import normalize
from train.data import load_manifest


def interleaved_order(table: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Row positions taking the first text of every cell, then the second of every cell, and so on
    (the humans of a dataset and domain as many per turn as it has machine cells)."""
    rng = np.random.default_rng(seed)
    corner = table["dataset"].astype(str) + "|" + table["domain"].astype(str)
    cells = corner + "|" + table["generator"].astype(str) + "|" + table["attack"].fillna("none").astype(str)
    machine_cells = cells[table["label"] == 1].groupby(corner[table["label"] == 1]).nunique()
    turn = np.empty(len(table), dtype=float)
    for cell, positions in cells.groupby(cells).indices.items():
        share = 1
        if (table["label"].to_numpy()[positions] == 0).all():
            share = max(1, int(machine_cells.get(cell.split("|", 2)[0] + "|" + cell.split("|", 2)[1], 1)))
        turn[rng.permutation(positions)] = np.arange(len(positions)) // share
    tie = rng.random(len(table))  # cells in a random order within each turn
    return np.lexsort((tie, turn))


def write_cached_table(table: pd.DataFrame, path: str) -> None:
    """The feature table (train.fit.FeatureData, no texts) of the rows whose statistics are cached."""
    from train.default import engine_signature
    from train.fit import FeatureData

    engine = ScoringEngine()
    analyses = engine.cached_analyses(table["text"])
    cached = np.array([a is not None for a in analyses])
    data = FeatureData.from_analyses(table[cached], [a for a in analyses if a is not None], workers=2)
    data.save(path, **engine_signature(engine))
    counts = data.table.groupby("dataset").size().to_dict()
    print(f"{path}: {len(data.table)} of {len(table)} texts ({counts}), {int(data.n_tokens.sum())} tokens", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--chunk", type=int, default=256, help="texts per cache write (default 256)")
    parser.add_argument("--shard", default="0/1", metavar="K/N",
                        help="this process takes chunks K, K+N, K+2N, ... (N processes of one LM thread each "
                             "share a busy machine better than one process of N threads)")
    parser.add_argument("--table", metavar="PARQUET", help="write the feature table of the texts already cached")
    args = parser.parse_args(argv)
    table, manifest = load_manifest(args.manifest)
    if args.table:
        return write_cached_table(table, args.table)
    print(f"{manifest['name']}: {len(table)} texts; {table.groupby('dataset').size().to_dict()}", flush=True)
    engine = ScoringEngine(progress=True)
    order = interleaved_order(table, manifest.get("seed", 0))
    texts = [normalize(t).text for t in table["text"].to_numpy()[order]]
    shard, shards = (int(v) for v in args.shard.split("/"))
    for number, start in enumerate(range(0, len(texts), args.chunk)):
        if number % shards != shard:
            continue
        engine.token_stats(texts[start : start + args.chunk])
        print(f"{min(start + args.chunk, len(texts))}/{len(texts)} texts cached", flush=True)


if __name__ == "__main__":
    main()
