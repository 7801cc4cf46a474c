"""The ``iris-transport dlq list|replay CHANNEL`` commands for channels on the ``azure`` backend.

``list`` peeks at the channel's dead-letter sub-queue, so it locks nothing
and changes no delivery count. It shows each message's sequence number,
message id, enqueued time, delivery count, dead-letter reason and
description, and never a body, because bodies carry patient data.

``replay`` receives dead-lettered messages with peek-lock, sends a copy of
each selected one to the channel's queue or topic, and completes the
dead-lettered message only after that send succeeded. A failure between
the two leaves both copies, never none. The copy keeps body, content type,
ids, subject, session id and application properties, minus the
``DeadLetterReason`` and ``DeadLetterErrorDescription`` properties. It does
not keep a scheduled enqueue time or a time-to-live, so the entity's default
time-to-live applies. On an entity with duplicate detection, a copy whose
message id was sent within the detection window is dropped by Service Bus.
Messages that are not selected are abandoned, which puts them back in the
dead-letter sub-queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import click

from iris_transport import config as iris_config
from iris_transport.exceptions import IrisTransportError
from iris_transport.transport import OutgoingMessage, ReceivedMessage

__all__ = ["dlq_group"]

logger = logging.getLogger(__name__)

DEAD_LETTER_PROPERTIES = ("DeadLetterReason", "DeadLetterErrorDescription")

_PEEK_PAGE = 100

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=(
        f"Configuration file. Default: ${iris_config.CONFIG_ENV}, "
        f"else ./{iris_config.DEFAULT_CONFIG_FILE} when it exists."
    ),
)


@click.group("dlq")
def dlq_group() -> None:
    """Read and replay the dead-letter queue of a channel on the azure backend."""


@dlq_group.command("list")
@click.argument("channel")
@_config_option
@click.option("--max", "max_messages", type=click.IntRange(min=1), default=100, show_default=True, help="Maximum number of messages to list.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_command(channel: str, config_path: Path | None, max_messages: int, as_json: bool) -> None:
    """List the dead-lettered messages of CHANNEL without locking or changing them."""
    transport = _dead_letter_transport(channel, config_path)
    messages = _run(_peek_all(transport, max_messages))
    rows = [_describe(message) for message in messages]

    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"The dead-letter queue of channel {channel} ({transport.receive_path}) is empty.")
        return
    headers = ("sequence", "message id", "enqueued", "deliveries", "reason", "description")
    # A description can span lines (a validation error lists one problem a
    # line); the table keeps one row a message.
    table = [headers] + [tuple(_table_cell(row[key]) for key in _ROW_KEYS) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(headers) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths)] + [line[-1]]
        click.echo("  ".join(cells).rstrip())


@dlq_group.command("replay")
@click.argument("channel")
@_config_option
@click.option("--message-id", "message_ids", multiple=True, metavar="ID", help="Replay this message; repeat for more.")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead-lettered message.")
@click.option("--max", "max_messages", type=click.IntRange(min=1), default=1000, show_default=True, help="Maximum number of messages to replay.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds to wait for more dead-lettered messages before stopping.",
)
def replay_command(
    channel: str,
    config_path: Path | None,
    message_ids: tuple[str, ...],
    replay_all: bool,
    max_messages: int,
    wait: float,
) -> None:
    """Send dead-lettered messages of CHANNEL back to its queue or topic, then remove them from the dead-letter queue."""
    if replay_all == bool(message_ids):
        raise click.UsageError("give --all, or one or more --message-id, to say which messages to replay")

    dead_letters = _dead_letter_transport(channel, config_path)
    if dead_letters.settings.subscription is not None:
        raise click.UsageError(
            f"channel {channel} reads subscription {dead_letters.settings.subscription!r} of topic"
            f" {dead_letters.entity!r}; a replayed copy sent to the topic would reach every subscription,"
            " so replay supports queues only"
        )
    selected = None if replay_all else set(message_ids)

    replayed = _run(_replay(dead_letters, selected, max_messages, wait))

    for message_id in replayed:
        click.echo(f"replayed {message_id}")
    click.echo(f"Replayed {len(replayed)} message(s) to {dead_letters.entity}.")
    if selected is not None:
        missing = selected - set(replayed)
        if missing:
            click.echo(f"Not found in the dead-letter queue: {', '.join(sorted(missing))}", err=True)
            click.get_current_context().exit(1)


_ROW_KEYS = ("sequence_number", "message_id", "enqueued_time", "delivery_count", "reason", "description")


def _describe(message: ReceivedMessage) -> dict[str, Any]:
    properties = message.application_properties
    return {
        "sequence_number": message.handle.sequence_number,
        "message_id": message.message_id,
        "enqueued_time": message.enqueued_time.isoformat() if message.enqueued_time else None,
        "delivery_count": message.delivery_count,
        "reason": properties.get("DeadLetterReason"),
        "description": properties.get("DeadLetterErrorDescription"),
    }


def _table_cell(value: Any) -> str:
    if value is None:
        return ""
    return "; ".join(line.strip() for line in str(value).splitlines() if line.strip())


def _dead_letter_transport(channel: str, config_path: Path | None) -> Any:
    from iris_transport_azure.transport import AzureServiceBusTransport

    try:
        channel_config = iris_config.load_config(config_path).channel(channel)
    except IrisTransportError as err:
        raise click.ClickException(str(err)) from err
    if channel_config.backend != "azure":
        raise click.ClickException(
            f"channel {channel} uses the {channel_config.backend!r} backend; iris-transport dlq reads"
            " channels on the azure backend only"
        )
    return AzureServiceBusTransport(channel_config.settings, channel, sub_queue="deadletter")  # type: ignore[arg-type]


def _run(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except IrisTransportError as err:
        raise click.ClickException(str(err)) from err


async def _peek_all(transport: Any, max_messages: int) -> list[ReceivedMessage]:
    messages: list[ReceivedMessage] = []
    async with transport:
        next_sequence = 0
        while len(messages) < max_messages:
            page = await transport.peek(min(_PEEK_PAGE, max_messages - len(messages)), next_sequence)
            if not page:
                break
            messages.extend(page)
            next_sequence = page[-1].handle.sequence_number + 1
    return messages


async def _replay(dead_letters: Any, selected: set[str] | None, max_messages: int, wait: float) -> list[str]:
    from iris_transport_azure.transport import AzureServiceBusTransport

    replayed: list[str] = []
    skipped: list[ReceivedMessage] = []
    async with dead_letters, AzureServiceBusTransport(dead_letters.settings, dead_letters.channel) as target:
        while len(replayed) < max_messages:
            batch = await dead_letters.receive(min(_PEEK_PAGE, max_messages - len(replayed)), wait)
            if not batch:
                break
            for message in batch:
                if selected is not None and message.message_id not in selected:
                    skipped.append(message)
                    continue
                await target.send(_replay_copy(message))
                await dead_letters.complete(message)
                replayed.append(message.message_id or f"(sequence {message.handle.sequence_number})")
                logger.info("Replayed dead-lettered message %s to %s", message.message_id, target.entity)
            if selected is not None and selected <= set(replayed):
                break
        # Skipped messages stay locked until now, so the loop above cannot receive them twice.
        for message in skipped:
            await dead_letters.retry(message)
    return replayed


def _replay_copy(message: ReceivedMessage) -> OutgoingMessage:
    properties = {
        key: value for key, value in message.application_properties.items() if key not in DEAD_LETTER_PROPERTIES
    }
    return OutgoingMessage(
        body=message.body,
        content_type=message.content_type,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        subject=message.subject,
        application_properties=properties,
        ordering_key=message.ordering_key,
    )
