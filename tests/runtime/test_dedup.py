"""Deduplication stores: claims, confirmations, expiry and sharing between processes."""

from __future__ import annotations

import asyncio

import pytest

from iris_transport.runtime import DeduplicationStore, MemoryDeduplicationStore, SQLiteDeduplicationStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryDeduplicationStore()
    else:
        sqlite_store = SQLiteDeduplicationStore(tmp_path / "dedup.sqlite3")
        yield sqlite_store
        sqlite_store.close()


async def test_store_claims_key_once(store):
    assert isinstance(store, DeduplicationStore)
    assert await store.claim("tx-1")
    assert not await store.claim("tx-1")
    assert await store.claim("tx-2")


async def test_confirmed_key_stays_claimed(store):
    await store.claim("tx-1")
    await store.confirm("tx-1")
    await store.release("tx-1")

    assert not await store.claim("tx-1")


async def test_released_key_can_be_claimed_again(store):
    await store.claim("tx-1")
    await store.release("tx-1")

    assert await store.claim("tx-1")


async def test_memory_claim_and_confirmation_expire():
    clock = FakeClock()
    store = MemoryDeduplicationStore(ttl=100, claim_timeout=10, clock=clock)

    await store.claim("abandoned")
    await store.claim("handled")
    await store.confirm("handled")
    clock.now += 11

    assert await store.claim("abandoned")
    assert not await store.claim("handled")
    clock.now += 100
    assert await store.claim("handled")


async def test_memory_store_evicts_oldest_over_max_size():
    store = MemoryDeduplicationStore(max_size=2)
    for key in ("a", "b", "c"):
        await store.claim(key)
        await store.confirm(key)

    assert len(store) == 2
    assert await store.claim("a")
    assert not await store.claim("c")


async def test_sqlite_store_shared_between_connections(tmp_path):
    first = SQLiteDeduplicationStore(tmp_path / "dedup.sqlite3")
    second = SQLiteDeduplicationStore(tmp_path / "dedup.sqlite3")
    try:
        assert await first.claim("tx-1")
        assert not await second.claim("tx-1")
        await first.confirm("tx-1")
        assert not await second.claim("tx-1")
    finally:
        first.close()
        second.close()


async def test_sqlite_claim_expires(tmp_path):
    store = SQLiteDeduplicationStore(tmp_path / "dedup.sqlite3", claim_timeout=0.01)
    try:
        await store.claim("tx-1")
        await asyncio.sleep(0.05)
        assert await store.claim("tx-1")
    finally:
        store.close()


def test_store_rejects_invalid_durations(tmp_path):
    with pytest.raises(ValueError, match="ttl must be more than 0"):
        MemoryDeduplicationStore(ttl=0)
    with pytest.raises(ValueError, match="max_size must be 1 or more"):
        MemoryDeduplicationStore(max_size=0)
    with pytest.raises(ValueError, match="claim_timeout must be more than 0"):
        SQLiteDeduplicationStore(tmp_path / "dedup.sqlite3", claim_timeout=0)
