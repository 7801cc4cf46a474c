"""Receive helpers with bounded waits for the emulator tests."""

from __future__ import annotations

import time

RECEIVE_TIMEOUT = 20.0


def receive_until(receiver, count: int, timeout: float = RECEIVE_TIMEOUT) -> list:
    """Receive until ``count`` messages arrived, or fail after ``timeout`` seconds."""
    messages: list = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        messages.extend(receiver.receive_messages(max_message_count=count - len(messages), max_wait_time=1))
    assert len(messages) == count, f"received {len(messages)} of {count} messages within {timeout} s"
    return messages


async def receive_until_async(receiver, count: int, timeout: float = RECEIVE_TIMEOUT) -> list:
    """The async twin of ``receive_until``."""
    messages: list = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        messages.extend(await receiver.receive_messages(max_message_count=count - len(messages), max_wait_time=1))
    assert len(messages) == count, f"received {len(messages)} of {count} messages within {timeout} s"
    return messages
