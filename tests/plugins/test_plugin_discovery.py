"""Plugin discovery, backend lookup and transport creation, with real plugins.

Third-party plugins are real distributions: a ``.dist-info`` directory with
an ``entry_points.txt`` put on ``sys.path``, which ``importlib.metadata``
finds exactly as it finds an installed package.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from iris_transport import plugins
from iris_transport.config import InvalidConfigurationError
from iris_transport.exceptions import BackendNotFoundError, BackendNotInstalledError, ConfigurationError
from iris_transport.hookspecs import BackendInfo, hookimpl
from iris_transport.transport import Capabilities, OutgoingMessage, Transport

TESTS = Path(__file__).resolve().parents[1]
PLUGIN_MODULES = TESTS / "plugins" / "plugin_modules"
THIRD_PARTY_SOURCE = TESTS / "fixtures" / "third_party_plugin"


@pytest.fixture(autouse=True)
def plugin_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_MODULES))
    monkeypatch.syspath_prepend(str(THIRD_PARTY_SOURCE))


def install_distribution(site: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    """Write the metadata of an installed distribution into ``site``, then put ``site`` on sys.path."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[iris_transport]"] + [f"{key} = {value}" for key, value in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(site))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site-packages"
    # monkeypatch restores sys.path after the test, removing ``path`` again.
    monkeypatch.setattr(sys, "path", list(sys.path))
    return path


@pytest.fixture
def memory_manager(site: Path) -> plugins.IrisPluginManager:
    install_distribution(site, "iris-transport-memory-example", "1.2.3", {"memory": "iris_transport_memory.plugin"})
    return plugins.create_plugin_manager(environ={})


# discovery


def test_local_backend_comes_from_entry_point() -> None:
    manager = plugins.create_plugin_manager(environ={})

    local = plugins.get_backend("local", manager)

    assert local.distribution == "iris-transport"
    assert local.version == importlib.metadata.version("iris-transport")
    assert local.plugin == "local"
    assert manager.get_plugin("local") is sys.modules["iris_transport.backends.local_plugin"]
    assert local.sdk_installed


def test_third_party_distribution_is_listed(memory_manager: plugins.IrisPluginManager) -> None:
    backends = {backend.name: backend for backend in plugins.list_backends(memory_manager)}

    assert {"local", "memory"} <= set(backends)
    assert backends["memory"].distribution == "iris-transport-memory-example"
    assert backends["memory"].version == "1.2.3"
    assert backends["memory"].capabilities.max_message_bytes == 256 * 1024


def test_autoload_switch_keeps_only_core(site: Path) -> None:
    install_distribution(site, "iris-transport-memory-example", "1.2.3", {"memory": "iris_transport_memory.plugin"})

    manager = plugins.create_plugin_manager(environ={plugins.DISABLE_AUTOLOAD_ENV: "1"})

    assert [backend.name for backend in plugins.list_backends(manager)] == ["local"]


def test_plugins_variable_registers_module() -> None:
    environ = {
        plugins.DISABLE_AUTOLOAD_ENV: "1",
        plugins.PLUGINS_ENV: "iris_fixture_cloudbus_plugin, iris_transport_memory.plugin",
    }

    manager = plugins.create_plugin_manager(environ=environ)

    backends = {backend.name: backend for backend in plugins.list_backends(manager)}
    assert sorted(backends) == ["cloudbus", "local", "memory"]
    assert backends["cloudbus"].distribution is None
    assert backends["cloudbus"].version is None


def test_plugins_variable_unknown_module() -> None:
    with pytest.raises(ConfigurationError) as caught:
        plugins.create_plugin_manager(environ={plugins.PLUGINS_ENV: "iris_fixture_no_such_module"})

    assert "iris_fixture_no_such_module" in str(caught.value)
    assert plugins.PLUGINS_ENV in str(caught.value)


def test_broken_plugin_names_distribution(site: Path) -> None:
    install_distribution(site, "iris-transport-broken", "0.0.1", {"broken": "iris_fixture_broken_plugin"})

    with pytest.raises(ConfigurationError) as caught:
        plugins.create_plugin_manager(environ={})

    message = str(caught.value)
    assert "iris-transport-broken 0.0.1" in message
    assert "RuntimeError: this plugin is broken on purpose" in message
    assert plugins.DISABLE_AUTOLOAD_ENV in message


def test_broken_plugin_skipped_without_autoload(site: Path) -> None:
    install_distribution(site, "iris-transport-broken", "0.0.1", {"broken": "iris_fixture_broken_plugin"})

    manager = plugins.create_plugin_manager(environ={plugins.DISABLE_AUTOLOAD_ENV: "1"})

    assert [backend.name for backend in plugins.list_backends(manager)] == ["local"]


def test_process_manager_is_cached() -> None:
    assert plugins.get_plugin_manager() is plugins.get_plugin_manager()


# invalid plugins


class _Plugin:
    """A plugin registered by hand that returns the given backends."""

    def __init__(self, *backends: object) -> None:
        self.backends = list(backends)

    @hookimpl
    def iris_transport_backends(self) -> list[object]:
        return self.backends


def _backend_info(name: str) -> BackendInfo:
    from iris_transport_memory.plugin import MemorySettings, create_memory_transport

    return BackendInfo(
        name=name,
        description="test",
        settings_model=MemorySettings,
        factory=create_memory_transport,
        capabilities=Capabilities(max_message_bytes=1024),
        install_command="pip install nothing",
    )


def test_duplicate_backend_names_both_origins(memory_manager: plugins.IrisPluginManager) -> None:
    memory_manager.register(_Plugin(_backend_info("memory")), name="second-memory")

    with pytest.raises(ConfigurationError) as caught:
        plugins.list_backends(memory_manager)

    message = str(caught.value)
    assert "'memory'" in message
    assert "iris-transport-memory-example 1.2.3" in message
    assert "second-memory" in message


def _badly_named_backend() -> BackendInfo:
    from iris_transport_memory.plugin import MemorySettings, create_memory_transport

    return BackendInfo(
        name="Bad Name",
        description="test",
        settings_model=MemorySettings,
        factory=create_memory_transport,
        capabilities=Capabilities(max_message_bytes=1),
        install_command="",
    )


def _backend_without_model() -> BackendInfo:
    info = _badly_named_backend()
    return dataclasses.replace(info, name="nomodel", settings_model=dict)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make_returned", "expected"),
    [
        (lambda: "not a backend", "returned a str instead of a BackendInfo"),
        (_badly_named_backend, "declares the backend name 'Bad Name'"),
        (_backend_without_model, "settings_model that is not a pydantic model"),
    ],
)
def test_invalid_backend_info_rejected(make_returned: Callable[[], object], expected: str) -> None:
    manager = plugins.create_plugin_manager(environ={})
    manager.register(_Plugin(make_returned()), name="bad-plugin")

    with pytest.raises(ConfigurationError) as caught:
        plugins.list_backends(manager)

    assert "plugin 'bad-plugin'" in str(caught.value)
    assert expected in str(caught.value)


class _RaisingPlugin:
    @hookimpl
    def iris_transport_backends(self) -> list[BackendInfo]:
        raise ImportError("No module named 'some_sdk'")


def test_failing_hook_names_plugin() -> None:
    manager = plugins.create_plugin_manager(environ={})
    manager.register(_RaisingPlugin(), name="raising-plugin")

    with pytest.raises(ConfigurationError) as caught:
        plugins.list_backends(manager)

    assert "plugin 'raising-plugin' failed to list its backends" in str(caught.value)
    assert "ImportError: No module named 'some_sdk'" in str(caught.value)


# lookup


def test_unknown_backend_suggests_closest(memory_manager: plugins.IrisPluginManager) -> None:
    with pytest.raises(BackendNotFoundError) as caught:
        plugins.get_backend("memroy", memory_manager)

    assert {"local", "memory"} <= set(caught.value.installed)
    assert caught.value.suggestion == "memory"
    assert "installed backends: " in str(caught.value)
    assert "Did you mean 'memory'?" in str(caught.value)


def test_unknown_backend_without_close_match(memory_manager: plugins.IrisPluginManager) -> None:
    with pytest.raises(BackendNotFoundError) as caught:
        plugins.get_backend("pubsub", memory_manager)

    assert caught.value.suggestion is None
    assert "Did you mean" not in str(caught.value)


def test_optional_backend_gives_pip_command() -> None:
    # Autoloading is off, so the Azure plugin is absent even where it is installed.
    manager = plugins.create_plugin_manager(environ={plugins.DISABLE_AUTOLOAD_ENV: "1"})

    with pytest.raises(BackendNotInstalledError) as caught:
        plugins.get_backend("azure", manager)

    assert str(caught.value) == (
        "backend 'azure' is not installed; install it with: pip install \"iris-transport[azure]\""
    )


# transport creation


@pytest.fixture
def cloudbus_manager() -> plugins.IrisPluginManager:
    return plugins.create_plugin_manager(environ={plugins.PLUGINS_ENV: "iris_fixture_cloudbus_plugin"})


def test_missing_sdk_gives_pip_command(cloudbus_manager: plugins.IrisPluginManager) -> None:
    settings = {"queue_name": "orders", "connection_string": "Endpoint=sb://example/;SharedAccessKey=k"}

    with pytest.raises(BackendNotInstalledError) as caught:
        plugins.create_transport("cloudbus", settings, "orders", cloudbus_manager)

    assert caught.value.install_command == 'pip install "iris-transport[cloudbus]"'
    assert caught.value.missing == "iris_fixture_cloudbus_sdk"
    assert 'install it with: pip install "iris-transport[cloudbus]"' in str(caught.value)
    assert "SharedAccessKey" not in str(caught.value)


def test_missing_module_with_missing_parent() -> None:
    assert plugins.find_missing_module(["json", "iris_fixture_absent_parent.child"]) == "iris_fixture_absent_parent.child"
    assert plugins.find_missing_module(["json", "importlib.metadata"]) is None


def test_cloudbus_backend_listed_sdk_missing(cloudbus_manager: plugins.IrisPluginManager) -> None:
    assert not plugins.get_backend("cloudbus", cloudbus_manager).sdk_installed


def test_invalid_settings_name_each_path(memory_manager: plugins.IrisPluginManager) -> None:
    settings = {"lok_duration": 5, "max_delivery_count": 0, "broker": "b"}

    with pytest.raises(InvalidConfigurationError) as caught:
        plugins.create_transport("memory", settings, "results", memory_manager)

    problems = {problem.path: problem.message for problem in caught.value.problems}
    assert sorted(problems) == ["channels.results.lok_duration", "channels.results.max_delivery_count"]
    assert "did you mean 'lock_duration'?" in problems["channels.results.lok_duration"]
    assert "greater than or equal to 1" in problems["channels.results.max_delivery_count"]


async def test_created_transport_moves_messages(memory_manager: plugins.IrisPluginManager, tmp_path: Path) -> None:
    transport = plugins.create_transport("memory", {"broker": str(tmp_path)}, "results", memory_manager)
    assert isinstance(transport, Transport)

    async with transport:
        await transport.send(OutgoingMessage(body=b'{"a": 1}', message_id="m-1"))
        received = await transport.receive(max_messages=1, max_wait=5.0)
        assert [message.message_id for message in received] == ["m-1"]
        await transport.complete(received[0])
        assert await transport.receive(max_messages=1, max_wait=0) == []


def test_create_transport_accepts_model(memory_manager: plugins.IrisPluginManager) -> None:
    from iris_transport_memory.plugin import MemorySettings

    settings = MemorySettings(queue="custom-queue")

    transport = plugins.create_transport("memory", settings, "results", memory_manager)

    assert transport.settings is settings  # type: ignore[attr-defined]
    assert transport.queue == "custom-queue"  # type: ignore[attr-defined]


def test_factory_must_return_transport(memory_manager: plugins.IrisPluginManager) -> None:
    from iris_transport_memory.plugin import MemorySettings

    info = BackendInfo(
        name="wrong",
        description="test",
        settings_model=MemorySettings,
        factory=lambda settings, channel: object(),
        capabilities=Capabilities(max_message_bytes=1),
        install_command="",
    )
    memory_manager.register(_Plugin(info), name="wrong-plugin")

    with pytest.raises(ConfigurationError) as caught:
        plugins.create_transport("wrong", {}, "orders", memory_manager)

    assert "instead of a Transport" in str(caught.value)
