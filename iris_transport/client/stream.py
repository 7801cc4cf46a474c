"""An async iterator over the decoded messages of one channel, settled as the loop advances."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from iris_transport.runtime import Consumer
from iris_transport.transport import ReceivedMessage, Transport

__all__ = ["MessageStream", "StreamClosed"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StreamClosed(Exception):
    """The stream closed while its caller still held a message, so the message is given back."""


class MessageStream(Generic[T]):
    """Yield the decoded messages of one channel, one at a time.

    A message is completed when the loop requests the next one, or when an
    ``async with`` block around the stream exits without an exception. When
    the block exits with an exception, or the stream is closed otherwise
    (``aclose``, the client closing), the message in hand is given back at
    once and delivered again. That is not a failed attempt: it is neither
    delayed by the backoff nor dead-lettered, although the broker's own
    delivery count still grows. A plain ``async for`` cannot tell a
    ``break`` after success from an exception, so after a ``break`` the
    message in hand is given back when the stream closes, unless ``ack()``
    was called first. ``nack()`` is the way to report a failed attempt.

    Undecodable and invalid messages are dead-lettered by the runtime and
    never yielded. Lock renewal runs while the caller holds a message.
    """

    def __init__(
        self,
        transport: Transport,
        decode: Callable[[ReceivedMessage], T],
        *,
        consumer_options: dict[str, Any],
        on_close: Callable[[MessageStream[Any]], None] | None = None,
    ) -> None:
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[None]]] = asyncio.Queue(maxsize=1)
        self._consumer: Consumer[T] = Consumer(
            transport, self._deliver, decode=decode, concurrency=1, prefetch=0, **consumer_options
        )
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Future[None] | None = None
        self._deliveries: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._on_close = on_close

    @property
    def closed(self) -> bool:
        """True once ``aclose`` has finished, called directly or by the client closing."""
        return self._closed and self._task is None

    def __aiter__(self) -> MessageStream[T]:
        return self

    async def __anext__(self) -> T:
        self.ack()
        if self._closed:
            raise StopAsyncIteration
        if self._task is None:
            self._task = asyncio.create_task(self._consumer.run(), name="iris-message-stream")

        getter = asyncio.ensure_future(self._queue.get())
        try:
            await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            getter.cancel()
            raise
        if not getter.done():
            getter.cancel()
            error = self._task.exception()
            self._closed = True
            if error is not None:
                raise error
            raise StopAsyncIteration

        item, done = getter.result()
        self._current = done
        return item

    def ack(self) -> None:
        """Complete the message in hand now, rather than when the loop advances."""
        current, self._current = self._current, None
        if current is not None and not current.done():
            current.set_result(None)

    def nack(self) -> None:
        """Give the message in hand back for another delivery, counting as a failed attempt."""
        current, self._current = self._current, None
        if current is not None and not current.done():
            current.set_exception(StreamClosed("the caller gave the message back"))

    async def aclose(self) -> None:
        """Give back the message in hand, stop receiving and close the channel's transport."""
        if self._closed and self._task is None:
            return
        self._closed = True
        self._current = None
        while not self._queue.empty():
            self._queue.get_nowait()
        # Cancelling the delivery leaves its message unsettled, as at the
        # consumer's shutdown deadline, so closing the transport below
        # releases it at once. Failing the delivery instead would count as
        # a handler failure, so the message would be delayed and finally dead-lettered.
        for delivery in list(self._deliveries):
            delivery.cancel()
        if self._task is not None:
            await self._consumer.stop()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        else:
            await self._consumer.transport.close()
        if self._on_close is not None:
            self._on_close(self)

    async def __aenter__(self) -> MessageStream[T]:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.ack()
        await self.aclose()

    async def _deliver(self, item: T) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._deliveries.add(task)
        try:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await self._queue.put((item, done))
            await done
        finally:
            self._deliveries.discard(task)
