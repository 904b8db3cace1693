"""Fill the token-statistics cache for a manifest's texts (the slow, resumable part of training).

    python -m train.extract data/all_data.json [--shard K/N] [--skip data/features/all-v3.parquet]
    python -m train.extract data/all_data.json --table OUT.parquet [--base data/features/all-v3.parquet]

Texts go through the LM cell by cell in turn (a cell is a dataset, domain, generator and attack; in a
seeded random order inside each; the humans of a dataset and domain take as many turns as its machine
cells together, since every threshold is set on humans), so a run stopped part-way has every small
cell complete and the large ones equally far along: the most balanced sample the time allowed. A rerun skips what is
cached. Run it alone or with OMP_NUM_THREADS=1. `--table` writes the numeric feature table (no texts) of
the manifest's texts the pass has reached so far, with no LM pass: what `python -m train.default` reads.
A committed table stands in for the statistics of its own texts (`--skip` in the pass, `--base` for the
table), so a pass lost with its machine's cache goes on from the table instead of starting over. A table of
the previous feature version (3: layout kept) stands in for the texts that whitespace collapsing leaves
unchanged (`--carry`, in the pass and for the table): their statistics and features are the same in both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from detector.features.engine import ScoringEngine
from detector.text.normalize import MAX_READ_CHARS, collapse_whitespace, normalize
from train.data import load_manifest
from train.fit import FeatureData
from train.protocol import load_alike


def _cells(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each row's corner (dataset|domain) and cell (corner|generator|attack)."""
    corner = table["dataset"].astype(str) + "|" + table["domain"].astype(str)
    return corner, corner + "|" + table["generator"].astype(str) + "|" + table["attack"].fillna("none").astype(str)


def _human_shares(table: pd.DataFrame) -> pd.Series:
    """Machine cells per corner: a corner's humans take that many texts per turn (and per cap)."""
    corner, cells = _cells(table)
    machine = table["label"].to_numpy() == 1
    return cells[machine].groupby(corner[machine]).nunique()


def interleaved_order(table: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Row positions taking the first text of every cell, then the second of every cell, and so on
    (the humans of a dataset and domain as many per turn as it has machine cells)."""
    rng = np.random.default_rng(seed)
    corner, cells = _cells(table)
    shares = _human_shares(table)
    turn = np.empty(len(table), dtype=float)
    for positions in cells.groupby(cells).indices.values():
        share = 1
        if (table["label"].to_numpy()[positions] == 0).all():
            share = max(1, int(shares.get(corner.iloc[positions[0]], 1)))
        turn[rng.permutation(positions)] = np.arange(len(positions)) // share
    tie = rng.random(len(table))  # cells in a random order within each turn
    return np.lexsort((tie, turn))


def capped(order: np.ndarray, table: pd.DataFrame, done: pd.DataFrame, cap: int) -> np.ndarray:
    """The positions of `order` that bring each machine cell to at most `cap` texts, counting the texts
    already `done` (a table of the same cells), and each corner's humans to `cap` per machine cell: what
    the balanced fit (train.balance, `cap` per cell and length band) can use, and humans to set its
    thresholds on, before texts that would only add to what is plentiful."""
    shares = _human_shares(pd.concat([table, done], ignore_index=True))
    corner, cells = _cells(table)
    counts = _cells(done)[1].value_counts().to_dict()
    labels = table["label"].to_numpy()
    keep = []
    for position in order:
        cell = cells.iloc[position]
        limit = cap if labels[position] == 1 else cap * max(1, int(shares.get(corner.iloc[position], 1)))
        if counts.get(cell, 0) < limit:
            counts[cell] = counts.get(cell, 0) + 1
            keep.append(position)
    return np.asarray(keep, dtype=int)


def base_table(path: str, engine: ScoringEngine, parser: argparse.ArgumentParser) -> FeatureData:
    """A committed feature table, refused unless it was computed as this engine computes (same LM, engine,
    precision, token limit, statistics and feature versions): only then are its rows this pass's rows."""
    from train.default import engine_signature

    return load_alike(path, engine_signature(engine), parser)


def reads_as_before(text: str) -> bool:
    """Whether collapsing whitespace leaves the text as feature version 3 read it (layout kept)."""
    # Normalising changes only non-ASCII characters: an ASCII text is read as it is (up to the read limit).
    before = text[:MAX_READ_CHARS] if text.isascii() else normalize(text, keep_layout=True).text
    return collapse_whitespace(before) == before


def carried_table(path: str, table: pd.DataFrame, engine: ScoringEngine,
                  parser: argparse.ArgumentParser) -> FeatureData:
    """The rows of a version-3 table (same LM, engine, precision and statistics) whose texts in `table` read
    the same with whitespace collapsed, with `table`'s meta columns (its document groups) and the features
    of this version (v3 less paragraph_len_mean)."""
    from train.default import engine_signature

    data = load_alike(path, {**engine_signature(engine), "feature_version": "3"}, parser)
    same = table[[reads_as_before(t) for t in table["text"]]].drop_duplicates("id").set_index("id")
    kept = data.subset(data.table["id"].isin(same.index).to_numpy())
    meta = same.loc[kept.table["id"]].reset_index()[kept.table.columns]
    return FeatureData(meta.assign(text=None), kept.features, kept.n_tokens, kept.problem)


def write_cached_table(table: pd.DataFrame, path: str, parser: argparse.ArgumentParser,
                       base: str | None = None, carry: str | None = None) -> None:
    """The feature table (train.fit.FeatureData, no texts) of the rows whose statistics are cached, plus the
    rows of `base` (a table of the same signature) and of `carry` (version 3) for texts not cached here."""
    from train.default import engine_signature

    if Path(path).exists():
        parser.error(f"{path} exists: the table is written to a new file, never over one")
    engine = ScoringEngine()
    kept = [base_table(base, engine, parser)] if base else []
    kept += [carried_table(carry, table, engine, parser)] if carry else []
    known = set().union(*(set(k.table["id"]) for k in kept))
    rest = table[~table["id"].isin(known)]  # looking a text up normalises it: only those not kept already
    analyses = engine.cached_analyses(rest["text"])
    cached = np.array([a is not None for a in analyses], dtype=bool)
    data = FeatureData.from_analyses(rest[cached], [a for a in analyses if a is not None], workers=2)
    for part in kept:
        part = part.subset(part.table["id"].isin(set(table["id"]) - set(data.table["id"])).to_numpy())
        data = FeatureData.concat([data, part])  # save() writes the meta columns only: no text
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
    parser.add_argument("--base", metavar="PARQUET", help="with --table: keep this table's rows of texts not cached")
    parser.add_argument("--skip", metavar="PARQUET", help="leave out the texts this feature table already holds")
    parser.add_argument("--carry", metavar="PARQUET", help="a version-3 table: its texts that read the same with "
                        "whitespace collapsed are left out of the pass and kept in --table")
    parser.add_argument("--cap", type=int, help="at most this many texts per machine cell (and per machine cell "
                        "of each dataset and domain for its humans), counting those of --skip's table")
    args = parser.parse_args(argv)
    table, manifest = load_manifest(args.manifest)
    if args.table:
        return write_cached_table(table, args.table, parser, args.base, args.carry)
    engine = ScoringEngine(progress=True)
    done = table.iloc[:0]
    known = set()
    if args.skip:
        known |= set(base_table(args.skip, engine, parser).table["id"])
    if args.carry:
        known |= set(carried_table(args.carry, table, engine, parser).table["id"])
    if known:
        skipped = table["id"].isin(known)
        table, done = table[~skipped].reset_index(drop=True), table[skipped]
    order = interleaved_order(table, manifest.get("seed", 0))
    if args.cap:
        order = capped(order, table, done, args.cap)
    chosen = table.iloc[order]
    print(f"{manifest['name']}: {len(chosen)} texts, {len(done)} done already; "
          f"{chosen.groupby('dataset').size().to_dict()}", flush=True)
    texts = [normalize(t).text for t in chosen["text"]]
    shard, shards = (int(v) for v in args.shard.split("/"))
    for number, start in enumerate(range(0, len(texts), args.chunk)):
        if number % shards != shard:
            continue
        engine.token_stats(texts[start : start + args.chunk])
        print(f"{min(start + args.chunk, len(texts))}/{len(texts)} texts cached", flush=True)


if __name__ == "__main__":
    main()
