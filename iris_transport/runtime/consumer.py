"""The consumer: receive messages, run a handler on each, and settle every message.

Settlement rules (at-least-once):

- the handler returns: the message is completed;
- the handler raises: the message is given back with an exponential backoff
  delay until it has been delivered ``max_attempts`` times, then it is
  dead-lettered with the exception's type name as the reason and its
  message (truncated) as the description;
- ``decode`` raises ``DecodeError`` or ``MessageValidationError``: the
  message is dead-lettered at once with reason ``DecodeError`` or
  ``ValidationError`` and the error text, which names field paths only;
- with deduplication on, a message whose key was handled already is
  completed without calling the handler.

While a message is held, a background task on the consumer's event loop
extends its lock. Sync handlers run on their own threads, so a blocking
handler never delays lock renewal. An async handler shares the consumer's
event loop: while it awaits, renewal runs, but CPU-bound work that never
awaits blocks renewal, so put such work in a sync handler.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from iris_transport.exceptions import (
    ConfigurationError,
    DecodeError,
    LockLostError,
    MessageValidationError,
    TransportError,
    UnsupportedOperationError,
)
from iris_transport.runtime.dedup import DeduplicationStore
from iris_transport.runtime.retry import RetryPolicy
from iris_transport.runtime.shutdown import install_signal_handlers, run_in_daemon_thread
from iris_transport.transport import ReceivedMessage, SyncTransport, Transport

__all__ = ["Consumer", "SyncConsumer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

Handler = Callable[[T], Awaitable[object]] | Callable[[T], object]

# Maximum length of the dead-letter description sent to the broker. Service Bus stores the
# description as a message property; 1024 characters keeps it well within
# every backend's property limits.
MAX_DESCRIPTION_LENGTH = 1024

# Lock renewal interval when the backend declares no lock duration.
DEFAULT_RENEWAL_INTERVAL = 10.0

# Per-call bound on settlement and release calls during shutdown, and on close().
SETTLEMENT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 10.0

# How often a settlement call is tried when the broker reports a transient error.
SETTLEMENT_TRIES = 3

# Receive error backoff: first delay, cap, and the interval between repeated warnings.
RECEIVE_BACKOFF_INITIAL = 1.0
RECEIVE_BACKOFF_MAX = 30.0
RECEIVE_WARNING_INTERVAL = 60.0


@dataclasses.dataclass(eq=False)
class _Delivery:
    message: ReceivedMessage
    received_at: float
    renewal: asyncio.Task[None] | None = None

    def stop_renewal(self) -> None:
        if self.renewal is not None:
            self.renewal.cancel()
            self.renewal = None


def _ids(message: ReceivedMessage) -> tuple[str, int]:
    return (message.message_id or "(none)", message.delivery_count)


class Consumer(Generic[T]):
    """Receive from one transport and run ``handler`` on each decoded message.

    ``decode(message)`` turns a ``ReceivedMessage`` into the value passed to
    ``handler``, which is the message itself when ``decode`` is None. A sync
    ``decode`` runs on a worker thread, and an async one on the event loop. Up to ``concurrency`` handlers run at
    once, and up to ``prefetch`` more messages are held ready. ``dedup`` and
    ``dedup_key`` turn deduplication on: ``dedup_key(decoded)`` returns the
    key (for IRIS, the TransactionId, converted with ``str``) or None to skip
    deduplication for that message.

    Handler exception messages become dead-letter descriptions, which anyone
    with access to the dead-letter queue can read, so they must not contain
    patient values. Set ``include_exception_message=False`` to send the
    exception type only.

    The consumer owns the transport: ``run`` closes it on the way out.
    """

    def __init__(
        self,
        transport: Transport,
        handler: Handler[T],
        *,
        decode: Callable[[ReceivedMessage], T] | Callable[[ReceivedMessage], Awaitable[T]] | None = None,
        concurrency: int = 1,
        prefetch: int = 0,
        max_attempts: int = 5,
        backoff: RetryPolicy | None = None,
        lock_renewal: bool = True,
        max_lock_renewal: float | None = None,
        dedup: DeduplicationStore | None = None,
        dedup_key: Callable[[T], object | None] | None = None,
        shutdown_timeout: float = 30.0,
        receive_wait: float = 5.0,
        include_exception_message: bool = True,
    ) -> None:
        if isinstance(transport, SyncTransport):
            raise TypeError(
                "Consumer needs an async Transport, not a SyncTransport; pass SyncTransport.transport, "
                "or use SyncConsumer for a blocking consumer"
            )
        _check_positive("concurrency", concurrency, integer=True)
        if prefetch < 0:
            raise ValueError(f"prefetch must be 0 or more, got {prefetch}")
        _check_positive("max_attempts", max_attempts, integer=True)
        _check_positive("shutdown_timeout", shutdown_timeout)
        _check_positive("receive_wait", receive_wait)
        if max_lock_renewal is not None:
            _check_positive("max_lock_renewal", max_lock_renewal)
        if (dedup is None) != (dedup_key is None):
            raise ValueError("dedup and dedup_key go together: pass both to deduplicate, or neither")

        self.transport = transport
        self.handler = handler
        self.decode = decode
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.max_attempts = max_attempts
        self.backoff = backoff or RetryPolicy()
        self.lock_renewal = lock_renewal
        self.max_lock_renewal = max_lock_renewal
        self.dedup = dedup
        self.dedup_key = dedup_key
        self.shutdown_timeout = shutdown_timeout
        self.receive_wait = receive_wait
        self.include_exception_message = include_exception_message

        self._handler_is_async = _is_async_callable(handler)
        self._decode_is_async = decode is not None and _is_async_callable(decode)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._capacity_freed: asyncio.Event | None = None
        self._stop_requested = False
        self._signals_requested = False
        self._running = False
        self._finished: asyncio.Event | None = None
        self._exit_exception: BaseException | None = None
        self._buffer: collections.deque[_Delivery] = collections.deque()
        self._active: dict[asyncio.Task[None], _Delivery] = {}

        capabilities = transport.capabilities
        if capabilities.max_delivery_count is not None and max_attempts > capabilities.max_delivery_count:
            logger.warning(
                "max_attempts=%d is more than the %s backend's max delivery count of %d: the broker "
                "dead-letters a failing message after %d deliveries; lower max_attempts to match",
                max_attempts,
                transport.backend_name,
                capabilities.max_delivery_count,
                capabilities.max_delivery_count,
            )

    # Public lifecycle

    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGINT or SIGTERM while ``run`` is running; a second signal stops at once.

        Call it before ``run`` or from the running loop, in the main thread.
        The previous handlers come back when ``run`` returns.
        """
        self._signals_requested = True
        if self._loop is not None and self._running:
            self._uninstall_signals = install_signal_handlers(self._loop, self._on_signal)

    def request_stop(self) -> None:
        """Ask ``run`` to stop, without waiting; safe to call from any thread, including a handler's.

        Called before ``run``, it makes the next ``run`` shut down as soon as it starts.
        """
        loop = self._loop
        if not self._running or loop is None or self._stopping is None:
            self._stop_requested = True
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._stopping.set()
            return
        try:
            loop.call_soon_threadsafe(self._stopping.set)
        except RuntimeError:
            # The loop closed between the check above and this call, so run() has returned.
            logger.debug("Stop requested after the consumer's event loop closed")

    async def stop(self) -> None:
        """Stop ``run`` and wait until it has shut down.

        Do not await this from inside a handler, because shutdown waits for
        that handler; call ``request_stop`` there instead.
        """
        self.request_stop()
        if self._finished is not None and self._running:
            await self._finished.wait()

    async def run(self) -> None:
        """Receive and handle messages until stopped, then shut down.

        Raises the receive error when the transport fails with a permanent
        ``TransportError`` (or any error that is not a ``TransportError``),
        after the same shutdown.
        """
        if self._running:
            raise RuntimeError("this consumer is already running")
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()
        self._capacity_freed = asyncio.Event()
        self._finished = asyncio.Event()
        self._exit_exception = None
        self._running = True
        self._uninstall_signals: Callable[[], None] = lambda: None
        if self._signals_requested:
            self._uninstall_signals = install_signal_handlers(self._loop, self._on_signal)
        if self._stop_requested:
            self._stopping.set()

        logger.info(
            "Consumer started on the %s backend (concurrency %d, prefetch %d, max attempts %d)",
            self.transport.backend_name,
            self.concurrency,
            self.prefetch,
            self.max_attempts,
        )
        fetcher = asyncio.create_task(self._fetch_loop(), name="iris-consumer-fetch")
        stop_waiter = asyncio.create_task(self._stopping.wait())
        fatal: BaseException | None = None
        try:
            await asyncio.wait({fetcher, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if fetcher.done() and not fetcher.cancelled():
                fatal = fetcher.exception()
        finally:
            self._stopping.set()
            stop_waiter.cancel()
            fetcher.cancel()
            await asyncio.gather(fetcher, stop_waiter, return_exceptions=True)
            try:
                await self._shutdown()
            finally:
                self._uninstall_signals()
                self._running = False
                self._stop_requested = False
                self._finished.set()

        if fatal is not None:
            raise fatal
        if self._exit_exception is not None:
            raise self._exit_exception

    # Receiving

    async def _fetch_loop(self) -> None:
        assert self._stopping is not None
        capacity = self.concurrency + self.prefetch
        backoff = RECEIVE_BACKOFF_INITIAL
        failures = 0
        last_warning = float("-inf")

        while not self._stopping.is_set():
            free = await self._wait_for_capacity(capacity)
            if free == 0:
                return

            try:
                messages = await self.transport.receive(max_messages=free, max_wait=self.receive_wait)
            except TransportError as err:
                if not err.transient:
                    logger.error(
                        "Consumer stopping: receive failed with a permanent error on the %s backend: %s",
                        self.transport.backend_name,
                        err,
                    )
                    raise
                failures += 1
                now = time.monotonic()
                if now - last_warning >= RECEIVE_WARNING_INTERVAL:
                    last_warning = now
                    logger.warning(
                        "Receive failed (%d failures in a row), retrying in %.2f s: %s",
                        failures,
                        backoff,
                        err,
                    )
                await self._sleep_unless_stopping(backoff)
                backoff = min(backoff * 2, RECEIVE_BACKOFF_MAX)
                continue
            except ConfigurationError as err:
                # A missing SDK or an invalid setting found on first use: the
                # message already names what to install or change.
                logger.error("Consumer stopping: the %s backend is not usable: %s", self.transport.backend_name, err)
                raise
            except Exception:
                logger.exception("Consumer stopping: receive raised an error that is not a TransportError")
                raise

            if failures:
                logger.info("Receive recovered after %d failures", failures)
                failures = 0
                backoff = RECEIVE_BACKOFF_INITIAL
                last_warning = float("-inf")
            for message in messages:
                self._accept(message)

    async def _wait_for_capacity(self, capacity: int) -> int:
        assert self._stopping is not None and self._capacity_freed is not None
        while not self._stopping.is_set():
            free = capacity - len(self._active) - len(self._buffer)
            if free > 0:
                return free
            self._capacity_freed.clear()
            await _wait_first(self._capacity_freed, self._stopping)
        return 0

    def _accept(self, message: ReceivedMessage) -> None:
        logger.debug("Received message %s (delivery %d)", *_ids(message))
        delivery = _Delivery(message=message, received_at=time.monotonic())
        if self._renewal_enabled():
            delivery.renewal = asyncio.create_task(self._renew_lock(delivery), name="iris-lock-renewal")

        if len(self._active) < self.concurrency and not self._buffer:
            self._start(delivery)
        else:
            self._buffer.append(delivery)

    def _start(self, delivery: _Delivery) -> None:
        task = asyncio.create_task(self._process(delivery), name=f"iris-handle-{delivery.message.message_id}")
        self._active[task] = delivery
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        assert self._stopping is not None and self._capacity_freed is not None
        delivery = self._active.pop(task, None)
        if delivery is not None:
            delivery.stop_renewal()
        if not task.cancelled() and task.exception() is not None:
            # _process catches everything it can settle, so this is a bug in the runtime itself.
            message_id = delivery.message.message_id if delivery is not None else "(unknown)"
            logger.error("Handling task for message %s failed", message_id, exc_info=task.exception())

        if not self._stopping.is_set() and self._buffer:
            self._start(self._buffer.popleft())
        self._capacity_freed.set()

    # Handling one message

    async def _process(self, delivery: _Delivery) -> None:
        try:
            await self._process_message(delivery)
        except (KeyboardInterrupt, SystemExit) as err:
            # Left to propagate, these would end the event loop with no
            # shutdown, so the consumer gives the message back, stops, and
            # run() raises the exception afterwards.
            logger.error(
                "The handler of message %s (delivery %d) raised %s: releasing the message and stopping the consumer",
                *_ids(delivery.message),
                type(err).__name__,
            )
            if self._exit_exception is None:
                self._exit_exception = err
            self.request_stop()
            await self._settle(delivery, "retry", None)

    async def _process_message(self, delivery: _Delivery) -> None:
        message = delivery.message
        try:
            decoded = await self._decode(message)
        except DecodeError as err:
            await self._dead_letter(delivery, "DecodeError", str(err))
            return
        except MessageValidationError as err:
            await self._dead_letter(delivery, "ValidationError", str(err))
            return
        except Exception as err:
            # A decode function that fails in another way is a bug, which a
            # redeployment may fix, so the message is retried like a handler failure.
            await self._handle_failure(delivery, err, stage="decode")
            return

        key: str | None = None
        if self.dedup is not None and self.dedup_key is not None:
            try:
                raw_key = self.dedup_key(decoded)
                key = None if raw_key is None else str(raw_key)
                if key is not None and not await self.dedup.claim(key):
                    logger.info(
                        "Message %s (delivery %d) is a duplicate of key %s: completing it without handling",
                        *_ids(message),
                        key,
                    )
                    await self._settle(delivery, "complete")
                    return
            except Exception as err:
                await self._handle_failure(delivery, err, stage="deduplication")
                return

        try:
            await self._call_handler(decoded)
        except Exception as err:
            if key is not None:
                await self._release_key(key)
            await self._handle_failure(delivery, err, stage="handler")
            return
        except BaseException:
            # Cancelled at the shutdown deadline, or KeyboardInterrupt or
            # SystemExit: the message is delivered again, and a key left
            # claimed would make that delivery look like a duplicate.
            if key is not None:
                await self._release_key(key)
            raise

        if key is not None:
            try:
                await self.dedup.confirm(key)  # type: ignore[union-attr]
            except Exception:
                logger.exception(
                    "Could not record key %s of message %s as handled; a redelivery may be handled again",
                    key,
                    message.message_id,
                )
        await self._settle(delivery, "complete")

    async def _decode(self, message: ReceivedMessage) -> Any:
        if self.decode is None:
            return message
        if self._decode_is_async:
            return await self.decode(message)  # type: ignore[misc]
        return await run_in_daemon_thread(self.decode, message, name="iris-decode")

    async def _call_handler(self, decoded: Any) -> None:
        if self._handler_is_async:
            await self.handler(decoded)  # type: ignore[misc]
        else:
            await run_in_daemon_thread(self.handler, decoded)

    async def _release_key(self, key: str) -> None:
        try:
            await self.dedup.release(key)  # type: ignore[union-attr]
        except Exception:
            logger.exception("Could not release deduplication key %s; its claim expires by itself", key)

    async def _handle_failure(self, delivery: _Delivery, err: Exception, *, stage: str) -> None:
        message = delivery.message
        reason = type(err).__name__
        detail = err if self.include_exception_message else reason

        if message.delivery_count >= self.max_attempts:
            logger.warning(
                "Message %s failed in the %s on delivery %d of %d, dead-lettering it: %s",
                message.message_id,
                stage,
                message.delivery_count,
                self.max_attempts,
                detail,
            )
            await self._dead_letter(delivery, reason, str(err) if self.include_exception_message else None)
            return

        delay = self.backoff.delay(message.delivery_count)
        logger.warning(
            "Message %s failed in the %s on delivery %d of %d, retrying in %.2f s: %s",
            message.message_id,
            stage,
            message.delivery_count,
            self.max_attempts,
            delay,
            detail,
        )
        if self.transport.capabilities.retry_delay:
            await self._settle(delivery, "retry", delay)
            return

        # The broker cannot delay a redelivery, so the consumer keeps the
        # message locked for the backoff and gives it back afterwards. Without
        # lock renewal it holds the message for at most half its lock duration.
        hold = delay
        lock_duration = self.transport.capabilities.lock_duration
        if delivery.renewal is None and lock_duration is not None:
            hold = min(delay, max(0.0, lock_duration / 2 - (time.monotonic() - delivery.received_at)))
        await self._sleep_unless_stopping(hold)
        await self._settle(delivery, "retry", None)

    async def _dead_letter(self, delivery: _Delivery, reason: str, description: str | None) -> None:
        if reason in ("DecodeError", "ValidationError"):
            logger.warning(
                "Message %s (delivery %d) cannot be decoded, dead-lettering it: %s",
                *_ids(delivery.message),
                description,
            )
        if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
            description = description[: MAX_DESCRIPTION_LENGTH - 3] + "..."
        await self._settle(delivery, "dead_letter", reason, description)

    async def _settle(self, delivery: _Delivery, operation: str, *args: Any) -> None:
        """Call a settlement operation, logging (not raising) what goes wrong."""
        message = delivery.message
        delivery.stop_renewal()
        settle = getattr(self.transport, operation)

        for attempt in range(1, SETTLEMENT_TRIES + 1):
            try:
                await asyncio.wait_for(settle(message, *args), SETTLEMENT_TIMEOUT)
            except LockLostError:
                logger.warning(
                    "Lock of message %s (delivery %d) expired before %s; the broker will deliver it again",
                    *_ids(message),
                    operation,
                )
                return
            except (TransportError, asyncio.TimeoutError) as err:
                transient = isinstance(err, asyncio.TimeoutError) or err.transient
                if transient and attempt < SETTLEMENT_TRIES:
                    logger.debug("Retrying %s of message %s after: %s", operation, message.message_id, err)
                    await asyncio.sleep(0.5 * attempt)
                    continue
                logger.error(
                    "Could not %s message %s (delivery %d); the broker will deliver it again after its "
                    "lock expires: %s",
                    operation,
                    *_ids(message),
                    err or "timed out",
                )
                return
            except Exception:
                logger.exception("Could not %s message %s (delivery %d)", operation, *_ids(message))
                return
            else:
                logger.debug("Settled message %s (delivery %d): %s", *_ids(message), operation)
                return

    # Lock renewal

    def _renewal_enabled(self) -> bool:
        return self.lock_renewal and self.transport.capabilities.lock_extension

    def _default_renewal_interval(self) -> float:
        lock_duration = self.transport.capabilities.lock_duration
        return lock_duration / 2 if lock_duration else DEFAULT_RENEWAL_INTERVAL

    async def _renew_lock(self, delivery: _Delivery) -> None:
        message = delivery.message
        interval = self._default_renewal_interval()
        give_up_at = None if self.max_lock_renewal is None else delivery.received_at + self.max_lock_renewal

        while True:
            await asyncio.sleep(interval)
            if give_up_at is not None and time.monotonic() >= give_up_at:
                logger.warning(
                    "Stopped renewing the lock of message %s after max_lock_renewal=%.0f s",
                    message.message_id,
                    self.max_lock_renewal,
                )
                return

            try:
                expiry = await self.transport.extend_lock(message)
            except LockLostError:
                logger.warning(
                    "Lock of message %s (delivery %d) was lost while it was being handled; "
                    "the broker will deliver it again",
                    *_ids(message),
                )
                return
            except UnsupportedOperationError:
                logger.debug("The %s backend cannot extend locks", self.transport.backend_name)
                return
            except TransportError as err:
                logger.warning("Could not extend the lock of message %s, trying again: %s", message.message_id, err)
                interval = max(interval / 2, 0.05)
                continue
            except Exception:
                logger.exception("Could not extend the lock of message %s, trying again", message.message_id)
                continue

            interval = _next_renewal_interval(expiry, self._default_renewal_interval())
            logger.debug("Extended the lock of message %s; next renewal in %.1f s", message.message_id, interval)

    # Shutdown

    def _on_signal(self, signal_name: str) -> None:
        assert self._stopping is not None and self._force is not None
        if self._stopping.is_set():
            logger.warning("Received %s again: abandoning in-flight handlers now", signal_name)
            self._force.set()
        else:
            logger.info("Received %s: stopping the consumer", signal_name)
            self._stopping.set()

    async def _shutdown(self) -> None:
        assert self._force is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        logger.info(
            "Consumer stopping: %d in-flight, %d prefetched (deadline %.1f s)",
            len(self._active),
            len(self._buffer),
            self.shutdown_timeout,
        )

        await self._release_prefetched(deadline)
        await self._wait_for_handlers(deadline)

        try:
            await asyncio.wait_for(self.transport.close(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            logger.error("Closing the %s transport timed out after %.0f s", self.transport.backend_name, CLOSE_TIMEOUT)
        except Exception:
            logger.exception("Closing the %s transport failed", self.transport.backend_name)
        logger.info("Consumer stopped")

    async def _release_prefetched(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while self._buffer:
            delivery = self._buffer.popleft()
            delivery.stop_renewal()
            remaining = deadline - loop.time()
            if remaining <= 0:
                logger.warning(
                    "No time left to release message %s (delivery %d); it is left to lock expiry",
                    *_ids(delivery.message),
                )
                continue
            try:
                await asyncio.wait_for(self.transport.retry(delivery.message, None), min(remaining, SETTLEMENT_TIMEOUT))
                logger.debug("Released prefetched message %s", delivery.message.message_id)
            except LockLostError:
                logger.debug("Prefetched message %s had lost its lock already", delivery.message.message_id)
            except (TransportError, asyncio.TimeoutError) as err:
                logger.warning(
                    "Could not release prefetched message %s (delivery %d); it is left to lock expiry: %s",
                    *_ids(delivery.message),
                    err or "timed out",
                )
            except Exception:
                logger.exception("Could not release prefetched message %s", delivery.message.message_id)

    async def _wait_for_handlers(self, deadline: float) -> None:
        assert self._force is not None
        loop = asyncio.get_running_loop()
        if not self._active:
            return

        logger.info("Waiting up to %.1f s for %d in-flight handlers", max(0.0, deadline - loop.time()), len(self._active))
        force_waiter = asyncio.create_task(self._force.wait())
        try:
            pending = set(self._active)
            while pending and not self._force.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(pending | {force_waiter}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                pending -= done
        finally:
            force_waiter.cancel()

        abandoned = [task for task in self._active if not task.done()]
        for task in abandoned:
            delivery = self._active[task]
            delivery.stop_renewal()
            logger.warning(
                "Abandoning the handler of message %s (delivery %d) still running after the shutdown "
                "deadline; the message is left to lock expiry",
                *_ids(delivery.message),
            )
            task.cancel()
        if abandoned:
            # Cancelled tasks wake up at once; a sync handler's thread keeps running as a daemon.
            await asyncio.wait(abandoned, timeout=1.0)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        assert self._stopping is not None
        if seconds <= 0 or self._stopping.is_set():
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass


class SyncConsumer(Generic[T]):
    """A blocking ``Consumer``: ``run`` runs an event loop in the calling thread.

    Takes the same arguments as ``Consumer``, including an async
    ``Transport``. ``stop`` is safe to call from any other thread; from inside
    a handler, call ``request_stop``.
    """

    def __init__(self, transport: Transport, handler: Handler[T], **options: Any) -> None:
        self.consumer: Consumer[T] = Consumer(transport, handler, **options)
        # Set whenever run() is not running, so stop() before run() returns at once.
        self._done = threading.Event()
        self._done.set()

    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGINT or SIGTERM; call before ``run``, in the main thread."""
        self.consumer.install_signal_handlers()

    def run(self) -> None:
        """Receive and handle messages until stopped; see ``Consumer.run``."""
        self._done.clear()
        try:
            asyncio.run(self.consumer.run())
        finally:
            self._done.set()

    def request_stop(self) -> None:
        """Ask ``run`` to stop, without waiting."""
        self.consumer.request_stop()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop ``run`` and wait for it to return; return False if it was still running after ``timeout`` seconds.

        The default timeout is the shutdown deadline plus the time allowed to close the transport.
        """
        self.consumer.request_stop()
        if timeout is None:
            timeout = self.consumer.shutdown_timeout + CLOSE_TIMEOUT + 5.0
        return self._done.wait(timeout)


def _check_positive(name: str, value: float, *, integer: bool = False) -> None:
    if integer and not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be more than 0, got {value}")


def _is_async_callable(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def _next_renewal_interval(expiry: datetime | None, default: float) -> float:
    """Return the seconds until the next renewal: half the time left on the lock the broker reported."""
    if expiry is None:
        return default
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=timezone.utc)
    remaining = (expiry - datetime.now(timezone.utc)).total_seconds()
    if remaining <= 0:
        # The broker's clock and ours disagree; fall back to the declared duration.
        return default
    return max(remaining / 2, 0.05)


async def _wait_first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
