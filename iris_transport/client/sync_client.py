"""The blocking IRIS client: the same calls as ``AsyncIrisClient``, for code without an event loop."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import signal
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Generic, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from iris_transport import models
from iris_transport.client.async_client import AsyncIrisClient, SentMessage
from iris_transport.client.handlers import EventSelector
from iris_transport.client.outgoing import GradingInput, OrderInput
from iris_transport.client.stream import MessageStream
from iris_transport.config import IrisConfig, load_config

__all__ = ["IrisClient", "SyncMessageStream"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class SyncMessageStream(Generic[T]):
    """A blocking iterator over one channel, settled like ``MessageStream``.

    Use it in a ``with`` block so that the last message is completed when
    the block exits without an exception.
    """

    def __init__(self, portal: BlockingPortal, stream: MessageStream[T]) -> None:
        self._portal = portal
        self._stream = stream
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._closed or self._stream.closed:
            # The client may have closed the stream and stopped its event loop.
            raise StopIteration
        try:
            return self._portal.call(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    def ack(self) -> None:
        """Complete the message in hand now."""
        if not self._stream.closed:
            self._portal.call(_run_sync, self._stream.ack)

    def nack(self) -> None:
        """Give the message in hand back for another delivery."""
        if not self._stream.closed:
            self._portal.call(_run_sync, self._stream.nack)

    def close(self) -> None:
        """Give back the message in hand and stop receiving."""
        if self._closed:
            return
        self._closed = True
        if not self._stream.closed:
            self._portal.call(self._stream.aclose)

    def __enter__(self) -> SyncMessageStream[T]:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None and not self._closed:
            self.ack()
        self.close()


async def _run_sync(function: Callable[[], None]) -> None:
    function()


class IrisClient:
    """The blocking form of ``AsyncIrisClient``; it runs one on a private event-loop thread.

    Takes the same arguments. Handlers may be plain functions or coroutine
    functions. ``close`` (or leaving ``with``) closes every transport and
    stops the thread. The thread never keeps the process alive, but a
    client still open when the interpreter exits is not closed cleanly:
    messages it held go back to the queue only when their locks expire.
    """

    def __init__(self, config: IrisConfig | None = None, **options: Any) -> None:
        self.async_client = AsyncIrisClient(config, **options)
        self._portal, self._portal_thread = _start_daemon_portal()
        self._closed = False
        # Runs at close(), or when a client that was never closed is collected.
        self._finalizer = weakref.finalize(
            self, _close_client, self.async_client, self._portal, self._portal_thread
        )
        # NOTE: not at interpreter exit, because by then the thread pools of
        # the transports (the local backend's SQLite worker) reject new work.
        self._finalizer.atexit = False

    @classmethod
    def from_config(cls, path: str | Path | None = None, **options: Any) -> IrisClient:
        """Build a client from the configuration file at ``path`` (or the default lookup, see ``load_config``)."""
        return cls(load_config(path), **options)

    @property
    def config(self) -> IrisConfig:
        return self.async_client.config

    # Sending

    def send_order(self, order: OrderInput) -> SentMessage:
        """Send an OrderRequest with whatever OrderControlCode it carries."""
        return self._call(self.async_client.send_order, order)

    def submit_order(self, order: OrderInput) -> SentMessage:
        """Send a new order (NW)."""
        return self._call(self.async_client.submit_order, order)

    def change_order(self, order: OrderInput) -> SentMessage:
        """Send a change (XO) of an order created earlier."""
        return self._call(self.async_client.change_order, order)

    def cancel_order(self, local_id: str, *, site: str | None = None, client_guid: str | None = None) -> SentMessage:
        """Cancel (CA) the order whose Order.LocalId is ``local_id``."""
        call = functools.partial(self.async_client.cancel_order, local_id, site=site, client_guid=client_guid)
        return self._call(call)

    def resend_results(
        self, local_id: str, *, site: str | None = None, client_guid: str | None = None
    ) -> SentMessage:
        """Ask IRIS to send the results of the order ``local_id`` again."""
        call = functools.partial(self.async_client.resend_results, local_id, site=site, client_guid=client_guid)
        return self._call(call)

    def submit_grading(self, grading: GradingInput) -> SentMessage:
        """Send a GradingSubmission (IRIS test environments only)."""
        return self._call(self.async_client.submit_grading, grading)

    # Handlers and iterators

    def on_event(self, *event_types: EventSelector | Callable[..., Any]) -> Any:
        """Register an event handler; see ``AsyncIrisClient.on_event``."""
        return self.async_client.on_event(*event_types)

    def on_result(self, handler: Any = None) -> Any:
        """Register a result handler; see ``AsyncIrisClient.on_result``."""
        return self.async_client.on_result(handler)

    def events(self) -> SyncMessageStream[models.EventBase]:
        """Return a blocking iterator over the events on the ``events`` channel."""
        return SyncMessageStream(self._portal, self._call(_call_async, self.async_client.events))

    def results(self) -> SyncMessageStream[models.OrderResult]:
        """Return a blocking iterator over the OrderResults on the ``results`` channel."""
        return SyncMessageStream(self._portal, self._call(_call_async, self.async_client.results))

    # Serving

    def run(self) -> None:
        """Run the registered handlers until SIGINT, SIGTERM or ``request_stop``; see ``AsyncIrisClient.serve``.

        Signal handlers are installed only when called from the main thread.
        """
        self._check_open()
        restore = _install_stop_signals(self.async_client)
        try:
            self._portal.call(functools.partial(self.async_client.serve, install_signal_handlers=False))
        finally:
            restore()

    serve = run

    def request_stop(self) -> None:
        """Ask ``run`` to stop, without waiting; safe from any thread and from handlers."""
        self.async_client.request_stop()

    def close(self) -> None:
        """Close every transport the client opened and stop its event-loop thread."""
        self._closed = True
        self._finalizer()

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        self._check_open()
        return self._portal.call(function, *args)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this client is closed; create a new one")

    def __enter__(self) -> IrisClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _start_daemon_portal() -> tuple[BlockingPortal, threading.Thread]:
    """Run a BlockingPortal's event loop on a new daemon thread and return both.

    anyio's ``start_blocking_portal`` runs its loop on a non-daemon thread,
    so a client that was never closed would keep the interpreter from exiting.
    """
    started: concurrent.futures.Future[BlockingPortal] = concurrent.futures.Future()

    async def serve() -> None:
        async with BlockingPortal() as portal:
            started.set_result(portal)
            await portal.sleep_until_stopped()

    def run() -> None:
        try:
            anyio.run(serve)
        except BaseException as err:
            if not started.done():
                started.set_exception(err)
            raise

    thread = threading.Thread(target=run, name="iris-client-loop", daemon=True)
    thread.start()
    return started.result(), thread


def _close_client(client: AsyncIrisClient, portal: BlockingPortal, thread: threading.Thread) -> None:
    if threading.current_thread() is thread:
        # Collected on its own loop thread, where blocking on the portal would deadlock.
        logger.warning("An IrisClient was collected on its own event-loop thread without close(); its transports stay open")
        return
    try:
        portal.call(client.close)
    finally:
        # Cancels a serve() still waiting for handlers, which is the case
        # after a second signal interrupted run().
        portal.call(portal.stop, True)
        thread.join()


async def _call_async(function: Callable[[], T]) -> T:
    # Streams create asyncio objects, so they are built on the portal's loop.
    return function()


def _install_stop_signals(client: AsyncIrisClient) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    signals_seen = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        if signals_seen == 1:
            logger.info("Received %s: stopping the client", name)
            client.request_stop()
        else:
            # A second signal interrupts the wait for in-flight handlers.
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
