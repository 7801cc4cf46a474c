"""Plugin discovery: the backend table built from the ``iris_transport`` entry points.

Every distribution that declares an entry point in the group
``iris_transport`` is imported and registered with one pluggy plugin
manager, the core's own ``local`` backend included. Two environment
variables change what is loaded:

* ``IRIS_TRANSPORT_DISABLE_PLUGIN_AUTOLOAD`` (any non-empty value) loads only
  the entry points of the ``iris-transport`` distribution itself, so the
  built-in backends stay available and third-party plugins are skipped.
* ``IRIS_TRANSPORT_PLUGINS``, a comma-separated list of module names, imports
  and registers those modules as plugins whether or not autoloading is on.

Backends are looked up by name with ``get_backend`` and turned into a
``Transport`` for one channel with ``create_transport``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy
from pydantic import BaseModel

from iris_transport import hookspecs
from iris_transport.exceptions import BackendNotFoundError, BackendNotInstalledError, ConfigurationError
from iris_transport.hookspecs import BackendInfo
from iris_transport.transport import Capabilities, Transport

__all__ = [
    "CORE_DISTRIBUTION",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "OPTIONAL_BACKENDS",
    "PLUGINS_ENV",
    "InstalledBackend",
    "IrisPluginManager",
    "backend_missing_error",
    "build_transport",
    "create_plugin_manager",
    "create_transport",
    "ensure_backend_installed",
    "find_missing_module",
    "get_backend",
    "get_plugin_manager",
    "list_backends",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "iris_transport"
DISABLE_AUTOLOAD_ENV = "IRIS_TRANSPORT_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "IRIS_TRANSPORT_PLUGINS"
CORE_DISTRIBUTION = "iris-transport"

_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

OPTIONAL_BACKENDS: Mapping[str, str] = {
    "azure": 'pip install "iris-transport[azure]"',
}
"""Install commands of the project's own backends that ship as separate distributions.

A configuration that names one of them while it is not installed gets
``BackendNotInstalledError`` with this command instead of an unknown-backend error.
"""
# TODO: add the AWS and Google Pub/Sub backends once their plugins and extras exist.


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstalledBackend(BackendInfo):
    """A backend together with the distribution that provides it.

    ``distribution`` and ``version`` are None for a plugin registered by hand
    or through ``IRIS_TRANSPORT_PLUGINS`` from a module outside any installed
    distribution.
    """

    distribution: str | None = None
    version: str | None = None
    plugin: str = ""
    """The name the plugin is registered under in the plugin manager."""

    @property
    def sdk_installed(self) -> bool:
        """Whether every module in ``required_modules`` can be imported."""
        return find_missing_module(self.required_modules) is None


class IrisPluginManager(pluggy.PluginManager):
    """A pluggy plugin manager that remembers which distribution registered each plugin."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._distributions: dict[int, tuple[str, str]] = {}

    def register_from_distribution(
        self, plugin: object, name: str, distribution: str, version: str
    ) -> None:
        """Register ``plugin`` and record the distribution it came from."""
        self.register(plugin, name=name)
        self._distributions[id(plugin)] = (distribution, version)

    def distribution_of(self, plugin: object) -> tuple[str | None, str | None]:
        """Return ``(distribution, version)`` of a registered plugin, or ``(None, None)``."""
        return self._distributions.get(id(plugin), (None, None))


def create_plugin_manager(environ: Mapping[str, str] = os.environ) -> IrisPluginManager:
    """Build a new plugin manager and load the plugins that ``environ`` selects.

    Raises ``ConfigurationError`` naming the distribution and entry point when
    a plugin cannot be imported or registered.
    """
    manager = IrisPluginManager()
    autoload = not environ.get(DISABLE_AUTOLOAD_ENV)

    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _load_entry_point(manager, entry_point, autoload=autoload)

    for module_name in environ.get(PLUGINS_ENV, "").split(","):
        if module_name.strip():
            _load_module_plugin(manager, module_name.strip())

    return manager


@functools.lru_cache(maxsize=None)
def get_plugin_manager() -> IrisPluginManager:
    """Return the process-wide plugin manager, loading the plugins on first call.

    The environment is read once, on that first call. Tests and tools that
    need another set of plugins build their own with ``create_plugin_manager``
    and pass it to the functions of this module.
    """
    return create_plugin_manager()


def _load_entry_point(
    manager: IrisPluginManager, entry_point: importlib.metadata.EntryPoint, *, autoload: bool
) -> None:
    distribution = entry_point.dist
    distribution_name = distribution.metadata["Name"] if distribution is not None else "(unknown)"
    version = distribution.version if distribution is not None else "(unknown)"
    is_core = _normalize(distribution_name) == CORE_DISTRIBUTION

    if not autoload and not is_core:
        logger.debug(
            "skipped plugin %s from %s %s because %s is set",
            entry_point.name, distribution_name, version, DISABLE_AUTOLOAD_ENV,
        )
        return

    try:
        plugin = entry_point.load()
    except Exception as err:
        # A plugin's import can raise anything. The error is re-raised with the
        # distribution named, because the traceback alone rarely names the
        # installed package that is broken.
        raise ConfigurationError(
            f"cannot load plugin {entry_point.name!r} ({entry_point.value}) from distribution "
            f"{distribution_name} {version}: {type(err).__name__}: {err}. Reinstall or uninstall "
            f"{distribution_name}, or set {DISABLE_AUTOLOAD_ENV}=1 to skip third-party plugins"
        ) from err

    if manager.is_registered(plugin):
        return
    name = entry_point.name
    if manager.get_plugin(name) is not None:
        name = f"{distribution_name}:{entry_point.name}"
    try:
        manager.register_from_distribution(plugin, name, distribution_name, version)
    except (ValueError, pluggy.PluginValidationError) as err:
        raise ConfigurationError(
            f"cannot register plugin {entry_point.name!r} from distribution {distribution_name} "
            f"{version}: {err}"
        ) from err
    logger.debug("registered plugin %s from %s %s", name, distribution_name, version)


def _load_module_plugin(manager: IrisPluginManager, module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigurationError(
            f"cannot import plugin module {module_name!r} named in {PLUGINS_ENV}: {err}. "
            f"Check the module name and that it is on the Python path"
        ) from err

    if manager.is_registered(module):
        return
    try:
        manager.register(module, name=module_name)
    except (ValueError, pluggy.PluginValidationError) as err:
        raise ConfigurationError(f"cannot register plugin module {module_name!r}: {err}") from err
    logger.debug("registered plugin module %s from %s", module_name, PLUGINS_ENV)


def list_backends(plugin_manager: pluggy.PluginManager | None = None) -> list[InstalledBackend]:
    """Return every backend the registered plugins provide, sorted by name.

    Raises ``ConfigurationError`` when a plugin returns something that is not
    a valid ``BackendInfo``, or when two plugins provide the same backend name.
    """
    manager = plugin_manager if plugin_manager is not None else get_plugin_manager()
    backends: dict[str, InstalledBackend] = {}

    # Each implementation is called on its own, not through the hook caller,
    # so that every backend can be paired with the plugin that returned it.
    for implementation in manager.hook.iris_transport_backends.get_hookimpls():
        plugin_name = manager.get_name(implementation.plugin) or repr(implementation.plugin)
        distribution, version = _distribution_of(manager, implementation.plugin)
        try:
            returned = implementation.function()
        except Exception as err:
            # Same reason as for entry points: name the plugin that failed.
            raise ConfigurationError(
                f"plugin {plugin_name!r} failed to list its backends: {type(err).__name__}: {err}. "
                f"Reinstall or uninstall it, or set {DISABLE_AUTOLOAD_ENV}=1 to skip third-party plugins"
            ) from err
        for info in returned or ():
            _check_backend_info(info, plugin_name)
            installed = _installed_backend(info, distribution, version, plugin_name)
            previous = backends.get(info.name)
            if previous is not None:
                raise ConfigurationError(
                    f"two plugins provide a backend named {info.name!r}: "
                    f"{_describe_origin(previous)} and {_describe_origin(installed)}. "
                    f"Uninstall one of them"
                )
            backends[info.name] = installed

    return [backends[name] for name in sorted(backends)]


def get_backend(name: str, plugin_manager: pluggy.PluginManager | None = None) -> InstalledBackend:
    """Return the installed backend called ``name``.

    Raises ``BackendNotFoundError`` listing the installed backends and the
    closest name when there is none, or ``BackendNotInstalledError`` with the
    install command when ``name`` is one of ``OPTIONAL_BACKENDS``.
    """
    backends = {backend.name: backend for backend in list_backends(plugin_manager)}
    if name in backends:
        return backends[name]

    raise backend_missing_error(name, sorted(backends))


def backend_missing_error(name: str, installed: list[str]) -> BackendNotFoundError | BackendNotInstalledError:
    """Return the error for a backend name that no registered plugin provides.

    It is ``BackendNotInstalledError`` with the install command for one of
    ``OPTIONAL_BACKENDS``, else ``BackendNotFoundError`` with the closest installed name.
    """
    if name in OPTIONAL_BACKENDS:
        return BackendNotInstalledError(name, OPTIONAL_BACKENDS[name])
    matches = difflib.get_close_matches(name, installed, n=1, cutoff=0.6)
    return BackendNotFoundError(name, installed, matches[0] if matches else None)


def find_missing_module(modules: Iterable[str]) -> str | None:
    """Return the first of ``modules`` that cannot be imported, or None when all can.

    Modules are located, not imported, so checking is cheap and runs no SDK code.
    """
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):
            # find_spec("a.b") raises when the parent package "a" is missing.
            return module
    return None


def ensure_backend_installed(backend: BackendInfo) -> None:
    """Raise ``BackendNotInstalledError`` with the install command when an SDK module is missing."""
    missing = find_missing_module(backend.required_modules)
    if missing is not None:
        raise BackendNotInstalledError(backend.name, backend.install_command, missing)


def create_transport(
    backend_name: str,
    settings: Mapping[str, Any] | BaseModel,
    channel: str,
    plugin_manager: pluggy.PluginManager | None = None,
) -> Transport:
    """Build a transport of backend ``backend_name`` for ``channel``.

    ``settings`` is validated with the backend's settings model. Raises
    ``BackendNotFoundError``, ``BackendNotInstalledError`` with the ``pip
    install`` command, or ``InvalidConfigurationError`` naming each invalid
    setting.
    """
    # Imported here because iris_transport.config imports this module.
    from iris_transport.config import validate_backend_settings

    backend = get_backend(backend_name, plugin_manager)
    ensure_backend_installed(backend)
    validated = validate_backend_settings(backend, settings, path=f"channels.{channel}")
    return build_transport(backend, validated, channel)


def build_transport(backend: BackendInfo, settings: BaseModel, channel: str) -> Transport:
    """Call the backend's factory with settings that are already validated."""
    transport = backend.factory(settings, channel)
    if not isinstance(transport, Transport):
        raise ConfigurationError(
            f"backend {backend.name!r} returned a {type(transport).__name__} for channel "
            f"{channel!r} instead of a Transport; report this to the backend's authors"
        )
    logger.info("created %s transport for channel %s", backend.name, channel)
    return transport


def _distribution_of(manager: pluggy.PluginManager, plugin: object) -> tuple[str | None, str | None]:
    if isinstance(manager, IrisPluginManager):
        return manager.distribution_of(plugin)
    return (None, None)


def _check_backend_info(info: object, plugin_name: str) -> None:
    problem = None
    if not isinstance(info, BackendInfo):
        problem = f"returned a {type(info).__name__} instead of a BackendInfo"
    elif not isinstance(info.name, str) or not _BACKEND_NAME.match(info.name):
        problem = (
            f"declares the backend name {info.name!r}, which is not lowercase letters, "
            f"digits, '-' and '_' starting with a letter"
        )
    elif not (isinstance(info.settings_model, type) and issubclass(info.settings_model, BaseModel)):
        problem = f"declares backend {info.name!r} with a settings_model that is not a pydantic model"
    elif not isinstance(info.capabilities, Capabilities):
        problem = f"declares backend {info.name!r} with capabilities that are not a Capabilities"
    elif not callable(info.factory):
        problem = f"declares backend {info.name!r} with a factory that is not callable"

    if problem is not None:
        raise ConfigurationError(f"plugin {plugin_name!r} {problem}; report this to the plugin's authors")


def _installed_backend(
    info: BackendInfo, distribution: str | None, version: str | None, plugin_name: str
) -> InstalledBackend:
    fields = {field.name: getattr(info, field.name) for field in dataclasses.fields(BackendInfo)}
    return InstalledBackend(**fields, distribution=distribution, version=version, plugin=plugin_name)


def _describe_origin(backend: InstalledBackend) -> str:
    if backend.distribution is None:
        return f"plugin {backend.plugin!r}"
    return f"{backend.distribution} {backend.version} (plugin {backend.plugin!r})"


def _normalize(distribution_name: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution_name).lower()
