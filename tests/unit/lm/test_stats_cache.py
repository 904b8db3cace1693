"""The on-disk token-statistics cache: a corrupted, locked or unopenable cache costs speed, never work."""

from __future__ import annotations

import sqlite3

from detector.lm import stats_cache as cache_module


def _stats():
    from detector.lm.token_stats import TokenStats

    return TokenStats.empty()


def test_corrupted_cache_warns_once_and_is_skipped(tmp_path, fresh_cache_state, caplog):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"not a database at all" * 200)
    for _ in range(3):
        c = cache_module.StatsCache(path)
        assert c.get_many("lm", ["x"]) == {}
        c.put_many("lm", {"x": _stats()})
        c.close()
    assert sum("stats cache" in r.message for r in caplog.records) == 1
    assert path.read_bytes() == b"not a database at all" * 200


def test_locked_cache_loses_no_work(tmp_path, fresh_cache_state, caplog):
    path = tmp_path / "c.sqlite"
    c = cache_module.StatsCache(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        c.put_many("lm", {"x": _stats()})  # must return, not raise, after a short wait
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not c.usable
    assert sum("stats cache" in r.message for r in caplog.records) == 1


def test_unopenable_cache_is_skipped(tmp_path, fresh_cache_state):
    (tmp_path / "dir.sqlite").mkdir()
    c = cache_module.StatsCache(tmp_path / "dir.sqlite")
    assert not c.usable and c.count() == 0 and c.get_many("lm", ["x"]) == {}
