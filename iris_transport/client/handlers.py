"""Handlers registered on a client, and how one received message is dispatched to them."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Union

from iris_transport import models
from iris_transport.runtime.shutdown import run_in_daemon_thread

__all__ = ["EventHandler", "EventSelector", "HandlerRegistry", "ResultHandler", "check_selectors"]

logger = logging.getLogger(__name__)

EventHandler = Callable[[models.EventBase], Union[Awaitable[object], object]]
ResultHandler = Callable[[models.OrderResult], Union[Awaitable[object], object]]
EventSelector = Union[type[models.EventBase], str]
"""An event model class (``OrderCreationReceipt``) or a ``ResultObjectType`` name."""


@dataclasses.dataclass(frozen=True)
class _Registration:
    handler: Callable[[Any], Any]
    selectors: tuple[EventSelector, ...]
    is_async: bool

    def matches(self, event: models.EventBase) -> bool:
        if not self.selectors:
            return True
        for selector in self.selectors:
            if isinstance(selector, str):
                if event.result_object_type == selector:
                    return True
            elif isinstance(event, selector):
                return True
        return False


class HandlerRegistry:
    """The event and result handlers of one client, in registration order."""

    def __init__(self) -> None:
        self._event_handlers: list[_Registration] = []
        self._result_handlers: list[_Registration] = []

    @property
    def has_event_handlers(self) -> bool:
        return bool(self._event_handlers)

    @property
    def has_result_handlers(self) -> bool:
        return bool(self._result_handlers)

    def add_event_handler(self, handler: EventHandler, selectors: Sequence[EventSelector] = ()) -> None:
        check_selectors(selectors)
        _check_callable(handler)
        self._event_handlers.append(_Registration(handler, tuple(selectors), _is_async(handler)))

    def add_result_handler(self, handler: ResultHandler) -> None:
        _check_callable(handler)
        self._result_handlers.append(_Registration(handler, (), _is_async(handler)))

    async def dispatch_event(self, event: models.EventBase) -> int:
        """Run every handler registered for ``event``'s type, in order; return how many ran.

        The first handler that raises stops the dispatch, and its exception
        propagates, so the message is retried and every handler runs again.
        """
        count = 0
        for registration in self._event_handlers:
            if registration.matches(event):
                await _call(registration, event)
                count += 1
        if count == 0:
            logger.debug("No handler for %s event of order %s", event.result_object_type, event.order_local_id)
        return count

    async def dispatch_result(self, result: models.OrderResult) -> int:
        """Run every result handler on ``result``, in order; return how many ran."""
        for registration in self._result_handlers:
            await _call(registration, result)
        return len(self._result_handlers)


def check_selectors(selectors: Sequence[Any]) -> None:
    """Raise ``TypeError`` unless every selector is an event class or a ``ResultObjectType`` name.

    A name close to a known ResultObjectType raises ``ValueError``, because
    a misspelt selector would let every event pass unhandled. Other unknown
    names are accepted with a warning, for event types newer than this library.
    """
    for selector in selectors:
        if isinstance(selector, str):
            _check_type_name(selector)
            continue
        if not (isinstance(selector, type) and issubclass(selector, models.EventBase)):
            raise TypeError(
                "on_event takes event classes (such as OrderCreationReceipt) or ResultObjectType names, "
                f"not {selector!r}"
            )


def _check_type_name(name: str) -> None:
    if name in models.EVENT_TYPES:
        return
    if name == "OrderResult":
        raise TypeError("OrderResults arrive on the results channel: register their handler with @client.on_result")

    known = list(models.EVENT_TYPES)
    by_lower_case = {known_name.lower(): known_name for known_name in known}
    close = by_lower_case.get(name.lower()) or next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.8)), None)
    if close is not None:
        raise ValueError(f"unknown ResultObjectType {name!r}; did you mean {close!r}?")
    logger.warning(
        "%r is not a ResultObjectType this library knows (%s); the handler runs only for events of exactly that type",
        name,
        ", ".join(known),
    )


async def _call(registration: _Registration, argument: Any) -> None:
    if registration.is_async:
        await registration.handler(argument)
    else:
        # Sync handlers run on their own thread so that a blocking one never
        # stalls lock renewal on the event loop.
        await run_in_daemon_thread(registration.handler, argument, name="iris-client-handler")


def _check_callable(handler: Any) -> None:
    if not callable(handler):
        raise TypeError(f"a handler must be callable, not {type(handler).__name__}")


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    return inspect.iscoroutinefunction(getattr(function, "__call__", None))
