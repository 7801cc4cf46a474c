"""The emulator's public face: start, stop, configure queues, drop connections."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from proton import Handler
from proton.reactor import ApplicationEvent, Container, EventInjector

from iris_transport_azure.emulator._access import KeyRights
from iris_transport_azure.emulator._broker import BrokerHandler
from iris_transport_azure.emulator._store import QueueOptions, Store

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The key is a fixed placeholder because the emulator checks no signatures.
# The key name decides the rights when the emulator has key_rights.
DEFAULT_KEY_NAME = "RootManageSharedAccessKey"
CONNECTION_STRING_TEMPLATE = (
    "Endpoint=sb://{host}:{port};SharedAccessKeyName={key_name};"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
)


class EmulatorError(RuntimeError):
    """The emulator failed to start, stop or run a request in time."""


class _ListeningContainer(Container):
    """A Proton container that records the sockets its acceptors listen on.

    Proton's acceptor does not report the port it bound, which port 0
    needs. Every acceptor registers its listening socket through
    ``selectable``, so the socket is recorded there.
    """

    def __init__(self, handler: Handler) -> None:
        super().__init__(handler)
        self.listening_sockets: list[socket.socket] = []

    def selectable(self, handler: Any = None, delegate: Any = None) -> Any:
        if isinstance(delegate, socket.socket) and delegate.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            self.listening_sockets.append(delegate)
        return super().selectable(handler, delegate)


class ServiceBusEmulator:
    """An Azure Service Bus emulator serving queues and topics over AMQP 1.0 without TLS.

    Run it in a background thread with ``start()``/``stop()`` (or as a
    context manager), or in the calling thread with ``serve_forever()``.
    ``queues`` are created at start, given by name or as a mapping of name
    to ``QueueOptions``. ``topics`` maps each topic to its subscriptions,
    e.g. ``{"results": ["crm", "archive"]}``. With ``auto_create_queues``,
    any other single name is created as a queue on first use with
    ``default_queue_options``. Without it, an unknown entity is rejected
    with ``amqp:not-found``. Subscriptions are never created on first use.

    ``key_rights`` maps SAS key names to their rights (``Send``, ``Listen``,
    ``Manage``), e.g. ``{"SendOnly": {"Send"}}``. A link whose token's key
    name lacks the right is rejected with ``amqp:unauthorized-access``.
    Without ``key_rights`` every key has every right.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        queues: Iterable[str] | Mapping[str, QueueOptions] = (),
        auto_create_queues: bool = True,
        default_queue_options: QueueOptions | None = None,
        topics: Mapping[str, Iterable[str]] | None = None,
        key_rights: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._store = Store(default_options=default_queue_options or QueueOptions(), auto_create=auto_create_queues)
        initial = queues.items() if isinstance(queues, Mapping) else ((name, None) for name in queues)
        for name, options in initial:
            self._store.create_queue(name, options)
        for topic, subscriptions in (topics or {}).items():
            if isinstance(subscriptions, str):
                raise ValueError(f"topics[{topic!r}] must be a list of subscription names, not the string {subscriptions!r}")
            self._store.create_topic(topic, subscriptions)

        self._handler = BrokerHandler(self._store, KeyRights(key_rights))
        self._container: _ListeningContainer | None = None
        self._injector: EventInjector | None = None
        self._acceptor: Any = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        # Guards the injector's pipe, which _run closes while other threads may
        # still call trigger(), and the calls that wait for the emulator thread.
        self._injector_lock = threading.Lock()
        self._pending_calls: set[Future[Any]] = set()

    # lifecycle

    @property
    def port(self) -> int:
        """The bound TCP port; known once the emulator has started."""
        if self._port is None:
            raise EmulatorError("the emulator has not started: call start() first")
        return self._port

    @property
    def connection_string(self) -> str:
        """A Service Bus connection string for this emulator, as the official SDK accepts it."""
        return self.connection_string_for(DEFAULT_KEY_NAME)

    def connection_string_for(self, key_name: str) -> str:
        """Return a connection string whose SAS tokens name ``key_name``, e.g. a key of ``key_rights``."""
        if not key_name or any(character in key_name for character in ";=&"):
            raise ValueError(f"invalid key name {key_name!r}: it must be non-empty and contain no ';', '=' or '&'")
        return CONNECTION_STRING_TEMPLATE.format(host=self.host, port=self.port, key_name=key_name)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> ServiceBusEmulator:
        """Start serving in a background thread and wait until the port is bound."""
        if self._thread is not None:
            raise EmulatorError("the emulator was already started; create a new one to start again")
        self._thread = threading.Thread(target=self._run, name="servicebus-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EmulatorError(f"the emulator did not start within {timeout} seconds")
        if self._startup_error is not None:
            reason = getattr(self._startup_error, "strerror", None) or self._startup_error
            raise EmulatorError(
                f"the emulator failed to start: cannot listen on {self.host}:{self._requested_port}: {reason}"
            ) from self._startup_error
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another thread or Ctrl+C."""
        self._thread = threading.current_thread()
        self._run()

    def _run(self) -> None:
        container = _ListeningContainer(self._handler)
        self._container = container
        try:
            self._acceptor = container.listen(f"{self.host}:{self._requested_port}")
            self._injector = EventInjector()
            container.selectable(self._injector)
            self._port = container.listening_sockets[-1].getsockname()[1]
        except (OSError, IndexError) as error:
            self._startup_error = error
            self._ready.set()
            return

        logger.info("Service Bus emulator listening on %s:%d", self.host, self._port)
        self._ready.set()
        try:
            container.run()
        except KeyboardInterrupt:
            logger.info("Service Bus emulator interrupted")
        finally:
            self._close_injector()
            logger.info("Service Bus emulator stopped")

    def _close_injector(self) -> None:
        # Proton's EventInjector never closes its pipe, so each start would leak two descriptors.
        with self._injector_lock:
            injector, self._injector = self._injector, None
            if injector is not None:
                for descriptor in injector.pipe:
                    os.close(descriptor)
            pending, self._pending_calls = self._pending_calls, set()
        # A request that arrived after the last event was processed would
        # otherwise wait for its whole timeout.
        for future in pending:
            if not future.done():
                future.set_exception(EmulatorError("the emulator stopped before it ran the request"))

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop serving and wait for the thread to end."""
        if self._thread is None or not self._thread.is_alive() or self._injector is None:
            return
        try:
            self.call(self._shutdown, timeout=timeout)
        except EmulatorError:
            logger.warning("The emulator did not accept the stop request within %s seconds", timeout)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise EmulatorError(f"the emulator thread did not end within {timeout} seconds")

    def _shutdown(self) -> None:
        self._handler.cancel_ticks()
        self._handler.close_connections()
        if self._acceptor is not None:
            self._acceptor.close()
        if self._injector is not None:
            self._injector.close()
        # Give the close frames a moment to leave before the container stops.
        assert self._container is not None
        self._container.schedule(0.2, _StopTask(self._container, self._handler))

    def __enter__(self) -> ServiceBusEmulator:
        if self._thread is None:
            self.start()
        elif not self.running:
            raise EmulatorError("the emulator was stopped; create a new one to start again")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # requests from other threads

    def call(self, function: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``function`` on the emulator's thread and return its result.

        All broker state belongs to that thread; this is the only safe way
        to read or change it from outside.
        """
        if self._injector is None or not self.running:
            raise EmulatorError("the emulator is not running")
        if self._thread is threading.current_thread():
            return function()
        future: Future[T] = Future()
        with self._injector_lock:
            if self._injector is None:
                raise EmulatorError("the emulator is not running")
            self._pending_calls.add(future)
            self._injector.trigger(ApplicationEvent("emulator_call", subject=(function, future)))
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise EmulatorError(f"the emulator did not run the request within {timeout} seconds") from None
        finally:
            with self._injector_lock:
                self._pending_calls.discard(future)

    def create_queue(self, name: str, **options: Any) -> None:
        """Create a queue; ``options`` are ``QueueOptions`` fields, e.g. ``lock_duration=2``."""
        queue_options = QueueOptions(**options) if options else None
        if not self.running:
            self._store.create_queue(name, queue_options)
            return
        self.call(lambda: self._store.create_queue(name, queue_options))

    def create_topic(self, name: str, subscriptions: Iterable[str] = (), **options: Any) -> None:
        """Create a topic with subscriptions, or add subscriptions to an existing topic.

        ``options`` are ``QueueOptions`` fields of each new subscription, e.g. ``lock_duration=2``.
        """
        if isinstance(subscriptions, str):
            raise ValueError(f"subscriptions must be a list of names, not the string {subscriptions!r}")
        names = list(subscriptions)
        queue_options = QueueOptions(**options) if options else None
        if not self.running:
            self._store.create_topic(name, names, queue_options)
            return
        self.call(lambda: self._store.create_topic(name, names, queue_options))

    def drop_connections(self) -> int:
        """Close every client connection abruptly, without an AMQP close; returns how many."""
        return self.call(self._handler.drop_connections)

    def message_count(self, name: str) -> int:
        """Return how many messages a queue, subscription or dead-letter sub-queue contains in any state.

        The states are active, locked, deferred and scheduled. A topic raises ``LookupError``.
        """
        return self.call(lambda: len(self._store.resolve(name).messages))


class _StopTask(Handler):
    def __init__(self, container: Container, handler: BrokerHandler) -> None:
        super().__init__()
        self._container = container
        self._handler = handler

    def on_timer_task(self, event: Any) -> None:
        for connection in list(self._handler.connections):
            transport = connection.transport
            if transport is not None:
                transport.close_tail()
                transport.close_head()
        self._container.stop()
