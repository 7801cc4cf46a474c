"""Every exception that iris-transport raises.

IrisTransportError
├── ConfigurationError                  invalid or missing configuration
│   ├── BackendNotFoundError            no installed backend has that name
│   ├── BackendNotInstalledError        the backend's SDK is not installed
│   └── SecretNotFoundError             a secret reference points at nothing
├── MessageValidationError (ValueError) an IRIS message fails its model
├── DecodeError                         a body cannot be decoded as IRIS JSON
├── UnsupportedOperationError (NotImplementedError)
│                                       the backend cannot do that operation
└── TransportError                      a broker operation failed
    ├── TransportConnectionError        cannot reach the broker (transient)
    ├── OperationTimeoutError           the broker did not respond in time (transient)
    ├── ThrottledError                  the broker asked the client to slow down (transient)
    ├── ServiceUnavailableError         the broker reported a temporary fault (transient)
    ├── AuthenticationError             credentials rejected or not allowed (permanent)
    ├── EntityNotFoundError             queue, topic or subscription missing (permanent)
    ├── MessageTooLargeError            body over the backend's size limit (permanent)
    └── LockLostError                   the message's lock, lease or ack deadline expired

Backends translate SDK errors into these classes once, at the backend boundary,
and chain the original with ``raise ... from err``. ``TransportError.transient``
tells a caller whether retrying the same operation can succeed.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationError",
    "BackendNotFoundError",
    "BackendNotInstalledError",
    "ConfigurationError",
    "DecodeError",
    "EntityNotFoundError",
    "IrisTransportError",
    "LockLostError",
    "MessageTooLargeError",
    "MessageValidationError",
    "OperationTimeoutError",
    "SecretNotFoundError",
    "ServiceUnavailableError",
    "ThrottledError",
    "TransportConnectionError",
    "TransportError",
    "UnsupportedOperationError",
    "ValidationProblem",
]


class IrisTransportError(Exception):
    """Base class of every error this library raises."""


class ConfigurationError(IrisTransportError):
    """The configuration is invalid, or names something that is not there."""


class BackendNotFoundError(ConfigurationError):
    """No installed backend has the requested name."""

    def __init__(self, name: str, installed: Sequence[str], suggestion: str | None = None) -> None:
        self.name = name
        self.installed = tuple(installed)
        self.suggestion = suggestion
        message = f"unknown backend {name!r}; installed backends: {', '.join(self.installed) or 'none'}"
        if suggestion:
            message += f". Did you mean {suggestion!r}?"
        super().__init__(message)


class BackendNotInstalledError(ConfigurationError):
    """A backend is known but the SDK it needs is not installed."""

    def __init__(self, name: str, install_command: str, missing: str | None = None) -> None:
        self.name = name
        self.install_command = install_command
        self.missing = missing
        detail = f" (missing module {missing!r})" if missing else ""
        super().__init__(f"backend {name!r} is not installed{detail}; install it with: {install_command}")


class SecretNotFoundError(ConfigurationError):
    """A secret reference names an unset environment variable or a missing file."""


class ValidationProblem:
    """One problem found in a message: where it is and what was expected.

    ``path`` uses IRIS's wire names joined by dots (``Patient.Dob``,
    ``Camera.Images[0].Laterality``). ``message`` never contains the value.
    """

    __slots__ = ("path", "message")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path or '(message)'}: {self.message}"

    def __repr__(self) -> str:
        return f"ValidationProblem(path={self.path!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidationProblem):
            return NotImplemented
        return (self.path, self.message) == (other.path, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.message))


class MessageValidationError(IrisTransportError, ValueError):
    """An IRIS message does not satisfy its model.

    ``problems`` lists every problem found, each with its field path. The text
    names paths and expectations only, never a field's value, because IRIS
    messages carry patient data.
    """

    def __init__(self, model: str, problems: Sequence[ValidationProblem]) -> None:
        self.model = model
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = [f"{model} is invalid ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class DecodeError(IrisTransportError):
    """A message body cannot be decoded into IRIS JSON.

    ``line`` and ``column`` are 1-based and set for JSON syntax errors.
    """

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        self.line = line
        self.column = column
        super().__init__(message)


class UnsupportedOperationError(IrisTransportError, NotImplementedError):
    """The backend cannot perform this operation."""

    def __init__(self, backend: str, operation: str, hint: str | None = None) -> None:
        self.backend = backend
        self.operation = operation
        message = f"backend {backend!r} does not support {operation}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class TransportError(IrisTransportError):
    """A broker operation failed.

    ``transient`` is True when the same operation may succeed if retried
    later. ``backend`` names the backend that raised it, when known.
    """

    transient: bool = False

    def __init__(self, message: str, *, backend: str | None = None, transient: bool | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        if transient is not None:
            self.transient = transient


class TransportConnectionError(TransportError):
    """The broker cannot be reached, or the connection dropped."""

    transient = True


class OperationTimeoutError(TransportError):
    """The broker did not respond within the operation's deadline."""

    transient = True


class ThrottledError(TransportError):
    """The broker rejected the request because of a quota or rate limit."""

    transient = True


class ServiceUnavailableError(TransportError):
    """The broker reported a temporary fault on its side."""

    transient = True


class AuthenticationError(TransportError):
    """The broker rejected the credentials, or they do not grant this operation."""


class EntityNotFoundError(TransportError):
    """The queue, topic or subscription does not exist."""


class MessageTooLargeError(TransportError):
    """A message, or a batch, is larger than the backend accepts."""

    def __init__(self, size: int, limit: int, *, backend: str | None = None, what: str = "message") -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} of {size} bytes is over the backend's limit of {limit} bytes", backend=backend
        )


class LockLostError(TransportError):
    """The message's lock, lease or ack deadline expired, so it cannot be settled.

    The broker will deliver the message again; the caller must not assume it
    was completed.
    """
