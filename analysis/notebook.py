"""What the notebooks share: settings from the environment, figures shown and saved, the committed
data they fall back to, and the detector to explore.

Every notebook runs as-is from a checkout: with no DETECTOR_NB_* variable set it reads only files
committed in the repository (the shipped model, `data/features/*.parquet`, `detector_bench/results/*.csv`,
the small example set `tests/fixtures/mini.jsonl`) and saves its figures in the user cache folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED_TEXT = REPO_ROOT / "seeds" / "000_8fefe67b85776a8f.txt"
# 80 labelled texts of our own (docstring prose and SmolLM2 continuations, tests/fixtures/make_fixtures.py):
# texts to score when no data is named.
EXAMPLE_TEXTS = REPO_ROOT / "tests" / "fixtures" / "mini.jsonl"
# The committed feature table of the default model's training sample (no texts): analysis without an LM pass.
FEATURE_TABLE = REPO_ROOT / "data" / "features" / "all-v3.parquet"
BENCHMARK_RESULTS = REPO_ROOT / "detector_bench" / "results"

ENV_VARS = {
    "DETECTOR_NB_DATA": "data spec to analyse / train on (JSONL, CSV, Parquet, folder, or a committed feature "
                        "table); default: per notebook, committed files",
    "DETECTOR_NB_MODEL": "model folder or mlflow URI; default: the shipped model",
    "DETECTOR_NB_TRACKING_URI": "mlflow tracking store to read runs from; default: a temporary SQLite store",
    "DETECTOR_NB_EXPERIMENT": "mlflow experiment to read (default: notebook-demo)",
    "DETECTOR_NB_BENCHMARK": "benchmark results folder or summary CSV (default: detector_bench/results; "
                             "'none' = compute a small side-by-side)",
    "DETECTOR_NB_FIGURES": "folder where every figure is saved as PNG (default: the user cache folder)",
}


def default_figures_folder() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("mgt-detector") / "notebook-figures"


@dataclass
class NotebookSettings:
    """What a notebook reads from the environment (see `ENV_VARS`)."""

    data: str | None
    model: str | None
    tracking_uri: str | None
    experiment: str
    benchmark: Path | None
    figures: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotebookSettings:
        env = os.environ if environ is None else environ
        benchmark = env.get("DETECTOR_NB_BENCHMARK") or str(BENCHMARK_RESULTS)
        return cls(
            data=env.get("DETECTOR_NB_DATA") or None,
            model=env.get("DETECTOR_NB_MODEL") or None,
            tracking_uri=env.get("DETECTOR_NB_TRACKING_URI") or None,
            experiment=env.get("DETECTOR_NB_EXPERIMENT") or "notebook-demo",
            benchmark=None if benchmark.lower() == "none" else Path(benchmark),
            figures=Path(env.get("DETECTOR_NB_FIGURES") or default_figures_folder()),
        )

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"setting": list(self.__dict__), "value": [str(v) for v in self.__dict__.values()]})


class Figures:
    """Shows each figure once in the notebook, saves it as `<folder>/<prefix>_<name>.png` and closes it
    (so memory stays flat and Jupyter does not show it a second time)."""

    def __init__(self, folder: str | Path, prefix: str):
        self.folder = Path(folder)
        self.prefix = prefix
        self.saved: list[Path] = []

    def show(self, fig, name: str) -> Path:
        from analysis.plots import save

        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                display(fig)
        except ImportError:
            pass
        path = save(fig, self.folder / f"{self.prefix}_{name}.png")
        self.saved.append(path)
        return path


# ----- data -----


def is_feature_table(spec: str | Path | None) -> bool:
    """A Parquet file written by `FeatureData.save` (features and n_tokens, no texts)."""
    if spec is None or Path(spec).suffix != ".parquet" or not Path(spec).is_file():
        return False
    import pyarrow.parquet as pq

    return {"n_tokens", "problem"} <= set(pq.read_schema(spec).names)


def unseen_rows(data, seed: int = 0):
    """The rows of `data` (FeatureData) in the grouped test split of `seed`: for a model trained on the
    same table with the same seed (the shipped one on `FEATURE_TABLE`), texts it never saw."""
    from train.splits import train_val_test

    return data.subset((train_val_test(data.table, seed=seed) == "test").to_numpy())


# ----- the detector to explore -----


def load_detector(model: str | None):
    """(Detector, how it was obtained): `model` if given, else the shipped default model."""
    from detector import Detector

    if model:
        return Detector.load(model), f"model {model}"
    return Detector(), "the shipped default model"


def trained_on(model, table: pd.DataFrame) -> list[str]:
    """Datasets of `table` whose name appears in the model's training data (results there are optimistic)."""
    seen = set(model.card.training_data)
    return sorted(seen & {str(d) for d in table["dataset"].unique()})
