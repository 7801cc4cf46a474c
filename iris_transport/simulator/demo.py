"""The demo: the published example order travels to the simulator and back, on a temporary local backend."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from iris_transport import models
from iris_transport.client import AsyncIrisClient
from iris_transport.config import STANDARD_CHANNELS, IrisConfig, load_config
from iris_transport.exceptions import IrisTransportError
from iris_transport.simulator.grading import describe_eye
from iris_transport.simulator.simulator import IrisSimulator, SimulatorDelays

__all__ = ["DemoError", "DemoOutcome", "example_order_bytes", "local_config", "run_demo"]

EXAMPLE_ORDER_RESOURCE = "example-order.json"

# The events the demo waits for, in the order IRIS sends them for the example order.
EXPECTED_EVENTS = ("OrderCreationReceipt", "ImageReceipt", "ReadyForGradingEvent", "OrderGradedEvent")


class DemoError(IrisTransportError):
    """The demo did not complete; the message names what was missing and the fix."""


@dataclasses.dataclass(frozen=True)
class DemoOutcome:
    """The demo's outcome: the events in arrival order, the OrderResult and the path of the saved report."""

    events: tuple[models.EventBase, ...]
    result: models.OrderResult
    report_path: Path


def example_order_bytes() -> bytes:
    """Return IRIS's published example OrderRequest (NW), with its JSON syntax error corrected."""
    return resources.files("iris_transport.simulator").joinpath("data", EXAMPLE_ORDER_RESOURCE).read_bytes()


def local_config(
    path: Path, *, client_guid: Optional[str] = None, default_site: Optional[str] = None, config_file: Optional[Path] = None
) -> IrisConfig:
    """Return a configuration whose four channels are queues in the SQLite file ``path``.

    The configuration is written as TOML to ``config_file`` (next to
    ``path`` by default) and loaded without reading ``IRIS_TRANSPORT_*``
    variables, so the caller's environment cannot redirect it.
    """
    lines = []
    if client_guid:
        lines.append(f"client_guid = {json.dumps(client_guid)}")
    if default_site:
        lines.append(f"default_site = {json.dumps(default_site)}")
    for channel in STANDARD_CHANNELS:
        lines += ["", f"[channels.{channel}]", 'backend = "local"', f"path = {json.dumps(str(path))}"]
    config_file = config_file or path.with_name("iris-transport.toml")
    config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(config_file, environ={})


async def run_demo(
    output_dir: Path,
    *,
    timeout: float = 60.0,
    seed: int = 0,
    delay: float = 0.3,
    echo: Callable[[str], Any] = print,
) -> DemoOutcome:
    """Submit the example order to an in-process simulator, show each event, and save the report in ``output_dir``.

    Raises ``DemoError`` when IRIS rejects the order or when the result
    does not arrive within ``timeout`` seconds.
    """
    order = models.parse_order_request(example_order_bytes())
    client_guid = str(order.client_guid) if order.client_guid else None
    site = order.site.local_id if order.site else None

    with tempfile.TemporaryDirectory(prefix="iris-demo-") as workdir:
        config = local_config(Path(workdir) / "queues.sqlite3", client_guid=client_guid, default_site=site)
        echo(f"Local backend: temporary SQLite queues in {workdir}")
        simulator = IrisSimulator(
            config, seed=seed, delays=SimulatorDelays.uniform(delay), receive_wait=0.5, shutdown_timeout=5.0
        )
        client = AsyncIrisClient(config, receive_wait=0.5, shutdown_timeout=5.0, max_attempts=3)
        async with simulator, client:
            sent = await client.submit_order(order)
            echo(f"Submitted OrderRequest NW for order {sent.local_id} (message {sent.message_id})")
            echo("Waiting for IRIS's events and result...")
            progress = _Progress()
            try:
                await asyncio.wait_for(_receive(client, echo, progress), timeout)
            except asyncio.TimeoutError:
                raise DemoError(
                    f"the demo timed out after {timeout:g} s waiting for {progress.waiting_for()}; "
                    "rerun it with a larger --timeout, or with -v to see the simulator's log"
                ) from None

    assert progress.result is not None
    report_path = _save_report(progress.result, output_dir)
    return DemoOutcome(tuple(progress.events), progress.result, report_path)


@dataclasses.dataclass
class _Progress:
    events: list[models.EventBase] = dataclasses.field(default_factory=list)
    result: Optional[models.OrderResult] = None

    def seen(self, event_type: str) -> bool:
        return any(event.result_object_type == event_type for event in self.events)

    def waiting_for(self) -> str:
        for event_type in EXPECTED_EVENTS:
            if not self.seen(event_type):
                return f"the {event_type} event"
        return "the OrderResult"


async def _receive(client: AsyncIrisClient, echo: Callable[[str], Any], progress: _Progress) -> None:
    arrivals: asyncio.Queue[Any] = asyncio.Queue()

    async def pump(stream: Any) -> None:
        async with stream:
            async for item in stream:
                await arrivals.put(item)

    pumps = [asyncio.create_task(pump(client.events())), asyncio.create_task(pump(client.results()))]
    held_result: Optional[models.OrderResult] = None
    try:
        while progress.result is None:
            getter = asyncio.ensure_future(arrivals.get())
            done, _ = await asyncio.wait([getter, *pumps], return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                failed = next(task for task in pumps if task.done())
                failed.result()
                raise DemoError("a channel stopped before the result arrived; rerun with -v to see why")
            item = getter.result()

            if isinstance(item, models.OrderResult):
                # The result travels on its own channel and may overtake the
                # OrderGradedEvent; it is shown after it, in IRIS's order.
                held_result = item
            else:
                progress.events.append(item)
                echo(format_event(item))
                if not item.succeeded:
                    raise DemoError(
                        f"IRIS rejected the example order: {item.error_message or 'no reason given'}; "
                        "check the simulator's known ClientGuid and Site"
                    )
            if held_result is not None and progress.seen("OrderGradedEvent"):
                progress.result = held_result
                echo(format_result_line(held_result))
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


def format_event(event: models.EventBase) -> str:
    """Describe an event in one line: type, IRIS order id, LocalId and success, without patient data.

    Success is the event's field as received, and ``-`` when it is absent.
    """
    success = "-" if event.success is None else str(event.success).lower()
    iris_order_id = "-" if event.iris_order_id is None else str(event.iris_order_id)
    return (
        f"  {event.result_object_type:<22} IrisOrderId {iris_order_id}  "
        f"LocalId {event.order_local_id}  Success {success}"
        + (f"  Error {event.error_message}" if event.error_message else "")
    )


def format_result_line(result: models.OrderResult) -> str:
    """Describe an OrderResult in one line, like ``format_event``."""
    code = getattr(result.result_code, "value", result.result_code)
    return f"  {'OrderResult':<22} IrisOrderId {result.iris_order_id}  LocalId {result.local_id}  ResultCode {code}"


def summarize_result(result: models.OrderResult, report_path: Optional[Path]) -> list[str]:
    """Describe a result's ids, ResultCode, findings per eye, care plan and report, without patient data."""
    gradings = result.gradings or models.Gradings()
    code = getattr(result.result_code, "value", result.result_code)
    lines = [
        f"  TransactionId   {str(result.transaction_id).upper() if result.transaction_id else '-'}",
        f"  IRIS order id   {result.iris_order_id}",
        f"  Order LocalId   {result.local_id}",
        f"  ResultCode      {code}",
        f"  OD (right eye)  {describe_eye(gradings.od)}",
        f"  OS (left eye)   {describe_eye(gradings.os)}",
        f"  Care plan       {gradings.care_plan_name or '-'}",
    ]
    if report_path is not None:
        lines.append(f"  Report          {report_path} ({report_path.stat().st_size} bytes, {result.report_media_type})")
    return lines


def _save_report(result: models.OrderResult, output_dir: Path) -> Path:
    report = result.report_bytes()
    if report is None:
        raise DemoError("the OrderResult carries no report; this is a bug in the simulator")
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / report_file_name(result)
    path.write_bytes(report)
    return path


def report_file_name(result: models.OrderResult) -> str:
    """Return a file name for a result's report from its LocalId, IRIS order id and ResultCode."""
    extension = {"application/pdf": "pdf", "text/html": "html"}.get(result.report_media_type or "", "bin")
    local_id = re.sub(r"[^A-Za-z0-9._-]+", "_", result.local_id or "order")
    code = getattr(result.result_code, "value", result.result_code) or "X"
    return f"iris-report-{local_id}-{result.iris_order_id}-{code}.{extension}"
