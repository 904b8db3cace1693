"""`detector`: the parser of every sub-command and the one place errors become exit codes.

Exit codes: 0 every item scored; 1 some items failed (each reported on stderr, the rest scored);
2 usage error (bad options, unreadable model, nothing to do); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

from detector.core.errors import UserError, printable
from detector.core.interrupts import interrupt_point
from detector_cli import calibrate, score
from detector_cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, HelpFormatter, UsageError, quiet_libraries


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2); sub-commands inherit it."""

    def error(self, message: str):
        from detector.core.errors import printable

        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mgt-detector")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="detector",
        description="Score how likely texts are machine-generated (offline, small LM + calibrated classifier).",
        epilog="examples:\n"
               "  detector score essay.txt                       one file\n"
               "  detector score --data texts.csv --text-column body --format csv -o scored.csv\n"
               "  detector train --data labelled.jsonl --classifier logreg --output my-model\n"
               "  detector evaluate --model my-model --data test.jsonl --plots plots/\n"
               "  detector calibrate --humans my-essays/ -o essays.json; detector score --profile essays.json x.txt\n"
               "  detector COMMAND --help                        options and examples of a command\n\n"
               "Exit codes: 0 all items scored, 1 some items failed (reported, the rest scored), 2 usage error.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command")
    score.add_commands(sub)
    calibrate.add_commands(sub)
    for group in _optional_groups():
        group.add_commands(sub)
    return parser


# The command groups beyond scoring, and the room each needs; scoring works without them.
OPTIONAL_GROUPS = {"train": "train", "bench": "detector_bench"}


def _optional_groups() -> list:
    """The importable optional command modules. A room that is not installed is left out quietly; one
    that is there but fails to import (a broken or missing dependency) is named on stderr, with why, so
    its commands do not vanish without a word."""
    import importlib

    groups = []
    for group, room in OPTIONAL_GROUPS.items():
        try:
            groups.append(importlib.import_module(f"detector_cli.{group}"))
        except ImportError as err:
            if isinstance(err, ModuleNotFoundError) and err.name == room:
                continue
            from detector.core.errors import first_line

            print(f"detector: warning: the {group} commands are unavailable: cannot import "
                  f"{err.name or 'a dependency'} ({first_line(err, 200)})", file=sys.stderr)
    return groups


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code. A Ctrl-C anywhere in it (parsing and imports included) is exit 130
    with one line; the command decides what it keeps (`score` keeps its whole records)."""
    tracking_env = os.environ.get("MLFLOW_TRACKING_URI")  # --tracking-uri sets it for this command only
    try:
        interrupt_point("start-up")
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # bare `detector`: show what it can do
            parser.print_help()
            return EXIT_OK
        quiet_libraries()
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `detector score ... | head` ends quietly
        return args.func(args)
    except (UsageError, UserError) as err:
        print(f"detector: error: {printable(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("detector: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _finished.set()
        if tracking_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = tracking_env


# Set when main() has done its work (outputs closed): a Ctrl-C after that, while the interpreter shuts down
# (joining threads, running exit handlers), ends the process at once with 130 instead of a traceback.
_finished = threading.Event()


def _on_ctrl_c(signum, frame) -> None:
    if not _finished.is_set():
        raise KeyboardInterrupt
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.write(2, b"detector: interrupted while exiting (the command had finished its outputs)\n")
    os._exit(EXIT_INTERRUPTED)


def run() -> None:
    """The `detector` program (and `python -m detector_cli`): main(), then exit with its code.

    Python's default for a KeyboardInterrupt that escapes is to die by SIGINT (exit -2, a traceback): a
    Ctrl-C that landed as a run was ending did that. Here every Ctrl-C is exit 130 with one line: inside
    main() through its handler, after it through `_on_ctrl_c`.
    """
    signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        code = main()
    except KeyboardInterrupt:  # landed in main()'s last lines, after its own handler
        print("detector: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    interrupt_point("shutdown")
    sys.exit(code)


if __name__ == "__main__":
    run()
