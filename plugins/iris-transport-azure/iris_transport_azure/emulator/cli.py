"""The ``iris-transport emulator servicebus`` command."""

from __future__ import annotations

import errno
import logging
import signal
import threading
from typing import Any

import click

from iris_transport_azure.emulator._store import QueueOptions
from iris_transport_azure.emulator.server import EmulatorError, ServiceBusEmulator

DEFAULT_PORT = 5672


@click.group(name="emulator")
def emulator_group() -> None:
    """Run local emulators of cloud brokers for development and tests."""


@emulator_group.command(name="servicebus")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="TCP port to listen on; 0 picks a free port and prints it.",
)
@click.option("--queue", "queues", multiple=True, metavar="NAME", help="Queue to create at start; repeat for more.")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    metavar="NAME:SUB1,SUB2",
    callback=lambda context, parameter, values: _parse_topics(values),
    help="Topic to create at start with its subscriptions, e.g. results:crm,archive; repeat for more.",
)
@click.option(
    "--auto-create/--no-auto-create",
    default=True,
    show_default=True,
    help="Create a queue on first use, or reject unknown entities with amqp:not-found.",
)
@click.option(
    "--lock-duration",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Peek-lock duration of every queue, in seconds.",
)
@click.option(
    "--max-delivery-count",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Delivery attempts before a message is dead-lettered.",
)
@click.option(
    "--default-message-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Time to live of messages that set none, in seconds; default: no expiry.",
)
@click.option(
    "--max-message-size",
    type=click.IntRange(min=1024),
    default=256 * 1024,
    show_default=True,
    help="Largest accepted message or batch, in bytes.",
)
@click.option("-v", "--verbose", count=True, help="Log connections and links (-v), or every request too (-vv).")
def servicebus_command(
    host: str,
    port: int,
    queues: tuple[str, ...],
    topics: dict[str, list[str]],
    auto_create: bool,
    lock_duration: float,
    max_delivery_count: int,
    default_message_ttl: float | None,
    max_message_size: int,
    verbose: int,
) -> None:
    """Serve an Azure Service Bus emulator until interrupted (Ctrl+C or SIGTERM).

    The official azure-servicebus SDK connects with the printed connection
    string. Example: iris-transport emulator servicebus --port 5672 --queue orders --topic results:crm,archive
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if verbose < 2:
        # Proton logs every client that disconnects without a close frame as an error.
        logging.getLogger("proton").setLevel(logging.CRITICAL)
    try:
        options = QueueOptions(
            lock_duration=lock_duration,
            max_delivery_count=max_delivery_count,
            default_message_ttl=default_message_ttl,
            max_message_size=max_message_size,
        )
        emulator = ServiceBusEmulator(
            host,
            port,
            queues={name: options for name in queues},
            auto_create_queues=auto_create,
            default_queue_options=options,
            topics=topics,
        )
        emulator.start()
    except (ValueError, EmulatorError) as error:
        message = str(error)
        if isinstance(error.__cause__, OSError) and error.__cause__.errno == errno.EADDRINUSE:
            message += "; pass another --port, or --port 0 for a free one"
        raise click.ClickException(message) from error

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    click.echo(f"Service Bus emulator listening on {host}:{emulator.port}")
    click.echo(f"Connection string: {emulator.connection_string}", nl=True)

    # Event.wait with a timeout lets the main thread run the signal handlers.
    while not stop_requested.wait(0.5) and emulator.running:
        pass
    emulator.stop()
    click.echo("Service Bus emulator stopped")


def _parse_topics(values: tuple[str, ...]) -> dict[str, list[str]]:
    topics: dict[str, list[str]] = {}
    for value in values:
        name, separator, subscriptions = value.partition(":")
        names = [subscription.strip() for subscription in subscriptions.split(",") if subscription.strip()]
        if not name.strip() or not separator or not names:
            raise click.BadParameter(
                f"{value!r} is not NAME:SUB1,SUB2; give the topic and at least one subscription, e.g. results:crm",
                param_hint="--topic",
            )
        topics.setdefault(name.strip(), []).extend(names)
    return topics
