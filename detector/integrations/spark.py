"""Score a corpus on Spark with the same model: a thin adapter over `detector.facade.detector.Detector`.

    from detector.integrations.spark import score_dataframe
    scored = score_dataframe(spark.read.json("corpus.jsonl"), text_column="text")
    scored.write.parquet("scored.parquet")

Every input column passes through; `p_machine`, `verdict`, `reason`, `n_tokens` and `error` are
added. Scoring runs in `mapInPandas`: each Python worker loads the Detector (and its LM) once and
keeps it for every later batch (and task, where Spark reuses workers: `spark.python.worker.reuse`),
and texts go through the LM in batches of `batch_size`. A row that cannot be scored (null, not a string, empty,
or a text the LM fails on) carries an `error` and the job goes on. No scoring logic lives here: the
numbers are `Detector.score`'s. (`mlflow.pyfunc.spark_udf` over the registered model would give
p(machine) alone; the verdict, its reason and the token count need the Detector, hence mapInPandas.)

pyspark is an optional extra (`pip install 'mgt-detector[spark]'`) and is imported only by this
module, never by `import detector`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from detector.core.errors import UserError
from detector.io.record import TABLE_COLUMNS, spark_fields, table_frame
from detector.workflows.batch import score_values

if TYPE_CHECKING:  # pyspark is optional: imported where used
    import pandas as pd
    from pyspark.sql import DataFrame

    from detector.facade.detector import Detector

DEFAULT_BATCH_SIZE = 32

# One Detector per Python worker and configuration: Spark reuses the worker process across tasks,
# so the model and LM load once per worker, not once per batch or partition.
_DETECTORS: dict[tuple, Detector] = {}
LOADS = {"count": 0}  # Detector loads in this process (the tests check it stays at one per worker)


def worker_detector(location: str | None, stats_cache: str | None, threads: int,
                    profile: str | None = None) -> Detector:
    """The worker's Detector for this model (and calibration profile), loaded on first use with `threads`
    torch threads."""
    key = (location, stats_cache, profile)
    if key not in _DETECTORS:
        # Several workers share a machine's cores: each gets `threads`, not all of them.
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
        from detector.facade.detector import Detector

        detector = Detector.load(location, profile=profile, fastest_runtime=False)  # workers would time each other
        detector.model.set_lm(cache=stats_cache)
        # The LM loads on the first text not in the cache; load it here, so it counts as loading.
        detector.model.scoring_engine.language_model()
        _DETECTORS[key] = detector
        LOADS["count"] += 1
    return _DETECTORS[key]


def _score_partitions(frames: Iterator[pd.DataFrame], *, text_column: str, location: str | None,
                      stats_cache: str | None, threads: int, batch_size: int,
                      profile: str | None = None) -> Iterator[pd.DataFrame]:
    """mapInPandas body: each pandas chunk -> the same rows with the result columns added."""
    import pandas as pd

    detector = None
    started, rows, tokens = time.perf_counter(), 0, 0
    for frame in frames:
        if detector is None:
            fresh = (location, stats_cache, profile) not in _DETECTORS
            detector = worker_detector(location, stats_cache, threads, profile)
            if fresh:
                _log(f"worker pid {os.getpid()}: model loaded in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()  # the partition's rate below is scoring only
        for start in range(0, len(frame), batch_size):
            part = frame.iloc[start : start + batch_size].reset_index(drop=True)
            added = table_frame(score_values(detector, part[text_column].tolist(), batch_size=batch_size))
            rows += len(part)
            tokens += int(added["n_tokens"].fillna(0).sum())
            yield pd.concat([part, added], axis=1)
    if rows:
        from pyspark import TaskContext

        context = TaskContext.get()
        where = f"partition {context.partitionId()}" if context is not None else "partition"
        seconds = time.perf_counter() - started
        _log(f"{where}: {rows} rows, {tokens} tokens scored in {seconds:.1f} s "
             f"({tokens / max(seconds, 1e-9):.0f} tokens/s, {threads} thread(s), pid {os.getpid()})")


def _log(message: str) -> None:
    # Worker stderr reaches the driver's console in local mode and the executor log on a cluster.
    print(f"detector: {message}", file=sys.stderr, flush=True)


def _model_location(model: str | None) -> str | None:
    """Absolute path for a local model folder (workers may run elsewhere); URIs unchanged."""
    if model is None:
        return None
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


def score_dataframe(df: DataFrame, text_column: str = "text", model: str | None = None, *,
                    batch_size: int = DEFAULT_BATCH_SIZE, threads: int = 1,
                    stats_cache: str | None = None, profile: str | None = None) -> DataFrame:
    """`df` with p_machine, verdict, reason, n_tokens and error columns added (lazy, like any transform).

    model : a model folder or mlflow URI every executor can reach, or None for the shipped model.
    batch_size : texts per `Detector.score` call inside a worker.
    threads : torch threads per Python worker (1 when each task has one core).
    stats_cache : token-statistics cache for the workers: None keeps nothing (a corpus is seen once),
        "default" uses each machine's user cache directory, or a path to a cache file.
    profile : a calibration profile file every executor can reach (`detector calibrate`), or None.
    """
    from pyspark.sql.types import StringType, StructType

    fields = {field.name: field for field in df.schema.fields}
    if text_column not in fields:
        raise UserError(f"no column {text_column!r} in the data (columns: {', '.join(fields) or 'none'})")
    if not isinstance(fields[text_column].dataType, StringType):
        # Every row would fail; say it once instead.
        raise UserError(f"column {text_column!r} holds {fields[text_column].dataType.simpleString()}, not text")
    taken = [name for name in TABLE_COLUMNS if name in fields]
    if taken:
        raise UserError(f"the data already has column(s) {', '.join(taken)}; rename them before scoring")
    if batch_size < 1 or threads < 1:
        raise UserError("batch_size and threads must be at least 1")
    # A StructType, not a DDL string: any column name or nested type passes through as it is.
    schema = StructType(list(df.schema.fields) + spark_fields())
    location, profile = _model_location(model), _model_location(profile)

    def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return _score_partitions(frames, text_column=text_column, location=location,
                                 stats_cache=stats_cache, threads=threads, batch_size=batch_size, profile=profile)

    return df.mapInPandas(score, schema)


# ----------------------------------------------------------------------------------------- session


