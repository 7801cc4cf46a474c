"""The IRIS simulator: responds to OrderRequests and GradingSubmissions as IRIS does.

It consumes the ``orders`` and ``gradings`` channels and publishes on
``events`` and ``results``, on whatever backends the configuration gives
those channels. What it sends, by message received:

- NW with an unknown or missing ClientGuid: nothing, because IRIS cannot
  tell whom to send events to (logged at INFO with the message id only).
- NW that IRIS would reject (a required field missing, an unknown
  Site.LocalId, a LocalId of an open order): an OrderCreationReceipt with
  ``Success: false`` and an ErrorMessage naming the field paths.
- NW accepted: an OrderCreationReceipt, an ImageReceipt per image in
  ``Camera.Images``, a ReadyForGradingEvent once the order has an image,
  and, with ``auto_grade``, an OrderGradedEvent and an OrderResult with
  findings, a care plan and a PDF report.
- XO: an OrderCreationReceipt for the change, then ImageReceipts for new
  images and the steps above that the order had not reached.
- CA: OrderCancelled for a live order it created; nothing for an unknown
  or graded order, because IRIS ignores such a cancellation.
- ResendResult: a fresh OrderResult (ResultCode ``R``) for a graded order.
- GradingSubmission: a GradingReceipt, then an OrderGradedEvent and an
  OrderResult (ResultCode ``C`` when the order was graded before).

Ids come from a random generator seeded with ``seed`` and the order's
ClientGuid and LocalId, and timestamps from ``clock``, so a run is
reproducible whatever the timing between orders. The state lives in memory.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import enum
import json
import logging
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, Optional

from iris_transport import models
from iris_transport.codec import decode_json_body, encode_json_message
from iris_transport.config import IrisConfig
from iris_transport.exceptions import ConfigurationError, MessageValidationError, ValidationProblem
from iris_transport.models import OrderControlCode
from iris_transport.runtime import Consumer, MemoryDeduplicationStore, Producer, RetryPolicy
from iris_transport.runtime.shutdown import install_signal_handlers
from iris_transport.simulator import grading as grading_rules
from iris_transport.simulator.report import render_report
from iris_transport.transport import ReceivedMessage

__all__ = ["IrisSimulator", "SimulatorDelays"]

logger = logging.getLogger(__name__)

RESULT_SUBJECT = "OrderResult"

# A grading provider for simulated results. The NPI passes the NPI check
# digit algorithm but belongs to no real provider.
SIMULATED_GRADER = models.Provider(
    npi="1234567893",
    name=models.Name(title="Dr", first="Simulated", last="Grader"),
    degrees="MD",
    taxonomy="207W00000X",
)
DEFAULT_CPT = models.Cpt(code="92250", description="Fundus photography with interpretation and report")


@dataclasses.dataclass(frozen=True)
class SimulatorDelays:
    """Seconds the simulator waits before each step, to look like IRIS at work. Zero in tests."""

    image: float = 0.0
    """Before each ImageReceipt."""
    ready: float = 0.0
    """Before the ReadyForGradingEvent."""
    grading: float = 0.0
    """Before an automatic grading's OrderGradedEvent."""
    result: float = 0.0
    """Before each OrderResult."""

    @classmethod
    def uniform(cls, seconds: float) -> SimulatorDelays:
        """Return delays of ``seconds`` before every step."""
        return cls(image=seconds, ready=seconds, grading=seconds, result=seconds)


class OrderStatus(str, enum.Enum):
    WAITING_FOR_IMAGES = "waiting for images"
    READY = "ready for grading"
    GRADED = "graded"
    CANCELLED = "cancelled"


@dataclasses.dataclass(eq=False)
class SimulatedOrder:
    """The simulator's record of one order."""

    client_guid: uuid.UUID
    local_id: str
    iris_order_id: int
    iris_patient_id: int
    request: models.OrderRequest
    created_time: datetime
    rng: random.Random
    status: OrderStatus = OrderStatus.WAITING_FOR_IMAGES
    images: dict[str, tuple[int, models.Image, datetime]] = dataclasses.field(default_factory=dict)
    """Received images by key (LocalId, else container and file name): IRIS image id, image, time received."""
    queued_time: Optional[datetime] = None
    gradings: Optional[models.Gradings] = None
    results_sent: int = 0

    @property
    def patient_local_id(self) -> Optional[str]:
        return self.request.patient.local_id if self.request.patient else None


class IrisSimulator:
    """An in-memory IRIS that responds on the configured channels; see the module docstring.

    ``client_guids`` and ``sites`` are the ClientGuids and Site LocalIds it
    knows; each defaults to the configuration's ``client_guid`` and
    ``default_site``. With ``auto_add_sites``, an unknown Site that has a
    Name and an Address is added, as IRIS does for organizations allowed to
    add sites. Without ``auto_grade`` an order waits for a GradingSubmission.
    """

    def __init__(
        self,
        config: IrisConfig,
        *,
        client_guids: Iterable[str | uuid.UUID] = (),
        sites: Iterable[str] = (),
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        delays: SimulatorDelays | None = None,
        auto_grade: bool = True,
        auto_add_sites: bool = False,
        concurrency: int = 4,
        receive_wait: float = 1.0,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.config = config
        self.client_guids = {_to_uuid(guid) for guid in client_guids}
        if not self.client_guids and config.client_guid:
            self.client_guids.add(_to_uuid(config.client_guid))
        if not self.client_guids:
            raise ConfigurationError(
                "the IRIS simulator knows no ClientGuid, so it would answer no order; set client_guid in the "
                "configuration or pass client_guids"
            )
        self.sites = set(sites)
        if not self.sites and config.default_site:
            self.sites.add(config.default_site)
        self.seed = seed
        self.clock = clock or _utc_now
        self.delays = delays or SimulatorDelays()
        self.auto_grade = auto_grade
        self.auto_add_sites = auto_add_sites
        self.concurrency = concurrency
        self.receive_wait = receive_wait
        self.shutdown_timeout = shutdown_timeout

        self.orders: dict[tuple[uuid.UUID, str], SimulatedOrder] = {}
        self._events_without_order: Counter[tuple[str, Optional[str]]] = Counter()
        self.stats: Counter[str] = Counter()
        """Messages handled by kind (``orders``, ``gradings``, ``ignored``) and sent (``events``, ``results``)."""
        self._lock = asyncio.Lock()
        self._producers: dict[str, Producer] = {}
        self._consumers: list[Consumer[Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Set by request_stop, so that handlers skip their remaining delays.
        self._stop_event = asyncio.Event()
        self._progress = asyncio.Condition()

    # Lifecycle

    async def serve(self, *, install_signal_handlers: bool = False) -> None:
        """Respond to orders and gradings until ``stop``, or SIGINT/SIGTERM when ``install_signal_handlers`` is true."""
        self._consumers = [
            self._consumer("orders", self._handle_order),
            self._consumer("gradings", self._handle_grading),
        ]
        uninstall: Callable[[], None] = lambda: None
        if install_signal_handlers:
            uninstall = _install_stop_signals(self)
        if self._stopping:
            self._request_consumers_stop()

        logger.info(
            "IRIS simulator started: %d ClientGuid(s), %d site(s), auto-grading %s",
            len(self.client_guids),
            len(self.sites),
            "on" if self.auto_grade else "off",
        )
        tasks = [asyncio.create_task(consumer.run(), name="iris-simulator") for consumer in self._consumers]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    self._request_consumers_stop()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            uninstall()
            await self._close_producers()
            logger.info("IRIS simulator stopped")

    def run(self) -> None:
        """Serve on a new event loop in this thread until SIGINT or SIGTERM."""
        asyncio.run(self.serve(install_signal_handlers=True))

    async def start(self) -> None:
        """Start serving in a background task of the running loop."""
        if self._task is not None:
            raise RuntimeError("the simulator is running already")
        self._stopping = False
        self._stop_event.clear()
        self._task = asyncio.create_task(self.serve(), name="iris-simulator-serve")

    def request_stop(self) -> None:
        """Ask ``serve`` to stop, without waiting.

        Orders in progress skip their remaining delays, so each finishes at
        once and its message is completed.
        """
        self._stopping = True
        self._stop_event.set()
        self._request_consumers_stop()

    async def stop(self) -> None:
        """Stop serving and wait until every channel is closed."""
        self.request_stop()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> IrisSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_until(self, predicate: Callable[[Counter[str]], bool], timeout: float) -> None:
        """Wait until ``predicate(stats)`` is true; raise ``TimeoutError`` after ``timeout`` seconds."""
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: predicate(self.stats)), timeout)

    def _consumer(self, channel: str, handler: Callable[[tuple[str, Any]], Any]) -> Consumer[Any]:
        # Deduplicating by message id keeps a redelivered order from being processed twice.
        return Consumer(
            self.config.create_transport(channel),
            handler,
            decode=_decode_document,
            concurrency=self.concurrency,
            max_attempts=5,
            backoff=RetryPolicy(initial_delay=0.5, max_delay=10.0),
            dedup=MemoryDeduplicationStore(),
            dedup_key=lambda decoded: decoded[0],
            shutdown_timeout=self.shutdown_timeout,
            receive_wait=self.receive_wait,
        )

    def _request_consumers_stop(self) -> None:
        for consumer in self._consumers:
            consumer.request_stop()

    async def _close_producers(self) -> None:
        producers, self._producers = self._producers, {}
        for channel, producer in producers.items():
            try:
                await producer.close()
            except Exception:
                logger.exception("Closing the simulator's %s channel failed", channel)

    async def _count(self, key: str) -> None:
        async with self._progress:
            self.stats[key] += 1
            self._progress.notify_all()

    # Orders

    async def _handle_order(self, decoded: tuple[str, Any]) -> None:
        message_id, document = decoded
        try:
            await self._answer_order(message_id, document)
        finally:
            await self._count("orders")

    async def _answer_order(self, message_id: str, document: Any) -> None:
        request: Optional[models.OrderRequest] = None
        problems: list[ValidationProblem] = []
        try:
            request = models.parse_order_request(document)
        except MessageValidationError as err:
            problems = list(err.problems)

        client_guid = _client_guid_of(request, document)
        if client_guid is None or client_guid not in self.client_guids:
            # IRIS sends no event when it cannot tell which organization sent the order.
            logger.info("Ignored OrderRequest message %s: unknown or missing ClientGuid", message_id)
            await self._count("ignored")
            return

        code = request.order_control_code if request else _text_at(document, "OrderControlCode")
        code = getattr(code, "value", code)
        local_id = request.order.local_id if request and request.order else _text_at(document, "Order", "LocalId")
        logger.info("Received OrderRequest %s (%s) for order %s", message_id, code, local_id)

        if request is not None:
            problems = models.find_sending_problems(request)
        if code == OrderControlCode.CANCEL.value:
            await self._cancel(client_guid, local_id, problems)
        elif code == OrderControlCode.RESEND_RESULT.value:
            await self._resend(client_guid, local_id, problems, request)
        elif request is None or problems or code not in (OrderControlCode.NEW.value, OrderControlCode.CHANGE.value):
            await self._reject_order(local_id, _patient_local_id(request, document), problems or [
                ValidationProblem("OrderControlCode", "must be NW, XO, CA or ResendResult")
            ])
        elif code == OrderControlCode.NEW.value:
            await self._create(client_guid, request)
        else:
            await self._change(client_guid, request)

    async def _create(self, client_guid: uuid.UUID, request: models.OrderRequest) -> None:
        assert request.order is not None and request.order.local_id is not None
        local_id = request.order.local_id
        patient_local_id = request.patient.local_id if request.patient else None

        async with self._lock:
            problem = self._site_problem(request.site)
            existing = self.orders.get((client_guid, local_id))
            if problem is None and existing is not None and existing.status is not OrderStatus.CANCELLED:
                problem = ValidationProblem(
                    "Order.LocalId", "an open order has this LocalId already; send XO to change it or CA to cancel it"
                )
            if problem is not None:
                order = None
            else:
                rng = random.Random(f"{self.seed}:{client_guid}:{local_id}:{existing.iris_order_id if existing else 0}")
                order = SimulatedOrder(
                    client_guid=client_guid,
                    local_id=local_id,
                    iris_order_id=rng.randint(1_000_000, 9_999_999),
                    iris_patient_id=rng.randint(10_000_000, 99_999_999),
                    request=request,
                    created_time=self.clock(),
                    rng=rng,
                )
                self.orders[(client_guid, local_id)] = order

        if order is None:
            await self._reject_order(local_id, patient_local_id, [problem])  # type: ignore[list-item]
            return
        logger.info("Created order %s as IRIS order %d", local_id, order.iris_order_id)
        await self._publish_event(order, models.OrderCreationReceipt(patient_local_id=patient_local_id))
        await self._advance(order, request)

    async def _change(self, client_guid: uuid.UUID, request: models.OrderRequest) -> None:
        assert request.order is not None and request.order.local_id is not None
        local_id = request.order.local_id
        patient_local_id = request.patient.local_id if request.patient else None

        order = self.orders.get((client_guid, local_id))
        problem = self._site_problem(request.site)
        if problem is None and order is None:
            problem = ValidationProblem("Order.LocalId", "no order has this LocalId; send NW to create it")
        elif problem is None and order is not None and order.status in (OrderStatus.CANCELLED, OrderStatus.GRADED):
            problem = ValidationProblem("Order.LocalId", f"the order is {order.status.value} and cannot be changed")
        if problem is not None:
            await self._reject_order(local_id, patient_local_id, [problem])
            return

        assert order is not None
        order.request = request
        logger.info("Changed order %s (IRIS order %d)", local_id, order.iris_order_id)
        await self._publish_event(order, models.OrderCreationReceipt(patient_local_id=patient_local_id))
        await self._advance(order, request)

    async def _advance(self, order: SimulatedOrder, request: models.OrderRequest) -> None:
        """Receive the request's new images, then move the order to grading and results as far as it can go."""
        images = request.camera.images if request.camera and request.camera.images else []
        for index, image in enumerate(images):
            key = image.local_id or f"{image.azure_blob_storage.container}/{image.azure_blob_storage.file_name}"  # type: ignore[union-attr]
            if key in order.images or order.status is OrderStatus.CANCELLED:
                continue
            await self._sleep(self.delays.image)
            # Another message for this order may have received the image during the delay.
            if key in order.images or order.status is OrderStatus.CANCELLED:
                continue
            iris_image_id = order.rng.randint(10_000_000, 99_999_999)
            order.images[key] = (iris_image_id, image, self.clock())
            await self._publish_event(
                order,
                models.ImageReceipt(
                    patient_local_id=order.patient_local_id,
                    image_local_id=image.local_id,
                    iris_image_id=iris_image_id,
                ),
            )

        if order.status is OrderStatus.WAITING_FOR_IMAGES and order.images:
            await self._sleep(self.delays.ready)
            if order.status is not OrderStatus.WAITING_FOR_IMAGES:
                return
            order.status = OrderStatus.READY
            order.queued_time = self.clock()
            await self._publish_event(order, models.ReadyForGradingEvent(patient_local_id=order.patient_local_id))

        if self.auto_grade and order.status is OrderStatus.READY:
            await self._sleep(self.delays.grading)
            if order.status is not OrderStatus.READY:
                return
            counts = grading_rules.images_per_eye(image for _, image, _ in order.images.values())
            evaluation_types = _evaluation_types(order.request)
            od = grading_rules.auto_grade_eye(order.rng, evaluation_types, counts["OD"])
            os = grading_rules.auto_grade_eye(order.rng, evaluation_types, counts["OS"])
            await self._grade(order, od, os, models.ResultCode.FINAL)

    async def _cancel(self, client_guid: uuid.UUID, local_id: Optional[str], problems: list[ValidationProblem]) -> None:
        # IRIS ignores a cancellation whose Order.LocalId resolves to no live
        # order, and one that arrives after grading: it sends no event for either.
        order = self.orders.get((client_guid, local_id)) if local_id else None
        if order is None:
            logger.info("Ignored a cancellation: no live order has this Order.LocalId (%d problems)", len(problems))
            return
        if order.status is OrderStatus.GRADED:
            logger.info("Ignored a cancellation of IRIS order %d: it is graded already", order.iris_order_id)
            return
        order.status = OrderStatus.CANCELLED
        logger.info("Cancelled order %s (IRIS order %d)", local_id, order.iris_order_id)
        await self._publish_event(order, models.OrderCancelled(patient_local_id=order.patient_local_id))

    async def _resend(
        self,
        client_guid: uuid.UUID,
        local_id: Optional[str],
        problems: list[ValidationProblem],
        request: Optional[models.OrderRequest],
    ) -> None:
        order = self.orders.get((client_guid, local_id)) if local_id else None
        if problems or order is None or order.gradings is None:
            # IRIS has no event type for a failed ResendResult, so nothing is sent.
            if problems:
                reason = "invalid request"
            elif order is None:
                reason = "unknown order"
            else:
                reason = "order not graded yet"
            logger.info("Ignored ResendResult for order %s: %s", local_id, reason)
            return
        await self._send_result(order, models.ResultCode.RESEND)

    async def _reject_order(
        self, local_id: Optional[str], patient_local_id: Optional[str], problems: list[ValidationProblem]
    ) -> None:
        logger.info("Rejected OrderRequest for order %s: %d problem(s)", local_id, len(problems))
        event = models.OrderCreationReceipt(
            order_local_id=local_id,
            patient_local_id=patient_local_id,
            success=False,
            error_message="; ".join(str(problem) for problem in problems),
        )
        await self._publish_event(None, event)

    def _site_problem(self, site: Optional[models.Site]) -> Optional[ValidationProblem]:
        local_id = site.local_id if site else None
        if not local_id:
            return ValidationProblem("Site.LocalId", "is required")
        if local_id in self.sites:
            return None
        if self.auto_add_sites and site is not None and site.name and site.address is not None:
            self.sites.add(local_id)
            logger.info("Added site %s automatically", local_id)
            return None
        return ValidationProblem(
            "Site.LocalId", "is not a site of this organization; use a site IRIS set up for you, or add it first"
        )

    # Gradings

    async def _handle_grading(self, decoded: tuple[str, Any]) -> None:
        message_id, document = decoded
        try:
            await self._answer_grading(message_id, document)
        finally:
            await self._count("gradings")

    async def _answer_grading(self, message_id: str, document: Any) -> None:
        submission: Optional[models.GradingSubmission] = None
        problems: list[ValidationProblem] = []
        try:
            submission = models.parse_grading_submission(document)
        except MessageValidationError as err:
            problems = list(err.problems)

        client_guid = submission.client_guid if submission else _to_uuid_or_none(_text_at(document, "ClientGuid"))
        if client_guid is None or client_guid not in self.client_guids:
            logger.info("Ignored GradingSubmission message %s: unknown or missing ClientGuid", message_id)
            await self._count("ignored")
            return

        local_id = submission.local_id if submission else _text_at(document, "LocalId")
        logger.info("Received GradingSubmission %s for order %s", message_id, local_id)
        if submission is not None:
            problems = models.find_sending_problems(submission)
            site_problem = self._site_problem(submission.site)
            if site_problem is not None and all(problem.path != site_problem.path for problem in problems):
                problems.append(site_problem)

        order = self.orders.get((client_guid, local_id)) if local_id else None
        if not problems and order is None:
            problems.append(ValidationProblem("LocalId", "no order has this LocalId"))
        elif not problems and order is not None and order.status in (
            OrderStatus.CANCELLED,
            OrderStatus.WAITING_FOR_IMAGES,
        ):
            problems.append(ValidationProblem("LocalId", f"the order is {order.status.value} and cannot be graded"))

        if problems:
            error = "; ".join(str(problem) for problem in problems)
            await self._publish_event(order, models.GradingReceipt(order_local_id=local_id, success=False, error_message=error))
            return

        assert order is not None and submission is not None
        await self._publish_event(order, models.GradingReceipt(patient_local_id=order.patient_local_id))
        code = models.ResultCode.CORRECTION if order.status is OrderStatus.GRADED else models.ResultCode.FINAL
        await self._grade(order, submission.od, submission.os, code)

    async def _grade(
        self,
        order: SimulatedOrder,
        od: Optional[models.EyeGrading],
        os: Optional[models.EyeGrading],
        result_code: models.ResultCode,
    ) -> None:
        care_plan = grading_rules.care_plan_for(od, os)
        patient_dx_code = order.request.patient.dx_code if order.request.patient else None
        order.gradings = models.Gradings(
            graded_time=self.clock(),
            queued_time=order.queued_time,
            care_plan_name=care_plan.name,
            care_plan_description=care_plan.description,
            pathology=max(grading_rules.severity_of(od), grading_rules.severity_of(os)) > 0,
            urgent=care_plan.urgent,
            emergent=False,
            od=od,
            os=os,
            dx_codes=grading_rules.dx_codes_for(od, os, patient_dx_code),
            provider=SIMULATED_GRADER.model_copy(deep=True),
        )
        order.status = OrderStatus.GRADED
        logger.info("Graded order %s (IRIS order %d): %s", order.local_id, order.iris_order_id, care_plan.name)
        await self._publish_event(order, models.OrderGradedEvent(patient_local_id=order.patient_local_id))
        await self._send_result(order, result_code)

    # Results

    async def _send_result(self, order: SimulatedOrder, result_code: models.ResultCode) -> None:
        await self._sleep(self.delays.result)
        now = self.clock()
        result = self._build_result(order, result_code, now)
        report = render_report(result, _evaluation_types(order.request), now)
        result.results_document = models.ResultsDocument(
            type=models.DocumentType.PDF, encoding="Base64", content=base64.b64encode(report).decode("ascii")
        )
        order.results_sent += 1
        await self._publish("results", models.to_json_bytes(result), str(result.transaction_id).upper(), RESULT_SUBJECT)
        await self._count("results")
        logger.info(
            "Sent OrderResult %s for order %s (ResultCode %s, report %d bytes)",
            str(result.transaction_id).upper(), order.local_id, result_code.value, len(report),
        )

    def _build_result(self, order: SimulatedOrder, result_code: models.ResultCode, now: datetime) -> models.OrderResult:
        request = order.request
        requested = request.order or models.Order()
        patient = request.patient or models.Patient()
        received = list(order.images.values())
        counts = grading_rules.images_per_eye(image for _, image, _ in received)
        camera = request.camera

        images = [
            models.ResultImage(
                local_id=image.local_id,
                taken=image.taken,
                received=received_time,
                file_name=image.azure_blob_storage.file_name if image.azure_blob_storage else None,
                laterality=image.laterality,
                image_context=image.image_context or models.ImageContext.PRIMARY,
                parent_local_id=image.parent_local_id,
                group_id=image.group_id,
                group_ordinal=image.group_ordinal,
                camera=_result_camera(camera),
            )
            for _, image, received_time in received
        ]
        operator = None
        if request.camera_operator is not None or request.camera_operator_user_name:
            provider = request.camera_operator
            operator = models.ResultCameraOperator(
                user_name=request.camera_operator_user_name or (provider.email if provider else None),
                name=provider.name if provider else None,
            )

        return models.OrderResult(
            timestamp=now,
            transaction_id=_random_guid(order.rng),
            result_code=result_code,
            site=models.Site(local_id=request.site.local_id if request.site else None),
            image_details=models.ImageDetails(
                total_count=len(received),
                right_eye_count=counts["OD"],
                right_eye_original_count=counts["OD"],
                right_eye_enhanced_count=0,
                left_eye_count=counts["OS"],
                left_eye_original_count=counts["OS"],
                left_eye_enhanced_count=0,
                single_eye_only=bool(requested.single_eye_only),
            ),
            images=images,
            order=models.ResultOrder(
                patient_order_id=order.iris_order_id,
                serviced_time=max((time for _, _, time in received), default=None),
                status="Complete",
                evaluation_types=requested.evaluation_types,
                scheduled_time=requested.scheduled_time,
                created_time=order.created_time,
                local_id=order.local_id,
                department_id=requested.department_id,
                encounter_number=requested.encounter_number,
                study_instance_unique_id=requested.study_instance_unique_id,
                orderable_identifier=requested.orderable_identifier,
                additional_info=requested.additional_info,
                state=requested.state,
                single_eye_only=requested.single_eye_only,
                missing_eye_reason=requested.missing_eye_reason,
            ),
            patient=models.ResultPatient(
                patient_id=order.iris_patient_id,
                local_id=patient.local_id,
                name=patient.name,
                dob=patient.dob,
                gender=patient.gender,
                genders=patient.genders,
                phone=patient.phone,
            ),
            ordering_provider=request.ordering_provider,
            gradings=order.gradings,
            camera_operator=operator,
            health_plan=request.health_plan,
            cpt=DEFAULT_CPT.model_copy(),
        )

    # Publishing

    async def _publish_event(self, order: Optional[SimulatedOrder], event: models.EventBase) -> None:
        if order is not None:
            rng = order.rng
        else:
            # Seeded by the event's own type, LocalId and rank among those, so
            # its TransactionId neither depends on other orders nor repeats.
            key = (event.result_object_type, event.order_local_id)
            self._events_without_order[key] += 1
            rng = random.Random(f"{self.seed}:{key[0]}:{key[1]}:{self._events_without_order[key]}")
        event.transaction_id = _random_guid(rng)
        event.timestamp = self.clock()
        if order is not None:
            event.iris_order_id = order.iris_order_id
            event.order_local_id = order.local_id
        if event.success is None:
            event.success = True
        await self._publish("events", models.to_json_bytes(event), str(event.transaction_id).upper(), event.result_object_type)
        await self._count("events")
        logger.info(
            "Sent %s for order %s (success %s)", event.result_object_type, event.order_local_id, event.success
        )

    async def _publish(self, channel: str, body: bytes, message_id: str, subject: Optional[str]) -> None:
        producer = self._producers.get(channel)
        if producer is None:
            producer = self._producers[channel] = Producer(self.config.create_transport(channel))
        await producer.send(encode_json_message(body, message_id=message_id, subject=subject))

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._stop_event.is_set():
            return
        try:
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        except asyncio.TimeoutError:
            pass


def _decode_document(message: ReceivedMessage) -> tuple[str, Any]:
    """Return the message id and the JSON document; an undecodable body is dead-lettered by the consumer."""
    document = json.loads(decode_json_body(message.body, message.content_type))
    return message.message_id or f"(no message id, enqueued {message.enqueued_time})", document


def _client_guid_of(request: Optional[models.OrderRequest], document: Any) -> Optional[uuid.UUID]:
    if request is not None:
        return request.client_guid
    return _to_uuid_or_none(_text_at(document, "ClientGuid"))


def _patient_local_id(request: Optional[models.OrderRequest], document: Any) -> Optional[str]:
    if request is not None:
        return request.patient.local_id if request.patient else None
    return _text_at(document, "Patient", "LocalId")


def _text_at(document: Any, *path: str) -> Optional[str]:
    value = document
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, str) else None


def _evaluation_types(request: models.OrderRequest) -> list[Any]:
    return list(request.order.evaluation_types or []) if request.order else []


def _result_camera(camera: Optional[models.Camera]) -> Optional[models.ResultCamera]:
    if camera is None:
        return None
    fields = camera.model_dump(exclude={"images"}, exclude_none=True)
    return models.ResultCamera.model_validate(fields)


def _random_guid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _to_uuid(value: str | uuid.UUID) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ConfigurationError(f"ClientGuid {value!r} is not a GUID; give it as 8-4-4-4-12 hexadecimal digits") from None


def _to_uuid_or_none(value: Optional[str]) -> Optional[uuid.UUID]:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _install_stop_signals(simulator: IrisSimulator) -> Callable[[], None]:
    def on_signal(signal_name: str) -> None:
        logger.info("Received %s: stopping the IRIS simulator", signal_name)
        simulator.request_stop()

    return install_signal_handlers(asyncio.get_running_loop(), on_signal)
