"""Queues, messages and locks of the emulator, without any networking.

Everything here runs on the Proton container thread only, so nothing locks.
Times are seconds since the epoch from an injectable clock.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from iris_transport_azure.emulator._codec import MessageParts, timestamp_ms

logger = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = "$deadletterqueue"
SUBSCRIPTIONS_SEGMENT = "subscriptions"
DEAD_LETTER_REASON = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription"
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
TTL_EXPIRED = "TTLExpiredException"
# A lock's expiry travels as an AMQP timestamp, so an infinite or huge lock
# duration would fail every delivery. Service Bus itself allows 5 minutes.
MAX_LOCK_DURATION = 365 * 24 * 3600.0


class EntityNotFoundError(LookupError):
    """An entity path that names no queue, topic or subscription."""


class TopicNotReceivableError(LookupError):
    """A receive or management request on a topic, which contains no messages of its own."""


class LockLostError(Exception):
    """A lock token that is unknown, already settled, or past its lock duration."""


class MessageNotFoundError(LookupError):
    """A sequence number that names no message in the requested state."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueOptions:
    """Settings of one emulated queue.

    ``lock_duration`` and ``default_message_ttl`` are in seconds.
    ``dead_lettering_on_message_expiration`` defaults to True here, while
    Service Bus defaults it to False: the emulator keeps expired messages
    inspectable in the dead-letter sub-queue.
    """

    lock_duration: float = 60.0
    max_delivery_count: int = 10
    default_message_ttl: float | None = None
    dead_lettering_on_message_expiration: bool = True
    max_message_size: int = 256 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.lock_duration <= MAX_LOCK_DURATION:
            raise ValueError(
                f"lock_duration must be a positive number of seconds up to {MAX_LOCK_DURATION:.0f} (a year), "
                f"got {self.lock_duration!r}"
            )
        if self.max_delivery_count < 1:
            raise ValueError(f"max_delivery_count must be at least 1, got {self.max_delivery_count!r}")
        if self.default_message_ttl is not None and not self.default_message_ttl > 0:
            raise ValueError(
                f"default_message_ttl must be a positive number of seconds or None, got {self.default_message_ttl!r}"
            )
        if self.max_message_size < 1024:
            raise ValueError(f"max_message_size must be at least 1024 bytes, got {self.max_message_size!r}")


class MessageState(enum.Enum):
    ACTIVE = "active"
    LOCKED = "locked"
    DEFERRED = "deferred"
    SCHEDULED = "scheduled"


class Outcome(enum.Enum):
    """The settlement that a receiver requests for a locked message."""

    COMPLETE = "complete"
    ABANDON = "abandon"
    DEFER = "defer"
    DEAD_LETTER = "dead-letter"
    RELEASE = "release"


@dataclasses.dataclass(eq=False)
class StoredMessage:
    """A message in an entity.

    ``delivery_attempts`` counts how often the message was locked or handed
    out, as Service Bus's DeliveryCount does. The AMQP header of a delivery
    carries the attempts before this one.
    """

    sequence_number: int
    parts: MessageParts
    enqueued_at: float
    expires_at: float | None
    state: MessageState
    scheduled_at: float | None = None
    delivery_attempts: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: float | None = None
    deferred: bool = False
    dead_letter_source: str | None = None

    def encode(self, *, delivered: bool) -> bytes:
        """Encode the message with the broker's annotations.

        ``delivered`` is True when this encoding is the delivery attempt that
        ``delivery_attempts`` already counts, and False for a peek.
        """
        annotations: dict[str, Any] = {
            "x-opt-sequence-number": self.sequence_number,
            "x-opt-enqueued-time": timestamp_ms(self.enqueued_at),
        }
        if self.locked_until is not None:
            annotations["x-opt-locked-until"] = timestamp_ms(self.locked_until)
        if self.scheduled_at is not None:
            annotations["x-opt-scheduled-enqueue-time"] = timestamp_ms(self.scheduled_at)
        if self.dead_letter_source is not None:
            annotations["x-opt-deadletter-source"] = self.dead_letter_source
        # Service Bus's message states: 0 active, 1 deferred, 2 scheduled.
        if self.state is MessageState.DEFERRED or (self.deferred and self.state is MessageState.LOCKED):
            annotations["x-opt-message-state"] = 1
        elif self.state is MessageState.SCHEDULED:
            annotations["x-opt-message-state"] = 2
        previous_attempts = max(self.delivery_attempts - 1, 0) if delivered else self.delivery_attempts
        return self.parts.encode(delivery_count=previous_attempts, extra_annotations=annotations)


class Entity:
    """A queue, a topic's subscription, or the dead-letter sub-queue of either."""

    def __init__(
        self, name: str, options: QueueOptions, *, parent: Entity | None = None, topic: Topic | None = None
    ) -> None:
        self.name = name
        self.options = options
        self.parent = parent
        # A subscription's messages carry the sequence numbers that its topic assigned.
        self.topic = topic
        self.dead_letter_queue: Entity | None = None
        self.messages: dict[int, StoredMessage] = {}
        self._available: list[int] = []
        self._scheduled: list[tuple[float, int]] = []
        self._expiring: list[tuple[float, int]] = []
        self._next_sequence_number = 1

    @property
    def is_dead_letter_queue(self) -> bool:
        return self.parent is not None

    def allocate_sequence_number(self) -> int:
        # A dead-letter sub-queue shares its queue's numbers so that a
        # dead-lettered message keeps its sequence number.
        owner = self.parent or self
        if owner.topic is not None:
            return owner.topic.allocate_sequence_number()
        number = owner._next_sequence_number
        owner._next_sequence_number += 1
        return number

    def add(self, message: StoredMessage) -> None:
        self.messages[message.sequence_number] = message
        if message.state is MessageState.ACTIVE:
            heapq.heappush(self._available, message.sequence_number)
        elif message.state is MessageState.SCHEDULED:
            heapq.heappush(self._scheduled, (message.scheduled_at, message.sequence_number))
        if message.expires_at is not None and not self.is_dead_letter_queue:
            heapq.heappush(self._expiring, (message.expires_at, message.sequence_number))

    def make_available(self, message: StoredMessage) -> None:
        message.state = MessageState.ACTIVE
        message.lock_token = None
        message.locked_until = None
        heapq.heappush(self._available, message.sequence_number)

    def pop_available(self) -> StoredMessage | None:
        # The heaps are cleaned lazily: an entry whose message has left the
        # state it was pushed for is skipped here.
        while self._available:
            message = self.messages.get(heapq.heappop(self._available))
            if message is not None and message.state is MessageState.ACTIVE:
                return message
        return None

    def has_available(self) -> bool:
        while self._available:
            message = self.messages.get(self._available[0])
            if message is not None and message.state is MessageState.ACTIVE:
                return True
            heapq.heappop(self._available)
        return False

    def pop_due_scheduled(self, now: float) -> list[StoredMessage]:
        due = []
        while self._scheduled and self._scheduled[0][0] <= now:
            _, number = heapq.heappop(self._scheduled)
            message = self.messages.get(number)
            if message is not None and message.state is MessageState.SCHEDULED:
                due.append(message)
        return due

    def pop_expired(self, now: float) -> list[StoredMessage]:
        expired = []
        while self._expiring and self._expiring[0][0] <= now:
            _, number = heapq.heappop(self._expiring)
            message = self.messages.get(number)
            if message is None:
                continue
            if message.state is MessageState.LOCKED and message.locked_until and message.locked_until > now:
                # A locked message expires only once its lock ends without a settlement.
                heapq.heappush(self._expiring, (message.locked_until, number))
                continue
            if message.state is not MessageState.SCHEDULED:
                expired.append(message)
        return expired


class Topic:
    """A topic: each message sent to it is copied to every subscription.

    The emulator has no subscription rules, so every subscription receives
    every message.
    """

    def __init__(self, name: str, options: QueueOptions) -> None:
        self.name = name
        self.options = options
        self.subscriptions: dict[str, Entity] = {}
        self._next_sequence_number = 1

    def allocate_sequence_number(self) -> int:
        number = self._next_sequence_number
        self._next_sequence_number += 1
        return number


class Store:
    """All entities of one emulator, and the index of lock tokens."""

    def __init__(
        self,
        *,
        default_options: QueueOptions,
        auto_create: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.default_options = default_options
        self.auto_create = auto_create
        self.clock = clock
        self.entities: dict[str, Entity] = {}
        self.topics: dict[str, Topic] = {}
        self._locks: dict[uuid.UUID, tuple[Entity, StoredMessage]] = {}
        # Lock expiries per entity as (locked_until, lock token) heaps, so that
        # a timer tick looks only at due locks. Entries of settled or renewed
        # locks are skipped when they reach the top.
        self._lock_expiries: dict[Entity, list[tuple[float, uuid.UUID]]] = {}

    # entities

    def create_queue(self, name: str, options: QueueOptions | None = None) -> Entity:
        """Create a queue and its dead-letter sub-queue; an existing queue is returned unchanged."""
        key = _entity_key(name, "queue")
        existing = self.entities.get(key)
        if existing is not None:
            return existing
        if key in self.topics:
            raise ValueError(f"cannot create queue {name!r}: a topic has that name, and they share one namespace")

        queue = _new_receivable(name.strip("/"), options or self.default_options)
        self.entities[key] = queue
        logger.info("Created queue %s", queue.name)
        return queue

    def create_topic(
        self, name: str, subscriptions: Iterable[str] = (), options: QueueOptions | None = None
    ) -> Topic:
        """Create a topic and its subscriptions; an existing topic gets the subscriptions it lacks.

        ``options`` apply to the topic's size limit and to each new subscription, which is queue-like.
        """
        key = _entity_key(name, "topic")
        if key in self.entities:
            raise ValueError(f"cannot create topic {name!r}: a queue has that name, and they share one namespace")
        topic = self.topics.get(key)
        if topic is None:
            topic = Topic(name.strip("/"), options or self.default_options)
            self.topics[key] = topic
            logger.info("Created topic %s", topic.name)

        for subscription in subscriptions:
            subscription_key = _entity_key(subscription, "subscription")
            if subscription_key in topic.subscriptions:
                continue
            entity = _new_receivable(
                f"{topic.name}/Subscriptions/{subscription.strip('/')}", options or self.default_options, topic=topic
            )
            topic.subscriptions[subscription_key] = entity
            logger.info("Created subscription %s", entity.name)
        return topic

    def resolve(self, path: str) -> Entity:
        """Return the entity that a receiver or management link names.

        Paths are ``orders``, ``results/Subscriptions/crm`` and either with
        ``/$DeadLetterQueue``. Names match case-insensitively, as in Service
        Bus. A topic raises ``TopicNotReceivableError``.
        """
        target = self.resolve_target(path)
        if isinstance(target, Topic):
            raise TopicNotReceivableError(
                f"{target.name} is a topic and contains no messages: receive from"
                f" {target.name}/Subscriptions/<subscription> instead"
            )
        return target

    def resolve_target(self, path: str) -> Entity | Topic:
        """Return the queue, subscription, dead-letter sub-queue or topic that ``path`` names."""
        segments = [segment for segment in path.strip("/").split("/") if segment]
        dead_letter = bool(segments) and segments[-1].lower() == DEAD_LETTER_SUFFIX
        if dead_letter:
            segments = segments[:-1]

        if len(segments) == 3 and segments[1].lower() == SUBSCRIPTIONS_SEGMENT:
            topic = self.topics.get(segments[0].lower())
            if topic is None:
                raise EntityNotFoundError(f"the topic {segments[0]!r} was not found")
            subscription = topic.subscriptions.get(segments[2].lower())
            if subscription is None:
                raise EntityNotFoundError(f"the subscription {segments[2]!r} of topic {topic.name} was not found")
            return subscription.dead_letter_queue if dead_letter else subscription  # type: ignore[return-value]
        if len(segments) != 1:
            raise EntityNotFoundError(
                f"the entity {path!r} was not found: use <queue>, <topic>, or <topic>/Subscriptions/<subscription>"
            )

        topic = self.topics.get(segments[0].lower())
        if topic is not None:
            if dead_letter:
                raise EntityNotFoundError(f"the topic {topic.name} has no dead-letter sub-queue; its subscriptions do")
            return topic
        queue = self.entities.get(segments[0].lower())
        if queue is None:
            if not self.auto_create:
                raise EntityNotFoundError(f"the queue {segments[0]!r} was not found")
            queue = self.create_queue(segments[0])
        return queue.dead_letter_queue if dead_letter else queue  # type: ignore[return-value]

    # sending

    def send(self, target: Entity | Topic, parts: MessageParts, *, scheduled_at: float | None = None) -> int:
        """Store a sent message in a queue, or a copy in each subscription of a topic; return its sequence number."""
        if isinstance(target, Entity):
            return self.enqueue(target, parts, scheduled_at=scheduled_at).sequence_number

        number = target.allocate_sequence_number()
        for subscription in target.subscriptions.values():
            # Dead-lettering rewrites a message's application properties, so each subscription gets its own parts.
            copy = dataclasses.replace(parts, annotations=dict(parts.annotations))
            self.enqueue(subscription, copy, scheduled_at=scheduled_at, sequence_number=number)
        if not target.subscriptions:
            logger.debug("Dropped message %d of topic %s, which has no subscriptions", number, target.name)
        return number

    def enqueue(
        self,
        entity: Entity,
        parts: MessageParts,
        *,
        scheduled_at: float | None = None,
        sequence_number: int | None = None,
    ) -> StoredMessage:
        """Store a sent message; a future ``x-opt-scheduled-enqueue-time`` makes it scheduled."""
        now = self.clock()
        if scheduled_at is None:
            requested = parts.annotation("x-opt-scheduled-enqueue-time")
            if requested is not None:
                scheduled_at = int(requested) / 1000
        if scheduled_at is not None and scheduled_at <= now:
            scheduled_at = None

        enqueued_at = scheduled_at or now
        message = StoredMessage(
            sequence_number=entity.allocate_sequence_number() if sequence_number is None else sequence_number,
            parts=parts,
            enqueued_at=enqueued_at,
            expires_at=self._expiry(entity, parts, enqueued_at),
            state=MessageState.SCHEDULED if scheduled_at is not None else MessageState.ACTIVE,
            scheduled_at=scheduled_at,
        )
        entity.add(message)
        logger.debug("Enqueued message %d on %s", message.sequence_number, entity.name)
        return message

    def _expiry(self, entity: Entity, parts: MessageParts, enqueued_at: float) -> float | None:
        ttl = entity.options.default_message_ttl
        if parts.ttl_ms:
            message_ttl = parts.ttl_ms / 1000
            ttl = message_ttl if ttl is None else min(ttl, message_ttl)
        return None if ttl is None else enqueued_at + ttl

    def cancel_scheduled(self, target: Entity | Topic, sequence_numbers: list[int]) -> None:
        """Remove scheduled messages; numbers that are no longer scheduled are ignored, as in Service Bus."""
        entities = list(target.subscriptions.values()) if isinstance(target, Topic) else [target]
        for entity in entities:
            for number in sequence_numbers:
                message = entity.messages.get(number)
                if message is not None and message.state is MessageState.SCHEDULED:
                    del entity.messages[number]

    # receiving

    def receive(self, entity: Entity, *, peek_lock: bool) -> StoredMessage | None:
        """Take the next active message: lock it, or remove it in receive-and-delete mode."""
        self.process_timers(entity)
        message = entity.pop_available()
        if message is None:
            return None
        message.delivery_attempts += 1
        if peek_lock:
            self._lock(entity, message)
        else:
            del entity.messages[message.sequence_number]
        return message

    def _lock(self, entity: Entity, message: StoredMessage) -> None:
        message.state = MessageState.LOCKED
        message.lock_token = uuid.uuid4()
        message.locked_until = self.clock() + entity.options.lock_duration
        self._locks[message.lock_token] = (entity, message)
        heapq.heappush(self._lock_expiries.setdefault(entity, []), (message.locked_until, message.lock_token))

    def receive_deferred(self, entity: Entity, sequence_numbers: list[int], *, peek_lock: bool) -> list[StoredMessage]:
        """Take deferred messages by sequence number.

        Raises ``MessageNotFoundError`` when a number names no deferred
        message, as Service Bus does. A number given twice returns its
        message once.
        """
        messages = []
        for number in dict.fromkeys(sequence_numbers):
            message = entity.messages.get(number)
            if message is None or message.state is not MessageState.DEFERRED:
                raise MessageNotFoundError(f"no deferred message has sequence number {number} on {entity.name}")
            messages.append(message)

        for message in messages:
            message.delivery_attempts += 1
            if peek_lock:
                self._lock(entity, message)
            else:
                del entity.messages[message.sequence_number]
        return messages

    def peek(self, entity: Entity, from_sequence_number: int, count: int) -> list[StoredMessage]:
        """Return up to ``count`` messages from a sequence number on, in any state, without locking."""
        self.process_timers(entity)
        numbers = sorted(number for number in entity.messages if number >= from_sequence_number)
        return [entity.messages[number] for number in numbers[:count]]

    # settling

    def settle(
        self,
        lock_token: uuid.UUID,
        outcome: Outcome,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> Entity:
        """Apply a receiver's outcome to a locked message and return its entity.

        Raises ``LockLostError`` when the lock token is unknown or expired.
        """
        entity, message = self._take_lock(lock_token)

        if outcome is Outcome.COMPLETE:
            del entity.messages[message.sequence_number]
        elif outcome is Outcome.RELEASE:
            message.delivery_attempts = max(message.delivery_attempts - 1, 0)
            self._unlock(entity, message)
        elif outcome is Outcome.ABANDON:
            self._abandon(entity, message)
        elif outcome is Outcome.DEFER:
            message.deferred = True
            message.state = MessageState.DEFERRED
            message.lock_token = None
            message.locked_until = None
        elif outcome is Outcome.DEAD_LETTER:
            self._dead_letter(entity, message, reason, description)
        return entity

    def _take_lock(self, lock_token: uuid.UUID) -> tuple[Entity, StoredMessage]:
        found = self._locks.get(lock_token)
        if found is not None:
            entity, message = found
            if message.lock_token == lock_token and message.locked_until and message.locked_until > self.clock():
                del self._locks[lock_token]
                return found
            self.process_timers(entity)
        raise LockLostError(f"the lock token {lock_token} is unknown, settled or expired")

    def renew_lock(self, lock_token: uuid.UUID) -> float:
        """Extend a lock by the entity's lock duration and return the new expiry."""
        entity, message = self._take_lock(lock_token)
        message.locked_until = self.clock() + entity.options.lock_duration
        self._locks[lock_token] = (entity, message)
        heapq.heappush(self._lock_expiries.setdefault(entity, []), (message.locked_until, lock_token))
        return message.locked_until

    def _unlock(self, entity: Entity, message: StoredMessage) -> None:
        if message.deferred:
            message.state = MessageState.DEFERRED
            message.lock_token = None
            message.locked_until = None
        else:
            entity.make_available(message)

    def _abandon(self, entity: Entity, message: StoredMessage) -> None:
        limit = entity.options.max_delivery_count
        if not entity.is_dead_letter_queue and message.delivery_attempts >= limit:
            self._dead_letter(
                entity,
                message,
                MAX_DELIVERY_COUNT_EXCEEDED,
                f"The message was not settled in {limit} delivery attempts.",
            )
        else:
            self._unlock(entity, message)

    def _dead_letter(
        self, entity: Entity, message: StoredMessage, reason: str | None, description: str | None
    ) -> None:
        properties = message.parts.application_properties()
        if reason is not None:
            properties[DEAD_LETTER_REASON] = reason
        if description is not None:
            properties[DEAD_LETTER_DESCRIPTION] = description
        message.parts.set_application_properties(properties)

        if entity.dead_letter_queue is None:
            # Dead-lettering a message of a dead-letter sub-queue leaves it there, unlocked.
            self._unlock(entity, message)
            return

        del entity.messages[message.sequence_number]
        message.state = MessageState.ACTIVE
        message.lock_token = None
        message.locked_until = None
        message.deferred = False
        message.dead_letter_source = entity.name
        entity.dead_letter_queue.add(message)
        logger.debug("Dead-lettered message %d of %s (%s)", message.sequence_number, entity.name, reason)

    # time

    def process_timers(self, entity: Entity) -> bool:
        """Apply lock expiry, scheduled enqueue times and TTL to one entity.

        Returns whether a message became available.
        """
        now = self.clock()
        became_available = False

        expiries = self._lock_expiries.get(entity, [])
        while expiries and expiries[0][0] <= now:
            locked_until, lock_token = heapq.heappop(expiries)
            found = self._locks.get(lock_token)
            if found is None or found[1].locked_until != locked_until:
                continue  # settled, or renewed to a later expiry
            message = found[1]
            del self._locks[lock_token]
            logger.debug("Lock expired on message %d of %s", message.sequence_number, entity.name)
            self._abandon(entity, message)
            became_available = True

        for message in entity.pop_due_scheduled(now):
            message.state = MessageState.ACTIVE
            message.enqueued_at = now
            entity.make_available(message)
            became_available = True

        for message in entity.pop_expired(now):
            if entity.options.dead_lettering_on_message_expiration and entity.dead_letter_queue is not None:
                self._dead_letter(entity, message, TTL_EXPIRED, "The message expired and was dead-lettered.")
            else:
                del entity.messages[message.sequence_number]
                logger.debug("Dropped expired message %d of %s", message.sequence_number, entity.name)
        return became_available

    def all_entities(self) -> list[Entity]:
        """Return every queue and subscription, each followed by its dead-letter sub-queue."""
        entities = []
        receivables = list(self.entities.values())
        for topic in self.topics.values():
            receivables.extend(topic.subscriptions.values())
        for entity in receivables:
            entities.append(entity)
            if entity.dead_letter_queue is not None:
                entities.append(entity.dead_letter_queue)
        return entities


def _entity_key(name: str, kind: str) -> str:
    key = name.strip("/").lower()
    if not key or "/" in key or "$" in key:
        raise ValueError(f"invalid {kind} name {name!r}: use letters, digits, '.', '-' or '_' without '/' or '$'")
    return key


def _new_receivable(name: str, options: QueueOptions, *, topic: Topic | None = None) -> Entity:
    entity = Entity(name, options, topic=topic)
    entity.dead_letter_queue = Entity(f"{name}/$DeadLetterQueue", options, parent=entity)
    return entity
