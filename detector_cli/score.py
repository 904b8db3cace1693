"""`detector score | score-corpus | features | serve`: argument wiring over the detector package."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from detector.core.interrupts import interrupt_point
from detector.core.settings import DTYPES, ENGINES, TOKEN_ENV
from detector_cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    MODEL_HELP,
    UsageError,
    add_parser,
    add_text_column,
    add_tracking_uri,
    positive_int,
    use_tracking_uri,
)

# ----------------------------------------------------------------------------------------- score


def _check_device(device: str | None) -> None:
    """A bad --device is a usage error now, not a traceback after the model has loaded."""
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
        kind = parsed.type
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"--device {device!r} is not a torch device (e.g. cpu, cuda, cuda:0, mps)") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise UsageError(f"--device {device!r}: no such device on this machine (available: "
                         + ", ".join(k for k, ok in available.items() if ok) + ")")
    if kind == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise UsageError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def _check_score_outputs(args: argparse.Namespace, given: list[str]) -> None:
    """Every output refused before any model or LM work if it would overwrite something."""
    from detector.io.outputs import check_distinct, check_output

    if args.resume:
        if not args.output:
            raise UsageError("--resume needs --output FILE (the file to continue)")
        if args.format != "jsonl":
            raise UsageError("--resume works with --format jsonl")
    check_distinct({"--output": args.output, "--html": args.html})
    if args.output:
        check_output(args.output, "--output", given, append=args.resume)
    if args.html:
        check_output(args.html, "--html", given)


def _table_paths_warning(paths: list[str]) -> None:
    """A .csv/.jsonl/.parquet given as a plain PATH is scored whole, as one text: say so, once each."""
    from detector.core.errors import printable
    from detector.io.tables import table_suffix

    for path in paths:
        if table_suffix(path) and Path(path).is_file():
            print(f"detector: warning: {printable(path)} is scored as one text; to score each row, use "
                  f"--data {printable(path)} --text-column NAME", file=sys.stderr)


def _read_items(args: argparse.Namespace) -> list:
    from detector.io.sources import iter_paths
    from detector.io.tables import iter_table

    items = list(iter_paths(args.paths))
    for spec in args.data or []:
        records = list(iter_table(spec, args.text_column))
        if not records:
            raise UsageError(f"{spec}: no rows to score (the file is empty or blank)")
        items += records
    unique, seen = [], set()
    for item in items:  # the same file named twice (a.txt ./a.txt, or a file and its folder) is scored once
        if item.key and item.key in seen:
            continue
        seen.add(item.key)
        unique.append(item)
    return unique


def _score_inputs(args: argparse.Namespace) -> tuple[list, int]:
    """Everything before the model loads: options checked, outputs refused if they would overwrite
    something, inputs read (a missing --text-column fails in a second), --resume's done inputs dropped.
    Returns the items and how many were dropped."""
    from detector.core.errors import printable
    from detector.io.outputs import prepare_resume
    from detector.io.record import clashing_fields
    from detector.io.tables import check_spec
    from detector.workflows.batch import resume_filter

    if args.jsonl:  # the older spelling: --jsonl FILE is --data FILE
        args.data = [*(args.data or []), args.jsonl]
    if not args.paths and not args.data:
        raise UsageError("nothing to score: give PATH... (files, folders, - for stdin) or --data FILE")
    if "-" in (args.data or []) and "-" in args.paths:
        raise UsageError("stdin (-) can be read once: as a PATH or as --data -, not both")
    for spec in args.data or []:
        check_spec(spec)
    _check_score_outputs(args, list(args.paths) + list(args.data or []))
    _check_device(args.device)
    _table_paths_warning(args.paths)
    done, torn = prepare_resume(args.output) if args.resume else (set(), False)  # refuses a foreign file
    items = _read_items(args)
    clashes = sorted(set().union(*(clashing_fields(item) for item in items)))
    if clashes:
        print(f"detector: warning: input records have fields named like output fields ({', '.join(clashes)}); "
              "kept under \"input\"", file=sys.stderr)
    if torn:
        print(f"detector: {printable(args.output)}: dropped a cut-off last line (that input is scored again)",
              file=sys.stderr)
    return resume_filter(items, done) if args.resume else (items, 0)


def _load_detector(args: argparse.Namespace):
    from detector import Detector

    if args.profile:
        from detector.decision.profile import CalibrationProfile

        args.profile = CalibrationProfile.load(args.profile)  # a broken profile fails before the model loads
    detector = Detector.load(args.model, engine=args.engine, dtype=args.dtype, profile=args.profile,
                             tracking_uri=args.tracking_uri)
    if args.device:
        detector.model.set_lm(device=args.device)
    note = detector.model.check_engine()
    if note:  # the thresholds were set on the statistics the card names
        print(f"detector: note: {note}", file=sys.stderr)
    return detector


@contextlib.contextmanager
def _output(args: argparse.Namespace) -> Iterator[TextIO]:
    """The output stream: stdout, the --resume file appended to, or a new file. A file cut short in a
    buffered format is removed (an empty file of ours would block the next run); JSON lines keep what
    was written, for --resume."""
    from detector.io.outputs import open_new

    if not args.output:
        yield sys.stdout
        return
    stream = open(args.output, "a", encoding="utf-8") if args.resume else open_new(args.output, "--output")  # noqa: SIM115
    try:
        yield stream
    except BaseException:
        stream.close()
        if args.format != "jsonl":
            Path(args.output).unlink(missing_ok=True)
        raise
    stream.close()


def _report(args: argparse.Namespace, detector, for_html: list, skipped: int, scored: int) -> None:
    """The HTML report (when asked for) and the --resume summary."""
    from detector.core.errors import printable

    if args.html:
        from detector.io.html_report import write_html

        try:
            write_html(for_html, detector.model, args.html, tokens=args.html_tokens)
        except OSError as err:  # checked at the start; only a file created meanwhile gets here
            raise UsageError(f"--html {args.html}: not written ({err.strerror or err})") from err
        print(f"detector: wrote {printable(args.html)}", file=sys.stderr)
    if args.resume:
        print(f"detector: resumed: {skipped} of {skipped + scored} inputs were already in "
              f"{printable(args.output)}; scored the other {scored}", file=sys.stderr)


def _interrupted(args: argparse.Namespace) -> int:
    from detector.core.errors import printable

    kept = args.output and args.format == "jsonl"
    where = f"; {printable(args.output)} keeps what was scored, continue with --resume" if kept else ""
    print(f"detector: interrupted{where}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _progress(items: list, quiet: bool):
    """A progress bar over the texts to score (none for a single text or with --quiet)."""
    from tqdm.auto import tqdm

    texts = sum(item.error is None for item in items)
    return tqdm(total=texts, unit="text", desc="scoring", disable=texts < 2 or quiet)


def cmd_score(args: argparse.Namespace) -> int:
    items, skipped = _score_inputs(args)
    ahead = _start_ahead(args, items)
    try:
        return _score_loaded(args, items, skipped)
    finally:
        if ahead is not None:
            ahead.stop()


def _start_ahead(args: argparse.Namespace, items: list):
    """The LM loaded and the first batch's texts scored on a second thread while the model loads
    (detector.facade.ahead); None where that cannot be known before the model is loaded (a --device, say)."""
    if args.device:
        return None
    from detector.facade import ahead

    texts = [item.text for item in items if item.error is None][: args.batch_size]
    return ahead.start(args.model, texts, engine=args.engine, dtype=args.dtype) if texts else None


def _score_loaded(args: argparse.Namespace, items: list, skipped: int) -> int:
    from detector.core.errors import printable
    from detector.io import report
    from detector.workflows.batch import score_items

    detector = _load_detector(args)
    bar = _progress(items, args.quiet)
    failed, for_html = [], []

    def records() -> Iterator[dict]:
        for scored in score_items(detector, items, batch_size=args.batch_size, explain=args.explain):
            if scored.result is None:
                failed.append(scored.item)
                print(f"detector: {printable(scored.item.source)}: {printable(scored.record['error'])}",
                      file=sys.stderr)
            elif args.html:
                for_html.append((scored.item, scored.analysis, scored.result))
            bar.update(scored.result is not None)
            yield scored.record
            interrupt_point("first-record")  # after each written record (the tests interrupt after the first)

    try:
        with bar, _output(args) as stream:
            report.write(records(), stream, args.format)
    except KeyboardInterrupt:
        return _interrupted(args)
    _report(args, detector, for_html, skipped, len(items))
    return EXIT_SOME_FAILED if failed else EXIT_OK


# ----------------------------------------------------------------------------------------- score-corpus


def cmd_score_corpus(args: argparse.Namespace) -> int:
    """Score a corpus on Spark (pyspark is an optional extra, imported only here)."""
    import time

    use_tracking_uri(args)  # Spark's worker processes load a models:/ URI themselves: through the environment
    local = "://" not in args.output  # URIs (hdfs://, s3a://) are checked by Spark itself when writing
    if local and Path(args.output).exists():
        raise UsageError(f"--output {args.output} exists; choose a new path (it is never overwritten)")
    if "://" not in args.data and not Path(args.data).exists():
        raise UsageError(f"--data {args.data}: no such file or folder")
    try:
        import pyspark  # noqa: F401
    except ImportError as err:
        raise UsageError("score-corpus needs pyspark: pip install 'mgt-detector[spark]' (and Java 17)") from err
    from detector import Detector
    from detector.core.errors import UserError
    from detector.integrations.spark import score_dataframe
    from detector.integrations.spark_session import (
        check_workers,
        local_session,
        read_spec,
        spark_error_line,
        worker_modules,
    )

    detector = Detector.load(args.model, profile=args.profile)  # fail here, in one line, not in every executor
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    own = SparkSession.getActiveSession() is None  # a caller's session (e.g. a notebook's) is left running
    spark = local_session(args.master, progress=not args.quiet)
    try:
        check_workers(spark, worker_modules(detector))
        data = read_spec(spark, args.data, args.data_format)
        parallel = spark.sparkContext.defaultParallelism
        partitions = data.rdd.getNumPartitions()
        # A small file is one partition (one core). Local workers serve one task each and load the model
        # for it (detector.integrations.spark_session.LOCAL_WORKERS), so local runs get one partition per core.
        if args.partitions or partitions < parallel or (args.master.startswith("local") and partitions != parallel):
            data = data.repartition(args.partitions or parallel)
        scored = score_dataframe(data, args.text_column, args.model, batch_size=args.batch_size,
                                 threads=args.threads, stats_cache=args.stats_cache, profile=args.profile)
        scored.write.mode("errorifexists").parquet(args.output)
        written = spark.read.parquet(args.output)
        total = written.count()
        failed = written.filter("error IS NOT NULL").count()
    except Exception as err:  # Spark's Java errors are pages long; the first line says what went wrong
        if isinstance(err, (UsageError, UserError)):
            raise
        raise UsageError(f"score-corpus failed: {spark_error_line(err)}") from err
    finally:
        if own:
            spark.stop()
    print(f"detector: wrote {args.output}: {total} rows, {failed} with an error, "
          f"in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def cmd_features(args: argparse.Namespace) -> int:
    from detector.features.engine import FEATURES, LM_FEATURES

    for name, description in FEATURES.items():
        family = "lm" if name in LM_FEATURES else "style"
        print(f"{name:<22} {family:<6} {description}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from detector.integrations.serve import ServeConfig, serve  # lazy: fastapi only for this command

    for name in ("port", "max_body_bytes", "max_texts", "max_chars", "queue_size", "batch_size"):
        if getattr(args, name) < (0 if name == "port" else 1):
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    config = ServeConfig(host=args.host, port=args.port, token=args.token or os.environ.get(TOKEN_ENV) or None,
                         max_body_bytes=args.max_body_bytes, max_texts=args.max_texts, max_chars=args.max_chars,
                         queue_size=args.queue_size, timeout_s=args.timeout, batch_texts=args.batch_size,
                         log_texts=args.log_texts)
    return serve(args.model, config, device=args.device, dtype=args.dtype, engine=args.engine,
                 profile=args.profile, tracking_uri=args.tracking_uri)


def add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", metavar="PROFILE", help="calibration profile from `detector calibrate` "
                        "(made for this model): verdict thresholds set on your own human texts")



def add_lm_options(parser: argparse.ArgumentParser) -> None:
    """--device, --engine, --dtype: how the LM runs (score and serve alike)."""
    parser.add_argument("--device", help="torch device for the LM (default: cpu; off the CPU the engine is torch)")
    parser.add_argument("--engine", choices=ENGINES,
                        help="LM runtime (default: the model's; openvino for the shipped model, the faster: "
                        "detector_bench/SPEED.md)")
    parser.add_argument("--dtype", choices=DTYPES, help="LM precision (default: the model's; bfloat16 for the "
                        "shipped model; another precision shifts p(machine) and is warned about)")

SCORE_EXAMPLES = """
  detector score essay.txt report.pdf letters/        files (.txt, .docx, .pdf) and folders
  echo "Some text to check." | detector score -       standard input
  detector score --data texts.csv --text-column body --format csv -o scored.csv
  detector score --data texts.jsonl --format jsonl -o scored.jsonl --resume
  detector score essay.txt --explain                  why: top features and most machine-like sentences
"""


def add_serve_command(sub) -> None:
    serve = add_parser(sub, "serve", "a local web page and JSON API; model and LM loaded once", """
  detector serve                                      http://127.0.0.1:8000
  detector serve --host 0.0.0.0 --token SECRET        reachable from other machines, with a token
""")
    serve.add_argument("--model", metavar="URI_OR_PATH", help=MODEL_HELP)
    add_profile(serve)
    add_tracking_uri(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (others than 127.0.0.1 need --token)")
    serve.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    serve.add_argument("--token", help="require `Authorization: Bearer TOKEN` on every API call "
                       "(default: $DETECTOR_TOKEN, else none)")
    serve.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body, bytes")
    serve.add_argument("--max-texts", type=int, default=64, help="most texts in one request")
    serve.add_argument("--max-chars", type=int, default=100_000, help="longest text in characters")
    serve.add_argument("--queue-size", type=int, default=64, help="requests waiting before 503")
    serve.add_argument("--timeout", type=float, default=60.0, help="a request's deadline, seconds from its "
                       "arrival; past it: 504")
    serve.add_argument("--batch-size", type=int, default=16, help="texts the worker takes at once (one "
                       "features/classifier call; the LM scores each alone)")
    add_lm_options(serve)
    serve.add_argument("--log-texts", action="store_true", help="log each text and its verdict (default: none)")
    serve.set_defaults(func=cmd_serve)


def add_commands(sub) -> None:
    """The scoring commands on the `detector` parser."""
    score = add_parser(sub, "score", "score files, folders, stdin (-) or the rows of a CSV/Parquet/JSONL table",
                       SCORE_EXAMPLES)
    score.add_argument("paths", nargs="*", metavar="PATH",
                       help="files (text, .docx, .pdf), folders (recursive) or - for stdin; each is one text")
    score.add_argument("--data", nargs="+", metavar="SPEC",
                       help="score each row of JSONL/CSV/Parquet files or folders (or a Hugging Face dataset id); "
                            "other columns pass through to the output")
    add_text_column(score)
    score.add_argument("--jsonl", metavar="FILE", help="the same as --data FILE (kept for older scripts)")
    score.add_argument("--format", choices=("table", "json", "jsonl", "csv"), default="table",
                       help="output format (jsonl is written as it is scored)")
    score.add_argument("--output", "-o", metavar="FILE",
                       help="the file the results are written to, new (never an input, never overwritten) "
                            "(default: stdout)")
    score.add_argument("--resume", action="store_true",
                       help="with -o and --format jsonl: continue that file, skipping inputs already in it")
    score.add_argument("--model", metavar="URI_OR_PATH", help=MODEL_HELP)
    add_profile(score)
    add_tracking_uri(score)
    score.add_argument("--explain", action="store_true",
                       help="per-sentence scores and the features that moved p(machine) most (shown in every format)")
    score.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report here (new file)")
    score.add_argument("--html-tokens", action="store_true", help="colour tokens by LM rank (GLTR) in the HTML report")
    score.add_argument("--batch-size", type=positive_int, default=16, help="texts per LM call")
    add_lm_options(score)
    score.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    score.set_defaults(func=cmd_score)

    corpus = add_parser(sub, "score-corpus", "score a JSONL/CSV/Parquet corpus on Spark into Parquet", """
  detector score-corpus --data corpus.parquet --text-column body -o scored.parquet
  detector score-corpus --data texts/ --data-format jsonl -o scored.parquet --master local[8]
""")
    corpus.add_argument("--data", required=True, metavar="SPEC", help="JSONL/CSV/Parquet file or folder")
    corpus.add_argument("--data-format", choices=("jsonl", "csv", "parquet"),
                        help="format of --data (default: from the file names' extension)")
    add_text_column(corpus, "column")
    corpus.add_argument("--output", "-o", required=True, metavar="OUT.parquet",
                        help="the Parquet folder the results are written to, new (never overwritten)")
    corpus.add_argument("--master", default="local[2]", help="Spark master")
    corpus.add_argument("--model", metavar="URI_OR_PATH", help=MODEL_HELP)
    add_profile(corpus)
    add_tracking_uri(corpus)
    corpus.add_argument("--batch-size", type=int, default=32, help="texts per LM call in a worker")
    corpus.add_argument("--threads", type=int, default=1, help="torch threads per Python worker")
    corpus.add_argument("--partitions", type=int, help="repartition the data into N partitions first "
                        "(default: one per core when the data has fewer)")
    corpus.add_argument("--stats-cache", metavar="PATH", help="token-statistics cache for workers ('default' or a "
                        "file; default: none)")
    corpus.add_argument("--quiet", "-q", action="store_true", help="no Spark progress bar")
    corpus.set_defaults(func=cmd_score_corpus)

    features = add_parser(sub, "features", "list the features with a one-line description each", """
  detector features
""")
    features.set_defaults(func=cmd_features)
    add_serve_command(sub)
