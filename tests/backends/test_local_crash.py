"""Two consumer processes on one local queue, one of them killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from iris_transport.backends.local import LocalSettings, LocalTransport
from iris_transport.transport import OutgoingMessage

WORKER = Path(__file__).with_name("local_worker.py")
LOCK_SECONDS = 2.0
WAIT_SECONDS = 60.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and SIGTERM are POSIX signals")


class WorkerProcess:
    """A ``local_worker.py`` process whose output lines are read on a thread."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), *arguments],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[list[str]] = []
        self._incoming: queue.Queue[list[str] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._incoming.put(line.split())
        self._incoming.put(None)

    def collect(self) -> None:
        """Move every line read so far into ``lines``."""
        while True:
            try:
                words = self._incoming.get_nowait()
            except queue.Empty:
                return
            if words is not None:
                self.lines.append(words)

    def wait_for(self, condition: Callable[[], bool], event: str, timeout: float = WAIT_SECONDS) -> None:
        """Read lines until ``condition()`` holds, failing after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out after {timeout:g} s waiting for {event}")
            try:
                words = self._incoming.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if words is None:
                if not condition():
                    pytest.fail(f"worker exited with {self.process.wait()} before {event}")
                return
            self.lines.append(words)

    def completed(self) -> dict[str, int]:
        self.collect()
        return {words[1]: int(words[2]) for words in self.lines if words[0] == "completed"}

    def completed_lines(self) -> list[str]:
        self.collect()
        return [words[1] for words in self.lines if words[0] == "completed"]

    def held(self) -> list[str]:
        self.collect()
        return next((words[1:] for words in self.lines if words[0] == "holding"), [])

    def stop(self, signal_number: int) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal_number)
        return self.process.wait(timeout=WAIT_SECONDS)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT_SECONDS)


async def _send(settings: LocalSettings, message_ids: list[str]) -> None:
    async with LocalTransport(settings, "jobs") as transport:
        await transport.send_batch([OutgoingMessage(body=message_id.encode(), message_id=message_id) for message_id in message_ids])


async def _leftovers(settings: LocalSettings) -> tuple[int, int]:
    async with LocalTransport(settings, "jobs") as transport, transport.dead_letter_transport() as dead_letters:
        remaining = await transport.receive(100, max_wait=0.5)
        dead = await dead_letters.receive(100, max_wait=0.5)
        return len(remaining), len(dead)


def test_killed_consumer_loses_no_message(tmp_path: Path) -> None:
    path = tmp_path / "queues.sqlite3"
    settings = LocalSettings(path=path, queue="jobs", lock_duration=LOCK_SECONDS)
    message_ids = [f"m-{index}" for index in range(60)]
    asyncio.run(_send(settings, message_ids))
    common = ["consume", "--path", str(path), "--queue", "jobs", "--lock-duration", str(LOCK_SECONDS)]

    victim = WorkerProcess(*common, "--hold-after", "5", "--hold-count", "5")
    survivor: WorkerProcess | None = None
    try:
        victim.wait_for(lambda: bool(victim.held()), "the first consumer to hold messages")
        held = victim.held()

        survivor = WorkerProcess(*common)
        survivor.wait_for(lambda: bool(survivor.completed()), "the second consumer to complete a message")
        victim.kill()

        def all_completed() -> bool:
            return set(victim.completed()) | set(survivor.completed()) >= set(message_ids)

        survivor.wait_for(all_completed, "every message to be completed", timeout=WAIT_SECONDS + LOCK_SECONDS)
        assert survivor.stop(signal.SIGTERM) == 0
    finally:
        victim.kill()
        if survivor is not None:
            survivor.kill()

    by_victim = victim.completed()
    by_survivor = survivor.completed()
    assert len(held) == 5
    assert len(by_victim) == 5
    assert set(held) <= set(by_survivor), "a message held by the killed consumer was never completed"
    for message_id in held:
        assert by_survivor[message_id] == 2, f"{message_id} should be on its second delivery"
    assert set(by_victim).isdisjoint(by_survivor), "a message was completed twice"
    assert len(survivor.completed_lines()) == len(by_survivor), "a message was completed twice"
    assert set(by_victim) | set(by_survivor) == set(message_ids)
    assert asyncio.run(_leftovers(settings)) == (0, 0)
