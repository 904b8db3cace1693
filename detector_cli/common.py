"""What every command shares: exit codes, the usage error, argparse types and the quiet terminal."""

from __future__ import annotations

import argparse
import logging
import os
import warnings

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it
MODEL_HELP = "model folder, or an mlflow model URI (models:/NAME/VERSION, runs:/ID/model) (default: the shipped model)"


class UsageError(Exception):
    """Bad options or arguments: one line to stderr, exit 2."""


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def rate(value: str) -> float:
    """argparse type: a rate strictly between 0 and 1."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (e.g. 0.01 for 1%), not {number}")
    return number


def quiet_libraries() -> None:
    """Keep library chatter (transformers, mlflow, tqdm of loaders) off the user's terminal; what the
    detector prepares once per machine is said in one line (the `detector.prepare` logger). Imports
    none of those libraries: transformers reads its verbosity from the environment when it loads, and
    the detector turns its loading bars off itself (detector.lm.torch_engine)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="detector: %(message)s")
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("detector.prepare").setLevel(logging.INFO)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written (epilog), and each option's default shown unless its help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and "default" not in text and action.default not in (None, False, [], ())
                and action.default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def add_parser(sub, name: str, summary: str, examples: str, description: str | None = None) -> argparse.ArgumentParser:
    """A sub-command with its one-line summary, a description and examples at the end of its --help."""
    return sub.add_parser(name, help=summary, description=description or summary[:1].upper() + summary[1:] + ".",
                          epilog="examples:\n" + examples.strip("\n"), formatter_class=HelpFormatter)


def add_text_column(parser: argparse.ArgumentParser, what: str = "column (CSV/Parquet) or field (JSONL)") -> None:
    """--text-column, the one name for it on every command; --text-field is kept as a hidden alias."""
    parser.add_argument("--text-column", default="text", metavar="NAME", help=f"the {what} holding the text")
    parser.add_argument("--text-field", dest="text_column", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_tracking_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="mlflow tracking store for runs and models:/ URIs (default: $MLFLOW_TRACKING_URI, "
                             "else sqlite:///mlflow.db in the current folder)")


def use_tracking_uri(args: argparse.Namespace) -> None:
    """--tracking-uri wins over $MLFLOW_TRACKING_URI in this process and the worker processes it starts
    (only `score-corpus` needs this: elsewhere the URI is passed as a parameter)."""
    if getattr(args, "tracking_uri", None):
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
