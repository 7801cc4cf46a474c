"""Commands that exchange messages: ``demo``, ``send``, ``cancel``, ``resend``, ``listen`` and ``simulate``.

Errors are printed as one line on standard error, followed by a line that
gives the fix, and never include a patient value or a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from iris_transport import models
from iris_transport.client import AsyncIrisClient
from iris_transport.config import InvalidConfigurationError, IrisConfig, load_config
from iris_transport.exceptions import (
    ConfigurationError,
    DecodeError,
    MessageTooLargeError,
    MessageValidationError,
    TransportError,
)
from iris_transport.simulator import DemoError, IrisSimulator, SimulatorDelays, run_demo
from iris_transport.simulator.demo import format_event, format_result_line, report_file_name, summarize_result

__all__ = ["COMMANDS"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES = (
    "Exit status: 0 success; 1 the operation failed (invalid message, rejected order, "
    "broker error, timeout); 2 wrong usage (unknown option, missing argument)."
)

_CONFIG_HELP = "Configuration file. Default: $IRIS_TRANSPORT_CONFIG, else ./iris-transport.toml, else local queues."


def _config_option(function: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=_CONFIG_HELP,
    )(function)


def _verbose_option(function: F) -> F:
    return click.option("-v", "--verbose", is_flag=True, help="Log what the library does (INFO) to standard error.")(
        function
    )


SDK_LOGGERS = ("azure", "uamqp", "proton", "botocore", "boto3", "google")


def _configure_logging(verbose: bool, default_level: int = logging.WARNING) -> None:
    level = logging.INFO if verbose else default_level
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    # The cloud SDKs log every connection state change at INFO; at -v only
    # their warnings are of use, next to the library's own retry lines.
    for sdk_logger in SDK_LOGGERS:
        logging.getLogger(sdk_logger).setLevel(logging.WARNING if verbose else logging.ERROR)
    # Python's default output of a warning adds the library's file name and
    # source line, so warnings (such as UnknownCodeWarning on a received
    # message) become one log line each.
    warnings.showwarning = _log_warning


def _log_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    logger.warning("%s: %s", category.__name__, message)


def _fail(message: str, fix: str) -> None:
    click.echo(f"error: {message}", err=True)
    click.echo(f"fix: {fix}", err=True)
    raise SystemExit(1)


def _reports_errors(function: F) -> F:
    """Turn the library's errors into one line plus the fix, and exit status 1."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except KeyboardInterrupt:
            # asyncio.run has cancelled the command's task and closed its channels by now.
            command = click.get_current_context().command_path
            click.echo(f"error: interrupted: `{command}` stopped before it finished", err=True)
            raise SystemExit(1) from None
        except MessageValidationError as err:
            count = len(err.problems)
            click.echo(f"error: {err.model} is invalid ({count} problem{'s' if count != 1 else ''}); nothing was sent", err=True)
            for problem in err.problems:
                click.echo(f"  {problem}", err=True)
            click.echo("fix: correct the fields listed above and run the command again", err=True)
            raise SystemExit(1) from None
        except DecodeError as err:
            _fail(f"the input is not an IRIS JSON message: {err}", "give a file that contains one JSON object")
        except InvalidConfigurationError as err:
            click.echo(f"error: {err}", err=True)
            click.echo("fix: correct the configuration, then check it with `iris-transport config check`", err=True)
            raise SystemExit(1) from None
        except ConfigurationError as err:
            _fail(str(err), "correct the configuration, then check it with `iris-transport config check`")
        except MessageTooLargeError as err:
            _fail(
                f"the message was not sent: {err}",
                "make the message smaller, for example by sending images by reference in Camera.Images",
            )
        except TransportError as err:
            _fail(
                f"the broker operation failed: {err}",
                "check the channel's address and credentials with `iris-transport config check`",
            )
        except DemoError as err:
            _fail(str(err).split("; ", 1)[0], str(err).split("; ", 1)[-1])
        except OSError as err:
            _fail(f"{err.strerror or err}: {err.filename or ''}".rstrip(": "), "check the path and its permissions")

    return wrapper  # type: ignore[return-value]


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def _load(config_path: Path | None) -> IrisConfig:
    return load_config(config_path)


def _hide_unknown_code_warnings() -> None:
    # Parsing warns about codes outside IRIS's option lists, and validation
    # before sending reports the same fields as errors, so the warnings
    # would only repeat them with Python's source lines.
    warnings.filterwarnings("ignore", category=models.UnknownCodeWarning)


# iris-transport demo


@click.command(epilog=EXIT_CODES)
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Directory to save the report PDF in; created if missing.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the whole exchange before giving up.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulator's ids and findings.")
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=0.3,
    show_default=True,
    help="Seconds the simulator waits before each step, so the events arrive one by one.",
)
@_verbose_option
@_reports_errors
def demo(output_dir: Path, timeout: float, seed: int, delay: float, verbose: bool) -> None:
    """Send IRIS's published example order to the built-in simulator and show what comes back.

    Everything runs in this process on temporary SQLite queues: no broker
    and no configuration are needed. Each event is shown as it arrives, the
    report PDF is saved in the output directory, and a summary of the
    result is printed. The summary shows ids and findings, never the
    patient's name or date of birth, but the saved PDF contains both.
    """
    _configure_logging(verbose)
    # Created first, so that an unusable path fails before anything is sent.
    output_dir.mkdir(parents=True, exist_ok=True)
    outcome = _run(run_demo(output_dir, timeout=timeout, seed=seed, delay=delay, echo=click.echo))
    click.echo("")
    click.echo("OrderResult summary:")
    for line in summarize_result(outcome.result, outcome.report_path):
        click.echo(line)
    click.echo("")
    click.echo(f"Demo complete: {len(outcome.events)} events and 1 OrderResult received.")


# iris-transport send order|grading


@click.group(epilog=EXIT_CODES)
def send() -> None:
    """Validate a message and send it on its channel."""


@send.command("order", epilog=EXIT_CODES)
@click.argument("file", type=click.File("rb"))
@_config_option
@_verbose_option
@_reports_errors
def send_order(file: Any, config_path: Path | None, verbose: bool) -> None:
    """Send the OrderRequest in FILE (or - for standard input) on the orders channel.

    The order is sent with the OrderControlCode it carries (NW, XO, CA or
    ResendResult). ClientGuid and Site.LocalId are taken from the
    configuration when the order has none. An invalid order is not sent:
    every problem is listed with its field path.
    """
    _configure_logging(verbose)
    _hide_unknown_code_warnings()
    body = file.read()
    config = _load(config_path)

    async def main() -> Any:
        async with AsyncIrisClient(config) as client:
            return await client.send_order(body)

    sent = _run(main())
    _echo_sent(sent, config)


@send.command("grading", epilog=EXIT_CODES)
@click.argument("file", type=click.File("rb"))
@_config_option
@_verbose_option
@_reports_errors
def send_grading(file: Any, config_path: Path | None, verbose: bool) -> None:
    """Send the GradingSubmission in FILE (or -) on the gradings channel (IRIS test environments only)."""
    _configure_logging(verbose)
    _hide_unknown_code_warnings()
    body = file.read()
    config = _load(config_path)

    async def main() -> Any:
        async with AsyncIrisClient(config) as client:
            return await client.submit_grading(body)

    sent = _run(main())
    _echo_sent(sent, config)


# iris-transport cancel / resend


def _check_local_id(_context: click.Context, _parameter: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must be the order's Order.LocalId, not blank")
    return value


@click.command(epilog=EXIT_CODES)
@click.argument("local_id", callback=_check_local_id)
@click.option("--site", default=None, help="Site.LocalId of the order. Default: default_site of the configuration.")
@_config_option
@_verbose_option
@_reports_errors
def cancel(local_id: str, site: str | None, config_path: Path | None, verbose: bool) -> None:
    """Cancel (CA) the order whose Order.LocalId is LOCAL_ID.

    IRIS sends an OrderCancelled event in reply; watch for it with
    `iris-transport listen events`.
    """
    _configure_logging(verbose)
    config = _load(config_path)

    async def main() -> Any:
        async with AsyncIrisClient(config) as client:
            return await client.cancel_order(local_id, site=site)

    _echo_sent(_run(main()), config)


@click.command(epilog=EXIT_CODES)
@click.argument("local_id", callback=_check_local_id)
@click.option("--site", default=None, help="Site.LocalId of the order. Default: default_site of the configuration.")
@_config_option
@_verbose_option
@_reports_errors
def resend(local_id: str, site: str | None, config_path: Path | None, verbose: bool) -> None:
    """Ask IRIS to send the results of order LOCAL_ID again (ResendResult)."""
    _configure_logging(verbose)
    config = _load(config_path)

    async def main() -> Any:
        async with AsyncIrisClient(config) as client:
            return await client.resend_results(local_id, site=site)

    _echo_sent(_run(main()), config)


def _echo_sent(sent: Any, config: IrisConfig) -> None:
    backend = config.channel(sent.channel).backend
    click.echo(
        f"Sent {sent.subject} for order {sent.local_id} on channel {sent.channel} "
        f"(backend {backend}, message id {sent.message_id})"
    )


# iris-transport listen events|results


@click.command(epilog=EXIT_CODES)
@click.argument("channel", type=click.Choice(["events", "results"]))
@click.option(
    "--save-reports",
    "reports_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to save each OrderResult's report in (results only); created if missing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print each message as one line of IRIS JSON.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many messages.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds; with --count, fail when fewer messages arrived.",
)
@_config_option
@_verbose_option
@_reports_errors
def listen(
    channel: str,
    reports_dir: Path | None,
    as_json: bool,
    count: int | None,
    timeout: float | None,
    config_path: Path | None,
    verbose: bool,
) -> None:
    """Print the events or OrderResults arriving on CHANNEL until Ctrl+C (or --count, --timeout).

    Each message is completed once printed. Without --json a message is one
    line of ids and status, without patient data; --json prints the whole
    message, patient data included.
    """
    _configure_logging(verbose)
    if reports_dir is not None and channel != "results":
        raise click.UsageError("--save-reports applies to `listen results` only")
    config = _load(config_path)
    backend = config.channel(channel).backend
    if reports_dir is not None:
        # Created first, so that an unusable path fails before any result is received.
        reports_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"Listening on channel {channel} (backend {backend}); press Ctrl+C to stop.", err=True)

    received = _run(_listen(config, channel, reports_dir, as_json, count, timeout))
    if count is not None and received < count:
        _fail(
            f"timed out after {timeout:g} s with {received} of {count} messages received on channel {channel}",
            "check that the sender is running, or give a larger --timeout",
        )


async def _listen(
    config: IrisConfig,
    channel: str,
    reports_dir: Path | None,
    as_json: bool,
    count: int | None,
    timeout: float | None,
) -> int:
    client = AsyncIrisClient(config, receive_wait=1.0, shutdown_timeout=10.0)
    received = 0
    save_error: OSError | None = None

    def counted() -> None:
        nonlocal received
        received += 1
        if count is not None and received >= count:
            client.request_stop()

    if channel == "events":

        @client.on_event
        def print_event(event: models.EventBase) -> None:
            click.echo(models.to_json_bytes(event, strict=False).decode("utf-8") if as_json else format_event(event))
            counted()

    else:

        @client.on_result
        def print_result(result: models.OrderResult) -> None:
            nonlocal save_error
            path = None
            if reports_dir is not None:
                try:
                    path = _save_report(result, reports_dir)
                except OSError as err:
                    # A local disk problem: stop listening, so that the result
                    # goes back to the queue instead of failing every retry.
                    save_error = err
                    client.request_stop()
                    raise
            if as_json:
                click.echo(models.to_json_bytes(result, strict=False).decode("utf-8"))
            else:
                click.echo(format_result_line(result))
            if path is not None:
                click.echo(f"  report saved: {path}", err=as_json)
            counted()

    async with client:
        serving = asyncio.ensure_future(client.serve())
        try:
            await asyncio.wait_for(asyncio.shield(serving), timeout)
        except asyncio.TimeoutError:
            client.request_stop()
            await serving
    if save_error is not None:
        raise save_error
    return received


def _save_report(result: models.OrderResult, reports_dir: Path) -> Path | None:
    report = result.report_bytes()
    if report is None:
        logger.warning("OrderResult %s carries no report", result.transaction_id)
        return None
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / report_file_name(result)
    path.write_bytes(report)
    return path


# iris-transport simulate


@click.command(epilog=EXIT_CODES)
@click.option(
    "--client-guid",
    "client_guids",
    multiple=True,
    help="A ClientGuid the simulator knows; repeat for several. Default: client_guid of the configuration.",
)
@click.option(
    "--site",
    "sites",
    multiple=True,
    help="A Site.LocalId the simulator knows; repeat for several. Default: default_site of the configuration.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulator's ids and findings.")
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait before each image receipt, grading and result.",
)
@click.option(
    "--auto-grade/--no-auto-grade",
    default=True,
    show_default=True,
    help="Grade orders as soon as they have images, or wait for a GradingSubmission.",
)
@click.option(
    "--auto-add-sites",
    is_flag=True,
    help="Add an unknown Site that comes with a Name and an Address instead of rejecting the order.",
)
@_config_option
@_verbose_option
@_reports_errors
def simulate(
    client_guids: tuple[str, ...],
    sites: tuple[str, ...],
    seed: int,
    delay: float,
    auto_grade: bool,
    auto_add_sites: bool,
    config_path: Path | None,
    verbose: bool,
) -> None:
    """Run the IRIS simulator: respond to orders and gradings until Ctrl+C or SIGTERM.

    It consumes the orders and gradings channels and publishes events and
    results on the configured backends. Each message it handles is logged
    at INFO, with ids only.
    """
    _configure_logging(verbose, default_level=logging.INFO)
    config = _load(config_path)
    if not client_guids and not config.client_guid:
        _fail(
            "the IRIS simulator has no ClientGuid to accept orders from",
            "set client_guid in the configuration, or give --client-guid",
        )
    simulator = IrisSimulator(
        config,
        client_guids=client_guids,
        sites=sites,
        seed=seed,
        delays=SimulatorDelays.uniform(delay),
        auto_grade=auto_grade,
        auto_add_sites=auto_add_sites,
    )
    click.echo(
        f"IRIS simulator answering on orders ({config.channel('orders').backend}) and gradings "
        f"({config.channel('gradings').backend}); press Ctrl+C to stop.",
        err=True,
    )
    simulator.run()


COMMANDS: list[click.Command] = [demo, send, cancel, resend, listen, simulate]
