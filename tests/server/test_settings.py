from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings, ensure_secrets, load_settings

TOML = """
port = 9000
host = "0.0.0.0"
log_level = "debug"
ice_host_addresses = ["10.0.0.2"]

[media]
something = "for another component"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "synclass.toml"
    path.write_text(TOML)
    return path


def test_defaults_need_nothing() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert (settings.port, settings.token_ttl_s, settings.max_ws_message_bytes) == (
        8080,
        43200,
        262144,
    )
    assert settings.web_root == Path(__file__).resolve().parents[2] / "client_web"


@pytest.mark.parametrize(
    ("env", "overrides", "expected"),
    [
        ({}, {}, {"port": 9000, "host": "0.0.0.0", "log_level": "debug"}),
        ({"SYNCLASS_PORT": "9100"}, {}, {"port": 9100, "host": "0.0.0.0"}),
        ({"SYNCLASS_PORT": "9100"}, {"port": 9200}, {"port": 9200}),
        (
            {"SYNCLASS_ICE_HOST_ADDRESSES": "10.0.0.3, 10.0.0.4"},
            {},
            {"ice_host_addresses": ("10.0.0.3", "10.0.0.4")},
        ),
        ({}, {}, {"ice_host_addresses": ("10.0.0.2",)}),
        ({"SYNCLASS_DEBUG_LOGGERS": "synclass.media.trace"}, {}, {"debug_loggers": ("synclass.media.trace",)}),
        ({"SYNCLASS_TLS_SELF_SIGNED": "yes"}, {}, {"tls_self_signed": True}),
        ({"SYNCLASS_HELLO_TIMEOUT_S": "2.5"}, {}, {"hello_timeout_s": 2.5}),
        ({"SYNCLASS_DATA_DIR": "/var/lib/synclass"}, {}, {"data_dir": Path("/var/lib/synclass")}),
        ({"SYNCLASS_ADMIN_KEY": ""}, {}, {"admin_key": None}),
        (
            {
                "SYNCLASS_ICE_SERVERS": '[{"urls": "turn:turn.example:3478", "username": "u", "credential": "c"}]'
            },
            {},
            {
                "ice_servers": (
                    {"urls": "turn:turn.example:3478", "username": "u", "credential": "c"},
                )
            },
        ),
        (
            {"SYNCLASS_PUBLIC_URL": "https://class.example/"},
            {},
            {"public_url": "https://class.example"},
        ),
    ],
)
def test_the_file_is_overridden_by_env_and_env_by_overrides(
    config: Path, env: dict[str, str], overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    settings = load_settings(config, env=env, **overrides)
    assert {name: getattr(settings, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"SYNCLASS_PORT": "http"}, {}, "setting port must be an integer, got 'http'"),
        ({"SYNCLASS_PORT": "70000"}, {}, "setting port must be between 0 and 65535, got 70000"),
        ({"SYNCLASS_MAX_ON_STAGE": "0"}, {}, "setting max_on_stage must be between 1 and 16, got 0"),
        ({}, {"port": True}, "setting port must be an integer, got True"),
        (
            {"SYNCLASS_TLS_SELF_SIGNED": "maybe"},
            {},
            "setting tls_self_signed must be true or false, got 'maybe'",
        ),
        (
            {"SYNCLASS_LOG_LEVEL": "loud"},
            {},
            "setting log_level must be one of debug, info, warning, error, got 'loud'",
        ),
        (
            {"SYNCLASS_HELLO_TIMEOUT_S": "0"},
            {},
            "setting hello_timeout_s must be positive, got '0'",
        ),
        ({"SYNCLASS_ICE_SERVERS": "stun:x"}, {}, "setting ice_servers must be JSON, got 'stun:x'"),
        (
            {"SYNCLASS_ICE_SERVERS": '[{"url": "stun:x"}]'},
            {},
            "setting ice_servers[0] must be an object with 'urls' (a string or a list of strings), "
            "got {'url': 'stun:x'}",
        ),
        ({"SYNCLASS_ADMIN_KEY": "short"}, {}, "setting admin_key must be at least 16 characters"),
        (
            {"SYNCLASS_TOKEN_SECRET": "short"},
            {},
            "setting token_secret must be at least 32 characters",
        ),
        (
            {"SYNCLASS_PUBLIC_URL": "class.example"},
            {},
            "setting public_url must start with http:// or https://, got 'class.example'",
        ),
        ({}, {"tls_cert": "/etc/cert.pem"}, "settings tls_cert and tls_key must be given together"),
        ({}, {"colour": "blue"}, "unknown setting 'colour'"),
    ],
)
def test_a_bad_value_is_refused_with_an_exact_message(
    env: dict[str, str], overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        load_settings(env=env, **overrides)
    assert str(raised.value) == message


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "synclass.toml"
    path.write_text("prot = 80\n")
    with pytest.raises(ValueError) as raised:
        load_settings(path, env={})
    assert str(raised.value) == f"unknown setting 'prot' in config file {path}"


def test_a_wrongly_typed_value_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "synclass.toml"
    path.write_text('port = "80"\n')
    with pytest.raises(ValueError) as raised:
        load_settings(path, env={})
    assert str(raised.value) == "setting port must be an integer, got '80'"


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as raised:
        load_settings(tmp_path / "nope.toml", env={})
    assert str(raised.value) == f"config file {tmp_path / 'nope.toml'} does not exist"


def test_secrets_are_created_once_and_then_reused(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    first = ensure_secrets(settings)
    second = ensure_secrets(settings)
    assert first.admin_key is not None and len(first.admin_key) >= 32
    assert (first.admin_key, first.token_secret) == (second.admin_key, second.token_secret)
    assert first.admin_key != first.token_secret
    assert (tmp_path / "data" / "admin_key").stat().st_mode & 0o777 == 0o600


def test_given_secrets_are_kept(tmp_path: Path) -> None:
    settings = load_settings(
        env={}, data_dir=tmp_path / "data", admin_key="k" * 16, token_secret="t" * 32
    )
    assert ensure_secrets(settings) is settings
    assert not (tmp_path / "data").exists()
