"""Human reference texts from this machine: man pages, package documentation and Python's docstrings.

Written by people, on every Debian machine, and unlike the development sets (technical, how-to prose,
the kind of human text a small LM finds easy to predict). They are human-only, so they prove nothing
about detecting machine text on their own; they serve as out-of-domain humans for choosing verdict
thresholds and as a check of the false-positive rate.

    python -m train.references --out refs.jsonl     # a data spec in the schema of ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from train.data import COLUMNS

MIN_WORDS, MAX_WORDS = 50, 400
_PROSE = re.compile(r"[A-Za-z][^\n]*[.!?]$")


def _prose_paragraphs(text: str) -> list[str]:
    """Paragraphs of running prose: mostly letters, ending like a sentence, 50-400 words."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        joined = " ".join(para.split())
        n_words = len(joined.split())
        letters = sum(c.isalpha() or c.isspace() for c in joined)
        if MIN_WORDS <= n_words <= MAX_WORDS and letters > 0.9 * len(joined) and _PROSE.match(joined):
            out.append(joined)
    return out


def man_page_paragraphs(limit: int, rng: np.random.Generator) -> list[str]:
    """Prose paragraphs of randomly chosen section-1/8 man pages, rendered by `man`."""
    pages = sorted({p.name.split(".")[0] for d in ("/usr/share/man/man1", "/usr/share/man/man8")
                    if os.path.isdir(d) for p in Path(d).iterdir()})
    # One vendor's generated CLI pages (gcloud ...) can outnumber all others: one family, one vote.
    pages = sorted({re.split(r"[-_]", page)[0]: page for page in rng.permutation(pages)}.values())
    out: list[str] = []
    env = {**os.environ, "MANWIDTH": "10000", "MAN_KEEP_FORMATTING": "0"}
    for page in rng.permutation(pages):
        if len(out) >= limit:
            break
        try:
            done = subprocess.run(["man", "-P", "cat", str(page)], capture_output=True, text=True, timeout=10,
                                  env=env)
        except (OSError, subprocess.TimeoutExpired):
            continue
        paragraphs = _prose_paragraphs(re.sub(r".\x08", "", done.stdout))
        out += paragraphs[:2]  # a few per page: many pages, not a few long ones
    return out[:limit]


def package_doc_paragraphs(limit: int, rng: np.random.Generator) -> list[str]:
    """Prose paragraphs of README files under /usr/share/doc."""
    files = sorted(p for p in Path("/usr/share/doc").glob("*/README*") if p.is_file())
    out: list[str] = []
    for path in rng.permutation(np.array(files, dtype=object)):
        if len(out) >= limit:
            break
        try:
            raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
            text = raw[:200_000].decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            continue
        out += _prose_paragraphs(text)[:3]
    return out[:limit]


# Standard-library modules that open windows, print or change state when imported.
_NOT_IMPORTED = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "pydoc_data"}


def _documented(module) -> list:
    """A module and the classes and functions it defines (not those it imports)."""
    own = [v for k, v in sorted(vars(module).items()) if not k.startswith("_")
           and (inspect.isclass(v) or inspect.isfunction(v)) and getattr(v, "__module__", None) == module.__name__]
    return [module, *own]


def python_doc_paragraphs(limit: int, rng: np.random.Generator) -> list[str]:
    """Prose paragraphs of the docstrings of Python's standard library (reference prose: what a thing is
    and how to use it), a few per module, modules in a seeded random order."""
    out: list[str] = []
    names = sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in _NOT_IMPORTED)
    for name in rng.permutation(names):
        if len(out) >= limit:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(str(name))
        except Exception:  # noqa: BLE001 - platform-only or broken modules just give no paragraphs
            continue
        paragraphs = [p for obj in _documented(module) for p in _prose_paragraphs(inspect.getdoc(obj) or "")]
        out += paragraphs[:4]
    return out[:limit]


# Each reference domain and where its paragraphs come from.
SOURCES = {"man-pages": man_page_paragraphs, "package-docs": package_doc_paragraphs,
           "python-docs": python_doc_paragraphs}


def reference_table(per_source: int = 150, seed: int = 0) -> pd.DataFrame:
    """Human reference texts in the schema of the development data (dataset `references`)."""
    rng = np.random.default_rng(seed)
    rows = []
    for domain, source in SOURCES.items():
        for text in dict.fromkeys(source(per_source, rng)):
            digest = hashlib.sha1(text.encode()).hexdigest()[:12]
            rows.append({"id": f"references:{domain}:{digest}", "text": text, "label": 0, "dataset": "references",
                         "domain": domain, "generator": "human", "attack": None, "pair_id": None})
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSONL file to write")
    parser.add_argument("--per-source", type=int, default=150, help="texts per source (default 150)")
    args = parser.parse_args(argv)
    table = reference_table(args.per_source)
    with open(args.out, "w", encoding="utf-8") as f:
        for row in table.to_dict("records"):
            f.write(json.dumps(row) + "\n")
    print(f"{args.out}: {len(table)} texts; {table.groupby('domain').size().to_dict()}")


if __name__ == "__main__":
    main()
