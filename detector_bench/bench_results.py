"""What a benchmark run is asked (`BenchConfig`) and what it produced (`BenchResults`): the records
`bench.py` fills and `results_report.py` writes out, so that neither of those imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from detector_bench import published, sample, views
from detector_bench.contenders import Scored
from detector_bench.shipped import Shipped


@dataclass
class BenchConfig:
    out: Path = sample.ROOT / "detector_bench"
    data: list[str] | None = None
    manifest: Path = sample.DEFAULT_MANIFEST
    published: Path = published.DEFAULT_FOLDER
    quick: bool = False
    seed: int = 0
    attack_texts: int = 100  # machine texts, and as many human texts
    throughput_texts: int = 48
    repeats: int = 2
    command: str = "detector bench"

    def __post_init__(self) -> None:
        if self.quick:
            self.attack_texts = min(self.attack_texts, 10)
            self.throughput_texts = min(self.throughput_texts, 8)
            self.repeats = 1


@dataclass
class BenchResults:
    config: BenchConfig
    source: str
    scored: Scored
    shipped: Shipped
    metrics: pd.DataFrame  # long: every view, cell and contender
    summary: pd.DataFrame  # one row per set x contender
    published_full: pd.DataFrame
    fpr_by_domain: pd.DataFrame
    fpr_by_length: pd.DataFrame
    attacks: pd.DataFrame
    throughput: pd.DataFrame
    curves: list[views.CellScores]
    machine: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
