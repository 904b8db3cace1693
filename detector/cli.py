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


def cmd_features(args: argparse.Namespace) -> int:
    from detector.features import FEATURES, LM_FEATURES

    for name, description in FEATURES.items():
        family = "lm" if name in LM_FEATURES else "style"
        print(f"{name:<22} {family:<6} {description}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from detector.serve import TOKEN_ENV, ServeConfig, serve  # lazy: fastapi only for this command

    for name in ("port", "max_body_bytes", "max_texts", "max_chars", "queue_size", "batch_size"):
        if getattr(args, name) < (0 if name == "port" else 1):
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    config = ServeConfig(host=args.host, port=args.port, token=args.token or os.environ.get(TOKEN_ENV) or None,
                         max_body_bytes=args.max_body_bytes, max_texts=args.max_texts, max_chars=args.max_chars,
                         queue_size=args.queue_size, timeout_s=args.timeout, batch_texts=args.batch_size,
                         log_texts=args.log_texts)
    return serve(args.model, config, device=args.device, dtype=args.dtype)


def add_serve_command(sub) -> None:
    serve = sub.add_parser("serve", help="a local web page and JSON API; model and LM loaded once")
    serve.add_argument("--model", metavar="URI_OR_PATH", help="model folder or mlflow URI (default: shipped model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --token)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--token", help="require `Authorization: Bearer TOKEN` on every API call (or $DETECTOR_TOKEN)")
    serve.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)")
    serve.add_argument("--max-texts", type=int, default=64, help="most texts in one request (default 64)")
    serve.add_argument("--max-chars", type=int, default=100_000, help="longest text in characters (default 100000)")
    serve.add_argument("--queue-size", type=int, default=64, help="requests waiting before 503 (default 64)")
    serve.add_argument("--timeout", type=float, default=60.0, help="seconds a request may wait before 504 (default 60)")
    serve.add_argument("--batch-size", type=int, default=16, help="texts batched into one LM call (default 16)")
    serve.add_argument("--device", help="torch device for the LM (default: the model's, cpu)")
    serve.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="LM precision")
    serve.add_argument("--log-texts", action="store_true", help="log each text and its verdict (default: none)")
    serve.set_defaults(func=cmd_serve)


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

    features = sub.add_parser("features", help="list the features with a one-line description each")
    features.set_defaults(func=cmd_features)
    add_serve_command(sub)

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
