"""Which texts the benchmark runs on: the default manifest's stratified sample, or any data spec.

`--quick` keeps a small, fixed part of it (a cap per generator cell), enough to prove the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from detector_bench import DEFAULT_MANIFEST, ROOT  # noqa: F401  (re-exported: benchmarks look for them here)
from train.data import load_manifest, load_specs, sample_cells

# --quick: at most this many machine texts per (dataset, domain, generator) and humans per (dataset, domain).
QUICK_MACHINE_PER_CELL = 20
QUICK_HUMAN_PER_DOMAIN = 60


def load_table(data: Sequence[str] | None = None, manifest: str | Path = DEFAULT_MANIFEST,
               quick: bool = False, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """(table with train.data.COLUMNS, a one-line description of where it came from)."""
    if data:
        table = load_specs(list(data))
        source = "data " + ", ".join(data)
    else:
        table, spec = load_manifest(manifest)
        source = f"manifest {spec['name']} ({Path(manifest).name})"
        stripped = [Path(s["path"]).stem for s in spec["sources"] if s.get("strip_prefix")]
        if stripped:
            source += f"; {', '.join(stripped)} without the human prompt a machine text shares with its pair"
    if quick:
        table = quick_subset(table, seed)
        source += f", --quick subset (<= {QUICK_MACHINE_PER_CELL} machine texts per generator cell)"
    return table.reset_index(drop=True), source


def quick_subset(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A fixed small stratified part of `table`: every dataset, domain and generator stays present."""
    rng = np.random.default_rng(seed)
    parts = [sample_cells(part, QUICK_MACHINE_PER_CELL, QUICK_HUMAN_PER_DOMAIN, rng)
             for _, part in table.groupby("dataset", sort=True)]
    return pd.concat(parts, ignore_index=True)


def manifest_name(manifest: str | Path) -> str:
    return json.loads(Path(manifest).read_text())["name"]
