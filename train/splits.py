"""Grouped splits: a prompt (pair_id, or any chosen column) never lands on both sides."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd


def group_keys(table: pd.DataFrame, group_column: str = "pair_id") -> pd.Series:
    """The group of each row: its `group_column`, or the row's own id where that is missing."""
    if group_column in table.columns:
        return table[group_column].where(table[group_column].notna(), table["id"]).astype(str)
    return table["id"].astype(str)


def _unit(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for a group key: splits survive reordering."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_group_share(table: pd.DataFrame, share: float, seed: int = 0, group_column: str = "pair_id") -> np.ndarray:
    """Whether each row's group falls in a seeded `share` of the groups (a grouped random subset)."""
    return group_keys(table, group_column).map(lambda k: _unit(k, seed) < share).to_numpy()


def train_val_test(table: pd.DataFrame, val: float = 0.15, test: float = 0.15, seed: int = 0,
                   group_column: str = "pair_id") -> pd.Series:
    """'train' / 'val' / 'test' for each row, assigned per group."""
    u = group_keys(table, group_column).map(lambda k: _unit(k, seed))
    return pd.Series(np.where(u < test, "test", np.where(u < test + val, "val", "train")), index=table.index)


def cv_folds(table: pd.DataFrame, k: int = 5, seed: int = 0, group_column: str = "pair_id") -> np.ndarray:
    """A fold number 0..k-1 per row, by group."""
    u = group_keys(table, group_column).map(lambda key: _unit(key, seed + 1))
    return np.minimum((u.to_numpy() * k).astype(int), k - 1)


def holdouts(table: pd.DataFrame, by: str, split: pd.Series) -> Iterator[tuple[str, pd.Series, pd.Series]]:
    """(held-out value, train mask, test mask) for each value of `by` ('generator' or 'domain').

    Generator: train on the train split without that generator's texts; test on all of its texts
    against the test-split humans of the datasets and domains it appears in.
    Domain: train on the train split without that domain; test on all texts of the domain.
    """
    if by not in ("generator", "domain"):
        raise ValueError(f"--holdout-by takes generator or domain, not {by!r}")
    values = sorted(v for v in table[by].unique() if v != "human")
    for value in values:
        held = table[by] == value
        if by == "generator":
            where = table[held]
            humans = ((table["label"] == 0) & (split == "test") & table["dataset"].isin(where["dataset"])
                      & table["domain"].isin(where["domain"]))
            test_mask = held | humans
        else:
            test_mask = held
        train_mask = (split == "train") & ~held & ~test_mask
        if test_mask.any() and table.loc[test_mask, "label"].nunique() == 2:
            yield value, train_mask, test_mask
