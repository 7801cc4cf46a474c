"""Hook specifications of iris-transport plugins.

A plugin is a module named by an entry point in the group ``iris_transport``
(the built-in ``local`` backend registers the same way). It implements hooks
with ``@hookimpl`` from this module. Set ``IRIS_TRANSPORT_DISABLE_PLUGIN_AUTOLOAD=1``
to load only the core distribution's entry points (the built-in backends);
other plugins can then be named in ``IRIS_TRANSPORT_PLUGINS`` or registered by
hand (see ``iris_transport.plugins``).

Hooks are grouped by when they run:

* discovery: ``iris_transport_backends``, called when a backend is looked up.
* command line: ``iris_transport_cli_commands``, called once when the
  ``iris-transport`` command starts.

Keep the plugin module light: import an SDK inside ``BackendInfo.factory``,
not at module level, so that a missing SDK becomes a clear
``BackendNotInstalledError`` instead of an import failure at discovery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from iris_transport.transport import Capabilities, Transport

PROJECT_NAME = "iris_transport"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BackendInfo:
    """A backend as a plugin describes it.

    ``factory(settings, channel)`` builds a ``Transport`` for one channel from
    a validated instance of ``settings_model``. ``required_modules`` are
    imported before the factory is called. When one is missing, the error
    message gives ``install_command``.
    """

    name: str
    description: str
    settings_model: type[BaseModel]
    factory: Callable[[Any, str], Transport]
    capabilities: Capabilities
    install_command: str
    required_modules: Sequence[str] = ()


# discovery


@hookspec
def iris_transport_backends() -> list[BackendInfo]:
    """Return the backends this plugin provides.

    Called: each time the plugin manager builds its backend table.
    Result: every plugin's list is collected; two backends with one name are
    a ``ConfigurationError`` that names both distributions.
    """
    raise NotImplementedError


# command line


@hookspec
def iris_transport_cli_commands() -> list[click.Command]:
    """Return extra ``click`` commands to add to ``iris-transport``.

    Called: once, when the command line starts.
    Result: every plugin's list is collected; a command whose name is taken
    is skipped with a warning.
    """
    raise NotImplementedError
