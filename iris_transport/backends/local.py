"""The embedded ``local`` backend: durable queues in one SQLite file.

It needs only the standard library, so it is the default for every channel
when nothing is configured, the backend of the demo and the reference
implementation of the transport contract. Several processes may produce to
and consume from the same file at once.

Supported: batch send (one transaction), scheduled delivery, time-to-live,
retry with a delay, a dead-letter queue per queue, lock extension, and FIFO
order per ordering key. The maximum body is 1 MiB (``LOCAL_MAX_MESSAGE_BYTES``),
enough for an OrderResult carrying a base64 PDF of a few hundred KB;
application properties may take another 64 KiB once encoded as JSON.

Settings (``LocalSettings``), with their defaults:

* ``path`` = ``iris-transport-queues.sqlite3``, relative to the working directory.
  Its directory must exist.
* ``queue`` = the channel name. Several queues share one file.
* ``lock_duration`` = 30 seconds: how long a received message stays invisible
  to other consumers unless it is settled or its lock is extended.
* ``max_delivery_count`` = 10: a message delivered that many times without
  being completed moves to the dead-letter queue with the reason
  ``MaxDeliveryCountExceeded``.
* ``poll_interval`` = 0.05 seconds between checks while ``receive`` waits.

Semantics:

* ``receive`` claims messages in one ``BEGIN IMMEDIATE`` transaction, giving
  each a random lock token and a lock expiry. Settling with a token that is
  not the current one, or after the expiry, raises ``LockLostError``.
* A message whose lock expired becomes visible again, and its next delivery
  has a delivery count one higher.
* A message whose time-to-live passes while it is not locked moves to the
  dead-letter queue with the reason ``TTLExpiredException``. The time-to-live
  counts from the scheduled enqueue time when there is one.
* With an ordering key, a message is delivered only after every earlier
  message with that key in the queue was completed or dead-lettered. A
  scheduled or delayed message therefore holds back the later messages of its key.
* ``close`` makes every message the transport received and did not settle
  visible again at once. That delivery still counts towards
  ``max_delivery_count``, as when a Service Bus receiver abandons a message.
* The dead-letter queue of queue ``q`` is named ``q/$deadletterqueue``. Read it
  with ``LocalTransport(settings, channel, sub_queue="deadletter")`` or
  ``transport.dead_letter_transport()``. Its messages carry the reason in the
  application properties ``DeadLetterReason`` and ``DeadLetterErrorDescription``
  and keep their delivery count. They do not expire and are never moved again.

Durability: the file uses WAL journaling with ``synchronous=FULL``, so a
message is on disk once ``send`` returns, and a crashed process loses
nothing. Lock expiries use the wall clock, so the processes sharing a file
must share a clock (one machine). Do not put the file on a network file
system, where SQLite's locking is unreliable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import logging
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from iris_transport.exceptions import (
    ConfigurationError,
    LockLostError,
    MessageTooLargeError,
    OperationTimeoutError,
    TransportConnectionError,
    TransportError,
    UnsupportedOperationError,
)
from iris_transport.transport import Capabilities, OutgoingMessage, PropertyValue, ReceivedMessage, Transport

__all__ = [
    "DEAD_LETTER_DESCRIPTION_PROPERTY",
    "DEAD_LETTER_QUEUE_SUFFIX",
    "DEAD_LETTER_REASON_PROPERTY",
    "LOCAL_CAPABILITIES",
    "LOCAL_MAX_MESSAGE_BYTES",
    "LocalSettings",
    "LocalTransport",
    "MAX_DELIVERY_COUNT_EXCEEDED",
    "TTL_EXPIRED",
]

logger = logging.getLogger(__name__)

LOCAL_MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest body ``send`` accepts, in bytes."""

MAX_APPLICATION_PROPERTIES_BYTES = 64 * 1024
"""The largest JSON encoding of a message's application properties, in bytes."""

DEAD_LETTER_QUEUE_SUFFIX = "/$deadletterqueue"
DEAD_LETTER_REASON_PROPERTY = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION_PROPERTY = "DeadLetterErrorDescription"
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
TTL_EXPIRED = "TTLExpiredException"

BUSY_TIMEOUT_SECONDS = 30.0
"""How long an operation waits for another process's write transaction before it fails."""

_SCHEMA_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MICROSECOND = timedelta(microseconds=1)

LOCAL_CAPABILITIES = Capabilities(
    max_message_bytes=LOCAL_MAX_MESSAGE_BYTES,
    batch_send=True,
    ordering_keys=True,
    scheduled_delivery=True,
    time_to_live=True,
    retry_delay=True,
    native_dead_letter=True,
    lock_extension=True,
    lock_duration=30.0,
    max_delivery_count=10,
)
"""Capabilities of the ``local`` backend with default settings.

A transport's own ``capabilities`` carry its configured ``lock_duration`` and
``max_delivery_count``. Batches have no limit of their own beyond the size of
each message.
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT,
    message_id TEXT,
    correlation_id TEXT,
    subject TEXT,
    application_properties TEXT NOT NULL,
    ordering_key TEXT,
    time_to_live_us INTEGER,
    scheduled_enqueue_us INTEGER,
    enqueued_us INTEGER NOT NULL,
    visible_us INTEGER NOT NULL,
    expires_us INTEGER,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT,
    dead_letter_reason TEXT,
    dead_letter_description TEXT
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_us, id);
CREATE INDEX IF NOT EXISTS messages_expiring ON messages (queue, expires_us) WHERE expires_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_ordered ON messages (queue, ordering_key, id) WHERE ordering_key IS NOT NULL;
"""
# Times are integer microseconds since the Unix epoch (UTC), so they round-trip
# exactly. ``visible_us`` is when the message may next be delivered: the
# enqueue or scheduled time, the end of a retry delay, or the lock expiry
# while ``lock_token`` is set.

_COLUMNS = (
    "id, body, content_type, message_id, correlation_id, subject, application_properties, ordering_key,"
    " time_to_live_us, scheduled_enqueue_us, enqueued_us, delivery_count, dead_letter_reason,"
    " dead_letter_description"
)

_SELECT_READY = f"""
SELECT {_COLUMNS} FROM messages AS m
WHERE m.queue = :queue AND m.visible_us <= :now
  AND (m.ordering_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM messages AS earlier
        WHERE earlier.queue = m.queue AND earlier.ordering_key = m.ordering_key AND earlier.id < m.id))
ORDER BY m.id
LIMIT :limit
"""

_MOVE_TO_DEAD_LETTER = """
UPDATE messages
SET queue = :dead_letter_queue, lock_token = NULL, visible_us = :now, expires_us = NULL,
    dead_letter_reason = :reason, dead_letter_description = :description
"""


class LocalSettings(BaseModel):
    """Settings of one channel on the ``local`` backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(
        default=Path("iris-transport-queues.sqlite3"),
        description="SQLite file that contains the queues. Its directory must exist.",
    )
    queue: str | None = Field(
        default=None,
        min_length=1,
        max_length=260,
        description="Queue name inside the file, or the channel name when unset.",
    )
    lock_duration: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="Seconds a received message stays invisible to other consumers.",
    )
    max_delivery_count: int = Field(
        default=10,
        ge=1,
        description="Deliveries after which an unsettled message moves to the dead-letter queue.",
    )
    poll_interval: float = Field(
        default=0.05,
        gt=0,
        le=60,
        description="Seconds between checks for new messages while receive waits.",
    )

    @field_validator("queue")
    @classmethod
    def _reject_dead_letter_name(cls, value: str | None) -> str | None:
        if value is not None and "$deadletterqueue" in value:
            raise ValueError(
                "must name a main queue, not a dead-letter queue."
                ' Read dead-lettered messages with sub_queue="deadletter"'
            )
        return value


@dataclasses.dataclass(frozen=True)
class _Lease:
    """The handle of a received message: its row and the lock token of this delivery."""

    row_id: int
    lock_token: str


_Result = TypeVar("_Result")


class LocalTransport(Transport):
    """A transport on one queue, or its dead-letter queue, of a local SQLite file.

    Blocking SQLite calls run on one worker thread per transport, which owns
    the connection. The thread and the connection start on first use.
    """

    backend_name = "local"

    def __init__(
        self,
        settings: LocalSettings,
        channel: str,
        *,
        sub_queue: Literal["deadletter"] | None = None,
    ) -> None:
        if sub_queue not in (None, "deadletter"):
            raise ValueError(f'sub_queue must be None or "deadletter", not {sub_queue!r}')
        queue = settings.queue or channel
        if not queue:
            raise ConfigurationError("local backend: queue is not set and the channel name is empty; set queue")

        self.settings = settings
        self.channel = channel
        self.queue = queue
        self.dead_letter_queue = queue + DEAD_LETTER_QUEUE_SUFFIX
        self.is_dead_letter = sub_queue == "deadletter"
        self.entity = self.dead_letter_queue if self.is_dead_letter else queue
        self.capabilities = dataclasses.replace(
            LOCAL_CAPABILITIES,
            lock_duration=settings.lock_duration,
            max_delivery_count=settings.max_delivery_count,
        )

        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        # Lock tokens of received, unsettled messages by row id. Only the worker
        # thread reads or changes this, so it needs no lock.
        self._held: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"LocalTransport(path={str(self.settings.path)!r}, entity={self.entity!r})"

    def dead_letter_transport(self) -> LocalTransport:
        """Return a new transport that receives from this queue's dead-letter queue."""
        return LocalTransport(self.settings, self.channel, sub_queue="deadletter")

    # sending

    async def send(self, message: OutgoingMessage) -> None:
        await self.send_batch([message])

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send every message in one transaction: all of them are stored, or none."""
        if self.is_dead_letter:
            raise UnsupportedOperationError(
                self.backend_name, "send to a dead-letter queue", hint=f"send to queue {self.queue!r} instead"
            )
        rows = [_encode_message(message, index) for index, message in enumerate(messages)]
        if not rows:
            return
        await self._call(self._insert, rows)
        logger.debug("sent %d message(s) to local queue %r", len(rows), self.queue)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        connection = self._connect()
        now = _now_us()
        for row in rows:
            row["queue"] = self.queue
            row["enqueued_us"] = now
            start = row["scheduled_enqueue_us"] if row["scheduled_enqueue_us"] is not None else now
            row["visible_us"] = start
            row["expires_us"] = start + row["time_to_live_us"] if row["time_to_live_us"] is not None else None

        with _write_transaction(connection):
            connection.executemany(
                """
                INSERT INTO messages (queue, body, content_type, message_id, correlation_id, subject,
                    application_properties, ordering_key, time_to_live_us, scheduled_enqueue_us,
                    enqueued_us, visible_us, expires_us)
                VALUES (:queue, :body, :content_type, :message_id, :correlation_id, :subject,
                    :application_properties, :ordering_key, :time_to_live_us, :scheduled_enqueue_us,
                    :enqueued_us, :visible_us, :expires_us)
                """,
                rows,
            )

    # receiving

    async def receive(self, max_messages: int = 1, max_wait: float = 5.0) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        if not max_wait >= 0:
            # Written so that NaN fails too, because a NaN deadline never passes.
            raise ValueError(f"max_wait must be 0 or more seconds, not {max_wait}")

        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while True:
            messages = await self._call(self._claim, max_messages)
            remaining = deadline - loop.time()
            if messages or remaining <= 0:
                break
            await asyncio.sleep(min(self.settings.poll_interval, remaining))

        if messages:
            logger.debug("received %d message(s) from local queue %r", len(messages), self.entity)
        return messages

    def _claim(self, max_messages: int) -> list[ReceivedMessage]:
        connection = self._connect()
        now = _now_us()
        # A dead-letter reader sweeps the main queue too, so that expired and
        # exhausted messages show up even when no consumer polls the main queue.
        if not self.is_dead_letter and not self._has_due_rows(connection, now):
            return []

        lock_until = now + _to_microseconds(self.settings.lock_duration)
        received = []
        with _write_transaction(connection):
            self._dead_letter_due_rows(connection, now)
            rows = connection.execute(
                _SELECT_READY, {"queue": self.entity, "now": now, "limit": max_messages}
            ).fetchall()
            for row in rows:
                lock_token = str(uuid.uuid4())
                connection.execute(
                    "UPDATE messages SET lock_token = ?, visible_us = ?, delivery_count = delivery_count + 1"
                    " WHERE id = ?",
                    (lock_token, lock_until, row["id"]),
                )
                received.append(self._decode_row(row, lock_token))

        for message in received:
            self._held[message.handle.row_id] = message.handle.lock_token
        return received

    def _has_due_rows(self, connection: sqlite3.Connection, now: int) -> bool:
        """Check, without a write lock, whether a claim could change anything."""
        row = connection.execute(
            # Expired and exhausted messages are moved only once visible, so this covers them too.
            "SELECT EXISTS (SELECT 1 FROM messages WHERE queue = :queue AND visible_us <= :now)",
            {"queue": self.entity, "now": now},
        ).fetchone()
        return bool(row[0])

    def _dead_letter_due_rows(self, connection: sqlite3.Connection, now: int) -> None:
        """Move expired messages, and messages out of deliveries, to the dead-letter queue."""
        parameters = {"queue": self.queue, "dead_letter_queue": self.dead_letter_queue, "now": now}

        expired = connection.execute(
            _MOVE_TO_DEAD_LETTER + " WHERE queue = :queue AND expires_us <= :now AND visible_us <= :now",
            {**parameters, "reason": TTL_EXPIRED, "description": "the message's time-to-live expired"},
        ).rowcount
        exhausted = connection.execute(
            _MOVE_TO_DEAD_LETTER + " WHERE queue = :queue AND visible_us <= :now AND delivery_count >= :max",
            {
                **parameters,
                "max": self.settings.max_delivery_count,
                "reason": MAX_DELIVERY_COUNT_EXCEEDED,
                "description": f"delivered {self.settings.max_delivery_count} times without being completed",
            },
        ).rowcount

        if expired:
            logger.info("moved %d expired message(s) of local queue %r to its dead-letter queue", expired, self.queue)
        if exhausted:
            logger.info(
                "moved %d message(s) of local queue %r to its dead-letter queue after %d deliveries",
                exhausted,
                self.queue,
                self.settings.max_delivery_count,
            )

    def _decode_row(self, row: sqlite3.Row, lock_token: str) -> ReceivedMessage:
        properties: dict[str, PropertyValue] = json.loads(row["application_properties"])
        if row["dead_letter_reason"] is not None:
            properties[DEAD_LETTER_REASON_PROPERTY] = row["dead_letter_reason"]
            if row["dead_letter_description"] is not None:
                properties[DEAD_LETTER_DESCRIPTION_PROPERTY] = row["dead_letter_description"]

        return ReceivedMessage(
            body=bytes(row["body"]),
            content_type=row["content_type"],
            message_id=row["message_id"],
            correlation_id=row["correlation_id"],
            subject=row["subject"],
            application_properties=properties,
            ordering_key=row["ordering_key"],
            time_to_live=_optional_timedelta(row["time_to_live_us"]),
            scheduled_enqueue_time=_optional_datetime(row["scheduled_enqueue_us"]),
            delivery_count=row["delivery_count"] + 1,
            enqueued_time=_optional_datetime(row["enqueued_us"]),
            handle=_Lease(row["id"], lock_token),
        )

    # settling

    async def complete(self, message: ReceivedMessage) -> None:
        await self._call(self._complete, self._lease_of(message))
        logger.debug("completed message %r on local queue %r", message.message_id, self.entity)

    def _complete(self, lease: _Lease) -> None:
        connection = self._connect()
        with _write_transaction(connection):
            self._check_lock(connection, lease, _now_us())
            connection.execute("DELETE FROM messages WHERE id = ?", (lease.row_id,))
        self._held.pop(lease.row_id, None)

    async def retry(self, message: ReceivedMessage, delay: float | None = None) -> None:
        if delay is not None and not (delay >= 0 and math.isfinite(delay)):
            raise ValueError(f"delay must be a finite number of seconds, 0 or more, not {delay}")
        await self._call(self._retry, self._lease_of(message), delay or 0.0)
        logger.debug("released message %r on local queue %r for another delivery", message.message_id, self.entity)

    def _retry(self, lease: _Lease, delay: float) -> None:
        connection = self._connect()
        now = _now_us()
        with _write_transaction(connection):
            delivery_count = self._check_lock(connection, lease, now)
            if not self.is_dead_letter and delivery_count >= self.settings.max_delivery_count:
                self._move_to_dead_letter(
                    connection,
                    lease,
                    now,
                    MAX_DELIVERY_COUNT_EXCEEDED,
                    f"delivered {delivery_count} times without being completed",
                )
            else:
                connection.execute(
                    "UPDATE messages SET lock_token = NULL, visible_us = ? WHERE id = ?",
                    (now + _to_microseconds(delay), lease.row_id),
                )
        self._held.pop(lease.row_id, None)

    async def dead_letter(self, message: ReceivedMessage, reason: str, description: str | None = None) -> None:
        if self.is_dead_letter:
            raise UnsupportedOperationError(
                self.backend_name,
                "dead_letter on a dead-letter queue",
                hint="complete the message, or send a copy back to the main queue",
            )
        if not isinstance(reason, str) or not reason:
            raise ValueError("reason must be a non-empty string")
        await self._call(self._dead_letter, self._lease_of(message), reason, description)
        logger.info("dead-lettered message %r of local queue %r: %s", message.message_id, self.queue, reason)

    def _dead_letter(self, lease: _Lease, reason: str, description: str | None) -> None:
        connection = self._connect()
        now = _now_us()
        with _write_transaction(connection):
            self._check_lock(connection, lease, now)
            self._move_to_dead_letter(connection, lease, now, reason, description)
        self._held.pop(lease.row_id, None)

    def _move_to_dead_letter(
        self, connection: sqlite3.Connection, lease: _Lease, now: int, reason: str, description: str | None
    ) -> None:
        connection.execute(
            _MOVE_TO_DEAD_LETTER + " WHERE id = :id",
            {
                "dead_letter_queue": self.dead_letter_queue,
                "now": now,
                "reason": reason,
                "description": description,
                "id": lease.row_id,
            },
        )

    async def extend_lock(self, message: ReceivedMessage, duration: float | None = None) -> datetime | None:
        if duration is not None and not (duration > 0 and math.isfinite(duration)):
            raise ValueError(f"duration must be a finite number of seconds, more than 0, not {duration}")
        seconds = self.settings.lock_duration if duration is None else duration
        return await self._call(self._extend_lock, self._lease_of(message), seconds)

    def _extend_lock(self, lease: _Lease, seconds: float) -> datetime:
        connection = self._connect()
        now = _now_us()
        lock_until = now + _to_microseconds(seconds)
        with _write_transaction(connection):
            self._check_lock(connection, lease, now)
            connection.execute("UPDATE messages SET visible_us = ? WHERE id = ?", (lock_until, lease.row_id))
        return _EPOCH + lock_until * _ONE_MICROSECOND

    def _check_lock(self, connection: sqlite3.Connection, lease: _Lease, now: int) -> int:
        """Return the delivery count of a leased row, or raise ``LockLostError`` when the lease is gone."""
        row = connection.execute(
            "SELECT lock_token, visible_us, delivery_count FROM messages WHERE id = ? AND queue = ?",
            (lease.row_id, self.entity),
        ).fetchone()
        if row is None or row["lock_token"] != lease.lock_token or row["visible_us"] <= now:
            self._held.pop(lease.row_id, None)
            raise LockLostError(
                f"the lock on a message of local queue {self.entity!r} expired or the message was already"
                " settled; it will be delivered again unless it was settled",
                backend=self.backend_name,
            )
        return int(row["delivery_count"])

    def _lease_of(self, message: ReceivedMessage) -> _Lease:
        if not isinstance(message.handle, _Lease):
            raise ValueError(
                "the message was not received from a local transport; settle it with the transport that received it"
            )
        return message.handle

    # lifecycle

    async def check(self, *, send: bool = True, receive: bool = True) -> bool:
        """Open the SQLite file (creating it and its tables), which every operation needs."""
        await self._call(self._connect)
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        executor = self._executor
        if executor is None:
            return

        loop = asyncio.get_running_loop()
        try:
            released = await loop.run_in_executor(executor, self._release_and_disconnect)
        except sqlite3.Error as err:
            raise _translate_sqlite_error(err, self.settings.path) from err
        finally:
            executor.shutdown(wait=False)
        logger.info("closed local queue %r; released %d unsettled message(s)", self.entity, released)

    def _release_and_disconnect(self) -> int:
        connection = self._connection
        if connection is None:
            return 0
        released = 0
        try:
            if self._held:
                now = _now_us()
                with _write_transaction(connection):
                    for row_id, lock_token in self._held.items():
                        released += connection.execute(
                            "UPDATE messages SET lock_token = NULL, visible_us = ?"
                            " WHERE id = ? AND lock_token = ? AND visible_us > ?",
                            (now, row_id, lock_token, now),
                        ).rowcount
                self._held.clear()
        finally:
            self._connection = None
            connection.close()
        return released

    async def _call(self, function: Callable[..., _Result], *args: Any) -> _Result:
        """Run ``function`` on the worker thread, translating SQLite errors."""
        if self._closed:
            raise TransportError(f"the transport on local queue {self.entity!r} is closed", backend=self.backend_name)
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="iris-local")

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(function, *args))
        except sqlite3.Error as err:
            raise _translate_sqlite_error(err, self.settings.path) from err

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection

        path = self.settings.path.expanduser()
        if not path.parent.is_dir():
            raise ConfigurationError(
                f"local backend: path: directory {str(path.parent)!r} does not exist; create it or change the path"
            )
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            connection.row_factory = sqlite3.Row
            _set_up_with_retries(connection, path)
        except BaseException:
            connection.close()
            raise

        self._connection = connection
        logger.info("opened local queue %r in %s", self.entity, path)
        return connection


def _set_up_with_retries(connection: sqlite3.Connection, path: Path) -> None:
    """Switch the file to WAL and create the schema, retrying while other processes hold it.

    While a new file is still in rollback-journal mode, SQLite fails
    ``PRAGMA journal_mode = WAL`` at once with "database is locked", without
    waiting for the busy timeout, when another connection is writing. That
    happens when several processes open a new file together.
    """
    give_up_at = time.monotonic() + BUSY_TIMEOUT_SECONDS
    pause = 0.01
    while True:
        try:
            _set_up(connection, path)
            return
        except sqlite3.OperationalError as err:
            if not _is_busy(err) or time.monotonic() + pause > give_up_at:
                raise
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            logger.debug("SQLite file %s is busy while it is being set up; trying again in %.2f s", path, pause)
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def _set_up(connection: sqlite3.Connection, path: Path) -> None:
    journal_mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(journal_mode).lower() != "wal":
        logger.warning(
            "SQLite file %s uses journal mode %r instead of WAL; concurrent consumers will block each other"
            " more often. Move it to a local disk.",
            path,
            journal_mode,
        )
    connection.execute("PRAGMA synchronous = FULL")
    _create_schema(connection, path)


def _is_busy(err: sqlite3.Error) -> bool:
    text = str(err)
    return isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _create_schema(connection: sqlite3.Connection, path: Path) -> None:
    with _write_transaction(connection):
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise ConfigurationError(
                f"local backend: {str(path)!r} was written by a newer iris-transport (schema {version});"
                " upgrade iris-transport or use another path"
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


@contextlib.contextmanager
def _write_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """Hold SQLite's write lock from the first statement, so reads and updates see one state."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _translate_sqlite_error(err: sqlite3.Error, path: Path) -> TransportError:
    text = str(err)
    if _is_busy(err):
        return OperationTimeoutError(
            f"SQLite file {str(path)!r} stayed locked by another process for {BUSY_TIMEOUT_SECONDS:g} seconds",
            backend=LocalTransport.backend_name,
        )
    if isinstance(err, sqlite3.OperationalError):
        return TransportConnectionError(
            f"cannot use SQLite file {str(path)!r}: {text}", backend=LocalTransport.backend_name
        )
    return TransportError(f"SQLite file {str(path)!r} failed: {text}", backend=LocalTransport.backend_name)


def _encode_message(message: OutgoingMessage, index: int) -> dict[str, Any]:
    """Validate one message and return its column values; ``index`` is its place in a batch, for errors."""
    where = f"messages[{index}]"
    body = message.body
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"{where}.body must be bytes, not {type(body).__name__}; encode text first")
    body = bytes(body)
    if len(body) > LOCAL_MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(len(body), LOCAL_MAX_MESSAGE_BYTES, backend=LocalTransport.backend_name)

    properties = _encode_properties(message.application_properties, where)

    time_to_live_us = None
    if message.time_to_live is not None:
        time_to_live_us = message.time_to_live // _ONE_MICROSECOND
        if time_to_live_us <= 0:
            raise ValueError(f"{where}.time_to_live must be positive, not {message.time_to_live}")

    scheduled_enqueue_us = None
    scheduled = message.scheduled_enqueue_time
    if scheduled is not None:
        if scheduled.tzinfo is None or scheduled.utcoffset() is None:
            raise ValueError(
                f"{where}.scheduled_enqueue_time must be timezone-aware, for example datetime.now(timezone.utc)"
            )
        scheduled_enqueue_us = (scheduled - _EPOCH) // _ONE_MICROSECOND

    return {
        "body": body,
        "content_type": message.content_type,
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "subject": message.subject,
        "application_properties": properties,
        "ordering_key": message.ordering_key,
        "time_to_live_us": time_to_live_us,
        "scheduled_enqueue_us": scheduled_enqueue_us,
    }


def _encode_properties(properties: Mapping[str, PropertyValue], where: str) -> str:
    for key, value in properties.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{where}.application_properties: every key must be a non-empty string")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise TypeError(
                f"{where}.application_properties[{key!r}] has type {type(value).__name__};"
                " use str, int, float, bool or None"
            )
    encoded = json.dumps(dict(properties), ensure_ascii=False, separators=(",", ":"))
    size = len(encoded.encode("utf-8"))
    if size > MAX_APPLICATION_PROPERTIES_BYTES:
        raise MessageTooLargeError(
            size,
            MAX_APPLICATION_PROPERTIES_BYTES,
            backend=LocalTransport.backend_name,
            what=f"{where}.application_properties",
        )
    return encoded


def _now_us() -> int:
    return time.time_ns() // 1000


def _to_microseconds(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _optional_datetime(microseconds: int | None) -> datetime | None:
    return None if microseconds is None else _EPOCH + microseconds * _ONE_MICROSECOND


def _optional_timedelta(microseconds: int | None) -> timedelta | None:
    return None if microseconds is None else microseconds * _ONE_MICROSECOND
