"""Generator families: what "a model the detector never saw" means in the held-out protocol.

Every generator of ../shared/data is mapped to one family; the protocol holds out each family in turn
(all its machine texts, in every set), so a row says how the detector does on a kind of model it was
not trained on. Some names mean a base model in one set and an instruction-tuned one in another (lastde
samples Llama-3-8B and Gemma-7B base checkpoints; AuthorMimic prompts their chat versions to imitate a
person), so a few generators are mapped per dataset.
"""

from __future__ import annotations

import pandas as pd

BASE, GPT3, OPENAI_CHAT, CLAUDE, GEMINI, OPEN_CHAT = "base", "gpt3", "openai-chat", "claude", "gemini", "open-chat"
# The families of 2023-2025 chat models: the targets a user meets today.
MODERN = (OPENAI_CHAT, CLAUDE, GEMINI, OPEN_CHAT)
HUMAN = "human"

# Base and early models and the tweet bots; GPT-3 completions; chat and instruction-tuned models by maker.
FAMILY_OF: dict[str, str] = {
    **dict.fromkeys(["gpt2", "gpt2-xl", "gpt-neo-125m", "gpt-neo-2.7B", "gptneo", "gpt-j-6B", "gptj",
                     "gpt-neox-20b", "opt-2.7b", "opt-13b", "bloom-7b1", "falcon-7b", "llama", "llama-13b",
                     "llama-2-13b", "llama-3-8b", "phi-2", "gemma-7b", "rnn", "others"], BASE),
    **dict.fromkeys(["davinci", "text-davinci-003", "gpt3", "gpt-3-175b"], GPT3),
    **dict.fromkeys(["chatgpt", "gpt-3.5", "gpt-3.5-turbo", "gpt-4", "gpt-4-turbo", "gpt-4-turbo-preview",
                     "gpt-4o"], OPENAI_CHAT),
    **dict.fromkeys(["claude-3-haiku", "claude-3-sonnet", "claude-3-opus", "claude-3.7-sonnet"], CLAUDE),
    **dict.fromkeys(["gemini-1.0", "gemini-1.0-pro", "gemini-1.5-flash", "gemini-1.5-pro", "gemini-2.0-flash"],
                    GEMINI),
    **dict.fromkeys(["flan-t5-xxl", "llama-3-8b-instruct", "llama-3-70b", "mistral-7b-instruct-v0.3",
                     "mixtral-v0.1", "qwen2-7b-instruct", "deepseek-llm-7b-chat"], OPEN_CHAT),
}
# (dataset, generator) pairs whose family differs from the generator's name alone: chat versions prompted
# to imitate a person's tweets.
FAMILY_IN: dict[tuple[str, str], str] = {
    ("authormimic", "llama-3-8b"): OPEN_CHAT,
    ("authormimic", "gemma-7b"): OPEN_CHAT,
}


def family(dataset: str, generator: str) -> str:
    """The family of one generator in one dataset; a generator no family names (a user's own data) is a
    family of its own, `unmapped:NAME`."""
    if generator == HUMAN:
        return HUMAN
    return FAMILY_IN.get((dataset, generator)) or FAMILY_OF.get(generator) or f"unmapped:{generator}"


def families(table: pd.DataFrame) -> pd.Series:
    """The family of each row of a table with `dataset` and `generator` columns (humans: "human")."""
    pairs = table[["dataset", "generator"]].astype(str)
    known = {key: family(*key) for key in set(map(tuple, pairs.to_numpy()))}
    return pd.Series([known[tuple(pair)] for pair in pairs.to_numpy()], index=table.index, name="family")
