"""``iris-transport backends`` and ``iris-transport config check``, run as real processes.

Each test runs the installed ``iris-transport`` command in a fresh working
directory, with every ``IRIS_TRANSPORT_*`` variable of the caller removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from iris_transport import plugins
from iris_transport.cli import main
from iris_transport.config import SecretRef
from iris_transport.exceptions import TransportConnectionError
from iris_transport.hookspecs import BackendInfo, hookimpl
from iris_transport.backends.local import LOCAL_CAPABILITIES, LocalSettings, LocalTransport
from iris_transport.transport import Capabilities, Transport

TESTS = Path(__file__).resolve().parents[1]
PLUGIN_MODULES = TESTS / "plugins" / "plugin_modules"
THIRD_PARTY_SOURCE = TESTS / "fixtures" / "third_party_plugin"
COMMAND = Path(sys.executable).parent / "iris-transport"

SECRET = "Endpoint=sb://example/;SharedAccessKey=c2VjcmV0LXZhbHVlLTQy"
COMMAND_TIMEOUT = 120


def clean_environment(**variables: str) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("IRIS_TRANSPORT_")}
    environ.pop("PYTHONPATH", None)
    environ.update(variables)
    return environ


def with_fixture_plugins(**variables: str) -> dict[str, str]:
    """Return an environment that loads the ``memory`` and ``cloudbus`` fixture backends."""
    return clean_environment(
        PYTHONPATH=os.pathsep.join([str(PLUGIN_MODULES), str(THIRD_PARTY_SOURCE)]),
        IRIS_TRANSPORT_PLUGINS="iris_transport_memory.plugin,iris_fixture_cloudbus_plugin",
        **variables,
    )


def run(arguments: list[str], cwd: Path, environ: dict[str, str], command: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(command or [str(COMMAND)]), *arguments],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


# iris-transport backends


def test_backends_lists_local(tmp_path: Path) -> None:
    result = run(["backends"], tmp_path, clean_environment())

    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    local = next(line for line in result.stdout.splitlines() if line.startswith("local "))
    assert header.split() == ["BACKEND", "DISTRIBUTION", "VERSION", "STATUS", "CAPABILITIES"]
    assert local.split()[:4] == ["local", "iris-transport", "0.1.0", "ready"]
    assert "batch_send" in local
    assert "max_message_bytes=1048576" in local


def test_backends_json(tmp_path: Path) -> None:
    result = run(["backends", "--json"], tmp_path, with_fixture_plugins())

    assert result.returncode == 0, result.stderr
    backends = {backend["name"]: backend for backend in json.loads(result.stdout)}
    assert {"cloudbus", "local", "memory"} <= set(backends)
    assert backends["local"]["distribution"] == "iris-transport"
    assert backends["local"]["capabilities"]["native_dead_letter"] is True
    assert backends["cloudbus"]["sdk_installed"] is False
    assert backends["cloudbus"]["install_command"] == 'pip install "iris-transport[cloudbus]"'
    assert "access_token" in backends["memory"]["settings"]


def test_backends_shows_missing_sdk(tmp_path: Path) -> None:
    result = run(["backends"], tmp_path, with_fixture_plugins())

    assert result.returncode == 0, result.stderr
    cloudbus = next(line for line in result.stdout.splitlines() if line.startswith("cloudbus "))
    assert "SDK missing" in cloudbus
    assert (
        "cloudbus: module 'iris_fixture_cloudbus_sdk' is missing; "
        'install it with: pip install "iris-transport[cloudbus]"'
    ) in result.stdout


def test_backends_reports_broken_plugin(tmp_path: Path) -> None:
    environ = clean_environment(PYTHONPATH=str(PLUGIN_MODULES), IRIS_TRANSPORT_PLUGINS="iris_fixture_no_such_module")

    result = run(["backends"], tmp_path, environ)

    assert result.returncode == 1
    assert "cannot import plugin module 'iris_fixture_no_such_module'" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugin_command_added(tmp_path: Path) -> None:
    result = run(["memory-info"], tmp_path, with_fixture_plugins())

    assert result.returncode == 0, result.stderr
    assert result.stdout == "memory backend: in-process queues for tests\n"


# iris-transport config check


def test_check_without_configuration(tmp_path: Path) -> None:
    result = run(["config", "check"], tmp_path, clean_environment())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file: none" in result.stdout
    for channel in ("orders", "gradings", "events", "results"):
        assert f"[channels.{channel}] backend=local (not configured, default): installed, reachable" in result.stdout
    assert "Configuration is valid" in result.stdout


def test_check_uninstalled_backend_and_unknown_setting(tmp_path: Path) -> None:
    config = tmp_path / "deployment.toml"
    config.write_text(
        """
        [channels.orders]
        backend = "cloudbus"
        queue_nme = "orders"
        connection_string = { env = "IRIS_TEST_CLOUDBUS" }

        [channels.results]
        backend = "memroy"
        """
    )

    result = run(["config", "check", "--config", str(config)], tmp_path, with_fixture_plugins(IRIS_TEST_CLOUDBUS=SECRET))

    assert result.returncode == 1
    output = result.stdout
    assert "[channels.orders] backend=cloudbus: SDK missing" in output
    assert (
        "problem: channels.orders.backend: backend 'cloudbus' is not installed (missing module "
        "'iris_fixture_cloudbus_sdk'); install it with: pip install \"iris-transport[cloudbus]\""
    ) in output
    assert "problem: channels.orders.queue_nme: unknown setting of backend 'cloudbus'; did you mean 'queue_name'?" in output
    assert "problem: channels.results.backend: unknown backend 'memroy'" in output
    assert "Did you mean 'memory'?" in output
    assert "4 problems found." in output
    assert SECRET not in output + result.stderr


def test_check_optional_backend_not_installed(tmp_path: Path) -> None:
    (tmp_path / "iris-transport.toml").write_text('[channels.orders]\nbackend = "azure"\nqueue_name = "orders"\n')
    environ = clean_environment(IRIS_TRANSPORT_DISABLE_PLUGIN_AUTOLOAD="1")

    result = run(["config", "check"], tmp_path, environ)

    assert result.returncode == 1
    assert (
        "problem: channels.orders.backend: backend 'azure' is not installed; "
        'install it with: pip install "iris-transport[azure]"'
    ) in result.stdout


def test_check_json_lists_problems(tmp_path: Path) -> None:
    config = tmp_path / "iris-transport.toml"
    config.write_text('[channels.results]\nbackend = "memory"\nlok_duration = 3\n')

    result = run(["config", "check", "--json"], tmp_path, with_fixture_plugins())

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["source"] == str(config.resolve())
    results = next(channel for channel in report["channels"] if channel["name"] == "results")
    assert results["installed"] is True
    assert results["reachable"] is False
    assert results["problems"] == [
        {
            "path": "channels.results.lok_duration",
            "message": "unknown setting of backend 'memory'; did you mean 'lock_duration'?",
        }
    ]


def test_check_never_prints_secrets(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n")
    (tmp_path / "iris-transport.toml").write_text(
        f"""
        [channels.results]
        backend = "memory"
        access_token = {{ env = "IRIS_TEST_TOKEN" }}

        [channels.events]
        backend = "memory"
        access_token = {{ file = "{secret_file}" }}

        [channels.audit]
        backend = "memory"
        access_token = "{SECRET}"
        """
    )
    environ = with_fixture_plugins(IRIS_TEST_TOKEN=SECRET)

    text_result = run(["config", "check"], tmp_path, environ)
    json_result = run(["config", "check", "--json"], tmp_path, environ)

    assert text_result.returncode == 0, text_result.stdout + text_result.stderr
    assert json_result.returncode == 0, json_result.stdout + json_result.stderr
    for result in (text_result, json_result):
        assert SECRET not in result.stdout
        assert SECRET not in result.stderr
    assert 'access_token = { env = "IRIS_TEST_TOKEN" }' in text_result.stdout
    assert f'access_token = {{ file = "{secret_file}" }}' in text_result.stdout
    assert 'access_token = "**********"' in text_result.stdout
    assert "[channels.audit] backend=memory: installed, reachable" in text_result.stdout


def test_check_missing_secret_names_variable(tmp_path: Path) -> None:
    (tmp_path / "iris-transport.toml").write_text(
        '[channels.results]\nbackend = "memory"\naccess_token = { env = "IRIS_TEST_TOKEN" }\n'
    )

    result = run(["config", "check"], tmp_path, with_fixture_plugins())

    assert result.returncode == 1
    assert (
        "problem: channels.results.access_token: environment variable IRIS_TEST_TOKEN is not set; "
        "set it to the secret"
    ) in result.stdout


def test_check_local_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "iris-transport.toml").write_text('[channels.results]\npath = "no-such-dir/q.sqlite3"\n')

    result = run(["config", "check"], tmp_path, clean_environment())

    assert result.returncode == 1, result.stdout
    assert "[channels.results] backend=local: installed, not reachable" in result.stdout
    assert "does not exist; create it or change the path" in result.stdout


def test_check_local_opens_queue_file(tmp_path: Path) -> None:
    (tmp_path / "iris-transport.toml").write_text('[channels.results]\npath = "q.sqlite3"\n')

    result = run(["config", "check"], tmp_path, clean_environment())

    assert result.returncode == 0, result.stdout
    assert "[channels.results] backend=local: installed, reachable" in result.stdout
    assert (tmp_path / "q.sqlite3").is_file()


class FailingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_string: SecretRef


def connect_and_fail(settings: FailingSettings, channel: str) -> Transport:
    # As some SDKs do, the error quotes the connection string it was given.
    raise TransportConnectionError(f"cannot connect with {settings.connection_string.get_secret_value()!r}")


class FailingPlugin:
    @hookimpl
    def iris_transport_backends(self) -> list[BackendInfo]:
        return [
            BackendInfo(
                name="failing",
                description="A backend whose transports cannot be created",
                settings_model=FailingSettings,
                factory=connect_and_fail,
                capabilities=Capabilities(max_message_bytes=1024),
                install_command="pip install nothing",
            )
        ]


def test_check_unreachable_redacts_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris-transport.toml").write_text(
        '[channels.orders]\nbackend = "failing"\nconnection_string = { env = "IRIS_TEST_FAILING" }\n'
    )
    manager = plugins.get_plugin_manager()
    plugin = FailingPlugin()
    manager.register(plugin, name="failing-test-plugin")
    try:
        result = CliRunner().invoke(main, ["config", "check"], env={"IRIS_TEST_FAILING": SECRET, "IRIS_TRANSPORT_CONFIG": None})
    finally:
        manager.unregister(plugin)

    assert result.exit_code == 1
    assert "[channels.orders] backend=failing: installed, not reachable" in result.output
    assert (
        "problem: channels.orders: the transport failed its check: TransportConnectionError: "
        "cannot connect with '**********'"
    ) in result.output
    assert SECRET not in result.output


def test_check_missing_config_file(tmp_path: Path) -> None:
    result = run(["config", "check", "--config", "absent.toml"], tmp_path, clean_environment())

    assert result.returncode == 1
    assert "configuration file absent.toml given by --config does not exist" in result.stdout


# a third-party backend installed into its own virtual environment


def create_virtualenv(directory: Path) -> Path:
    """Create a virtualenv that can import this environment's packages, and return its Python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(directory)],
        check=True,
        timeout=COMMAND_TIMEOUT,
    )
    python = directory / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    ).stdout.strip()
    # --system-site-packages exposes the base interpreter's packages, not the
    # project's virtualenv, so its site-packages (with the editable
    # iris-transport and its .pth files) is added by a .pth line of its own.
    project_site = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "iris_transport_project.pth").write_text(f"import site; site.addsitedir({project_site!r})\n")
    return python


@pytest.mark.slow
def test_third_party_backend_in_virtualenv(tmp_path: Path) -> None:
    python = create_virtualenv(tmp_path / "venv")
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "install",
            "--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check",
            str(THIRD_PARTY_SOURCE),
        ],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    iris_transport = [str(python), "-c", "import sys; from iris_transport.cli import main; sys.exit(main())"]
    work = tmp_path / "work"
    work.mkdir()

    listed = run(["backends", "--json"], work, clean_environment(), command=iris_transport)
    assert listed.returncode == 0, listed.stderr
    backends = {backend["name"]: backend for backend in json.loads(listed.stdout)}
    assert {"local", "memory"} <= set(backends)
    assert backends["memory"]["distribution"] == "iris-transport-memory-example"
    assert backends["memory"]["version"] == "0.1.0"

    project_only = run(["backends", "--json"], work, clean_environment(), command=None)
    assert "memory" not in {backend["name"] for backend in json.loads(project_only.stdout)}

    disabled = run(
        ["backends", "--json"], work, clean_environment(IRIS_TRANSPORT_DISABLE_PLUGIN_AUTOLOAD="1"), command=iris_transport
    )
    assert [backend["name"] for backend in json.loads(disabled.stdout)] == ["local"]

    (work / "iris-transport.toml").write_text('[channels.results]\nbackend = "memory"\nqueue = "results-in"\n')
    checked = run(["config", "check"], work, clean_environment(), command=iris_transport)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "[channels.results] backend=memory: installed, reachable" in checked.stdout

    # Selected by configuration alone: the program names only the channel.
    round_trip = subprocess.run(
        [
            str(python), "-c",
            "import anyio\n"
            "from iris_transport.config import load_config\n"
            "from iris_transport.transport import OutgoingMessage\n"
            "async def main():\n"
            "    async with load_config().create_transport('results') as transport:\n"
            "        await transport.send(OutgoingMessage(body=b'{}', message_id='r-1'))\n"
            "        [message] = await transport.receive(max_messages=1, max_wait=5.0)\n"
            "        await transport.complete(message)\n"
            "        print(type(transport).__name__, transport.queue, message.message_id)\n"
            "anyio.run(main)\n",
        ],
        cwd=work,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert round_trip.returncode == 0, round_trip.stderr
    assert round_trip.stdout == "MemoryTransport results-in r-1\n"


THIRD_PARTY_CONFORMANCE_MODULE = '''
import pytest

from iris_transport.config import load_config
from iris_transport.testing import ConformanceBackend, TransportConformance


class TestMemoryFromConfiguration(TransportConformance):
    @pytest.fixture
    def conformance_backend(self, tmp_path):
        # Each test gets its own in-process broker, so every entity starts empty.
        config_file = tmp_path / "iris-transport.toml"
        config_file.write_text(
            "[channels.conformance]\\n"
            'backend = "memory"\\n'
            f'broker = "{tmp_path.name}"\\n'
            "lock_duration = 4.0\\n"
        )
        config = load_config(config_file)
        return ConformanceBackend(
            transport=lambda: config.create_transport("conformance"),
            dead_letter_receiver=lambda: config.create_transport("conformance").dead_letter_transport(),
            lock_duration=4.0,
            delay=2.0,
            expiry_reason="TTLExpiredException",
        )
'''


@pytest.mark.slow
def test_third_party_backend_passes_conformance_kit(tmp_path: Path) -> None:
    python = create_virtualenv(tmp_path / "venv")
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "install",
            "--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check",
            str(THIRD_PARTY_SOURCE),
        ],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    work = tmp_path / "work"
    work.mkdir()
    (work / "pytest.ini").write_text("[pytest]\n")
    (work / "test_memory_conformance.py").write_text(THIRD_PARTY_CONFORMANCE_MODULE)

    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=work,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


class UncheckedTransport(LocalTransport):
    """A local transport that, like a backend without a side-effect-free check, cannot check its broker."""

    async def check(self, *, send: bool = True, receive: bool = True) -> bool:
        return await Transport.check(self, send=send, receive=receive)


class UncheckedPlugin:
    @hookimpl
    def iris_transport_backends(self) -> list[BackendInfo]:
        return [
            BackendInfo(
                name="unchecked",
                description="A backend that cannot check its broker",
                settings_model=LocalSettings,
                factory=UncheckedTransport,
                capabilities=LOCAL_CAPABILITIES,
                install_command="pip install nothing",
            )
        ]


def test_check_reports_unchecked_backend_as_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris-transport.toml").write_text('[channels.events]\nbackend = "unchecked"\npath = "q.sqlite3"\n')
    manager = plugins.get_plugin_manager()
    plugin = UncheckedPlugin()
    manager.register(plugin, name="unchecked-test-plugin")
    try:
        text = CliRunner().invoke(main, ["config", "check"], env={"IRIS_TRANSPORT_CONFIG": None})
        as_json = CliRunner().invoke(main, ["config", "check", "--json"], env={"IRIS_TRANSPORT_CONFIG": None})
    finally:
        manager.unregister(plugin)

    assert text.exit_code == 0, text.output
    assert "[channels.events] backend=unchecked: installed, created (this backend cannot check the broker)" in text.output
    [events] = [channel for channel in json.loads(as_json.output)["channels"] if channel["name"] == "events"]
    assert events["created"] is True
    assert events["reachable"] is False
