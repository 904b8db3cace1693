"""Score a corpus on Spark with the same model: a thin adapter over `detector.detector.Detector`.

    from detector.spark import score_dataframe
    scored = score_dataframe(spark.read.json("corpus.jsonl"), text_column="text")
    scored.write.parquet("scored.parquet")

Every input column passes through; `p_machine`, `verdict`, `reason`, `n_tokens` and `error` are
added. Scoring runs in `mapInPandas`: each Python worker loads the Detector (and its LM) once and
keeps it for every later batch and task (`spark.python.worker.reuse`, Spark's default), and texts
go through the LM in batches of `batch_size`. A row that cannot be scored (null, not a string, empty,
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.errors import UserError, first_line

if TYPE_CHECKING:  # pyspark is optional: imported where used
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from detector.detector import Detector

# Added columns and their Spark SQL types, in output order.
OUTPUT_COLUMNS = (
    ("p_machine", "double"),
    ("verdict", "string"),
    ("reason", "string"),
    ("n_tokens", "int"),
    ("error", "string"),
)
DEFAULT_BATCH_SIZE = 32

# One Detector per Python worker and configuration: Spark reuses the worker process across tasks,
# so the model and LM load once per worker, not once per batch or partition.
_DETECTORS: dict[tuple, Detector] = {}
LOADS = {"count": 0}  # Detector loads in this process (the tests check it stays at one per worker)


def worker_detector(location: str | None, stats_cache: str | None, threads: int) -> Detector:
    """The worker's Detector for this model, loaded on first use with `threads` torch threads."""
    key = (location, stats_cache)
    if key not in _DETECTORS:
        # Several workers share a machine's cores: each gets `threads`, not all of them.
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
        from detector.detector import Detector

        detector = Detector.load(location, fastest_runtime=False)  # workers would time each other
        detector.model.extractor.set_params(cache=stats_cache)
        # The LM loads on the first text not in the cache; load it here, so it counts as loading.
        detector.model.scoring_engine.language_model()
        _DETECTORS[key] = detector
        LOADS["count"] += 1
    return _DETECTORS[key]


def _row_error(value: Any) -> str | None:
    """Why a cell cannot be scored, or None (the same refusals as `detector score` on files)."""
    if value is None or (isinstance(value, float) and value != value):  # pandas gives NaN or None for null
        return "text is null"
    if not isinstance(value, str):
        return f"text is not a string ({type(value).__name__})"
    if not value:
        return "text is empty"
    if not value.strip():
        return "whitespace only, nothing to score"
    return None


def _one_line(err: BaseException) -> str:
    first = first_line(err, 300)
    return first if first == type(err).__name__ else f"{type(err).__name__}: {first}"


def score_texts(detector: Any, values: Sequence[Any]) -> list[dict]:
    """One output record per value: the Detector's result, or an `error` and nulls.

    The good texts go to `detector.score` together; if that call fails, each text is retried alone
    so only the texts that fail themselves carry the error.
    """
    out: list[dict] = [{}] * len(values)
    good = []
    for i, value in enumerate(values):
        problem = _row_error(value)
        if problem is None:
            good.append(i)
        else:
            out[i] = _failed(problem)
    if not good:
        return out
    try:
        results = detector.score([values[i] for i in good])
    except Exception:  # noqa: BLE001 - one bad text must not fail the batch; retried one by one
        results = []
        for i in good:
            try:
                [result] = detector.score([values[i]])
            except Exception as err:  # noqa: BLE001
                result = _failed(_one_line(err))
            results.append(result)
    for i, result in zip(good, results, strict=True):
        out[i] = result if isinstance(result, dict) else {
            "p_machine": result.p_machine, "verdict": result.verdict, "reason": result.reason,
            "n_tokens": int(result.n_tokens), "error": None,
        }
    return out


def _failed(message: str) -> dict:
    return {"p_machine": None, "verdict": None, "reason": None, "n_tokens": None, "error": message}


def _score_partitions(frames: Iterator[pd.DataFrame], *, text_column: str, location: str | None,
                      stats_cache: str | None, threads: int, batch_size: int) -> Iterator[pd.DataFrame]:
    """mapInPandas body: each pandas chunk -> the same rows with the result columns added."""
    import pandas as pd

    detector = None
    started, rows, tokens = time.perf_counter(), 0, 0
    for frame in frames:
        if detector is None:
            fresh = (location, stats_cache) not in _DETECTORS
            detector = worker_detector(location, stats_cache, threads)
            if fresh:
                _log(f"worker pid {os.getpid()}: model loaded in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()  # the partition's rate below is scoring only
        for start in range(0, len(frame), batch_size):
            part = frame.iloc[start : start + batch_size].reset_index(drop=True)
            records = score_texts(detector, part[text_column].tolist())
            added = pd.DataFrame.from_records(records, columns=[name for name, _ in OUTPUT_COLUMNS])
            added["p_machine"] = added["p_machine"].astype("float64")
            added["n_tokens"] = added["n_tokens"].astype("Int32")
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
                    stats_cache: str | None = None) -> DataFrame:
    """`df` with p_machine, verdict, reason, n_tokens and error columns added (lazy, like any transform).

    model : a model folder or mlflow URI every executor can reach, or None for the shipped model.
    batch_size : texts per `Detector.score` call inside a worker.
    threads : torch threads per Python worker (1 when each task has one core).
    stats_cache : token-statistics cache for the workers: None keeps nothing (a corpus is seen once),
        "default" uses each machine's user cache directory, or a path to a cache file.
    """
    from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

    fields = {field.name: field for field in df.schema.fields}
    if text_column not in fields:
        raise UserError(f"no column {text_column!r} in the data (columns: {', '.join(fields) or 'none'})")
    if not isinstance(fields[text_column].dataType, StringType):
        # Every row would fail; say it once instead.
        raise UserError(f"column {text_column!r} holds {fields[text_column].dataType.simpleString()}, not text")
    taken = [name for name, _ in OUTPUT_COLUMNS if name in fields]
    if taken:
        raise UserError(f"the data already has column(s) {', '.join(taken)}; rename them before scoring")
    if batch_size < 1 or threads < 1:
        raise UserError("batch_size and threads must be at least 1")
    kinds = {"double": DoubleType(), "string": StringType(), "int": IntegerType()}
    # A StructType, not a DDL string: any column name or nested type passes through as it is.
    added = [StructField(name, kinds[kind], True) for name, kind in OUTPUT_COLUMNS]
    schema = StructType(list(df.schema.fields) + added)
    location = _model_location(model)

    def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return _score_partitions(frames, text_column=text_column, location=location,
                                 stats_cache=stats_cache, threads=threads, batch_size=batch_size)

    return df.mapInPandas(score, schema)


# ----------------------------------------------------------------------------------------- session


def local_session(master: str = "local[2]", app_name: str = "detector score-corpus",
                  progress: bool = True) -> SparkSession:
    """A SparkSession whose Python workers can import this package and reuse their loaded model.

    For local masters the workers are children of this process: they get this interpreter and this
    package's folder on PYTHONPATH. On a cluster, install the wheel on every executor instead.
    """
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no network needed, nor the warning about it
        root = str(Path(__file__).resolve().parent.parent)
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if root not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, paths)])
    builder = (
        SparkSession.builder.master(master).appName(app_name)
        .config("spark.python.worker.reuse", "true")  # the loaded Detector survives between tasks
        .config("spark.ui.showConsoleProgress", "true" if progress else "false")
        .config("spark.ui.enabled", "false")
        # Arrow chunks small enough that a slow LM shows progress and memory stays flat.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def read_spec(spark: SparkSession, spec: str, data_format: str | None = None) -> DataFrame:
    """A JSONL/CSV/Parquet file or folder, local or a URI Spark reads (hdfs://, s3a://, ...), as a DataFrame.

    The format comes from `data_format`, else the file names' extension.
    """
    remote = "://" in spec and not spec.startswith("file://")
    path = Path(spec.removeprefix("file://"))
    folder = False
    if remote:
        suffix = Path(spec.rstrip("/")).suffix.lower()
    elif not path.exists():
        raise UserError(f"{spec}: no such file or folder")
    elif path.is_dir():
        folder = True
        suffixes = {p.suffix.lower() for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))}
        if not suffixes and data_format is None:
            raise UserError(f"{spec}: folder holds no data files")
        if len(suffixes) > 1 and data_format is None:
            raise UserError(f"{spec}: mixes {', '.join(sorted(suffixes))} files; give one format per folder")
        suffix = next(iter(suffixes), "")
    else:
        suffix = path.suffix.lower()
    kind = data_format or FORMATS.get(suffix)
    if kind is None:
        raise UserError(f"{spec}: unknown format {suffix or '(no extension)'}; use .jsonl, .csv or .parquet "
                        "files (or say which with the data format)")
    target = spec if remote else str(path.resolve())
    options = {"recursiveFileLookup": True} if folder or remote else {}
    if kind == "jsonl":
        return spark.read.json(target, mode="PERMISSIVE", **options)
    if kind == "csv":  # texts span lines and hold quotes: RFC 4180 quoting
        return spark.read.csv(target, header=True, multiLine=True, escape='"', **options)
    if kind == "parquet":
        return spark.read.parquet(target, **options)
    raise UserError(f"unknown data format {kind!r}; use jsonl, csv or parquet")
