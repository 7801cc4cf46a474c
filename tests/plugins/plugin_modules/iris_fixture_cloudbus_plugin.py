"""A backend plugin whose SDK is not installed, like a cloud backend without its extra.

Its ``required_modules`` names a module that exists nowhere, so every
attempt to use the backend must end in ``BackendNotInstalledError`` with
``install_command``. Tests load it through ``IRIS_TRANSPORT_PLUGINS``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from iris_transport.config import SecretRef
from iris_transport.hookspecs import BackendInfo, hookimpl
from iris_transport.transport import Capabilities

INSTALL_COMMAND = 'pip install "iris-transport[cloudbus]"'
MISSING_MODULE = "iris_fixture_cloudbus_sdk"


class CloudBusSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_name: str
    connection_string: SecretRef
    lock_duration: float = 60.0


def create_cloudbus_transport(settings: CloudBusSettings, channel: str):
    import iris_fixture_cloudbus_sdk  # noqa: F401  # the missing SDK

    raise AssertionError("unreachable: the SDK module does not exist")


@hookimpl
def iris_transport_backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="cloudbus",
            description="A cloud broker whose SDK is not installed (test fixture)",
            settings_model=CloudBusSettings,
            factory=create_cloudbus_transport,
            capabilities=Capabilities(max_message_bytes=256 * 1024, native_dead_letter=True),
            install_command=INSTALL_COMMAND,
            required_modules=(MISSING_MODULE, "iris_fixture_cloudbus_sdk.messaging"),
        )
    ]
