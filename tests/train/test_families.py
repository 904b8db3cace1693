"""Generator families, documents linked across sets, and the protocol that holds a family out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import synthetic_data

from train.data import link_documents, opening
from train.families import CLAUDE, HUMAN, MODERN, OPEN_CHAT, families, family
from train.protocol import Setting, held_out_masks, leave_one_out


def test_a_name_can_mean_a_base_or_a_chat_model_by_set_and_unknown_names_are_their_own_family():
    assert family("lastde", "llama-3-8b") == "base"
    assert family("authormimic", "llama-3-8b") == OPEN_CHAT
    assert family("biscope", "claude-3-opus") == family("dnadetect", "claude-3.7-sonnet") == CLAUDE
    assert family("any", "human") == HUMAN
    assert family("mine", "my-model") == "unmapped:my-model"
    assert set(MODERN) == {"openai-chat", "claude", "gemini", "open-chat"}


def _two_sets() -> pd.DataFrame:
    """One source document in two sets under other pair ids (cut at other lengths), one document alone."""
    shared = "The committee met on Tuesday to discuss the new budget for the city's schools and parks"
    rows = [("a:1", shared + " and more.", 0, "p1"), ("a:2", "machine text one", 1, "p1"),
            ("b:1", shared + " in detail, later.", 0, "q7"), ("b:2", "machine text two", 1, "q7"),
            ("b:3", "Another document entirely, about rivers and the fish that live in them today", 0, "q8")]
    table = pd.DataFrame(rows, columns=["id", "text", "label", "pair_id"]).assign(dataset=["a", "a", "b", "b", "b"])
    return table.assign(_opening=table["text"].map(opening))


def test_one_document_in_two_sets_is_one_split_group():
    linked = link_documents(_two_sets(), "_opening").set_index("id")["pair_id"]
    assert linked["a:1"] == linked["a:2"] == linked["b:1"] == linked["b:2"]
    assert linked["b:3"] != linked["a:1"]


def _with_families(seed: int = 0):
    data = synthetic_data(seed=seed)
    machine = data.table["label"] == 1
    gens = np.array(["gpt2-xl", "claude-3-opus", "gpt-4o"])[np.arange(len(data.table)) % 3]
    data.table["generator"] = np.where(machine, gens, "human")
    data.table["pair_id"] = [f"doc{i // 2}" for i in range(len(data.table))]  # a human and a machine per document
    return data


def test_a_held_out_family_is_tested_on_its_texts_and_half_the_humans_beside_them_none_of_them_trained():
    data = _with_families()
    held, tested = held_out_masks(data, "family", CLAUDE)
    kinds = families(data.table).to_numpy()
    assert tested[kinds == CLAUDE].all() and not tested[(kinds != CLAUDE) & (kinds != HUMAN)].any()
    humans = tested & (kinds == HUMAN)
    assert 0.3 < humans.sum() / (kinds == HUMAN).sum() < 0.7
    documents = set(data.table.loc[humans, "pair_id"])
    assert held[data.table["pair_id"].isin(documents).to_numpy()].all()  # their documents are not trained on
    assert not (held & ~tested & (kinds == CLAUDE)).any()


def test_the_protocol_rows_of_a_family_show_the_backbone_and_the_fold_chosen_zero_shot():
    rows = leave_one_out(_with_families(), "family", Setting("logreg-core"))
    whole = rows[rows["part"] == "all"]
    assert set(whole["held_out"]) == {"base", "claude", "openai-chat"}
    assert whole["mean_logp_auroc"].between(0, 1).all() and whole["fold_zero_shot"].notna().all()
