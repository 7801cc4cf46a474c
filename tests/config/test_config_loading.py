"""Configuration from TOML files and environment variables, secrets included.

The ``memory`` backend of the third-party fixture and the ``cloudbus``
backend (whose SDK is missing) are loaded through ``IRIS_TRANSPORT_PLUGINS``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from iris_transport import plugins
from iris_transport.backends.local import LocalSettings, LocalTransport
from iris_transport.config import (
    REDACTED,
    InvalidConfigurationError,
    SecretRef,
    check_config,
    load_config,
    redact_secrets,
)
from iris_transport.exceptions import SecretNotFoundError
from iris_transport.transport import OutgoingMessage

TESTS = Path(__file__).resolve().parents[1]
PLUGIN_MODULES = TESTS / "plugins" / "plugin_modules"
THIRD_PARTY_SOURCE = TESTS / "fixtures" / "third_party_plugin"

GUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
SECRET = "Endpoint=sb://example/;SharedAccessKey=c2VjcmV0LXZhbHVlLTQy"


@pytest.fixture(autouse=True)
def working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A fresh directory, so that no iris-transport.toml of the developer's is read.
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(PLUGIN_MODULES))
    monkeypatch.syspath_prepend(str(THIRD_PARTY_SOURCE))
    return tmp_path


@pytest.fixture
def manager() -> plugins.IrisPluginManager:
    environ = {plugins.PLUGINS_ENV: "iris_transport_memory.plugin,iris_fixture_cloudbus_plugin"}
    return plugins.create_plugin_manager(environ=environ)


def write_config(directory: Path, text: str, name: str = "iris-transport.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(error: InvalidConfigurationError) -> dict[str, str]:
    return {problem.path: problem.message for problem in error.problems}


# defaults and sources


def test_no_configuration_uses_local(manager: plugins.IrisPluginManager) -> None:
    config = load_config(environ={}, plugin_manager=manager)

    assert config.source is None
    assert config.client_guid is None
    assert config.default_site is None
    assert sorted(config.channels) == ["events", "gradings", "orders", "results"]
    for channel in config.channels.values():
        assert channel.backend == "local"
        assert not channel.configured
        assert channel.settings == LocalSettings()


def test_custom_channel_defaults_to_local(manager: plugins.IrisPluginManager) -> None:
    config = load_config(environ={}, plugin_manager=manager)

    channel = config.channel("audit-trail")

    assert channel.backend == "local"
    assert not channel.configured
    assert isinstance(config.create_transport("audit-trail"), LocalTransport)


def test_invalid_custom_channel_name(manager: plugins.IrisPluginManager) -> None:
    config = load_config(environ={}, plugin_manager=manager)

    with pytest.raises(Exception, match="invalid channel name 'Audit Trail'"):
        config.channel("Audit Trail")


def test_file_sets_deployment_and_channels(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(
        working_directory,
        f"""
        client_guid = "{GUID}"
        default_site = "SITE-001"

        [channels.results]
        backend = "memory"
        broker = "results-broker"
        lock_duration = 12.5

        [channels.orders]
        path = "queues.sqlite3"

        [channels.audit]
        backend = "memory"
        """,
    )

    config = load_config(environ={}, plugin_manager=manager)

    assert config.source == (working_directory / "iris-transport.toml").resolve()
    assert config.client_guid == GUID
    assert config.default_site == "SITE-001"
    assert list(config.channels) == ["orders", "gradings", "events", "results", "audit"]
    assert config.channel("results").backend == "memory"
    assert config.channel("results").settings.lock_duration == 12.5  # type: ignore[attr-defined]
    assert config.channel("orders").backend == "local"
    assert config.channel("orders").configured
    assert config.channel("orders").settings.path == Path("queues.sqlite3")  # type: ignore[attr-defined]
    assert config.channel("audit").settings.queue is None  # type: ignore[attr-defined]


def test_variable_names_config_file(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    other = write_config(working_directory, f'client_guid = "{GUID}"', name="other.toml")
    write_config(working_directory, 'default_site = "from-default-file"')

    config = load_config(environ={"IRIS_TRANSPORT_CONFIG": str(other)}, plugin_manager=manager)

    assert config.source == other.resolve()
    assert config.client_guid == GUID
    assert config.default_site is None


def test_path_argument_beats_variable(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    chosen = write_config(working_directory, 'default_site = "chosen"', name="chosen.toml")
    ignored = write_config(working_directory, 'default_site = "ignored"', name="ignored.toml")

    config = load_config(chosen, environ={"IRIS_TRANSPORT_CONFIG": str(ignored)}, plugin_manager=manager)

    assert config.default_site == "chosen"


def test_missing_named_file(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={"IRIS_TRANSPORT_CONFIG": "absent.toml"}, plugin_manager=manager)

    assert "absent.toml given by IRIS_TRANSPORT_CONFIG does not exist" in str(caught.value)


def test_invalid_toml_names_line(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(working_directory, 'client_guid = "x"\n[channels.results\n')

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={}, plugin_manager=manager)

    assert "is not valid TOML" in str(caught.value)
    assert "line 2" in str(caught.value)


# environment variables


def test_environment_overrides_file(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(
        working_directory,
        f"""
        client_guid = "{GUID}"
        [channels.results]
        backend = "local"
        """,
    )
    other_guid = "9b2c0c5e-3d0a-4c53-9a55-6f1d7d4f3a10"
    environ = {
        "IRIS_TRANSPORT_CLIENT_GUID": other_guid,
        "IRIS_TRANSPORT_DEFAULT_SITE": "SITE-ENV",
        "IRIS_TRANSPORT_CHANNELS__RESULTS__BACKEND": "memory",
        "IRIS_TRANSPORT_CHANNELS__RESULTS__LOCK_DURATION": "45",
        "IRIS_TRANSPORT_CHANNELS__EVENTS__MAX_DELIVERY_COUNT": "3",
        "IRIS_TRANSPORT_LOG_LEVEL": "DEBUG",
    }

    config = load_config(environ=environ, plugin_manager=manager)

    assert config.client_guid == other_guid
    assert config.default_site == "SITE-ENV"
    assert config.channel("results").backend == "memory"
    assert config.channel("results").settings.lock_duration == 45.0  # type: ignore[attr-defined]
    assert config.channel("events").backend == "local"
    assert config.channel("events").settings.max_delivery_count == 3  # type: ignore[attr-defined]


def test_environment_problem_names_variable(manager: plugins.IrisPluginManager) -> None:
    environ = {"IRIS_TRANSPORT_CHANNELS__RESULTS__LOK_DURATION": "5"}

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ=environ, plugin_manager=manager)

    message = problems_of(caught.value)["channels.results.lok_duration"]
    assert "did you mean 'lock_duration'?" in message
    assert "(set by IRIS_TRANSPORT_CHANNELS__RESULTS__LOK_DURATION)" in message


def test_environment_variable_without_setting(manager: plugins.IrisPluginManager) -> None:
    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={"IRIS_TRANSPORT_CHANNELS__RESULTS": "memory"}, plugin_manager=manager)

    assert "IRIS_TRANSPORT_CHANNELS__<CHANNEL>__<SETTING>" in str(caught.value)


# errors


def test_all_problems_reported_together(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(
        working_directory,
        """
        client_guid = "not-a-guid"
        default_sites = "SITE-001"

        [channels.orders]
        backend = "cloudbus"
        queue_nme = "orders"
        connection_string = { env = "IRIS_TEST_CLOUDBUS" }

        [channels.results]
        backend = "memroy"

        [channels.events]
        backend = "memory"
        lock_duration = "soon"
        """,
    )

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={"IRIS_TEST_CLOUDBUS": SECRET}, plugin_manager=manager)

    problems = problems_of(caught.value)
    assert "must be a GUID" in problems["client_guid"]
    assert "did you mean 'default_site'?" in problems["default_sites"]
    assert 'install it with: pip install "iris-transport[cloudbus]"' in problems["channels.orders.backend"]
    assert "did you mean 'queue_name'?" in problems["channels.orders.queue_nme"]
    assert "required setting is missing" in problems["channels.orders.queue_name"]
    assert "unknown backend 'memroy'" in problems["channels.results.backend"]
    assert "Did you mean 'memory'?" in problems["channels.results.backend"]
    assert "valid number" in problems["channels.events.lock_duration"]
    assert len(problems) == 7
    assert "(7 problems)" in str(caught.value)
    assert "soon" not in str(caught.value)


def test_check_config_keeps_valid_channels(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(working_directory, '[channels.results]\nbackend = "memroy"\n')

    check = check_config(environ={}, plugin_manager=manager)

    assert [problem.path for problem in check.all_problems] == ["channels.results.backend"]
    assert check.channels["orders"].settings == LocalSettings()
    assert check.channels["results"].settings is None


def test_unknown_key_lists_valid_keys(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(working_directory, 'backend = "local"\n')

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={}, plugin_manager=manager)

    assert "valid keys: client_guid, default_site, channels" in problems_of(caught.value)["backend"]


def test_channel_must_be_table(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(working_directory, 'channels = { results = "memory", Orders = {} }\n')

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={}, plugin_manager=manager)

    problems = problems_of(caught.value)
    assert "must be a table" in problems["channels.results"]
    assert "invalid channel name" in problems["channels.Orders"]


# secrets


def memory_with_secret(directory: Path, reference: str) -> None:
    write_config(directory, f'[channels.results]\nbackend = "memory"\naccess_token = {reference}\n')


def test_secret_from_environment(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    memory_with_secret(working_directory, '{ env = "IRIS_TEST_TOKEN" }')

    config = load_config(environ={"IRIS_TEST_TOKEN": SECRET}, plugin_manager=manager)

    secret = config.channel("results").settings.access_token  # type: ignore[attr-defined]
    assert secret.get_secret_value() == SECRET
    assert secret.source == "env"
    assert repr(secret) == "SecretRef(env='IRIS_TEST_TOKEN')"


def test_secret_from_file(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    secret_file = working_directory / "token.txt"
    secret_file.write_text(SECRET + "\n")
    memory_with_secret(working_directory, f'{{ file = "{secret_file}" }}')

    config = load_config(environ={}, plugin_manager=manager)

    secret = config.channel("results").settings.access_token  # type: ignore[attr-defined]
    assert secret.get_secret_value() == SECRET
    assert secret.file == secret_file


def test_secret_never_in_text(working_directory: Path, manager: plugins.IrisPluginManager, caplog: pytest.LogCaptureFixture) -> None:
    memory_with_secret(working_directory, '{ env = "IRIS_TEST_TOKEN" }')
    caplog.set_level(logging.DEBUG)

    config = load_config(environ={"IRIS_TEST_TOKEN": SECRET}, plugin_manager=manager)
    channel = config.channel("results")
    transport = config.create_transport("results")

    texts = {
        "repr(config)": repr(config),
        "str(settings)": str(channel.settings),
        "repr(settings)": repr(channel.settings),
        "model_dump": str(channel.settings.model_dump()),
        "model_dump_json": channel.settings.model_dump_json(),
        "repr(transport)": repr(transport),
        "logs": caplog.text,
    }
    for where, text in texts.items():
        assert SECRET not in text, where
    assert '"access_token":{"env":"IRIS_TEST_TOKEN"}' in texts["model_dump_json"]


def test_inline_secret_warns_without_value(
    working_directory: Path, manager: plugins.IrisPluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    memory_with_secret(working_directory, f'"{SECRET}"')
    caplog.set_level(logging.DEBUG)

    config = load_config(environ={}, plugin_manager=manager)

    secret = config.channel("results").settings.access_token  # type: ignore[attr-defined]
    assert secret.get_secret_value() == SECRET
    assert repr(secret) == f"SecretRef({REDACTED!r})"
    assert str(secret) == REDACTED
    assert "channels.results.access_token is a secret written inline" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in repr(config)


def test_missing_secret_variable_named(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    memory_with_secret(working_directory, '{ env = "IRIS_TEST_TOKEN" }')

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={}, plugin_manager=manager)

    message = problems_of(caught.value)["channels.results.access_token"]
    assert message == "environment variable IRIS_TEST_TOKEN is not set; set it to the secret"


@pytest.mark.parametrize("value", [SECRET, "Endpoint=sb://example/;SharedAccessKey=abc=", "a b"])
def test_secret_value_as_env_name_hidden(
    working_directory: Path, manager: plugins.IrisPluginManager, value: str
) -> None:
    memory_with_secret(working_directory, f"{{ env = {json.dumps(value)} }}")

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={}, plugin_manager=manager)

    message = problems_of(caught.value)["channels.results.access_token"]
    assert "not an environment variable name" in message
    assert value not in str(caught.value)


def test_missing_secret_file_named(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    memory_with_secret(working_directory, '{ file = "/nonexistent/iris/token" }')

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={}, plugin_manager=manager)

    assert "secret file /nonexistent/iris/token does not exist" in problems_of(caught.value)["channels.results.access_token"]


def test_invalid_secret_reference(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    memory_with_secret(working_directory, '{ vault = "x" }')

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={}, plugin_manager=manager)

    assert "expected a secret reference" in problems_of(caught.value)["channels.results.access_token"]


def test_secret_removed_after_loading(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    memory_with_secret(working_directory, '{ env = "IRIS_TEST_TOKEN" }')
    environ = {"IRIS_TEST_TOKEN": SECRET}
    config = load_config(environ=environ, plugin_manager=manager)
    del environ["IRIS_TEST_TOKEN"]

    with pytest.raises(SecretNotFoundError) as caught:
        config.create_transport("results")

    assert "IRIS_TEST_TOKEN" in str(caught.value)


def test_empty_secret_file_rejected(tmp_path: Path) -> None:
    secret_file = tmp_path / "empty"
    secret_file.write_text("\n")

    with pytest.raises(SecretNotFoundError) as caught:
        SecretRef(file=secret_file).get_secret_value()

    assert str(caught.value) == f"secret file {secret_file} is empty; write the secret into it"


def test_secret_set_by_environment_variable(manager: plugins.IrisPluginManager) -> None:
    environ = {
        "IRIS_TRANSPORT_CHANNELS__RESULTS__BACKEND": "memory",
        "IRIS_TRANSPORT_CHANNELS__RESULTS__ACCESS_TOKEN__ENV": "IRIS_TEST_TOKEN",
        "IRIS_TEST_TOKEN": SECRET,
    }

    config = load_config(environ=environ, plugin_manager=manager)

    secret = config.channel("results").settings.access_token  # type: ignore[attr-defined]
    assert secret.env == "IRIS_TEST_TOKEN"
    assert secret.get_secret_value() == SECRET


def test_redact_secrets_in_foreign_text(manager: plugins.IrisPluginManager) -> None:
    environ = {
        "IRIS_TRANSPORT_CHANNELS__RESULTS__BACKEND": "memory",
        "IRIS_TRANSPORT_CHANNELS__RESULTS__ACCESS_TOKEN__ENV": "IRIS_TEST_TOKEN",
        "IRIS_TEST_TOKEN": SECRET,
    }
    settings = load_config(environ=environ, plugin_manager=manager).channel("results").settings

    text = redact_secrets(f"SDK error: invalid connection string {SECRET!r}", settings)

    assert text == f"SDK error: invalid connection string '{REDACTED}'"


# transports from configuration


async def test_configured_backend_moves_messages(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(working_directory, f'[channels.results]\nbackend = "memory"\nbroker = "{working_directory}"\n')
    config = load_config(environ={}, plugin_manager=manager)

    async with config.create_transport("results") as sender, config.create_transport("results") as receiver:
        await sender.send(OutgoingMessage(body=b"{}", message_id="result-1"))
        received = await receiver.receive(max_messages=1, max_wait=5.0)
        assert [message.message_id for message in received] == ["result-1"]
        await receiver.complete(received[0])


def test_process_environment_is_default(working_directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRIS_TRANSPORT_DEFAULT_SITE", "SITE-FROM-PROCESS")
    assert "IRIS_TRANSPORT_DEFAULT_SITE" in os.environ

    config = load_config()

    assert config.default_site == "SITE-FROM-PROCESS"


def test_empty_inline_secret_rejected() -> None:
    with pytest.raises(SecretNotFoundError) as caught:
        SecretRef(value="").get_secret_value()

    assert "the inline secret is empty" in str(caught.value)


def test_channel_config_built_by_hand(tmp_path: Path) -> None:
    from iris_transport.config import ChannelConfig

    channel = ChannelConfig("results", "local", LocalSettings(path=tmp_path / "q.sqlite3"))

    assert isinstance(channel.create_transport(), LocalTransport)


def test_validator_message_without_prefix(working_directory: Path, manager: plugins.IrisPluginManager) -> None:
    write_config(working_directory, '[channels.results]\nqueue = "results/$deadletterqueue"\n')

    with pytest.raises(InvalidConfigurationError) as caught:
        load_config(environ={}, plugin_manager=manager)

    assert problems_of(caught.value)["channels.results.queue"].startswith("must name a main queue")
