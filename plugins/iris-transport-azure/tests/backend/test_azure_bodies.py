"""Every AMQP body shape a raw sender can produce, sent with Proton and decoded through the transport."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Callable, Iterator

import pytest
from proton import Message
from proton.utils import BlockingConnection

from iris_transport import codec, models
from iris_transport_azure.emulator import ServiceBusEmulator
from iris_transport_azure.settings import AzureServiceBusSettings
from iris_transport_azure.transport import AzureServiceBusTransport

pytestmark = [pytest.mark.peer("servicebus-emulator"), pytest.mark.timeout(120)]

RECEIPT = {
    "TransactionId": "CCB9F08D-29AA-446F-96F0-3018B20803E8",
    "Timestamp": "2022-01-02T17:42:18.6936779+00:00",
    "IrisOrderId": 1224035,
    "OrderLocalId": "a52b6bed-5b77-4e42-ad7c-203bc6d2ea16",
    "PatientLocalId": "35165564",
    "Success": True,
    "ErrorMessage": None,
    "ResultObjectType": "OrderCreationReceipt",
    "Version": "2.3.1",
}
RECEIPT_JSON = json.dumps(RECEIPT, ensure_ascii=False)

SERIALIZATION_NAMESPACE = b"http://schemas.microsoft.com/2003/10/Serialization/"


def data_contract_string(text: str) -> bytes:
    """Encode ``text`` as .NET Binary XML, the way BrokeredMessage(string) serialised its body."""
    payload = text.encode("utf-8")
    element = b"string"
    # 0x40: element with a short name; 0x08: default namespace; 0x9D: UTF-8 text
    # with a 32-bit length that also ends the element.
    return (
        bytes([0x40, len(element)]) + element
        + bytes([0x08, len(SERIALIZATION_NAMESPACE)]) + SERIALIZATION_NAMESPACE
        + b"\x9d" + struct.pack("<i", len(payload)) + payload
    )


def data_section(payload: bytes) -> bytes:
    """Encode one AMQP data section: the descriptor 0x75 and a vbin32."""
    return b"\x00\x53\x75\xb0" + struct.pack(">I", len(payload)) + payload


@pytest.fixture
def proton_connection(servicebus_emulator: ServiceBusEmulator) -> Iterator[BlockingConnection]:
    connection = BlockingConnection(f"127.0.0.1:{servicebus_emulator.port}", timeout=10, allowed_mechs="ANONYMOUS")
    yield connection
    connection.close()


@pytest.fixture
def send_raw(proton_connection: BlockingConnection, queue_name: str) -> Callable[[Message], None]:
    sender = proton_connection.create_sender(queue_name)

    def send(message: Message) -> None:
        sender.send(message, timeout=10)

    return send


async def receive_one(settings: AzureServiceBusSettings):
    async with AzureServiceBusTransport(settings, "events") as transport:
        for _ in range(10):
            received = await transport.receive(1, 2.0)
            if received:
                await transport.complete(received[0])
                return received[0]
    pytest.fail("the message sent with Proton did not arrive within 20 s")


EXPECTED_KIND, EXPECTED_MODEL = models.parse_message(RECEIPT_JSON.encode("utf-8"))

SHAPES = {
    "one Data section": lambda: Message(body=RECEIPT_JSON.encode("utf-8"), inferred=True),
    "one Data section with a UTF-8 BOM": lambda: Message(body=b"\xef\xbb\xbf" + RECEIPT_JSON.encode("utf-8"), inferred=True),
    "AmqpValue string": lambda: Message(body=RECEIPT_JSON),
    "AmqpValue binary": lambda: Message(body=RECEIPT_JSON.encode("utf-8"), inferred=False),
    "AmqpValue map": lambda: Message(body=dict(RECEIPT)),
    "DataContract binary string in a Data section": lambda: Message(
        body=data_contract_string(RECEIPT_JSON), inferred=True
    ),
    "AmqpValue string with the document wrapped in a JSON string": lambda: Message(body=json.dumps(RECEIPT_JSON)),
    "AmqpSequence of one map": lambda: Message(body=[dict(RECEIPT)], inferred=True),
    "AmqpSequence of one JSON string": lambda: Message(body=[RECEIPT_JSON], inferred=True),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_body_shape_decodes_to_model(shape, send_raw, make_settings) -> None:
    send_raw(SHAPES[shape]())

    received = await receive_one(make_settings())

    assert isinstance(received.body, bytes)
    kind, model = codec.decode_model(received)
    assert kind == EXPECTED_KIND
    assert model == EXPECTED_MODEL


async def test_amqp_sequence_of_several_items_becomes_json_array(send_raw, make_settings) -> None:
    send_raw(Message(body=[dict(RECEIPT), "second item", 7], inferred=True))

    received = await receive_one(make_settings())

    items = json.loads(received.body)
    assert items == [RECEIPT, "second item", 7]


async def test_several_data_sections_concatenate(
    proton_connection: BlockingConnection, queue_name: str, make_settings
) -> None:
    # Proton's Message encodes one body section, so the sections are appended
    # to an encoded message that has properties only, and streamed by hand.
    document = RECEIPT_JSON.encode("utf-8")
    header = Message(id="several-sections", properties={"kind": "sections"}).encode()
    raw = header + data_section(document[:40]) + data_section(document[40:100]) + data_section(document[100:])
    sender = proton_connection.create_sender(queue_name)
    delivery = sender.link.delivery(str(uuid.uuid4()))
    sender.link.stream(raw)
    sender.link.advance()
    proton_connection.wait(lambda: delivery.settled, msg="waiting for the emulator to accept the message", timeout=10)
    assert delivery.remote_state == delivery.ACCEPTED

    received = await receive_one(make_settings())

    assert received.message_id == "several-sections"
    assert received.body == document
    kind, model = codec.decode_model(received)
    assert kind == EXPECTED_KIND
    assert model == EXPECTED_MODEL


async def test_raw_properties_become_str(send_raw, make_settings) -> None:
    message = Message(
        body=RECEIPT_JSON.encode("utf-8"),
        inferred=True,
        id="props-1",
        correlation_id="order-7",
        subject="OrderCreationReceipt",
        content_type="application/json",
        properties={"ResultObjectType": "OrderCreationReceipt", "Attempt": 3, "Urgent": False, "Note": None},
    )
    send_raw(message)

    received = await receive_one(make_settings())

    assert received.message_id == "props-1"
    assert received.correlation_id == "order-7"
    assert received.subject == "OrderCreationReceipt"
    assert received.content_type == "application/json"
    assert received.application_properties == {
        "ResultObjectType": "OrderCreationReceipt",
        "Attempt": 3,
        "Urgent": False,
        "Note": None,
    }
    assert all(type(key) is str for key in received.application_properties)


async def test_uuid_message_id_becomes_str(send_raw, make_settings) -> None:
    message_id = uuid.uuid4()
    send_raw(Message(body=b"{}", inferred=True, id=message_id))

    received = await receive_one(make_settings())

    assert received.message_id == str(message_id)
