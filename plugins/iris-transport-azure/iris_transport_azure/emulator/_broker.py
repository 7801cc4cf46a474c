"""The Proton event handler that speaks Service Bus's dialect of AMQP 1.0.

Every method here runs on the Proton container thread. An exception that
escaped a handler method would stop the whole container, so each entry point
is wrapped by ``_guarded``, which logs the error and closes only the
connection it came from.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlparse

from proton import (
    Condition,
    Connection,
    Delivery,
    Endpoint,
    Handler,
    Link,
    Message,
    ProtonException,
    Sender,
    Terminus,
    int32,
    symbol,
)

from iris_transport_azure.emulator import _management
from iris_transport_azure.emulator._access import LISTEN, SEND, AccessDeniedError, KeyRights, parse_token
from iris_transport_azure.emulator._codec import MessageFormatError, MessageParts, owned, split_batch
from iris_transport_azure.emulator._store import (
    Entity,
    EntityNotFoundError,
    LockLostError,
    Outcome,
    Store,
    Topic,
    TopicNotReceivableError,
)

logger = logging.getLogger(__name__)

CBS_NODE = "$cbs"
MANAGEMENT_SUFFIX = "/$management"
DEAD_LETTER_CONDITION = "com.microsoft:dead-letter"
LOCK_LOST_CONDITION = "com.microsoft:message-lock-lost"
SESSION_FILTER = "com.microsoft:session-filter"
TICK_SECONDS = 0.1
_INCOMING_CREDIT = 500
# A disposition cannot be split across frames, and the SDK's dead-letter
# disposition (azure-servicebus 7.15) carries the error description twice,
# as the error's description and in its info. With Proton's default of
# 32 KiB a long description closed the connection with a framing error.
# 1 MiB is the frame size that the SDK itself offers.
MAX_FRAME_SIZE = 1024 * 1024


@dataclasses.dataclass(eq=False)
class _Consumer:
    """A link on which a client receives from an entity."""

    link: Sender
    entity: Entity
    receive_and_delete: bool
    unsettled: dict[Delivery, uuid.UUID] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Node:
    """The node that a client's sending link addresses, of kind ``cbs``, ``management`` or ``entity``."""

    kind: str
    address: str
    entity: Entity | Topic | None = None
    key_name: str | None = None


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(method)
    def wrapper(self: BrokerHandler, event: Any) -> None:
        try:
            method(self, event)
        except Exception:
            logger.exception("Emulator failed while handling %s, so its connection is closed", event.type)
            connection = getattr(event, "connection", None)
            if connection is not None:
                close_with_error(connection, "amqp:internal-error", "The emulator failed. Its log has the traceback.")

    return wrapper


def close_with_error(connection: Connection, name: str, description: str) -> None:
    """Close a connection with an AMQP error that the SDK can read.

    The SDK (azure-servicebus 7.15) reads the info field of a close frame's
    error unconditionally and fails with an IndexError when it is missing.
    Proton leaves out an empty info map, so the error carries a tracking id.
    """
    connection.condition = Condition(name, description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})
    connection.close()


def entity_path(address: str | None) -> str:
    """Return the entity path of a link address: ``amqps://host:port/orders`` -> ``orders``."""
    if not address:
        return ""
    if "://" in address:
        address = urlparse(address).path
    return address.strip("/")


class BrokerHandler(Handler):
    """Routes links, transfers and dispositions to the ``Store``."""

    def __init__(self, store: Store, key_rights: KeyRights | None = None) -> None:
        super().__init__()
        self.store = store
        self.key_rights = key_rights or KeyRights(None)
        # The (audience path, key name) of each token put on $cbs, per connection.
        self._tokens: dict[Connection, list[tuple[str, str | None]]] = {}
        self.connections: set[Connection] = set()
        self._consumers: dict[Entity, list[_Consumer]] = {}
        self._consumer_by_link: dict[Link, _Consumer] = {}
        self._nodes: dict[Link, _Node] = {}
        self._reply_links: dict[tuple[Connection, str], Sender] = {}
        self._tick_task: Any = None
        self.stopping = False

    # lifecycle

    def on_reactor_init(self, event: Any) -> None:
        self._tick_task = event.container.schedule(TICK_SECONDS, self)

    @_guarded
    def on_timer_task(self, event: Any) -> None:
        if self.stopping:
            return
        # The next tick is scheduled first: a tick that raised would otherwise
        # end lock expiry, scheduled messages and TTL for good.
        self._tick_task = event.container.schedule(TICK_SECONDS, self)
        for entity in self.store.all_entities():
            if self.store.process_timers(entity):
                self.dispatch(entity)

    def on_emulator_call(self, event: Any) -> None:
        """Run a function sent from another thread; its ``Future`` receives the result."""
        function, future = event.subject
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function())
        except BaseException as error:  # the caller's thread re-raises it
            future.set_exception(error)

    def cancel_ticks(self) -> None:
        self.stopping = True
        if self._tick_task is not None:
            self._tick_task.cancel()
            self._tick_task = None

    # connections and sessions

    @_guarded
    def on_connection_bound(self, event: Any) -> None:
        # A connection is tracked from its first byte, not from its open
        # frame, so that stop() also closes sockets that never sent one.
        self.connections.add(event.connection)
        event.transport.max_frame_size = MAX_FRAME_SIZE

    @_guarded
    def on_connection_remote_open(self, event: Any) -> None:
        connection = event.connection
        self.connections.add(connection)
        if connection.state & Endpoint.LOCAL_UNINIT:
            connection.open()
        logger.info("Client connected from container %s", connection.remote_container)

    @_guarded
    def on_connection_remote_close(self, event: Any) -> None:
        connection = event.connection
        if connection.state & Endpoint.LOCAL_ACTIVE:
            connection.close()
        self._forget_connection(connection)

    def on_transport_closed(self, event: Any) -> None:
        if event.connection is not None:
            self._forget_connection(event.connection)

    def _forget_connection(self, connection: Connection) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        for link in [link for link in self._nodes if link.connection == connection]:
            del self._nodes[link]
        for link in [link for link in self._consumer_by_link if link.connection == connection]:
            self._remove_consumer(link)
        for key in [key for key in self._reply_links if key[0] == connection]:
            del self._reply_links[key]
        self._tokens.pop(connection, None)
        logger.info("Client disconnected from container %s", connection.remote_container)

    @_guarded
    def on_session_remote_open(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    @_guarded
    def on_session_remote_close(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_ACTIVE:
            event.session.close()

    # links

    @_guarded
    def on_link_remote_open(self, event: Any) -> None:
        link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        try:
            if link.is_sender:
                self._open_outgoing(link)
            else:
                self._open_incoming(link)
        except EntityNotFoundError as error:
            logger.info("Rejected link %s: %s", link.name, error)
            self._reject_link(link, "amqp:not-found", str(error))
        except _SessionsNotServedError as error:
            logger.info("Rejected link %s: %s", link.name, error)
            self._reject_link(link, "amqp:not-implemented", str(error))
        except TopicNotReceivableError as error:
            logger.info("Rejected link %s: %s", link.name, error)
            self._reject_link(link, "amqp:not-allowed", str(error))
        except AccessDeniedError as error:
            logger.info("Rejected link %s: %s", link.name, error)
            self._reject_link(link, "amqp:unauthorized-access", str(error))

    def _open_incoming(self, link: Link) -> None:
        address = link.remote_target.address or ""
        path = entity_path(address)
        if path.lower() == CBS_NODE:
            node = _Node("cbs", path.lower())
        elif path.lower().endswith(MANAGEMENT_SUFFIX):
            managed_path = path[: -len(MANAGEMENT_SUFFIX)]
            target = self.store.resolve_target(managed_path)
            key_name = self._key_name(link.connection, managed_path)
            # Each management operation needs Send or Listen (see _reply_to_request), so the link needs either.
            try:
                self.key_rights.require(key_name, SEND, target.name)
            except AccessDeniedError:
                self.key_rights.require(key_name, LISTEN, target.name)
            node = _Node("management", path.lower(), target, key_name)
        else:
            target = self.store.resolve_target(path)
            self.key_rights.require(self._key_name(link.connection, path), SEND, target.name)
            node = _Node("entity", path.lower(), target)
            link.max_message_size = target.options.max_message_size

        self._nodes[link] = node
        _copy_terminus(link.target, link.remote_target)
        _copy_terminus(link.source, link.remote_source)
        link.open()
        link.flow(_INCOMING_CREDIT)
        logger.debug("Attached sending link %s to %s", link.name, node.address)

    def _open_outgoing(self, link: Sender) -> None:
        address = link.remote_source.address or ""
        path = entity_path(address)
        _copy_terminus(link.source, link.remote_source)
        _copy_terminus(link.target, link.remote_target)

        if path.lower() == CBS_NODE or path.lower().endswith(MANAGEMENT_SUFFIX):
            self._reply_links[(link.connection, path.lower())] = link
            link.open()
            return

        entity = self.store.resolve(path)
        self.key_rights.require(self._key_name(link.connection, path), LISTEN, entity.name)
        if _has_session_filter(link.remote_source):
            # Without this check a session receiver would silently get every
            # message of the queue, whatever its session id.
            raise _SessionsNotServedError(
                f"the emulator does not serve sessions: receive from {entity.name} without a session_id"
            )
        receive_and_delete = link.remote_snd_settle_mode == Link.SND_SETTLED
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.max_message_size = entity.options.max_message_size
        consumer = _Consumer(link, entity, receive_and_delete)
        self._consumer_by_link[link] = consumer
        self._consumers.setdefault(entity, []).append(consumer)
        link.open()
        logger.info(
            "Attached receiving link %s to %s (%s)",
            link.name,
            entity.name,
            "receive-and-delete" if receive_and_delete else "peek-lock",
        )

    def _key_name(self, connection: Connection, path: str) -> str | None:
        """Return the key name of the token whose audience is ``path`` or its longest parent path.

        When no audience matches, the connection's latest token applies, so
        an audience that names the entity in another form still counts. Key
        rights apply to the whole namespace, as a namespace's SAS policies do.
        """
        tokens = self._tokens.get(connection, [])
        path = path.strip("/").lower()
        matching = [(audience, key) for audience, key in tokens if path == audience or path.startswith(audience + "/")]
        if matching:
            return max(matching, key=lambda token: len(token[0]))[1]
        return tokens[-1][1] if tokens else None

    def _reject_link(self, link: Link, condition: str, description: str) -> None:
        # AMQP rejects a link with an attach whose terminus on the requested
        # side is null, followed by a detach that carries the error.
        if link.is_sender:
            link.source.type = Terminus.UNSPECIFIED
        else:
            link.target.type = Terminus.UNSPECIFIED
        link.condition = Condition(condition, description)
        link.open()
        link.close()

    @_guarded
    def on_link_remote_close(self, event: Any) -> None:
        link = event.link
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.close()
        self._forget_link(link)

    @_guarded
    def on_link_remote_detach(self, event: Any) -> None:
        link = event.link
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.detach()
        self._forget_link(link)

    def _forget_link(self, link: Link) -> None:
        self._nodes.pop(link, None)
        self._remove_consumer(link)
        for key, reply_link in list(self._reply_links.items()):
            if reply_link == link:
                del self._reply_links[key]

    def _remove_consumer(self, link: Link) -> None:
        # Locks of unsettled deliveries stay until they expire, as in Service
        # Bus; the messages are then delivered again.
        consumer = self._consumer_by_link.pop(link, None)
        if consumer is None:
            return
        consumers = self._consumers.get(consumer.entity, [])
        if consumer in consumers:
            consumers.remove(consumer)
        consumer.unsettled.clear()
        logger.info("Detached receiving link %s from %s", link.name, consumer.entity.name)

    @_guarded
    def on_link_flow(self, event: Any) -> None:
        consumer = self._consumer_by_link.get(event.link)
        if consumer is not None:
            self.dispatch(consumer.entity)

    # deliveries

    @_guarded
    def on_delivery(self, event: Any) -> None:
        delivery = event.delivery
        if event.link.is_receiver:
            self._on_transfer(event.link, delivery)
        else:
            self._on_outcome(delivery)

    def _on_transfer(self, link: Link, delivery: Delivery) -> None:
        if delivery.aborted:
            delivery.settle()
            return
        if delivery.partial or not delivery.readable:
            return
        payload = bytes(link.recv(delivery.pending) or b"")
        link.advance()

        node = self._nodes.get(link)
        if node is None:
            delivery.settle()
        elif node.kind == "entity":
            self._accept_messages(link, delivery, node.entity, payload)  # type: ignore[arg-type]
        else:
            self._reply_to_request(link, delivery, node, payload)

        if link.credit < _INCOMING_CREDIT // 2:
            link.flow(_INCOMING_CREDIT - link.credit)

    def _accept_messages(self, link: Link, delivery: Delivery, entity: Entity | Topic, payload: bytes) -> None:
        if len(payload) > entity.options.max_message_size:
            _settle(
                delivery,
                Delivery.REJECTED,
                Condition(
                    "amqp:link:message-size-exceeded",
                    f"The message is {len(payload)} bytes; {entity.name} accepts at most "
                    f"{entity.options.max_message_size}.",
                ),
            )
            return
        try:
            encoded_messages = split_batch(payload) or [payload]
            messages = [MessageParts.parse(encoded) for encoded in encoded_messages]
        except MessageFormatError as error:
            _settle(delivery, Delivery.REJECTED, Condition("amqp:decode-error", str(error)))
            return

        for parts in messages:
            self.store.send(entity, parts)
        _settle(delivery, Delivery.ACCEPTED)
        self.dispatch_target(entity)

    def _reply_to_request(self, link: Link, delivery: Delivery, node: _Node, payload: bytes) -> None:
        request = Message()
        try:
            request.decode(payload)
        except ProtonException as error:
            _settle(delivery, Delivery.REJECTED, Condition("amqp:decode-error", str(error)))
            return
        _settle(delivery, Delivery.ACCEPTED)

        properties = owned(dict(request.properties or {}))
        if node.kind == "cbs":
            # The emulator accepts every token: it checks no signatures. It
            # records the key name, which decides the rights of later links.
            self._record_token(link.connection, owned(request.body))
            reply_properties = {"status-code": int32(202), "status-description": "Accepted"}
            reply_body = None
        else:
            operation = str(properties.get("operation", ""))
            target: Entity | Topic = node.entity  # type: ignore[assignment]
            right = SEND if operation in _management.SEND_OPERATIONS else LISTEN
            try:
                self.key_rights.require(node.key_name, right, target.name)
            except AccessDeniedError as error:
                reply = _management.Reply(401, str(error), None, "amqp:unauthorized-access")
            else:
                reply = _management.execute(self.store, target, operation, owned(request.body))
            logger.debug("Management %s on %s: %d", operation, target.name, reply.status_code)
            reply_properties = _management.reply_properties(reply)
            reply_body = reply.body
            self.dispatch_target(target)

        self._send_reply(link.connection, node.address, request, reply_properties, reply_body)

    def _send_reply(
        self, connection: Connection, address: str, request: Message, properties: dict, body: Any
    ) -> None:
        reply_link = self._reply_links.get((connection, address))
        if reply_link is None:
            logger.warning("No reply link is attached for %s, so the reply was dropped", address)
            return
        reply = Message(body=body, properties=properties, correlation_id=request.id)
        delivery = reply_link.send(reply)
        delivery.settle()

    def _on_outcome(self, delivery: Delivery) -> None:
        consumer = self._consumer_by_link.get(delivery.link)
        lock_token = consumer.unsettled.pop(delivery, None) if consumer else None
        state = delivery.remote_state
        if lock_token is None or consumer is None:
            if state in _TERMINAL_STATES or delivery.settled:
                delivery.settle()
            return
        if state not in _TERMINAL_STATES:
            consumer.unsettled[delivery] = lock_token
            return

        outcome, reason, description = _outcome_of(delivery)
        try:
            self.store.settle(lock_token, outcome, reason=reason, description=description)
        except LockLostError as error:
            if outcome is Outcome.RELEASE:
                delivery.settle()
                return
            logger.debug("Settlement of an expired lock was rejected: %s", error)
            _settle(delivery, Delivery.REJECTED, Condition(LOCK_LOST_CONDITION, str(error)))
            return

        if state == Delivery.MODIFIED:
            delivery.local.failed = delivery.remote.failed
            delivery.local.undeliverable = delivery.remote.undeliverable
        # The SDK waits for the broker to echo the outcome it sent, settled.
        # A dead-letter is echoed as rejected without its condition, because
        # the SDK treats a rejection with an error as a failed settlement.
        _settle(delivery, state)
        self.dispatch(consumer.entity)

    def _record_token(self, connection: Connection, body: Any) -> None:
        token = parse_token(body) if isinstance(body, str) else None
        if token is None:
            logger.debug("A $cbs request carried no shared access signature, so no key name was recorded")
            return
        self._tokens.setdefault(connection, []).append((entity_path(token.audience).lower(), token.key_name))

    # dispatch

    def dispatch_target(self, target: Entity | Topic) -> None:
        """Dispatch a queue or subscription, or every subscription of a topic."""
        entities = list(target.subscriptions.values()) if isinstance(target, Topic) else [target]
        for entity in entities:
            self.dispatch(entity)

    def dispatch(self, entity: Entity) -> None:
        """Send available messages of ``entity`` to its consumers while they have credit."""
        consumers = self._consumers.get(entity)
        if not consumers:
            return

        exhausted = False
        while not exhausted:
            ready = [consumer for consumer in consumers if consumer.link.credit > 0]
            if not ready:
                break
            for consumer in ready:
                message = self.store.receive(entity, peek_lock=not consumer.receive_and_delete)
                if message is None:
                    exhausted = True
                    break
                self._deliver(consumer, message)
            # Rotate so that the next dispatch starts with another consumer.
            consumers.append(consumers.pop(0))

        for consumer in consumers:
            if consumer.link.drain_mode and consumer.link.credit > 0 and not entity.has_available():
                consumer.link.drained()

    def _deliver(self, consumer: _Consumer, message: Any) -> None:
        token = uuid.uuid4() if consumer.receive_and_delete else message.lock_token
        link = consumer.link
        delivery = link.delivery(token.bytes_le)
        link.stream(message.encode(delivered=True))
        link.advance()
        if consumer.receive_and_delete:
            delivery.settle()
        else:
            consumer.unsettled[delivery] = token

    # test hooks

    def drop_connections(self) -> int:
        """Close every client connection's transport without an AMQP close frame."""
        count = 0
        for connection in list(self.connections):
            transport = connection.transport
            if transport is not None:
                transport.close_tail()
                transport.close_head()
                count += 1
            self._forget_connection(connection)
        logger.info("Dropped %d client connections", count)
        return count

    def close_connections(self) -> None:
        """Close every client connection with an AMQP close frame."""
        for connection in list(self.connections):
            if connection.state & Endpoint.LOCAL_ACTIVE:
                close_with_error(connection, "amqp:connection:forced", "The emulator is stopping.")


_TERMINAL_STATES = (Delivery.ACCEPTED, Delivery.REJECTED, Delivery.RELEASED, Delivery.MODIFIED)


def _outcome_of(delivery: Delivery) -> tuple[Outcome, str | None, str | None]:
    state = delivery.remote_state
    if state == Delivery.ACCEPTED:
        return Outcome.COMPLETE, None, None
    if state == Delivery.RELEASED:
        return Outcome.RELEASE, None, None
    if state == Delivery.MODIFIED:
        return (Outcome.DEFER if delivery.remote.undeliverable else Outcome.ABANDON), None, None

    condition = delivery.remote.condition
    if condition is not None and condition.name == DEAD_LETTER_CONDITION:
        info = condition.info or {}
        return Outcome.DEAD_LETTER, info.get("DeadLetterReason"), info.get("DeadLetterErrorDescription")
    # A plain rejection dead-letters the message too, naming the condition.
    return Outcome.DEAD_LETTER, condition.name if condition else None, condition.description if condition else None


def _settle(delivery: Delivery, state: Any, condition: Condition | None = None) -> None:
    if condition is not None:
        # The SDK's sender reads all three fields of a rejection's error, and
        # Proton leaves out an empty info map, so the error carries a tracking
        # id as Service Bus errors do.
        info = condition.info or {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())}
        delivery.local.condition = Condition(condition.name, condition.description, info)
    delivery.update(state)
    delivery.settle()


class _SessionsNotServedError(Exception):
    """A receiving link that requests a session, which the emulator does not serve."""


def _has_session_filter(source: Terminus) -> bool:
    filters = source.filter
    filters.rewind()
    if not filters.next():
        return False
    filter_set = filters.get_object()
    return isinstance(filter_set, dict) and symbol(SESSION_FILTER) in filter_set


def _copy_terminus(local: Terminus, remote: Terminus) -> None:
    local.address = remote.address
