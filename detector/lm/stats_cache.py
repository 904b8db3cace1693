"""On-disk cache of token statistics, keyed by (LM cache key, text hash).

The LM pass is the whole cost of scoring and training; everything else is recomputed from the cached
statistics in seconds, so retraining with another classifier, split or feature set needs no LM pass.
Stored in SQLite as raw float arrays (no pickle), safe for several processes at once.

The cache is an optimisation, never a reason to fail: a corrupted, locked or read-only cache file is
reported once (a warning) and the run goes on without it, keeping every LM result it computed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from detector.core.errors import first_line
from detector.core.settings import CACHE_DIR, STATS_CACHE_ENV
from detector.lm.token_stats import TokenStats

log = logging.getLogger("detector.lm.stats_cache")

TIMEOUT_S = 5.0  # sqlite busy timeout per attempt; writes are short, so a longer wait means a stuck lock
WRITE_ATTEMPTS = 3
_unusable: dict[Path, str] = {}  # cache files found unusable in this process, with the reason (warned once)


def default_cache_path() -> Path:
    """$DETECTOR_STATS_CACHE, else token_stats.sqlite in the user cache directory."""
    return Path(os.environ.get(STATS_CACHE_ENV, CACHE_DIR / "token_stats.sqlite"))


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _disable(path: Path, err: BaseException) -> None:
    if path not in _unusable:
        _unusable[path] = f"{type(err).__name__}: {err}"
        log.warning("warning: stats cache %s unusable (%s); going on without it, LM results are not cached",
                    path, first_line(err, 160))


class StatsCache:
    """A key-value store: (lm_key, sha256(text)) -> TokenStats; degrades to a no-op if unusable."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self._db: sqlite3.Connection | None = None
        if self.path in _unusable:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=TIMEOUT_S)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS stats (lm TEXT, text_hash TEXT, blob BLOB, "
                           "PRIMARY KEY (lm, text_hash))")
                db.execute("SELECT 1 FROM stats LIMIT 1").fetchall()  # a corrupted file fails here at the latest
            except BaseException:
                db.close()
                raise
            self._db = db
        except (sqlite3.Error, OSError) as err:
            _disable(self.path, err)

    @property
    def usable(self) -> bool:
        return self._db is not None

    def _give_up(self, err: BaseException) -> None:
        _disable(self.path, err)
        self.close()

    def get_many(self, lm_key: str, texts: Sequence[str]) -> dict[str, TokenStats]:
        """Cached statistics of those texts that have them, by text."""
        by_hash = {text_hash(t): t for t in texts}
        found: dict[str, TokenStats] = {}
        if self._db is None:
            return found
        hashes = list(by_hash)
        try:
            for i in range(0, len(hashes), 500):
                chunk = hashes[i : i + 500]
                rows = self._db.execute(
                    f"SELECT text_hash, blob FROM stats WHERE lm = ? AND text_hash IN ({','.join('?' * len(chunk))})",
                    [lm_key, *chunk],
                ).fetchall()
                for h, blob in rows:
                    try:
                        found[by_hash[h]] = TokenStats.from_bytes(blob)
                    except (ValueError, TypeError, IndexError, KeyError):
                        pass  # a damaged entry is simply recomputed
        except sqlite3.Error as err:
            self._give_up(err)
        return found

    def put_many(self, lm_key: str, items: dict[str, TokenStats]) -> None:
        """Store statistics; a lock held past the timeout or an unwritable file disables the cache."""
        rows = [(lm_key, text_hash(t), s.to_bytes()) for t, s in items.items()]
        for attempt in range(WRITE_ATTEMPTS):
            if self._db is None:
                return
            try:
                with self._db:
                    self._db.executemany("INSERT OR REPLACE INTO stats VALUES (?, ?, ?)", rows)
                return
            except sqlite3.OperationalError as err:
                busy = "locked" in str(err) or "busy" in str(err)
                if not busy or attempt == WRITE_ATTEMPTS - 1:
                    self._give_up(err)
                    return
                time.sleep(0.2 * (attempt + 1))
            except sqlite3.Error as err:
                self._give_up(err)
                return

    def count(self) -> int:
        """Number of cached texts (deliberately not __len__: an empty cache must stay truthy)."""
        if self._db is None:
            return 0
        try:
            return self._db.execute("SELECT COUNT(*) FROM stats").fetchone()[0]
        except sqlite3.Error as err:
            self._give_up(err)
            return 0

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
