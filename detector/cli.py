"""Command line: `detector score | features | train | evaluate | bench`.

Exit codes: 0 every item scored; 1 some items failed (each reported on stderr, the rest scored);
2 usage error (bad options, unreadable model, nothing to do).

The library under detector/ never imports train/; only this CLI layer reaches into train/ (lazily,
for the training commands), so `detector score` works with the package alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad options or arguments: one line to stderr, exit 2."""


def _quiet_libraries() -> None:
    """Keep library chatter (transformers, mlflow, tqdm of loaders) off the user's terminal."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="detector: %(message)s")
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


# ----------------------------------------------------------------------------------------- score


def _resolve(path: str) -> Path | None:
    return None if path == "-" else Path(path).resolve()


def _check_output(output: str | None, inputs: list[str], resume: bool) -> None:
    if output is None:
        if resume:
            raise UsageError("--resume needs --output FILE (the file to continue)")
        return
    target = Path(output).resolve()
    for raw in inputs:
        given = _resolve(raw)
        if given is None:
            continue
        if target == given or (given.is_dir() and given in target.parents):
            raise UsageError(f"--output {output} would write inside the input {raw}; choose another file")
    if target.is_dir():
        raise UsageError(f"--output {output} is a folder; give a file name")


def _done_sources(output: str) -> set[str]:
    """Sources already in a JSONL output (for --resume); a torn last line is ignored."""
    done = set()
    path = Path(output)
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError, AttributeError):
                done.add(json.loads(line)["source"])
    return done


def cmd_score(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from detector import inputs, report
    from detector.detector import Detector

    if not args.paths and not args.jsonl:
        raise UsageError("nothing to score: give PATH... (files, folders, - for stdin) or --jsonl FILE")
    given = list(args.paths) + ([args.jsonl] if args.jsonl else [])
    _check_output(args.output, given, args.resume)
    if args.resume and args.format != "jsonl":
        raise UsageError("--resume works with --format jsonl")
    detector = Detector.load(args.model)
    overrides = {k: v for k, v in (("device", args.device), ("dtype", args.dtype)) if v}
    if overrides:  # the model was trained with its card's settings; others change the features slightly
        detector.model.extractor.set_params(**overrides)

    items = list(inputs.iter_paths(args.paths))
    if args.jsonl:
        items += list(inputs.iter_jsonl(args.jsonl, args.text_field))
    skip = _done_sources(args.output) if args.resume else set()
    items = [item for item in items if item.source not in skip]

    stream = open(args.output, "a" if args.resume else "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    streaming = args.format == "jsonl"  # written as scored: an interrupted run keeps what it has
    records, failed = [], 0
    good = [item for item in items if item.error is None]
    bar = tqdm(total=len(good), unit="text", desc="scoring", disable=len(good) < 2 or args.quiet)
    analyses_for_html = []
    try:
        for item in items:
            if item.error is not None:
                failed += 1
                print(f"detector: {item.source}: {item.error}", file=sys.stderr)
                rec = report.record(item, None)
                records.append(rec)
                if streaming:
                    report.write_jsonl([rec], stream)
        for start in range(0, len(good), args.batch_size):
            batch = good[start : start + args.batch_size]
            analyses = detector.analyse([item.text for item in batch])
            results = detector.results(analyses, explain=args.explain)
            if args.html:
                analyses_for_html += list(zip(batch, analyses, results, strict=True))
            batch_records = [report.record(i, r) for i, r in zip(batch, results, strict=True)]
            records += batch_records
            if streaming:
                report.write_jsonl(batch_records, stream)
            bar.update(len(batch))
    except KeyboardInterrupt:
        bar.close()
        where = f"; {args.output} keeps what was scored, continue with --resume" if args.output else ""
        print(f"detector: interrupted{where}", file=sys.stderr)
        return 130
    finally:
        bar.close()
        if stream is not sys.stdout:
            stream.close()
    if not streaming:
        with open(args.output, "w", encoding="utf-8") if args.output else contextlib.nullcontext(sys.stdout) as out:
            (report.write_json if args.format == "json" else report.write_table)(records, out)
    if args.html:
        from detector.html_report import write_html

        write_html(analyses_for_html, detector.model, args.html, tokens=args.html_tokens)
        print(f"detector: wrote {args.html}", file=sys.stderr)
    if skip:
        print(f"detector: resumed, {len(skip)} already scored in {args.output}", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


# ----------------------------------------------------------------------------------------- score-corpus


def cmd_score_corpus(args: argparse.Namespace) -> int:
    """Score a corpus on Spark (pyspark is an optional extra, imported only here)."""
    import time

    local = "://" not in args.output  # URIs (hdfs://, s3a://) are checked by Spark itself when writing
    if local and Path(args.output).exists():
        raise UsageError(f"--output {args.output} exists; choose a new path (it is never overwritten)")
    if "://" not in args.data and not Path(args.data).exists():
        raise UsageError(f"--data {args.data}: no such file or folder")
    try:
        import pyspark  # noqa: F401
    except ImportError as err:
        raise UsageError("score-corpus needs pyspark: pip install 'mgt-detector[spark]' (and Java 17)") from err
    from detector.detector import Detector
    from detector.errors import UserError
    from detector.spark import local_session, read_spec, score_dataframe

    Detector.load(args.model)  # fail here, in one line, rather than in every executor
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    own = SparkSession.getActiveSession() is None  # a caller's session (e.g. a notebook's) is left running
    spark = local_session(args.master, progress=not args.quiet)
    try:
        data = read_spec(spark, args.data, args.data_format)
        parallel = spark.sparkContext.defaultParallelism
        if args.partitions or data.rdd.getNumPartitions() < parallel:  # a small file is one partition: one core
            data = data.repartition(args.partitions or parallel)
        scored = score_dataframe(data, args.text_column, args.model, batch_size=args.batch_size,
                                 threads=args.threads, stats_cache=args.stats_cache)
        scored.write.mode("errorifexists").parquet(args.output)
        written = spark.read.parquet(args.output)
        total = written.count()
        failed = written.filter("error IS NOT NULL").count()
    except Exception as err:  # Spark's Java errors are pages long; the first line says what went wrong
        if isinstance(err, (UsageError, UserError)):
            raise
        raise UsageError(f"score-corpus failed: {_spark_error(err)}") from err
    finally:
        if own:
            spark.stop()
    print(f"detector: wrote {args.output}: {total} rows, {failed} with an error, "
          f"in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _spark_error(err: Exception) -> str:
    """One line from a Spark error: its own message (Py4J's first line only names the Java call)."""
    message = err.getMessage() if hasattr(err, "getMessage") else None  # pyspark's captured exceptions
    if not isinstance(message, str):
        message = str(err)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:300]


def cmd_features(args: argparse.Namespace) -> int:
    from detector.features import FEATURES, LM_FEATURES

    for name, description in FEATURES.items():
        family = "lm" if name in LM_FEATURES else "style"
        print(f"{name:<22} {family:<6} {description}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detector",
        description="Score how likely texts are machine-generated (offline, small LM + calibrated classifier).",
        epilog="Exit codes: 0 all items scored, 1 some items failed (reported, the rest scored), 2 usage error.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score files, folders, stdin (-) or a JSONL file")
    score.add_argument("paths", nargs="*", metavar="PATH", help="files, folders (recursive) or - for stdin")
    score.add_argument("--jsonl", metavar="FILE", help="score the text field of each line; other fields pass through")
    score.add_argument("--text-field", default="text", help="JSONL field holding the text (default: text)")
    score.add_argument("--format", choices=("table", "json", "jsonl"), default="table")
    score.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout (never an input)")
    score.add_argument("--resume", action="store_true", help="with -o and --format jsonl: skip sources already written")
    score.add_argument("--model", metavar="URI_OR_PATH", help="model folder or mlflow URI (default: shipped model)")
    score.add_argument("--explain", action="store_true", help="per-sentence scores and top features")
    score.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    score.add_argument("--html-tokens", action="store_true", help="colour tokens by LM rank (GLTR) in the HTML report")
    score.add_argument("--batch-size", type=int, default=16, help="texts per LM call (default 16)")
    score.add_argument("--device", help="torch device for the LM (default: the model's, cpu)")
    score.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                       help="LM precision (default: the model's, float32; bfloat16 is ~1.6x faster on CPU)")
    score.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    score.set_defaults(func=cmd_score)

    corpus = sub.add_parser("score-corpus", help="score a JSONL/CSV/Parquet corpus on Spark into Parquet")
    corpus.add_argument("--data", required=True, metavar="SPEC", help="JSONL/CSV/Parquet file or folder")
    corpus.add_argument("--data-format", choices=("jsonl", "csv", "parquet"),
                        help="format of --data (default: from the file names' extension)")
    corpus.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    corpus.add_argument("--output", "-o", required=True, metavar="OUT.parquet", help="Parquet folder to write (new)")
    corpus.add_argument("--master", default="local[2]", help="Spark master (default: local[2])")
    corpus.add_argument("--model", metavar="URI_OR_PATH", help="model folder or mlflow URI (default: shipped model)")
    corpus.add_argument("--batch-size", type=int, default=32, help="texts per LM call in a worker (default 32)")
    corpus.add_argument("--threads", type=int, default=1, help="torch threads per Python worker (default 1)")
    corpus.add_argument("--partitions", type=int, help="repartition the data into N partitions first")
    corpus.add_argument("--stats-cache", metavar="PATH", help="token-statistics cache for workers ('default' or a "
                        "file; default: none)")
    corpus.add_argument("--quiet", "-q", action="store_true", help="no Spark progress bar")
    corpus.set_defaults(func=cmd_score_corpus)

    features = sub.add_parser("features", help="list the features with a one-line description each")
    features.set_defaults(func=cmd_features)

    try:
        from train.cli import add_commands
    except ImportError:  # the training package is not installed: scoring still works
        pass
    else:
        add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `detector score ... | head` ends quietly
    from detector.errors import UserError

    try:
        return args.func(args)
    except UsageError as err:
        print(f"detector: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as err:
        print(f"detector: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("detector: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
