"""Signal handling for graceful shutdown, and daemon threads for sync handlers so that a stuck one cannot delay exit."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["install_signal_handlers", "run_in_daemon_thread"]

logger = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")


def install_signal_handlers(loop: asyncio.AbstractEventLoop, on_signal: Callable[[str], None]) -> Callable[[], None]:
    """Call ``on_signal(signal_name)`` on ``loop`` for each SIGINT or SIGTERM; return a function that uninstalls.

    Uses the loop's own signal handling where the platform has it (Unix) and
    ``signal.signal`` otherwise. Either way it works only in the main thread;
    elsewhere it logs a warning and installs nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.warning("Signal handlers not installed: they can only be installed from the main thread")
        return lambda: None

    installed: list[tuple[signal.Signals, Any]] = []
    for sig in SHUTDOWN_SIGNALS:
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
            installed.append((sig, None))
        except NotImplementedError:
            previous = signal.signal(sig, _forward_to_loop(loop, on_signal))
            installed.append((sig, previous))

    def uninstall() -> None:
        for sig, previous in installed:
            if previous is None:
                loop.remove_signal_handler(sig)
            else:
                signal.signal(sig, previous)

    return uninstall


def _forward_to_loop(loop: asyncio.AbstractEventLoop, on_signal: Callable[[str], None]) -> Callable[..., None]:
    def handler(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(on_signal, signal.Signals(signum).name)

    return handler


async def run_in_daemon_thread(function: Callable[..., T], *args: Any, name: str = "iris-handler") -> T:
    """Run ``function(*args)`` on a new daemon thread and await its result.

    ``asyncio.to_thread`` uses executor threads that the interpreter joins at
    exit, so a handler stuck after the shutdown deadline would keep the
    process alive. A daemon thread is abandoned instead. Cancelling the
    awaiting task does not stop the thread.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            result = context.run(function, *args)
        except BaseException as exc:  # handed to the awaiting task, which re-raises it
            outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        try:
            loop.call_soon_threadsafe(deliver, *outcome)
        except RuntimeError:
            # The loop closed while this abandoned thread was still running.
            logger.debug("Thread %s finished after its event loop closed", threading.current_thread().name)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
