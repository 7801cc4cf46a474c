"""Commands that inspect backends and configuration: ``backends`` and ``config check``.

Neither command prints a secret: settings are shown with each secret as its
reference (``{ env = "NAME" }``, ``{ file = "/path" }``) or ``**********``,
and errors raised by a backend have any secret value replaced before they
are printed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import anyio
import click

from iris_transport import config as iris_config
from iris_transport import plugins
from iris_transport.exceptions import ConfigurationError, ValidationProblem
from iris_transport.transport import Capabilities

logger = logging.getLogger(__name__)

_FLAG_CAPABILITIES = tuple(
    field.name for field in dataclasses.fields(Capabilities) if field.type in (bool, "bool")
)
_LIMIT_CAPABILITIES = tuple(
    field.name for field in dataclasses.fields(Capabilities) if field.name not in _FLAG_CAPABILITIES
)


# iris-transport backends


@click.command("backends")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def backends_command(as_json: bool) -> None:
    """List every installed backend with its distribution, version and capabilities."""
    try:
        backends = plugins.list_backends()
    except ConfigurationError as err:
        raise click.ClickException(str(err)) from err

    if as_json:
        click.echo(json.dumps([_backend_as_json(backend) for backend in backends], indent=2))
        return

    rows = [
        (
            backend.name,
            backend.distribution or "(not installed as a distribution)",
            backend.version or "-",
            "ready" if backend.sdk_installed else "SDK missing",
            _summarize_capabilities(backend.capabilities),
        )
        for backend in backends
    ]
    _echo_table(("BACKEND", "DISTRIBUTION", "VERSION", "STATUS", "CAPABILITIES"), rows)

    for backend in backends:
        missing = plugins.find_missing_module(backend.required_modules)
        if missing is not None:
            click.echo(
                f"\n{backend.name}: module {missing!r} is missing; install it with: {backend.install_command}"
            )


def _backend_as_json(backend: plugins.InstalledBackend) -> dict[str, Any]:
    return {
        "name": backend.name,
        "description": backend.description,
        "distribution": backend.distribution,
        "version": backend.version,
        "sdk_installed": backend.sdk_installed,
        "required_modules": list(backend.required_modules),
        "install_command": backend.install_command,
        "capabilities": dataclasses.asdict(backend.capabilities),
        "settings": sorted(backend.settings_model.model_fields),
    }


def _summarize_capabilities(capabilities: Capabilities) -> str:
    parts = [f"max_message_bytes={capabilities.max_message_bytes}"]
    parts += [name for name in _FLAG_CAPABILITIES if getattr(capabilities, name)]
    parts += [
        f"{name}={getattr(capabilities, name)}"
        for name in _LIMIT_CAPABILITIES
        if name != "max_message_bytes" and getattr(capabilities, name) is not None
    ]
    return " ".join(parts)


def _echo_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in [headers, *rows]) for column in range(len(headers))]
    for row in [headers, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        click.echo("  ".join(cells).rstrip())


# iris-transport config check


@click.group("config")
def config_group() -> None:
    """Inspect the configuration (iris-transport.toml and IRIS_TRANSPORT_* variables)."""


@config_group.command("check")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=(
        f"Configuration file to check. Default: ${iris_config.CONFIG_ENV}, "
        f"else ./{iris_config.DEFAULT_CONFIG_FILE} when it exists."
    ),
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for each channel's transport to be created and closed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def config_check_command(config_path: Path | None, timeout: float, as_json: bool) -> None:
    """Validate the configuration and try each channel's backend.

    For every channel this reports the backend, whether it is installed, and
    whether the broker confirms the entity and the credentials: for sending
    on orders and gradings, for receiving on events and results, for both on
    other channels. Nothing is sent, received or locked. A backend that
    cannot check without side effects is reported as created, not reachable.
    Exits with status 1 when anything is wrong.
    """
    check = iris_config.check_config(config_path)
    unchecked: set[str] = set()
    reachability = {
        name: _probe_channel(channel, timeout, unchecked)
        for name, channel in check.channels.items()
        if not channel.problems and channel.settings is not None and channel.backend_info is not None
    }
    for name, problem in reachability.items():
        if problem is not None:
            check.channels[name].problems.append(problem)

    if as_json:
        click.echo(json.dumps(_check_as_json(check, reachability, unchecked), indent=2))
    else:
        _echo_check(check, reachability, unchecked)

    if check.all_problems:
        click.get_current_context().exit(1)


SEND_CHANNELS = frozenset({"orders", "gradings"})
RECEIVE_CHANNELS = frozenset({"events", "results"})


def _probe_channel(channel: iris_config.ChannelCheck, timeout: float, unchecked: set[str]) -> ValidationProblem | None:
    """Create the channel's transport, check it and close it; return the problem, or None when all worked.

    Adds the channel's name to ``unchecked`` when its backend cannot check
    the broker without side effects.
    """
    assert channel.backend_info is not None and channel.settings is not None
    send = channel.name not in RECEIVE_CHANNELS
    receive = channel.name not in SEND_CHANNELS

    async def create_and_close() -> None:
        with anyio.fail_after(timeout):
            # The factory runs on a worker thread so that the timeout also
            # covers a factory that blocks. A thread still blocked when the
            # timeout passes is abandoned, not stopped.
            transport = await anyio.to_thread.run_sync(
                plugins.build_transport, channel.backend_info, channel.settings, channel.name,
                abandon_on_cancel=True,
            )
            try:
                if not await transport.check(send=send, receive=receive):
                    unchecked.add(channel.name)
            finally:
                await transport.close()

    try:
        anyio.run(create_and_close)
    except TimeoutError:
        message = f"checking the transport took more than {timeout:g} seconds; check the broker's address"
    except Exception as err:
        # Any error a backend raises is reported, not propagated, so that the
        # other channels are still checked. Its text may quote a secret
        # (some SDKs echo connection strings), hence the redaction.
        text = iris_config.redact_secrets(str(err), channel.settings)
        message = f"the transport failed its check: {type(err).__name__}: {text}"
    else:
        return None

    logger.debug("channel %s failed its check: %s", channel.name, message)
    return ValidationProblem(f"channels.{channel.name}", message)


def _echo_check(
    check: iris_config.ConfigCheck, reachability: dict[str, ValidationProblem | None], unchecked: set[str]
) -> None:
    if check.source is None:
        click.echo(
            f"Configuration file: none ({iris_config.DEFAULT_CONFIG_FILE} not found in the current "
            f"directory and {iris_config.CONFIG_ENV} not set); using defaults and environment variables"
        )
    else:
        click.echo(f"Configuration file: {check.source}")
    click.echo(f"client_guid: {check.client_guid or '(not set)'}")
    click.echo(f"default_site: {check.default_site or '(not set)'}")
    for problem in check.problems:
        click.echo(f"  problem: {problem}")

    for name, channel in check.channels.items():
        click.echo("")
        origin = "" if channel.configured else " (not configured, default)"
        click.echo(f"[channels.{name}] backend={channel.backend}{origin}: {_channel_status(channel, reachability, unchecked)}")
        if channel.settings is not None:
            for key, value in channel.settings.model_dump(mode="json").items():
                click.echo(f"  {key} = {_format_toml_value(value)}")
        for problem in channel.problems:
            click.echo(f"  problem: {problem}")

    click.echo("")
    count = len(check.all_problems)
    if count:
        click.echo(f"{count} problem{'s' if count != 1 else ''} found.")
    else:
        click.echo("Configuration is valid; every channel's transport was created and checked.")


def _channel_status(
    channel: iris_config.ChannelCheck, reachability: dict[str, ValidationProblem | None], unchecked: set[str]
) -> str:
    if channel.backend_info is None:
        return "backend not found"
    if not channel.backend_info.sdk_installed:
        return "SDK missing"
    if channel.name not in reachability:
        return "invalid settings"
    if reachability[channel.name] is not None:
        return "installed, not reachable"
    if channel.name in unchecked:
        return "installed, created (this backend cannot check the broker)"
    return "installed, reachable"


def _format_toml_value(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{key} = {_format_toml_value(item)}" for key, item in value.items())
        return "{ " + inner + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_format_toml_value(item) for item in value) + "]"
    if value is None:
        return "(not set)"
    return json.dumps(value)


def _check_as_json(
    check: iris_config.ConfigCheck, reachability: dict[str, ValidationProblem | None], unchecked: set[str]
) -> dict[str, Any]:
    def problems_as_json(problems: list[ValidationProblem]) -> list[dict[str, str]]:
        return [{"path": problem.path, "message": problem.message} for problem in problems]

    channels = []
    for name, channel in check.channels.items():
        channels.append(
            {
                "name": name,
                "backend": channel.backend,
                "configured": channel.configured,
                "installed": channel.backend_info is not None and channel.backend_info.sdk_installed,
                "created": name in reachability and reachability[name] is None,
                "reachable": name in reachability and reachability[name] is None and name not in unchecked,
                "settings": channel.settings.model_dump(mode="json") if channel.settings is not None else None,
                "problems": problems_as_json(channel.problems),
            }
        )
    return {
        "source": str(check.source) if check.source is not None else None,
        "client_guid": check.client_guid,
        "default_site": check.default_site,
        "valid": not check.all_problems,
        "problems": problems_as_json(check.problems),
        "channels": channels,
    }


# Commands added by plugins


def add_plugin_commands(group: click.Group) -> None:
    """Add the commands that plugins return from ``iris_transport_cli_commands`` to ``group``.

    A command whose name is taken, and every command of a plugin whose hook
    raises, is skipped with a warning. When the plugins cannot be loaded, the
    error is logged and the built-in commands still work, so that
    ``iris-transport backends`` can report it.
    """
    try:
        manager = plugins.get_plugin_manager()
    except ConfigurationError as err:
        logger.warning("plugin commands are not available: %s", err)
        return

    for implementation in manager.hook.iris_transport_cli_commands.get_hookimpls():
        try:
            commands = implementation.function()
        except Exception as err:
            # A broken plugin must not take the built-in commands down with it.
            logger.warning(
                "skipped the commands of plugin %r, which failed: %s: %s",
                manager.get_name(implementation.plugin), type(err).__name__, err,
            )
            continue
        for command in commands or ():
            if command.name in group.commands:
                logger.warning(
                    "skipped the plugin command %r because a command with that name exists", command.name
                )
                continue
            group.add_command(command)


COMMANDS: list[click.Command] = [backends_command, config_group]
