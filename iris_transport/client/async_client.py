"""The async IRIS client: send orders and gradings, handle events and results."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from iris_transport import models
from iris_transport.client.handlers import EventSelector, HandlerRegistry, check_selectors
from iris_transport.client.outgoing import (
    GradingInput,
    OrderInput,
    prepare_grading,
    prepare_order,
    to_outgoing,
)
from iris_transport.client.stream import MessageStream
from iris_transport.codec import message_decoder
from iris_transport.config import IrisConfig, load_config
from iris_transport.runtime import Consumer, DeduplicationStore, Producer, RetryPolicy
from iris_transport.runtime.shutdown import install_signal_handlers
from iris_transport.transport import OutgoingMessage

__all__ = ["AsyncIrisClient", "SentMessage"]

logger = logging.getLogger(__name__)

ORDERS = "orders"
GRADINGS = "gradings"
EVENTS = "events"
RESULTS = "results"

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class SentMessage:
    """A message the client sent: the channel, the broker message id, the subject and the model as sent."""

    channel: str
    message_id: str
    subject: str | None
    message: models.OrderRequest | models.GradingSubmission

    @property
    def local_id(self) -> str | None:
        """The order's LocalId."""
        if isinstance(self.message, models.OrderRequest):
            return self.message.order.local_id if self.message.order else None
        return self.message.local_id


class AsyncIrisClient:
    """Send OrderRequests and GradingSubmissions and receive events and results, on the configured channels.

    Each channel's transport is created on first use from ``config``. Every
    outgoing message is validated first, so an invalid one raises
    ``MessageValidationError`` listing every problem and never reaches the
    broker. ClientGuid and Site.LocalId come from the configuration when the
    message has none.

    Receiving options apply to ``serve`` and to the iterators.
    ``max_attempts`` is the number of deliveries before a failing message is
    dead-lettered, with ``backoff`` between attempts. ``concurrency`` handlers
    run at once per channel. ``dedup`` skips messages whose TransactionId was
    handled already. ``shutdown_timeout`` is the seconds in-flight handlers
    get to finish, and ``receive_wait`` the seconds per broker poll. With
    ``include_exception_message=False`` a failing handler's exception is
    recorded by its type name alone, in logs and in the dead-letter reason,
    for handlers whose exceptions may quote patient data.
    """

    def __init__(
        self,
        config: IrisConfig | None = None,
        *,
        max_attempts: int = 5,
        backoff: RetryPolicy | None = None,
        concurrency: int = 1,
        dedup: DeduplicationStore | None = None,
        shutdown_timeout: float = 30.0,
        receive_wait: float = 5.0,
        include_exception_message: bool = True,
    ) -> None:
        self.config = config if config is not None else load_config()
        self.handlers = HandlerRegistry()
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.concurrency = concurrency
        self.dedup = dedup
        self.shutdown_timeout = shutdown_timeout
        self.receive_wait = receive_wait
        self.include_exception_message = include_exception_message

        self._producers: dict[str, Producer] = {}
        self._producer_lock = asyncio.Lock()
        self._streams: set[MessageStream[Any]] = set()
        self._consumers: list[Consumer[Any]] = []
        self._serving = False
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer_tasks: list[asyncio.Task[Any]] = []
        self._closed = False

    @classmethod
    def from_config(cls, path: str | Path | None = None, **options: Any) -> AsyncIrisClient:
        """Build a client from the configuration file at ``path`` (or the default lookup, see ``load_config``)."""
        return cls(load_config(path), **options)

    # Sending

    async def send_order(self, order: OrderInput) -> SentMessage:
        """Send an OrderRequest with whatever OrderControlCode it carries (NW, XO, CA or ResendResult)."""
        request = prepare_order(order, client_guid=self.config.client_guid, default_site=self.config.default_site)
        return await self._send(ORDERS, request)

    async def submit_order(self, order: OrderInput) -> SentMessage:
        """Send a new order (NW); an order without an OrderControlCode is sent as NW."""
        return await self._send_order_as(order, models.OrderControlCode.NEW)

    async def change_order(self, order: OrderInput) -> SentMessage:
        """Send a change (XO) of an order created earlier, identified by its Order.LocalId."""
        return await self._send_order_as(order, models.OrderControlCode.CHANGE)

    async def cancel_order(
        self, local_id: str, *, site: str | None = None, client_guid: str | None = None
    ) -> SentMessage:
        """Cancel (CA) the order whose Order.LocalId is ``local_id``."""
        request = _order_for(models.OrderControlCode.CANCEL, local_id, site, client_guid)
        return await self._send_order_as(request, models.OrderControlCode.CANCEL)

    async def resend_results(
        self, local_id: str, *, site: str | None = None, client_guid: str | None = None
    ) -> SentMessage:
        """Ask IRIS to send the results of the order ``local_id`` again (ResendResult)."""
        request = _order_for(models.OrderControlCode.RESEND_RESULT, local_id, site, client_guid)
        return await self._send_order_as(request, models.OrderControlCode.RESEND_RESULT)

    async def submit_grading(self, grading: GradingInput) -> SentMessage:
        """Send a GradingSubmission on the ``gradings`` channel (IRIS test environments only)."""
        submission = prepare_grading(
            grading, client_guid=self.config.client_guid, default_site=self.config.default_site
        )
        return await self._send(GRADINGS, submission)

    async def _send_order_as(self, order: OrderInput, code: models.OrderControlCode) -> SentMessage:
        request = prepare_order(
            order, client_guid=self.config.client_guid, default_site=self.config.default_site, expected_code=code
        )
        return await self._send(ORDERS, request)

    async def _send(self, channel: str, message: models.OrderRequest | models.GradingSubmission) -> SentMessage:
        outgoing = to_outgoing(message)
        producer = await self._producer(channel)
        await producer.send(outgoing)
        logger.info("Sent %s message %s on channel %s", outgoing.subject, outgoing.message_id, channel)
        return SentMessage(channel, outgoing.message_id or "", outgoing.subject, message)

    async def send_raw(self, channel: str, message: OutgoingMessage) -> None:
        """Send an already encoded message on ``channel`` without validating it (for tools and tests)."""
        producer = await self._producer(channel)
        await producer.send(message)

    async def _producer(self, channel: str) -> Producer:
        self._check_open()
        async with self._producer_lock:
            producer = self._producers.get(channel)
            if producer is None:
                producer = self._producers[channel] = Producer(self.config.create_transport(channel))
            return producer

    # Handlers

    @overload
    def on_event(self, handler: F, /) -> F: ...

    @overload
    def on_event(self, *event_types: EventSelector) -> Callable[[F], F]: ...

    def on_event(self, *event_types: Any) -> Any:
        """Register a handler for events: ``@client.on_event`` for every event, or
        ``@client.on_event(OrderCreationReceipt, "ImageReceipt")`` for some types.

        A handler may be a function or a coroutine function taking the event.
        A handler that raises has its message retried with backoff and
        dead-lettered after ``max_attempts``. Every matching handler runs
        again on a retry, so handlers must be idempotent.
        """
        if len(event_types) == 1 and callable(event_types[0]) and not isinstance(event_types[0], type):
            self.handlers.add_event_handler(event_types[0])
            return event_types[0]
        check_selectors(event_types)

        def register(handler: F) -> F:
            self.handlers.add_event_handler(handler, event_types)
            return handler

        return register

    @overload
    def on_result(self, handler: F, /) -> F: ...

    @overload
    def on_result(self) -> Callable[[F], F]: ...

    def on_result(self, handler: Any = None) -> Any:
        """Register a handler for OrderResults: ``@client.on_result`` or ``@client.on_result()``."""
        if handler is not None:
            self.handlers.add_result_handler(handler)
            return handler

        def register(function: F) -> F:
            self.handlers.add_result_handler(function)
            return function

        return register

    # Receiving with iterators

    def events(self) -> MessageStream[models.EventBase]:
        """Return an async iterator over the events on the ``events`` channel (see ``MessageStream``)."""
        return self._stream(EVENTS, models.parse_event)

    def results(self) -> MessageStream[models.OrderResult]:
        """Return an async iterator over the OrderResults on the ``results`` channel (see ``MessageStream``)."""
        return self._stream(RESULTS, models.parse_order_result)

    def _stream(self, channel: str, parse: Callable[[bytes], Any]) -> MessageStream[Any]:
        self._check_open()
        stream: MessageStream[Any] = MessageStream(
            self.config.create_transport(channel),
            message_decoder(parse),
            consumer_options=self._consumer_options(),
            on_close=self._streams.discard,
        )
        self._streams.add(stream)
        return stream

    # Receiving with handlers

    async def serve(self, *, install_signal_handlers: bool = True) -> None:
        """Run the registered handlers on events and results until shutdown.

        Shutdown comes from ``request_stop``, ``stop``, ``close`` or, when
        ``install_signal_handlers`` is true and this runs in the main thread,
        SIGINT or SIGTERM. A second signal cancels handlers still running.
        Raises ``RuntimeError`` when no handler is registered, and the
        receive error when a channel fails permanently.
        """
        self._check_open()
        if self._serving:
            raise RuntimeError("this client is serving already")
        consumers = self._build_consumers()
        if not consumers:
            raise RuntimeError("no handler is registered: add one with @client.on_event or @client.on_result first")

        self._serving = True
        self._loop = asyncio.get_running_loop()
        self._consumers = consumers
        uninstall: Callable[[], None] = lambda: None
        if install_signal_handlers:
            uninstall = _install_client_signals(self)
        if self._stop_requested:
            self._request_consumers_stop()

        tasks = [asyncio.create_task(consumer.run(), name="iris-client-consumer") for consumer in consumers]
        self._consumer_tasks = tasks
        logger.info("Client serving %d channel(s)", len(tasks))
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [task for task in done if not task.cancelled() and task.exception() is not None]
            if failed:
                self._request_consumers_stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise failed[0].exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            uninstall()
            self._consumers = []
            self._serving = False
            self._stop_requested = False
            self._consumer_tasks = []
            logger.info("Client stopped serving")

    def run(self) -> None:
        """Run ``serve`` on a new event loop in this thread until SIGINT, SIGTERM or ``request_stop``."""
        asyncio.run(self._serve_and_close())

    async def _serve_and_close(self) -> None:
        try:
            await self.serve()
        finally:
            await self.close()

    def request_stop(self) -> None:
        """Ask ``serve`` to stop, without waiting; safe to call from any thread and from handlers."""
        self._stop_requested = True
        loop = self._loop
        if loop is None or not self._serving:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._request_consumers_stop()
        else:
            loop.call_soon_threadsafe(self._request_consumers_stop)

    def _request_consumers_stop(self) -> None:
        for consumer in self._consumers:
            consumer.request_stop()

    def _build_consumers(self) -> list[Consumer[Any]]:
        consumers: list[Consumer[Any]] = []
        options = self._consumer_options()
        if self.handlers.has_event_handlers:
            consumers.append(
                Consumer(
                    self.config.create_transport(EVENTS),
                    self.handlers.dispatch_event,
                    decode=message_decoder(models.parse_event),
                    concurrency=self.concurrency,
                    **options,
                )
            )
        if self.handlers.has_result_handlers:
            consumers.append(
                Consumer(
                    self.config.create_transport(RESULTS),
                    self.handlers.dispatch_result,
                    decode=message_decoder(models.parse_order_result),
                    concurrency=self.concurrency,
                    **options,
                )
            )
        return consumers

    def _consumer_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_attempts": self.max_attempts,
            "backoff": self.backoff,
            "shutdown_timeout": self.shutdown_timeout,
            "receive_wait": self.receive_wait,
            "include_exception_message": self.include_exception_message,
        }
        if self.dedup is not None:
            options["dedup"] = self.dedup
            options["dedup_key"] = _transaction_id
        return options

    # Lifecycle

    async def close(self) -> None:
        """Stop serving, close every stream and every transport the client opened. Calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self.request_stop()
        for stream in list(self._streams):
            await stream.aclose()
        producers, self._producers = self._producers, {}
        for channel, producer in producers.items():
            try:
                await producer.close()
            except Exception:
                logger.exception("Closing the transport of channel %s failed", channel)

    async def __aenter__(self) -> AsyncIrisClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this client is closed; create a new one")


def _order_for(
    code: models.OrderControlCode, local_id: str, site: str | None, client_guid: str | None
) -> models.OrderRequest:
    if not isinstance(local_id, str) or not local_id.strip():
        raise ValueError("local_id must be the order's Order.LocalId, a non-empty string")
    document: dict[str, Any] = {"OrderControlCode": code.value, "Order": {"LocalId": local_id}}
    if site:
        document["Site"] = {"LocalId": site}
    if client_guid:
        document["ClientGuid"] = client_guid
    return models.parse_order_request(document)


def _transaction_id(message: Any) -> str | None:
    transaction_id = getattr(message, "transaction_id", None)
    return str(transaction_id).upper() if transaction_id else None


def _install_client_signals(client: AsyncIrisClient) -> Callable[[], None]:
    signals_seen = 0

    def on_signal(signal_name: str) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            logger.info("Received %s: stopping the client", signal_name)
            client.request_stop()
        else:
            # Cancelling the consumers, not serve() itself, lets serve() and
            # run() return normally instead of raising CancelledError.
            logger.warning("Received %s again: cancelling handlers still running", signal_name)
            for task in client._consumer_tasks:
                task.cancel()

    return install_signal_handlers(asyncio.get_running_loop(), on_signal)
