"""Deployment configuration: which backend each channel uses, with what settings.

Settings come from a TOML file and from environment variables, which win.
The file is the first of: the ``path`` argument (the CLI's ``--config``),
the ``IRIS_TRANSPORT_CONFIG`` environment variable, ``iris-transport.toml``
in the current directory. Without a file and without variables every channel
uses the built-in ``local`` backend with its default settings::

    client_guid = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    default_site = "SITE-001"

    [channels.orders]
    backend = "azure"
    queue = "orders"
    connection_string = { env = "IRIS_ORDERS_CONNECTION_STRING" }

    [channels.results]
    backend = "local"
    path = "/var/lib/iris/queues.sqlite3"

Environment variables start with ``IRIS_TRANSPORT_`` and use ``__`` between
levels of the file: ``IRIS_TRANSPORT_CLIENT_GUID``,
``IRIS_TRANSPORT_CHANNELS__RESULTS__BACKEND=local``,
``IRIS_TRANSPORT_CHANNELS__ORDERS__CONNECTION_STRING__ENV=NAME``.

A setting typed ``SecretRef`` is given as ``{ env = "NAME" }`` or
``{ file = "/path" }``. An inline string is accepted with a warning. Secret
values are read only when a backend requests them, and never appear in
``repr``, logs or error messages.

Every problem is collected and reported together by
``InvalidConfigurationError``, each with its TOML path and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import PydanticCustomError, core_schema

from iris_transport import plugins
from iris_transport.exceptions import (
    BackendNotFoundError,
    BackendNotInstalledError,
    ConfigurationError,
    SecretNotFoundError,
    ValidationProblem,
)
from iris_transport.transport import Transport

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_BACKEND",
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "REDACTED",
    "STANDARD_CHANNELS",
    "ChannelCheck",
    "ChannelConfig",
    "ConfigCheck",
    "InvalidConfigurationError",
    "IrisConfig",
    "SecretRef",
    "check_config",
    "iter_secrets",
    "load_config",
    "redact_secrets",
    "validate_backend_settings",
]

logger = logging.getLogger(__name__)

CONFIG_ENV = "IRIS_TRANSPORT_CONFIG"
DEFAULT_CONFIG_FILE = "iris-transport.toml"
ENV_PREFIX = "IRIS_TRANSPORT_"
STANDARD_CHANNELS = ("orders", "gradings", "events", "results")
DEFAULT_BACKEND = "local"
REDACTED = "**********"

_DEPLOYMENT_KEYS = ("client_guid", "default_site", "channels")
_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# Secrets


class SecretRef:
    """A reference to a secret kept in an environment variable or a file, or given inline.

    The value is read on each ``get_secret_value()`` call, so a rotated file
    is picked up by the next connection. A file's trailing line break is
    dropped. ``repr`` and ``str`` show the reference, never the value.
    """

    __slots__ = ("env", "file", "_inline", "_environ")

    def __init__(
        self,
        *,
        env: str | None = None,
        file: str | Path | None = None,
        value: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if sum(option is not None for option in (env, file, value)) != 1:
            raise ValueError("give exactly one of env, file or value")
        self.env = env
        self.file = Path(file) if file is not None else None
        self._inline = value
        self._environ = environ if environ is not None else os.environ

    @property
    def source(self) -> str:
        """Where the value comes from: ``"env"``, ``"file"`` or ``"inline"``."""
        if self.env is not None:
            return "env"
        if self.file is not None:
            return "file"
        return "inline"

    def get_secret_value(self) -> str:
        """Read the secret.

        Raises ``SecretNotFoundError`` naming the variable or file, never a value.
        """
        problem = self.find_problem()
        if problem is not None:
            raise SecretNotFoundError(problem)
        if self._inline is not None:
            return self._inline
        if self.env is not None:
            return self._environ[self.env]
        assert self.file is not None
        return _strip_line_break(self.file.read_text(encoding="utf-8"))

    def find_problem(self) -> str | None:
        """Return why the secret cannot be read (naming the variable or file), or None."""
        if self._inline is not None:
            return None if self._inline else "the inline secret is empty; set a value or reference it with { env = \"NAME\" }"
        if self.env is not None:
            if self.env not in self._environ:
                return f"environment variable {self.env} is not set; set it to the secret"
            if not self._environ[self.env]:
                return f"environment variable {self.env} is empty; set it to the secret"
            return None
        if self.file is not None:
            try:
                content = self.file.read_text(encoding="utf-8")
            except FileNotFoundError:
                return f"secret file {self.file} does not exist; create it or fix the path"
            except (OSError, UnicodeDecodeError) as err:
                return f"secret file {self.file} cannot be read ({type(err).__name__}); check its permissions and encoding"
            if not _strip_line_break(content):
                return f"secret file {self.file} is empty; write the secret into it"
        return None

    def to_redacted(self) -> dict[str, str] | str:
        """Return the reference as it would be written in TOML, with an inline value redacted."""
        if self.env is not None:
            return {"env": self.env}
        if self.file is not None:
            return {"file": str(self.file)}
        return REDACTED

    def __repr__(self) -> str:
        if self.env is not None:
            return f"SecretRef(env={self.env!r})"
        if self.file is not None:
            return f"SecretRef(file={str(self.file)!r})"
        return f"SecretRef({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretRef):
            return NotImplemented
        return (self.env, self.file, self._inline) == (other.env, other.file, other._inline)

    def __hash__(self) -> int:
        return hash((self.env, self.file, self._inline))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            _validate_secret,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda secret: secret.to_redacted()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        reference = {"type": "object", "additionalProperties": False}
        return {
            "description": "A secret: { env = \"NAME\" }, { file = \"/path\" }, or an inline string",
            "anyOf": [
                {**reference, "properties": {"env": {"type": "string"}}, "required": ["env"]},
                {**reference, "properties": {"file": {"type": "string"}}, "required": ["file"]},
                {"type": "string"},
            ],
        }


def _strip_line_break(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def _validate_secret(value: Any, info: core_schema.ValidationInfo) -> SecretRef:
    environ = (info.context or {}).get("environ") if isinstance(info.context, Mapping) else None

    if isinstance(value, SecretRef):
        secret = value
    elif isinstance(value, SecretStr):
        secret = SecretRef(value=value.get_secret_value())
    elif isinstance(value, str):
        secret = SecretRef(value=value)
    elif isinstance(value, Mapping) and set(value) in ({"env"}, {"file"}):
        (kind, target), = value.items()
        if not isinstance(target, str) or not target:
            raise PydanticCustomError(
                "secret_reference", "the secret's {kind} must be a non-empty string", {"kind": kind}
            )
        if kind == "env" and not _ENV_NAME.match(target):
            # The text is left out because it is often the secret itself,
            # written where the variable's name belongs.
            raise PydanticCustomError(
                "secret_reference",
                "the secret's env is not an environment variable name (letters, digits and '_'); "
                'give the name of the variable that contains the secret, e.g. { env = "IRIS_ORDERS_CONNECTION_STRING" }',
            )
        secret = SecretRef(env=target, environ=environ) if kind == "env" else SecretRef(file=target)
    else:
        raise PydanticCustomError(
            "secret_reference",
            'expected a secret reference: { env = "NAME" } or { file = "/path" }',
        )

    problem = secret.find_problem()
    if problem is not None:
        # The message names the variable or file only, so it is safe to show.
        raise PydanticCustomError("secret_not_found", problem)
    return secret


def iter_secrets(model: BaseModel, path: str = "") -> Iterator[tuple[str, SecretRef]]:
    """Yield ``(path, secret)`` for every ``SecretRef`` in ``model``, nested models included."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        field_path = f"{path}.{name}" if path else name
        if isinstance(value, SecretRef):
            yield field_path, value
        elif isinstance(value, BaseModel):
            yield from iter_secrets(value, field_path)


def redact_secrets(text: str, *models: BaseModel | None) -> str:
    """Replace every readable secret value of ``models`` found in ``text`` with ``**********``.

    For text that did not come from this library, such as an SDK's error
    message, which might quote a connection string.
    """
    for model in models:
        if model is None:
            continue
        for _path, secret in iter_secrets(model):
            if secret.find_problem() is not None:
                continue
            value = secret.get_secret_value()
            if value:
                text = text.replace(value, REDACTED)
    return text


# Errors


class InvalidConfigurationError(ConfigurationError):
    """The configuration has one or more problems, listed in ``problems``.

    Each problem's ``path`` is a TOML path such as ``channels.results.queue_url``.
    """

    def __init__(self, problems: list[ValidationProblem], source: Path | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        count = len(self.problems)
        where = f" in {source}" if source is not None else ""
        lines = [f"invalid configuration{where} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


# Backend settings


def validate_backend_settings(
    backend: plugins.BackendInfo,
    settings: Mapping[str, Any] | BaseModel,
    path: str,
    environ: Mapping[str, str] = os.environ,
) -> BaseModel:
    """Validate ``settings`` with the backend's settings model.

    ``path`` is the TOML path of the settings' table, used in messages.
    Raises ``InvalidConfigurationError`` listing every problem.
    """
    model, problems = _validate_settings(backend, settings, path, environ)
    if problems:
        raise InvalidConfigurationError(problems)
    assert model is not None
    return model


def _validate_settings(
    backend: plugins.BackendInfo,
    settings: Mapping[str, Any] | BaseModel,
    path: str,
    environ: Mapping[str, str],
) -> tuple[BaseModel | None, list[ValidationProblem]]:
    model_class = backend.settings_model
    if isinstance(settings, model_class):
        return settings, []
    if isinstance(settings, BaseModel):
        settings = settings.model_dump(exclude_unset=True)

    raw = dict(settings)
    problems = _unknown_setting_problems(backend, raw, path)
    try:
        model = model_class.model_validate(raw, context={"environ": environ})
    except ValidationError as err:
        # The ValidationError is not chained or shown because its text quotes
        # the invalid input, which may be a secret.
        problems += [_problem_from_pydantic(error, path) for error in err.errors(include_input=False)]
        return None, problems
    return (model if not problems else None), problems


def _unknown_setting_problems(
    backend: plugins.BackendInfo, raw: dict[str, Any], path: str
) -> list[ValidationProblem]:
    model_class = backend.settings_model
    if model_class.model_config.get("extra") == "allow":
        return []

    known = _setting_names(model_class)
    problems = []
    for key in [key for key in raw if key not in known]:
        del raw[key]
        matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {matches[0]!r}?" if matches else f"valid settings: {', '.join(sorted(known)) or 'none'}"
        problems.append(
            ValidationProblem(f"{path}.{key}", f"unknown setting of backend {backend.name!r}; {hint}")
        )
    return problems


def _setting_names(model_class: type[BaseModel]) -> set[str]:
    names = set()
    for name, field in model_class.model_fields.items():
        names.add(name)
        if isinstance(field.alias, str):
            names.add(field.alias)
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias)
    return names


def _problem_from_pydantic(error: Mapping[str, Any], path: str) -> ValidationProblem:
    location = path
    for part in error["loc"]:
        location += f"[{part}]" if isinstance(part, int) else f".{part}"

    if error["type"] == "missing":
        message = "required setting is missing; add it"
    elif error["type"] == "value_error":
        # pydantic prefixes the text of a ValueError raised by a validator.
        message = error["msg"].removeprefix("Value error, ")
    else:
        message = error["msg"]
    return ValidationProblem(location, message)


# Loaded configuration


@dataclasses.dataclass(frozen=True)
class ChannelConfig:
    """One channel's backend and its validated settings.

    ``configured`` is False for a channel that the configuration does not
    mention, which uses the ``local`` backend with its defaults.
    """

    name: str
    backend: str
    settings: BaseModel
    configured: bool = True
    backend_info: plugins.BackendInfo | None = dataclasses.field(default=None, repr=False, compare=False)
    """The backend, as found when the configuration was loaded; looked up by name when None."""

    def create_transport(self) -> Transport:
        """Build this channel's transport.

        Raises ``BackendNotInstalledError`` when the backend's SDK was
        uninstalled after the configuration was loaded.
        """
        backend = self.backend_info if self.backend_info is not None else plugins.get_backend(self.backend)
        plugins.ensure_backend_installed(backend)
        return plugins.build_transport(backend, self.settings, self.name)


@dataclasses.dataclass(frozen=True)
class IrisConfig:
    """A deployment's validated configuration.

    ``channels`` contains the channels the configuration names, plus the
    four standard channels with their defaults.
    """

    client_guid: str | None
    default_site: str | None
    channels: Mapping[str, ChannelConfig]
    source: Path | None = None
    plugin_manager: Any = dataclasses.field(default=None, repr=False, compare=False)

    def channel(self, name: str) -> ChannelConfig:
        """Return the configuration of channel ``name``.

        A channel the configuration does not name uses the ``local`` backend
        with default settings.
        """
        if name in self.channels:
            return self.channels[name]
        _check_channel_name(name)
        backend = plugins.get_backend(DEFAULT_BACKEND, self.plugin_manager)
        return ChannelConfig(name, DEFAULT_BACKEND, backend.settings_model(), False, backend)

    def create_transport(self, channel_name: str) -> Transport:
        """Build the transport of channel ``channel_name``."""
        return self.channel(channel_name).create_transport()


@dataclasses.dataclass
class ChannelCheck:
    """The result of checking one channel: its backend, settings and problems."""

    name: str
    backend: str
    configured: bool
    settings: BaseModel | None = None
    backend_info: plugins.InstalledBackend | None = None
    problems: list[ValidationProblem] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ConfigCheck:
    """Everything found while reading a configuration, problems included.

    ``problems`` are those of the deployment level (the file, ``client_guid``,
    ``default_site``, the plugins); each channel keeps its own.
    """

    source: Path | None
    client_guid: str | None = None
    default_site: str | None = None
    problems: list[ValidationProblem] = dataclasses.field(default_factory=list)
    channels: dict[str, ChannelCheck] = dataclasses.field(default_factory=dict)
    environment_paths: dict[str, str] = dataclasses.field(default_factory=dict)
    """TOML paths set by an environment variable, mapped to the variable's name."""

    @property
    def all_problems(self) -> list[ValidationProblem]:
        """Deployment problems, then each channel's, in channel order."""
        found = list(self.problems)
        for channel in self.channels.values():
            found += channel.problems
        return found


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] = os.environ,
    plugin_manager: Any = None,
) -> IrisConfig:
    """Read, merge and validate the configuration.

    ``path`` is the file to read; when None, ``IRIS_TRANSPORT_CONFIG`` or
    ``./iris-transport.toml`` is used if there is one. Raises
    ``InvalidConfigurationError`` listing every problem found.
    """
    check = check_config(path, environ, plugin_manager)
    problems = check.all_problems
    if problems:
        raise InvalidConfigurationError(problems, check.source)

    _warn_about_inline_secrets(check)
    channels = {
        name: ChannelConfig(name, channel.backend, channel.settings, channel.configured, channel.backend_info)
        for name, channel in check.channels.items()
    }
    config = IrisConfig(check.client_guid, check.default_site, channels, check.source, plugin_manager)
    logger.info(
        "loaded configuration from %s: %s",
        check.source or "defaults",
        ", ".join(f"{name}={channel.backend}" for name, channel in channels.items()),
    )
    return config


def check_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] = os.environ,
    plugin_manager: Any = None,
) -> ConfigCheck:
    """Read and validate the configuration without raising on its problems.

    Returns a ``ConfigCheck`` with every problem, for tools that report them
    (``iris-transport config check``). A broken plugin installation is a
    deployment-level problem.
    """
    source, problems = _find_config_file(path, environ)
    check = ConfigCheck(source=source, problems=problems)

    data: dict[str, Any] = {}
    if source is not None and not problems:
        data = _read_toml(source, check.problems)
    _apply_environment(data, environ, check)

    _check_deployment(data, check)
    channel_tables = _channel_tables(data, check)

    try:
        backends = {backend.name: backend for backend in plugins.list_backends(plugin_manager)}
    except ConfigurationError as err:
        check.problems.append(ValidationProblem("plugins", str(err)))
        return check

    for name in _channel_order(channel_tables):
        table = channel_tables.get(name)
        check.channels[name] = _check_channel(name, table, backends, environ, check)

    _mark_environment_paths(check)
    return check


def _find_config_file(
    path: str | Path | None, environ: Mapping[str, str]
) -> tuple[Path | None, list[ValidationProblem]]:
    if path is not None:
        origin = "--config"
    elif environ.get(CONFIG_ENV):
        path, origin = environ[CONFIG_ENV], CONFIG_ENV
    else:
        default = Path(DEFAULT_CONFIG_FILE)
        return (default.resolve() if default.is_file() else None), []

    candidate = Path(path).expanduser()
    if not candidate.is_file():
        problem = ValidationProblem(
            "(file)", f"configuration file {candidate} given by {origin} does not exist; fix the path"
        )
        return candidate, [problem]
    return candidate.resolve(), []


def _read_toml(source: Path, problems: list[ValidationProblem]) -> dict[str, Any]:
    try:
        with source.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as err:
        problems.append(ValidationProblem("(file)", f"{source} is not valid TOML: {err}"))
    except OSError as err:
        problems.append(ValidationProblem("(file)", f"cannot read {source}: {err.strerror}"))
    return {}


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str], check: ConfigCheck) -> None:
    """Merge ``IRIS_TRANSPORT_*`` variables into ``data``; they win over the file."""
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        parts = variable[len(ENV_PREFIX):].lower().split("__")

        if parts[0] in ("client_guid", "default_site") and len(parts) == 1:
            data[parts[0]] = environ[variable]
        elif parts[0] == "channels" and len(parts) >= 3 and all(parts):
            _set_nested(data, parts, environ[variable])
        elif parts[0] == "channels":
            check.problems.append(
                ValidationProblem(
                    "channels",
                    f"environment variable {variable} does not name a channel setting; "
                    f"use {ENV_PREFIX}CHANNELS__<CHANNEL>__<SETTING>, "
                    f"e.g. {ENV_PREFIX}CHANNELS__RESULTS__BACKEND",
                )
            )
            continue
        else:
            # Other IRIS_TRANSPORT_* variables (IRIS_TRANSPORT_CONFIG, the plugin
            # switches, other tools' own) are not configuration values.
            continue
        check.environment_paths[".".join(parts)] = variable


def _set_nested(data: dict[str, Any], parts: list[str], value: str) -> None:
    table = data
    for part in parts[:-1]:
        if not isinstance(table.get(part), dict):
            table[part] = {}
        table = table[part]
    table[parts[-1]] = value


def _check_deployment(data: dict[str, Any], check: ConfigCheck) -> None:
    for key in data:
        if key not in _DEPLOYMENT_KEYS:
            check.problems.append(_unknown_key_problem(key, key, _DEPLOYMENT_KEYS, "top-level key"))

    client_guid = data.get("client_guid")
    if client_guid is not None:
        if isinstance(client_guid, str) and _is_guid(client_guid):
            check.client_guid = client_guid
        else:
            check.problems.append(
                ValidationProblem(
                    "client_guid",
                    "must be a GUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6; "
                    "use the ClientGuid IRIS issued to your organization",
                )
            )

    default_site = data.get("default_site")
    if default_site is not None:
        if isinstance(default_site, str) and default_site.strip():
            check.default_site = default_site
        else:
            check.problems.append(
                ValidationProblem("default_site", "must be a non-empty string: the LocalId of a Site")
            )


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _channel_tables(data: dict[str, Any], check: ConfigCheck) -> dict[str, dict[str, Any]]:
    channels = data.get("channels", {})
    if not isinstance(channels, dict):
        check.problems.append(ValidationProblem("channels", "must be a table of channels, e.g. [channels.orders]"))
        return {}

    tables = {}
    for name, table in channels.items():
        if not _CHANNEL_NAME.match(name):
            check.problems.append(
                ValidationProblem(
                    f"channels.{name}",
                    "invalid channel name; use lowercase letters, digits, '-' and '_', starting with a letter",
                )
            )
        elif not isinstance(table, dict):
            check.problems.append(
                ValidationProblem(f"channels.{name}", f"must be a table, e.g. [channels.{name}] with backend = \"local\"")
            )
        else:
            tables[name] = table
    return tables


def _channel_order(channel_tables: Mapping[str, Any]) -> list[str]:
    custom = [name for name in channel_tables if name not in STANDARD_CHANNELS]
    return [*STANDARD_CHANNELS, *custom]


def _check_channel(
    name: str,
    table: dict[str, Any] | None,
    backends: Mapping[str, plugins.InstalledBackend],
    environ: Mapping[str, str],
    check: ConfigCheck,
) -> ChannelCheck:
    path = f"channels.{name}"
    settings = dict(table or {})
    backend_name = settings.pop("backend", DEFAULT_BACKEND)
    channel = ChannelCheck(name=name, backend=str(backend_name), configured=table is not None)

    if not isinstance(backend_name, str):
        channel.problems.append(ValidationProblem(f"{path}.backend", "must be a backend name string, e.g. \"local\""))
        return channel

    backend = backends.get(backend_name)
    if backend is None:
        error = plugins.backend_missing_error(backend_name, sorted(backends))
        hint = "; install the plugin that provides it" if isinstance(error, BackendNotFoundError) else ""
        channel.problems.append(ValidationProblem(f"{path}.backend", f"{error}{hint}"))
        return channel
    channel.backend_info = backend

    missing = plugins.find_missing_module(backend.required_modules)
    if missing is not None:
        error = BackendNotInstalledError(backend.name, backend.install_command, missing)
        channel.problems.append(ValidationProblem(f"{path}.backend", str(error)))

    model, problems = _validate_settings(backend, settings, path, environ)
    channel.settings = model
    channel.problems += problems
    return channel


def _unknown_key_problem(path: str, key: str, known: Any, key_kind: str) -> ValidationProblem:
    matches = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f"did you mean {matches[0]!r}?" if matches else f"valid keys: {', '.join(known)}"
    return ValidationProblem(path, f"unknown {key_kind}; {hint}")


def _mark_environment_paths(check: ConfigCheck) -> None:
    """Name the environment variable in each problem whose path it set."""
    if not check.environment_paths:
        return

    def mark(problem: ValidationProblem) -> ValidationProblem:
        for env_path, variable in check.environment_paths.items():
            if problem.path == env_path or problem.path.startswith(env_path + "."):
                return ValidationProblem(problem.path, f"{problem.message} (set by {variable})")
        return problem

    check.problems = [mark(problem) for problem in check.problems]
    for channel in check.channels.values():
        channel.problems = [mark(problem) for problem in channel.problems]


def _warn_about_inline_secrets(check: ConfigCheck) -> None:
    for name, channel in check.channels.items():
        if channel.settings is None:
            continue
        for path, secret in iter_secrets(channel.settings, f"channels.{name}"):
            if secret.source == "inline" and path not in check.environment_paths:
                logger.warning(
                    "%s is a secret written inline in %s; reference it with "
                    '{ env = "NAME" } or { file = "/path" } instead',
                    path, check.source,
                )


def _check_channel_name(name: str) -> None:
    if not _CHANNEL_NAME.match(name):
        raise ConfigurationError(
            f"invalid channel name {name!r}; use lowercase letters, digits, '-' and '_', starting with a letter"
        )
