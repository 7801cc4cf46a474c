"""Deduplication stores: remember which message keys (TransactionIds) were handled.

Brokers deliver at least once, so the same IRIS message can arrive twice. The
consumer calls ``claim`` on a key before calling the handler. It calls
``confirm`` after the handler returns and ``release`` after the handler raises. A key that is claimed or confirmed already is a duplicate,
and the consumer completes that message without calling the handler.

A claim expires after ``claim_timeout`` seconds so that a consumer that died
mid-handler does not block the redelivery of its message for good. A
confirmed key is kept for ``ttl`` seconds, which should be longer than the
broker's redelivery and duplicate windows.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["DeduplicationStore", "MemoryDeduplicationStore", "SQLiteDeduplicationStore"]

logger = logging.getLogger(__name__)

DEFAULT_TTL = 7 * 24 * 3600.0
DEFAULT_CLAIM_TIMEOUT = 600.0


@runtime_checkable
class DeduplicationStore(Protocol):
    """The interface a deduplication store offers the consumer."""

    async def claim(self, key: str) -> bool:
        """Mark ``key`` as being handled; return False when it is claimed or confirmed already."""

    async def confirm(self, key: str) -> None:
        """Mark ``key`` as handled, so later deliveries with that key are duplicates."""

    async def release(self, key: str) -> None:
        """Forget an unconfirmed claim on ``key``, so its redelivery is handled again."""


def _check_durations(ttl: float, claim_timeout: float) -> None:
    if ttl <= 0:
        raise ValueError(f"ttl must be more than 0 seconds, got {ttl}")
    if claim_timeout <= 0:
        raise ValueError(f"claim_timeout must be more than 0 seconds, got {claim_timeout}")


class MemoryDeduplicationStore:
    """A deduplication store in this process's memory, bounded by age and count.

    It protects one consumer process only, and its keys are lost on restart.
    When it contains ``max_size`` keys, the least recently updated key is
    evicted first, even if it is not expired yet.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_size: int = 100_000,
        claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_durations(ttl, claim_timeout)
        if max_size < 1:
            raise ValueError(f"max_size must be 1 or more, got {max_size}")
        self.ttl = ttl
        self.max_size = max_size
        self.claim_timeout = claim_timeout
        self._clock = clock
        # key -> (confirmed, expires_at), oldest update first.
        self._entries: collections.OrderedDict[str, tuple[bool, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, key: str) -> bool:
        with self._lock:
            now = self._clock()
            self._purge_expired(now)
            entry = self._entries.get(key)
            if entry is not None and entry[1] > now:
                return False

            self._store(key, False, now + self.claim_timeout)
            return True

    async def confirm(self, key: str) -> None:
        with self._lock:
            self._store(key, True, self._clock() + self.ttl)

    async def release(self, key: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not entry[0]:
                del self._entries[key]

    def _store(self, key: str, confirmed: bool, expires_at: float) -> None:
        self._entries[key] = (confirmed, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def _purge_expired(self, now: float) -> None:
        # Entries are ordered by last update, not by expiry, so this stops at
        # the first live entry. A later expired entry is removed when its key
        # is claimed again or when max_size evicts it.
        while self._entries:
            key, (_, expires_at) = next(iter(self._entries.items()))
            if expires_at > now:
                return
            del self._entries[key]


class SQLiteDeduplicationStore:
    """A deduplication store in an SQLite file, shared by every consumer process on one machine.

    Times are wall-clock (``time.time``) because several processes compare
    them. Database calls run in a worker thread so that a busy file does not
    block the event loop. Call ``close`` when done.
    """

    _PURGE_EVERY = 1000

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
        busy_timeout: float = 30.0,
    ) -> None:
        _check_durations(ttl, claim_timeout)
        self.path = os.fspath(path)
        self.ttl = ttl
        self.claim_timeout = claim_timeout
        self._lock = threading.Lock()
        self._claims_since_purge = 0
        self._connection = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS iris_dedup ("
                " key TEXT PRIMARY KEY,"
                " confirmed INTEGER NOT NULL,"
                " expires_at REAL NOT NULL)"
            )

    def __repr__(self) -> str:
        return f"SQLiteDeduplicationStore(path={self.path!r})"

    async def claim(self, key: str) -> bool:
        return await asyncio.to_thread(self._claim, key)

    async def confirm(self, key: str) -> None:
        await asyncio.to_thread(self._confirm, key)

    async def release(self, key: str) -> None:
        await asyncio.to_thread(self._release, key)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _claim(self, key: str) -> bool:
        now = time.time()
        with self._lock, self._transaction():
            self._connection.execute("DELETE FROM iris_dedup WHERE key = ? AND expires_at <= ?", (key, now))
            cursor = self._connection.execute(
                "INSERT OR IGNORE INTO iris_dedup (key, confirmed, expires_at) VALUES (?, 0, ?)",
                (key, now + self.claim_timeout),
            )
            claimed = cursor.rowcount == 1

            self._claims_since_purge += 1
            if self._claims_since_purge >= self._PURGE_EVERY:
                self._claims_since_purge = 0
                purged = self._connection.execute("DELETE FROM iris_dedup WHERE expires_at <= ?", (now,))
                logger.debug("Purged %d expired deduplication keys from %s", purged.rowcount, self.path)
        return claimed

    def _confirm(self, key: str) -> None:
        with self._lock, self._transaction():
            self._connection.execute(
                "INSERT INTO iris_dedup (key, confirmed, expires_at) VALUES (?, 1, ?)"
                " ON CONFLICT (key) DO UPDATE SET confirmed = 1, expires_at = excluded.expires_at",
                (key, time.time() + self.ttl),
            )

    def _release(self, key: str) -> None:
        with self._lock, self._transaction():
            self._connection.execute("DELETE FROM iris_dedup WHERE key = ? AND confirmed = 0", (key,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._connection)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, so two processes never claim the same key."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._connection.execute("COMMIT" if exc_type is None else "ROLLBACK")
