"""Output paths the CLI writes to: checked before any work, opened so that nothing is overwritten.

A path is refused (one line, exit 2) when it is an input (by name, through a symlink, or as a hard
link to it: same device and inode), lies inside an input folder, already exists (only `--resume`
appends, and only to a file that is the detector's own output), or its folder does not exist.
New files are opened with O_EXCL ("x" mode), so a file that appears meanwhile is not replaced either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from detector.core.errors import OutputError, printable

RECORD_START = b'{"source": '  # how record.record's JSON lines begin


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _files_under(folder: Path) -> Iterable[Path]:
    for root, _, files in os.walk(folder):
        for name in files:
            yield Path(root) / name


def check_output(path: str, flag: str, inputs: Sequence[str], *, append: bool = False,
                 folder: bool = False) -> Path:
    """Refuse an output that would overwrite an input or an existing file; returns the path.

    `append`: an existing file may be continued (--resume). `folder`: the output is a folder that
    must be new or empty (a saved model).
    """
    target = Path(path)
    shown = f"{flag} {printable(path)}"
    parent = target.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"{shown}: folder {printable(str(parent))} does not exist; create it first")
    resolved = target.resolve()
    exists = target.exists() or target.is_symlink()
    for raw in inputs:
        if raw == "-" or not raw:
            continue
        given = Path(raw)
        real = given.resolve()
        if resolved == real:
            raise OutputError(f"{shown} is the input {printable(raw)}; choose another file")
        if real.is_dir() and real in resolved.parents:
            raise OutputError(f"{shown} lies inside the input folder {printable(raw)}; choose another place")
        if exists and target.is_file():
            candidates = _files_under(real) if real.is_dir() else [real]
            if any(_same_file(target, other) for other in candidates):
                raise OutputError(f"{shown} is a hard link to the input {printable(raw)}; choose another file")
    if folder:
        if exists and not (target.is_dir() and not any(target.iterdir())):
            raise OutputError(f"{shown} already exists and is not an empty folder; give a new folder name")
    elif exists:
        if target.is_dir():
            raise OutputError(f"{shown} is a folder; give a file name")
        if not append:
            raise OutputError(f"{shown} already exists; choose a new file name (outputs never overwrite a file)")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{shown}: cannot write in folder {printable(str(parent))}")
    return target


def check_distinct(paths: dict[str, str | None]) -> None:
    """Two outputs of one command must not be the same file."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        if not path:
            continue
        resolved = Path(path).resolve()
        if resolved in seen:
            raise OutputError(f"{flag} and {seen[resolved]} name the same file {printable(path)}")
        seen[resolved] = flag


def open_new(path: str | Path, flag: str) -> TextIO:
    """Create and open a new file for writing; never replaces one (O_EXCL)."""
    try:
        return open(path, "x", encoding="utf-8")  # noqa: SIM115
    except FileExistsError as err:
        raise OutputError(f"{flag} {printable(str(path))} appeared meanwhile; not overwriting it") from err
    except OSError as err:
        raise OutputError(f"{flag} {printable(str(path))}: cannot create ({err.strerror or err})") from err


def prepare_resume(path: str | Path) -> tuple[set[str], bool]:
    """The sources already in a detector JSONL output, and whether a cut-off last line was dropped.

    Refuses a file that is not the detector's own output (a line that is not a record with a
    `source`). A last line without its newline (the run was killed mid-write) is cut off, so the next
    record does not glue onto it; that input is scored again.
    """
    path = Path(path)
    done: set[str] = set()
    if not path.exists():
        return done, False
    keep = 0  # bytes of complete lines
    torn = False
    foreign = OutputError(f"--resume: {printable(str(path))} is not the detector's JSONL output; not appending "
                          "to (or cutting) a file the detector did not write")
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                if not line.startswith(RECORD_START):  # a fragment of ours starts like every record
                    raise foreign
                torn = True
                break
            keep += len(line)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("source"), str):
                raise foreign
            done.add(record["source"])
    if torn:
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return done, torn
