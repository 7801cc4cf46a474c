"""Events IRIS posts on the ``events`` queue, one model per ``ResultObjectType``.

``Event`` is the discriminated union of all of them. An event whose
``ResultObjectType`` this library does not know parses into ``GenericEvent``,
which keeps every field, so a new event type from IRIS never breaks a consumer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Discriminator, Tag

from iris_transport.models._base import IRIS_VERSION, Guid, IrisModel, Timestamp

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventBase",
    "GenericEvent",
    "GradingReceipt",
    "ImageReceipt",
    "OrderCancelled",
    "OrderCreationReceipt",
    "OrderGradedEvent",
    "ReadyForGradingEvent",
    "ResultsDeliveryReceipt",
]


class EventBase(IrisModel):
    """The properties every event carries."""

    transaction_id: Optional[Guid] = None
    """Unique id of this message; the key for de-duplicating deliveries."""
    timestamp: Optional[Timestamp] = None
    """When IRIS posted the event."""
    iris_order_id: Optional[int] = None
    """The order's id at IRIS."""
    order_local_id: Optional[str] = None
    """The order's LocalId given by the submitting organization."""
    success: Optional[bool] = None
    error_message: Optional[str] = None
    """Details of the failure when ``success`` is false; may be absent."""
    result_object_type: Optional[str] = None
    version: str = IRIS_VERSION

    @property
    def local_id(self) -> Optional[str]:
        """The order's LocalId, as the submitting organization set it."""
        return self.order_local_id

    @property
    def succeeded(self) -> bool:
        """False only when IRIS reports that the operation failed.

        Events that do not report an outcome (``Success`` absent) count as
        succeeded.
        """
        return self.success is not False


class OrderCreationReceipt(EventBase):
    """IRIS processed a submitted OrderRequest; check ``succeeded``."""

    result_object_type: Literal["OrderCreationReceipt"] = "OrderCreationReceipt"
    patient_local_id: Optional[str] = None


class OrderCancelled(EventBase):
    """An order was cancelled."""

    result_object_type: Literal["OrderCancelled"] = "OrderCancelled"
    patient_local_id: Optional[str] = None


class ImageReceipt(EventBase):
    """IRIS processed an image submitted for an order; check ``succeeded``."""

    result_object_type: Literal["ImageReceipt"] = "ImageReceipt"
    patient_local_id: Optional[str] = None
    image_local_id: Optional[str] = None
    iris_image_id: Optional[int] = None


class ReadyForGradingEvent(EventBase):
    """The order has the images it needs and entered the grading queue."""

    result_object_type: Literal["ReadyForGradingEvent"] = "ReadyForGradingEvent"
    patient_local_id: Optional[str] = None


class GradingReceipt(EventBase):
    """IRIS received a grading for the order; check ``succeeded``."""

    result_object_type: Literal["GradingReceipt"] = "GradingReceipt"
    patient_local_id: Optional[str] = None


class OrderGradedEvent(EventBase):
    """A grading was applied and the order is graded."""

    result_object_type: Literal["OrderGradedEvent"] = "OrderGradedEvent"
    patient_local_id: Optional[str] = None


class ResultsDeliveryReceipt(EventBase):
    """Results went to a delivery endpoint other than Cloud Direct (fax to a PCP, for example)."""

    result_object_type: Literal["ResultsDeliveryReceipt"] = "ResultsDeliveryReceipt"
    time_delivered: Optional[Timestamp] = None
    delivery_type: Optional[str] = None
    endpoint: Optional[str] = None
    transmission_status: Optional[str] = None
    """Status of deliveries that complete asynchronously, such as fax."""


class GenericEvent(EventBase):
    """An event of a ``ResultObjectType`` this library does not know; every field is kept."""

    patient_local_id: Optional[str] = None


EVENT_TYPES: dict[str, type[EventBase]] = {
    model.model_fields["result_object_type"].default: model
    for model in (
        OrderCreationReceipt,
        OrderCancelled,
        ImageReceipt,
        ReadyForGradingEvent,
        GradingReceipt,
        OrderGradedEvent,
        ResultsDeliveryReceipt,
    )
}
"""Known event models by their ``ResultObjectType``."""

_GENERIC_TAG = "GenericEvent"


def _event_tag(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("ResultObjectType", value.get("result_object_type"))
    else:
        kind = getattr(value, "result_object_type", None)
    # A ResultObjectType that is not a string (a list, an object) goes to
    # GenericEvent, whose field type then reports it.
    if isinstance(value, GenericEvent) or not isinstance(kind, str) or kind not in EVENT_TYPES:
        return _GENERIC_TAG
    return kind


Event = Annotated[
    Union[
        Annotated[OrderCreationReceipt, Tag("OrderCreationReceipt")],
        Annotated[OrderCancelled, Tag("OrderCancelled")],
        Annotated[ImageReceipt, Tag("ImageReceipt")],
        Annotated[ReadyForGradingEvent, Tag("ReadyForGradingEvent")],
        Annotated[GradingReceipt, Tag("GradingReceipt")],
        Annotated[OrderGradedEvent, Tag("OrderGradedEvent")],
        Annotated[ResultsDeliveryReceipt, Tag("ResultsDeliveryReceipt")],
        Annotated[GenericEvent, Tag(_GENERIC_TAG)],
    ],
    Discriminator(_event_tag),
]
"""Any IRIS event, chosen by ``ResultObjectType``; unknown types become ``GenericEvent``."""
