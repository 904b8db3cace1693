"""The causal language model: a text's tokens, its windows, and one pass of the LM over each of them.

Which LM and engine (detector/lm/engines.py), where a packaged LM's weights are (detector/lm/packaged.py),
its tokenizer (detector/lm/tokenizer.py), the engines themselves (openvino_engine.py, torch_engine.py) and
the LMs shared within a process (shared.py) are modules of their own. Once the OpenVINO graph of a
packaged LM exists, the openvino engine needs neither torch nor transformers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from detector.core.errors import LMUnavailable
from detector.core.interrupts import interrupt_point
from detector.core.settings import CACHE_DIR, DEFAULT_DTYPE, DEFAULT_LM, DEFAULT_MAX_TOKENS, DTYPES, WINDOW
from detector.lm import openvino_engine
from detector.lm.engines import check_engine, default_engine, load_torch, stats_key
from detector.lm.packaged import PACKAGED, cache_folder, packaged_revision, packaged_tokenizer, preparing
from detector.lm.token_stats import TokenStats
from detector.lm.tokenizer import FileTokenizer

log = logging.getLogger(__name__)


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
    cached (detector/lm/openvino_engine.py); `self.model` is then None and torch is never imported once the
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
            if dtype not in openvino_engine.PRECISION_HINTS:
                raise LMUnavailable(f"the openvino engine runs float32 or bfloat16, not {dtype}: "
                                    "use the torch engine for it")
            if device != "cpu" or batch_tokens:
                raise ValueError("the openvino engine runs on the CPU, one window per pass (batch_tokens=0)")
            self.model, (self.tokenizer, self.revision) = None, self._load_openvino(dtype, threads)
        else:
            self.model, self.tokenizer, self.revision = load_torch(name, dtype)  # the tokenizer for generation
        # Packaged LMs tokenise through their tokenizer.json: the ids transformers' tokenizer gives, faster.
        if isinstance(self.tokenizer, FileTokenizer):
            self._encoder = self.tokenizer
        else:
            self._encoder = FileTokenizer(cache_folder(name)) if name in PACKAGED else None
        bos = self.tokenizer.bos_token_id
        self._bos = bos if bos is not None else self.tokenizer.eos_token_id
        if self.model is not None:
            from detector.lm.torch_engine import TorchForward

            self._torch = TorchForward(self.model, device, self._bos)

    def _load_openvino(self, dtype: str, threads: int | None):
        """(tokenizer, revision) of the LM, with its statistics graph compiled in `dtype`. A packaged LM
        whose graph is cached needs neither torch nor transformers."""
        from detector.core.settings import cpu_threads

        def ir_of(revision: str) -> Path:
            return openvino_engine.ir_folder(CACHE_DIR / "lm", revision) / openvino_engine.IR_FILE

        packaged = self.name in PACKAGED
        if packaged and ir_of(packaged_revision(self.name)).exists():
            revision = packaged_revision(self.name)
            tokenizer = packaged_tokenizer(self.name)
        else:
            from detector.lm import torch_engine

            model, tokenizer, revision = load_torch(self.name, "float32")  # float32 weights in the graph
            if not ir_of(revision).exists():
                with preparing(f"the OpenVINO graph of {self.name} (into {ir_of(revision).parent})"):
                    torch_engine.build_openvino_ir(model, ir_of(revision).parent)
            del model  # the compiled graph holds its own copy of the weights
        self._stats_graph = openvino_engine.OpenVINOStats(ir_of(revision), dtype, threads or cpu_threads(),
                                                    compiled_cache=openvino_engine.compiled_cache_folder(ir_of(revision)))
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


