"""Translation of Azure SDK errors into the ``iris_transport.exceptions`` tree.

Every SDK call of the transport goes through ``translate_errors``, the one
place where an ``azure.servicebus`` or ``azure.core`` exception becomes an
iris-transport one, chained with ``from``:

==================================================  ===========================  =========
SDK exception                                       iris-transport exception     transient
==================================================  ===========================  =========
ServiceBusConnectionError, ServiceBusCommunicationError  TransportConnectionError  yes
OperationTimeoutError                               OperationTimeoutError        yes
ServiceBusServerBusyError, ServiceBusQuotaExceededError  ThrottledError          yes
MessagingEntityDisabledError                        ServiceUnavailableError      yes
SessionCannotBeLockedError                          TransportError               yes
ServiceBusAuthenticationError, ServiceBusAuthorizationError,
ClientAuthenticationError (azure-identity)          AuthenticationError          no
MessagingEntityNotFoundError                        EntityNotFoundError          no
MessageSizeExceededError                            MessageTooLargeError         no
MessageLockLostError, SessionLockLostError          LockLostError                no
MessageAlreadySettled, MessageNotFoundError         TransportError               no
any other ServiceBusError                           TransportError               yes
==================================================  ===========================  =========

SDK messages may quote the endpoint but never the body; the secrets of the
channel's settings are redacted from them all the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import exceptions as sdk

from iris_transport.config import redact_secrets
from iris_transport.exceptions import (
    AuthenticationError,
    EntityNotFoundError,
    LockLostError,
    OperationTimeoutError,
    ServiceUnavailableError,
    ThrottledError,
    TransportConnectionError,
    TransportError,
)

from iris_transport_azure.settings import AzureServiceBusSettings

__all__ = ["BACKEND", "translate_errors"]

BACKEND = "azure"

_TRANSLATIONS: tuple[tuple[tuple[type[BaseException], ...], type[TransportError]], ...] = (
    ((sdk.MessageLockLostError, sdk.SessionLockLostError), LockLostError),
    ((sdk.ServiceBusAuthenticationError, sdk.ServiceBusAuthorizationError, ClientAuthenticationError), AuthenticationError),
    ((sdk.MessagingEntityNotFoundError,), EntityNotFoundError),
    ((sdk.OperationTimeoutError,), OperationTimeoutError),
    ((sdk.ServiceBusServerBusyError, sdk.ServiceBusQuotaExceededError), ThrottledError),
    ((sdk.MessagingEntityDisabledError,), ServiceUnavailableError),
    ((sdk.ServiceBusConnectionError, sdk.ServiceBusCommunicationError), TransportConnectionError),
)


@contextlib.contextmanager
def translate_errors(operation: str, entity: str, settings: AzureServiceBusSettings) -> Iterator[None]:
    """Re-raise SDK errors raised inside the block as iris-transport errors.

    ``operation`` and ``entity`` name what failed, for the message.
    ``MessageSizeExceededError`` is left to the caller, which has the sizes.
    """
    try:
        yield
    except (sdk.MessageAlreadySettled, sdk.MessageNotFoundError) as err:
        raise TransportError(_describe(operation, entity, err, settings), backend=BACKEND, transient=False) from err
    except sdk.SessionCannotBeLockedError as err:
        raise TransportError(_describe(operation, entity, err, settings), backend=BACKEND, transient=True) from err
    except (sdk.ServiceBusError, ClientAuthenticationError) as err:
        if isinstance(err, sdk.MessageSizeExceededError):
            raise
        for sdk_classes, translated in _TRANSLATIONS:
            if isinstance(err, sdk_classes):
                raise translated(_describe(operation, entity, err, settings), backend=BACKEND) from err
        raise TransportError(_describe(operation, entity, err, settings), backend=BACKEND, transient=True) from err


def _describe(operation: str, entity: str, err: BaseException, settings: AzureServiceBusSettings) -> str:
    detail = redact_secrets(str(err), settings).strip() or "no detail"
    return f"Service Bus {operation} on {entity!r} failed: {type(err).__name__}: {detail}"
