"""`detector calibrate`: verdict thresholds set on the user's own human texts, written as a profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector_cli.common import (
    EXIT_OK,
    MODEL_HELP,
    UsageError,
    add_parser,
    add_text_column,
    add_tracking_uri,
    positive_int,
    rate,
    use_tracking_uri,
)


def readable_texts(spec: str, text_column: str, flag: str) -> list[str]:
    """The texts of a SPEC (`detector.io.tables.read_texts`); unreadable items are reported on stderr and left
    out, none at all is a usage error."""
    from detector.core.errors import printable
    from detector.io.tables import read_texts

    texts, bad = read_texts(spec, text_column)
    for item in bad[:5]:
        print(f"detector: {flag} {printable(item.source)}: {printable(item.error)} (left out)", file=sys.stderr)
    if len(bad) > 5:
        print(f"detector: {flag}: {len(bad) - 5} more unreadable item(s) left out", file=sys.stderr)
    if not texts:
        raise UsageError(f"{flag} {printable(spec)}: no readable texts")
    return texts


def cmd_calibrate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from detector import Detector
    from detector.core.errors import CalibrationError, printable
    from detector.decision.conformal import minimum_humans, too_few_message
    from detector.io.outputs import check_output
    from detector.workflows.calibrate import calibrate

    given = [args.humans] + ([args.machines] if args.machines else [])
    check_output(args.output, "--output", given)
    use_tracking_uri(args)
    tracking = None
    if not args.no_mlflow:
        try:
            from train import tracking
        except ImportError as err:
            raise UsageError("logging to mlflow needs the source checkout's train/ package; add --no-mlflow") from err
        tracking.connect(args.tracking_uri, args.experiment)  # before the LM pass: a dead store fails now
    humans = readable_texts(args.humans, args.text_column, "--humans")
    if len(humans) < minimum_humans(args.fpr):  # refused now, not after the LM pass
        raise CalibrationError(too_few_message(len(humans), args.fpr))
    machines = readable_texts(args.machines, args.text_column, "--machines") if args.machines else None
    detector = Detector.load(args.model, engine=args.engine, dtype=args.dtype)
    if args.device:
        detector.model.set_lm(device=args.device)
    total = len(humans) + len(machines or [])
    with tqdm(total=total, unit="text", desc="scoring", disable=total < 2 or args.quiet) as bar:
        profile = calibrate(detector, humans, Path(args.output).name, args.fpr, machines, source=args.humans,
                            batch_size=args.batch_size, progress=bar, adapt=not args.thresholds_only)
    profile.save(args.output)
    for line in profile.summary():
        print(f"detector: {printable(line)}", file=sys.stderr)
    print(f"detector: wrote {printable(args.output)}", file=sys.stderr)
    if tracking is not None:
        run_id = tracking.log_calibration(profile, args.output, given, detector.model.lm_params(),
                                          args.run_name)
        print(f"detector: mlflow run {run_id}", file=sys.stderr)
    return EXIT_OK


EXAMPLES = """
  detector calibrate --humans essays-2024/ --output essays.json          a folder of files, one text each
  detector calibrate --humans posts.csv --text-column body --machines generated.jsonl --fpr 0.01 -o forum.json
  detector score --profile essays.json new-essays/                      verdicts by the profile's thresholds
"""


def add_commands(sub) -> None:
    from detector_cli.score import add_lm_options

    parser = add_parser(sub, "calibrate", "set the verdict thresholds on your own human texts (a profile file)",
                        EXAMPLES, description=(
                            "Score human texts of your own (last year's essays, an archive, pre-2022 posts) once and "
                            "write a calibration profile: the ranking's last stage refitted to them against machine "
                            "texts (the model's shipped machine rows nearest your humans, and --machines), cross-"
                            "fitted, and thresholds per length band set on the humans' out-of-fold scores for the "
                            "false-positive rate asked, with its 95% binomial bound and the TPR to expect. Use it "
                            "with --profile on score, serve and score-corpus."))
    parser.add_argument("--humans", required=True, metavar="SPEC",
                        help="human texts: a folder or file(s) (one text each), or a JSONL/CSV/Parquet table "
                             "(one text per row, see --text-column)")
    parser.add_argument("--machines", metavar="SPEC", help="machine texts of the same kind (optional): the refit "
                        "learns from them too, and the profile's TPR is measured on them out of fold")
    parser.add_argument("--thresholds-only", action="store_true",
                        help="only set thresholds on the model's own scores (no refit; the first profile version)")
    add_text_column(parser)
    parser.add_argument("--fpr", type=rate, default=0.01, help="false-positive rate to set the machine threshold for")
    parser.add_argument("--output", "-o", required=True, metavar="PROFILE",
                        help="the profile file to write, new (never overwritten), e.g. essays.json")
    parser.add_argument("--model", metavar="URI_OR_PATH", help=MODEL_HELP)
    add_tracking_uri(parser)
    parser.add_argument("--experiment", default="detector", help="mlflow experiment of the calibration run")
    parser.add_argument("--run-name", help="mlflow run name (default: calibrate-PROFILE-TIME)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log a calibration run")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="texts per LM call")
    add_lm_options(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(func=cmd_calibrate)
