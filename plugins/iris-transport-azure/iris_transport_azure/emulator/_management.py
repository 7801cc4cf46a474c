"""Service Bus management operations on ``<entity>/$management``.

A request carries the operation as the application property ``operation``
(``com.microsoft:renew-lock``, ...) and its arguments as a map body. The
reply carries ``statusCode``, ``statusDescription`` and, on failure,
``errorCondition``; 204 means that no message matched.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from typing import Any

from proton import Array, Data, int32, symbol

from iris_transport_azure.emulator._codec import MessageFormatError, MessageParts, timestamp_ms
from iris_transport_azure.emulator._store import (
    Entity,
    LockLostError,
    MessageNotFoundError,
    Outcome,
    Store,
    Topic,
)

logger = logging.getLogger(__name__)

VENDOR = "com.microsoft"
LOCK_LOST = f"{VENDOR}:message-lock-lost"
MESSAGE_NOT_FOUND = f"{VENDOR}:message-not-found"
ARGUMENT_ERROR = f"{VENDOR}:argument-error"
NOT_IMPLEMENTED = "amqp:not-implemented"

# The SDK's spellings of the update-disposition statuses ("defered" included).
_DISPOSITION_OUTCOMES = {
    "completed": Outcome.COMPLETE,
    "abandoned": Outcome.ABANDON,
    "defered": Outcome.DEFER,
    "suspended": Outcome.DEAD_LETTER,
}


@dataclasses.dataclass(frozen=True)
class Reply:
    """The status and body of a management reply."""

    status_code: int
    description: str
    body: dict | None = None
    condition: str | None = None


class _RequestError(Exception):
    def __init__(self, status_code: int, condition: str, description: str) -> None:
        super().__init__(description)
        self.reply = Reply(status_code, description, None, condition)


def execute(store: Store, target: Entity | Topic, operation: str, body: Any) -> Reply:
    """Run one management operation and return its reply; never raises for bad requests.

    A topic, which contains no messages itself, serves only the operations of a
    topic sender: scheduling and cancelling scheduled messages.
    """
    handler = _OPERATIONS.get(operation)
    if handler is None:
        return Reply(501, f"The operation {operation!r} is not supported by the emulator.", None, NOT_IMPLEMENTED)
    if not isinstance(body, dict):
        return Reply(400, "The request body must be a map.", None, ARGUMENT_ERROR)
    if isinstance(target, Topic) and handler not in _TOPIC_OPERATIONS:
        return Reply(
            400,
            f"The operation {operation!r} needs a queue or subscription, but {target.name} is a topic.",
            None,
            ARGUMENT_ERROR,
        )

    try:
        return handler(store, target, body)  # type: ignore[arg-type]
    except _RequestError as error:
        return error.reply
    except LockLostError as error:
        return Reply(410, str(error), None, LOCK_LOST)
    except MessageNotFoundError as error:
        return Reply(404, str(error), None, MESSAGE_NOT_FOUND)


def _field(body: dict, name: str) -> Any:
    if name not in body:
        raise _RequestError(400, ARGUMENT_ERROR, f"The request body is missing the field {name!r}.")
    return body[name]


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _RequestError(400, ARGUMENT_ERROR, f"The field {name!r} must hold integers, got {type(value).__name__}.")
    return int(value)


def _elements(value: Any) -> list:
    if isinstance(value, Array):
        return list(value.elements)
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _lock_tokens(body: dict) -> list[uuid.UUID]:
    tokens = []
    for value in _elements(_field(body, "lock-tokens")):
        try:
            tokens.append(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
        except ValueError:
            raise _RequestError(400, ARGUMENT_ERROR, "The field 'lock-tokens' must hold UUIDs.") from None
    return tokens


def _sequence_numbers(body: dict) -> list[int]:
    return [_integer("sequence-numbers", number) for number in _elements(_field(body, "sequence-numbers"))]


def _message_entries(messages: list, *, delivered: bool) -> dict:
    entries = []
    for message in messages:
        entry: dict[str, Any] = {"message": message.encode(delivered=delivered)}
        if delivered and message.lock_token is not None:
            entry["lock-token"] = message.lock_token
        entries.append(entry)
    return {"messages": entries}


def _renew_lock(store: Store, entity: Entity, body: dict) -> Reply:
    expirations = [timestamp_ms(store.renew_lock(token)) for token in _lock_tokens(body)]
    if not expirations:
        raise _RequestError(400, ARGUMENT_ERROR, "The field 'lock-tokens' must not be empty.")
    return Reply(200, "OK", {"expirations": Array(None, Data.TIMESTAMP, *expirations)})


def _peek(store: Store, entity: Entity, body: dict) -> Reply:
    start = _integer("from-sequence-number", _field(body, "from-sequence-number"))
    count = _integer("message-count", _field(body, "message-count"))
    messages = store.peek(entity, start, max(count, 0))
    if not messages:
        return Reply(204, "No messages to peek.")
    return Reply(200, "OK", _message_entries(messages, delivered=False))


def _schedule(store: Store, target: Entity | Topic, body: dict) -> Reply:
    numbers = []
    for entry in _elements(_field(body, "messages")):
        if not isinstance(entry, dict) or "message" not in entry:
            raise _RequestError(400, ARGUMENT_ERROR, "Each entry of 'messages' must be a map with a 'message'.")
        try:
            parts = MessageParts.parse(bytes(entry["message"]))
        except MessageFormatError as error:
            raise _RequestError(400, ARGUMENT_ERROR, f"A scheduled message is invalid: {error}.") from error
        scheduled = parts.annotation("x-opt-scheduled-enqueue-time")
        if scheduled is None:
            raise _RequestError(
                400, ARGUMENT_ERROR, "A scheduled message is missing x-opt-scheduled-enqueue-time."
            )
        numbers.append(store.send(target, parts, scheduled_at=int(scheduled) / 1000))
    if not numbers:
        raise _RequestError(400, ARGUMENT_ERROR, "The field 'messages' must not be empty.")
    return Reply(200, "OK", {"sequence-numbers": Array(None, Data.LONG, *numbers)})


def _cancel_scheduled(store: Store, target: Entity | Topic, body: dict) -> Reply:
    store.cancel_scheduled(target, _sequence_numbers(body))
    return Reply(200, "OK", {})


def _receive_by_sequence_number(store: Store, entity: Entity, body: dict) -> Reply:
    # receiver-settle-mode 0 ("first") is receive-and-delete; 1 ("second") is peek-lock.
    peek_lock = _integer("receiver-settle-mode", body.get("receiver-settle-mode", 1)) != 0
    messages = store.receive_deferred(entity, _sequence_numbers(body), peek_lock=peek_lock)
    if not messages:
        return Reply(204, "No messages.")
    return Reply(200, "OK", _message_entries(messages, delivered=True))


def _update_disposition(store: Store, entity: Entity, body: dict) -> Reply:
    status = str(_field(body, "disposition-status"))
    outcome = _DISPOSITION_OUTCOMES.get(status)
    if outcome is None:
        raise _RequestError(400, ARGUMENT_ERROR, f"Unknown disposition-status {status!r}.")
    reason = body.get("deadletter-reason")
    description = body.get("deadletter-description")
    for token in _lock_tokens(body):
        store.settle(token, outcome, reason=reason, description=description)
    return Reply(200, "OK", {})


_TOPIC_OPERATIONS = (_schedule, _cancel_scheduled)

SEND_OPERATIONS = frozenset({f"{VENDOR}:schedule-message", f"{VENDOR}:cancel-scheduled-message"})
"""The operations that need the Send right; every other one needs Listen."""

_OPERATIONS: dict[str, Callable[[Store, Any, dict], Reply]] = {
    f"{VENDOR}:renew-lock": _renew_lock,
    f"{VENDOR}:peek-message": _peek,
    f"{VENDOR}:schedule-message": _schedule,
    f"{VENDOR}:cancel-scheduled-message": _cancel_scheduled,
    f"{VENDOR}:receive-by-sequence-number": _receive_by_sequence_number,
    f"{VENDOR}:update-disposition": _update_disposition,
}


def reply_properties(reply: Reply) -> dict[str, Any]:
    """Return the application properties of a management reply."""
    properties: dict[str, Any] = {"statusCode": int32(reply.status_code), "statusDescription": reply.description}
    if reply.condition is not None:
        properties["errorCondition"] = symbol(reply.condition)
    return properties

