"""On-disk cache of token statistics, keyed by (LM cache key, text hash).

The LM pass is the whole cost of scoring and training; everything else is recomputed from the cached
statistics in seconds, so retraining with another classifier, split or feature set needs no LM pass.
Stored in SQLite as raw float arrays (no pickle), safe for several processes at once.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from detector.lm import CACHE_DIR
from detector.token_stats import TokenStats


def default_cache_path() -> Path:
    """$DETECTOR_STATS_CACHE, else token_stats.sqlite in the user cache directory."""
    return Path(os.environ.get("DETECTOR_STATS_CACHE", CACHE_DIR / "token_stats.sqlite"))


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class StatsCache:
    """A key-value store: (lm_key, sha256(text)) -> TokenStats."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS stats (lm TEXT, text_hash TEXT, blob BLOB, PRIMARY KEY (lm, text_hash))"
        )

    def get_many(self, lm_key: str, texts: Sequence[str]) -> dict[str, TokenStats]:
        """Cached statistics of those texts that have them, by text."""
        by_hash = {text_hash(t): t for t in texts}
        found, hashes = {}, list(by_hash)
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            rows = self._db.execute(
                f"SELECT text_hash, blob FROM stats WHERE lm = ? AND text_hash IN ({','.join('?' * len(chunk))})",
                [lm_key, *chunk],
            )
            for h, blob in rows:
                found[by_hash[h]] = TokenStats.from_bytes(blob)
        return found

    def put_many(self, lm_key: str, items: dict[str, TokenStats]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO stats VALUES (?, ?, ?)",
                [(lm_key, text_hash(t), s.to_bytes()) for t, s in items.items()],
            )

    def count(self) -> int:
        """Number of cached texts (deliberately not __len__: an empty cache must stay truthy)."""
        return self._db.execute("SELECT COUNT(*) FROM stats").fetchone()[0]

    def close(self) -> None:
        self._db.close()
