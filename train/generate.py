"""Machine text the project makes itself: continuations of human prompts by the local LMs.

    detector generate --data human.jsonl --output generated.jsonl [--lm smollm2-135m-instruct] [--n 200]

Each prompt (the first words of a human text from a data spec) is continued under one setting of a
decoding grid: greedy, temperature 0.7-1.5, top-k, top-p, repetition penalty 1.0 and 1.2-1.3, chosen
in turn, seeded. The output is the schema of ../shared/data with `generator` (the LM) and `decoding`
recorded; the prompt is not part of `text`, so neither side is judged on the human-written words, and
`pair_id` links the continuation to its human text. Detectors trained on a few published generators
learn their decoding habits; a grid teaches the features what sampling choices do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from detector.core.settings import DEFAULT_LM
from detector.lm.language_model import LanguageModel


@dataclass(frozen=True)
class Decoding:
    name: str
    kwargs: dict

    def __hash__(self) -> int:
        return hash(self.name)


GRID = [
    Decoding("greedy", {"do_sample": False}),
    Decoding("greedy,rep1.3", {"do_sample": False, "repetition_penalty": 1.3}),
    Decoding("t0.7", {"do_sample": True, "temperature": 0.7}),
    Decoding("t1.0", {"do_sample": True, "temperature": 1.0}),
    Decoding("t1.5,top-k40", {"do_sample": True, "temperature": 1.5, "top_k": 40}),
    Decoding("top-k40", {"do_sample": True, "top_k": 40}),
    Decoding("top-p0.9", {"do_sample": True, "top_p": 0.9}),
    Decoding("top-p0.95,rep1.2", {"do_sample": True, "top_p": 0.95, "repetition_penalty": 1.2}),
    Decoding("t0.7,top-p0.95,rep1.3", {"do_sample": True, "temperature": 0.7, "top_p": 0.95,
                                       "repetition_penalty": 1.3}),
]


def prompt_of(text: str, words: int) -> str:
    return " ".join(text.split()[:words])


@torch.inference_mode()
def generate(humans: pd.DataFrame, lm_name: str = DEFAULT_LM, n: int = 200, prompt_words: int = 30,
             new_tokens: int = 160, seed: int = 0, batch_size: int = 8, progress: bool = True) -> pd.DataFrame:
    """Continuations of `n` human texts (sampled with `seed`), one decoding setting of GRID each."""
    lm = LanguageModel(lm_name, engine="torch")  # generation needs the transformers model
    tokenizer, model = lm.tokenizer, lm.model
    tokenizer.padding_side = "left"  # generation continues from the right end of each prompt
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    rng = np.random.default_rng(seed)
    humans = humans[humans["label"] == 0]
    picked = humans.iloc[rng.permutation(len(humans))[:n]].reset_index(drop=True)
    picked = picked.assign(decoding=[GRID[i % len(GRID)] for i in range(len(picked))])
    rows = []
    bar = tqdm(total=len(picked), unit="text", desc="generating", disable=not progress)
    for decoding, group in picked.groupby("decoding", sort=False):
        for start in range(0, len(group), batch_size):
            part = group.iloc[start : start + batch_size]
            prompts = [prompt_of(t, prompt_words) for t in part["text"]]
            torch.manual_seed(seed + start + len(rows))
            enc = tokenizer(prompts, return_tensors="pt", padding=True)
            out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens // 2,
                                 pad_token_id=tokenizer.pad_token_id, **decoding.kwargs)
            continuations = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for (_, source), text in zip(part.iterrows(), continuations, strict=True):
                rows.append({"id": f"generated:{lm_name}:{decoding.name}:{source['id']}", "text": text.strip(),
                             "label": 1, "dataset": "generated", "domain": source["domain"],
                             "generator": lm_name, "decoding": decoding.name, "attack": None,
                             "pair_id": source["id"]})
            bar.update(len(part))
    bar.close()
    return pd.DataFrame(rows)


def write_jsonl(table: pd.DataFrame, path: str | Path) -> None:
    with open(path, "x", encoding="utf-8") as f:  # never overwrite: "x" fails if the file exists
        for row in table.to_dict("records"):
            f.write(json.dumps(row) + "\n")
