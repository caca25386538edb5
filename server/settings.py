"""Settings of the control plane.

Precedence, lowest first: the dataclass defaults < a TOML file < environment
variables ``SYNCLASS_<FIELD_UPPER>`` < keyword overrides. In the environment,
lists are comma-separated (``SYNCLASS_ICE_HOST_ADDRESSES=10.0.0.2,10.0.0.3``),
``ice_servers`` is JSON, booleans are ``true/false/1/0/yes/no/on/off`` and an
empty value means "not set" for optional settings.

Tables in the TOML file (``[media]``, ``[redis]``...) belong to other parts of
synclass and are ignored here; an unknown top-level key is an error, so a typo
does not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "SYNCLASS_"
LOG_LEVELS = ("debug", "info", "warning", "error")
MIN_ADMIN_KEY_CHARS = 16
MIN_TOKEN_SECRET_CHARS = 32  # HS256 keys shorter than the hash weaken it

DEFAULT_WEB_ROOT = Path(__file__).resolve().parent.parent / "client_web"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    # None: read or create ``data_dir/admin_key`` (see ensure_secrets).
    admin_key: str | None = None
    # None: read or create ``data_dir/token_secret``, so restarts keep tokens valid.
    token_secret: str | None = None
    token_ttl_s: int = 12 * 3600
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Serve HTTPS with a generated certificate: browsers only allow camera and
    # microphone on secure origins, and a LAN deployment may have no CA.
    tls_self_signed: bool = False
    # The address browsers use to reach us (behind a proxy); token URLs use it.
    public_url: str | None = None
    # Addresses the media plane gathers ICE host candidates on; () = every interface.
    ice_host_addresses: tuple[str, ...] = ()
    # STUN/TURN servers handed to browsers (RTCIceServer dicts).
    ice_servers: tuple[dict[str, Any], ...] = ()
    # A big SDP offer is ~20 KiB; 256 KiB leaves room without inviting abuse.
    max_ws_message_bytes: int = 262144
    hello_timeout_s: float = 10.0
    # How many classrooms the teacher may have on stage at once.
    max_on_stage: int = 1
    log_level: str = "info"
    # Loggers that log at debug whatever log_level says, e.g. "synclass.media.trace"
    # (each classroom's rate control, a line per receiver report).
    debug_loggers: tuple[str, ...] = ()
    web_root: Path = DEFAULT_WEB_ROOT
    # Where lessons are recorded, one directory per lesson; None: data_dir/recordings.
    # Put it on a big disk: a 45-minute lesson is ~0.5-1 GB.
    recordings_dir: Path | None = None
    # Retention: recordings older than this many days are deleted (0: kept forever).
    recordings_max_age_days: int = 0
    # Retention: the oldest recordings are deleted while all of them take more
    # than this many bytes (0: no budget).
    recordings_max_bytes: int = 0

    @property
    def recordings_root(self) -> Path:
        """The recordings directory in effect."""
        return self.recordings_dir if self.recordings_dir is not None else self.data_dir / "recordings"


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Settings))


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from defaults < ``config_file`` (TOML) < ``env`` < ``overrides``.

    ``env`` defaults to ``os.environ``. Raises ``ValueError`` with an exact
    message naming the setting for any bad value.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        for name, raw in _read_toml(config_file).items():
            values[name] = _coerce(name, raw, from_text=False)
    environ = os.environ if env is None else env
    for name in FIELD_NAMES:
        key = ENV_PREFIX + name.upper()
        if key in environ:
            values[name] = _coerce(name, environ[key], from_text=True)
    for name, raw in overrides.items():
        if name not in FIELD_NAMES:
            raise ValueError(f"unknown setting {name!r}")
        values[name] = _coerce(name, raw, from_text=False)
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def ensure_secrets(settings: Settings) -> Settings:
    """Fill ``admin_key`` and ``token_secret`` from files in ``data_dir``.

    A missing file is created with a fresh random secret (mode 0600), so a
    restart keeps the same admin key and keeps issued tokens valid.
    """
    admin_key = settings.admin_key
    token_secret = settings.token_secret
    if admin_key is not None and token_secret is not None:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if admin_key is None:
        admin_key = _read_or_create_secret(settings.data_dir / "admin_key")
    if token_secret is None:
        token_secret = _read_or_create_secret(settings.data_dir / "token_secret")
    return dataclasses.replace(settings, admin_key=admin_key, token_secret=token_secret)


def _read_or_create_secret(path: Path) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            raise ValueError(f"secret file {path} is empty") from None
        return value
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {path} is not valid TOML: {e}") from None
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            continue  # a table for another component
        if key not in FIELD_NAMES:
            raise ValueError(f"unknown setting {key!r} in config file {path}")
        out[key] = value
    return out


# --- coercion: one parser per kind of setting --------------------------------


def _coerce(name: str, value: Any, *, from_text: bool) -> Any:
    """Check (and, for env text, parse) one setting's value."""
    return _PARSERS[name](name, value, from_text)


def _text(name: str, value: Any, from_text: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"setting {name} must be a string, got {value!r}")
    if not value:
        raise ValueError(f"setting {name} must not be empty")
    return value


def _optional_text(name: str, value: Any, from_text: bool) -> str | None:
    if value is None or (from_text and value == ""):
        return None
    return _text(name, value, from_text)


def _integer(name: str, value: Any, from_text: bool) -> int:
    if from_text:
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"setting {name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"setting {name} must be an integer, got {value!r}")
    return value


def _number(name: str, value: Any, from_text: bool) -> float:
    if from_text:
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"setting {name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"setting {name} must be a number, got {value!r}")
    return float(value)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _boolean(name: str, value: Any, from_text: bool) -> bool:
    if from_text and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    elif isinstance(value, bool):
        return value
    raise ValueError(f"setting {name} must be true or false, got {value!r}")


def _path(name: str, value: Any, from_text: bool) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_text(name, value, from_text))


def _optional_path(name: str, value: Any, from_text: bool) -> Path | None:
    if value is None or (from_text and value == ""):
        return None
    return _path(name, value, from_text)


def _text_list(name: str, value: Any, from_text: bool) -> tuple[str, ...]:
    if from_text and isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(item, str) and item for item in value
    ):
        raise ValueError(f"setting {name} must be a list of strings, got {value!r}")
    return tuple(value)


def _ice_servers(name: str, value: Any, from_text: bool) -> tuple[dict[str, Any], ...]:
    if from_text and isinstance(value, str):
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"setting {name} must be JSON, got {value!r}") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"setting {name} must be a list of objects, got {value!r}")
    servers: list[dict[str, Any]] = []
    for i, server in enumerate(value):
        urls = server.get("urls") if isinstance(server, dict) else None
        urls_ok = (isinstance(urls, str) and urls) or (
            isinstance(urls, list) and urls and all(isinstance(u, str) and u for u in urls)
        )
        if not urls_ok:
            raise ValueError(
                f"setting {name}[{i}] must be an object with 'urls' "
                f"(a string or a list of strings), got {server!r}"
            )
        for key in ("username", "credential"):
            if key in server and not isinstance(server[key], str):
                raise ValueError(f"setting {name}[{i}].{key} must be a string")
        servers.append(dict(server))
    return tuple(servers)


def _bounded_int(low: int, high: int) -> Callable[[str, Any, bool], int]:
    def parse(name: str, value: Any, from_text: bool) -> int:
        number = _integer(name, value, from_text)
        if not low <= number <= high:
            raise ValueError(f"setting {name} must be between {low} and {high}, got {number}")
        return number

    return parse


def _positive_number(name: str, value: Any, from_text: bool) -> float:
    number = _number(name, value, from_text)
    if number <= 0:
        raise ValueError(f"setting {name} must be positive, got {value!r}")
    return number


def _log_level(name: str, value: Any, from_text: bool) -> str:
    level = _text(name, value, from_text).strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"setting {name} must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _min_length(minimum: int) -> Callable[[str, Any, bool], str | None]:
    def parse(name: str, value: Any, from_text: bool) -> str | None:
        text = _optional_text(name, value, from_text)
        if text is not None and len(text) < minimum:
            raise ValueError(f"setting {name} must be at least {minimum} characters")
        return text

    return parse


def _public_url(name: str, value: Any, from_text: bool) -> str | None:
    url = _optional_text(name, value, from_text)
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"setting {name} must start with http:// or https://, got {value!r}")
    return url.rstrip("/")


_PARSERS: dict[str, Callable[[str, Any, bool], Any]] = {
    "host": _text,
    "port": _bounded_int(0, 65535),  # 0: any free port (tests)
    "data_dir": _path,
    "admin_key": _min_length(MIN_ADMIN_KEY_CHARS),
    "token_secret": _min_length(MIN_TOKEN_SECRET_CHARS),
    "token_ttl_s": _bounded_int(60, 5 * 366 * 24 * 3600),
    "tls_cert": _optional_path,
    "tls_key": _optional_path,
    "tls_self_signed": _boolean,
    "public_url": _public_url,
    "ice_host_addresses": _text_list,
    "ice_servers": _ice_servers,
    "max_ws_message_bytes": _bounded_int(4096, 16 * 1024 * 1024),
    "hello_timeout_s": _positive_number,
    "max_on_stage": _bounded_int(1, 16),
    "log_level": _log_level,
    "debug_loggers": _text_list,
    "web_root": _path,
    "recordings_dir": _optional_path,
    "recordings_max_age_days": _bounded_int(0, 100 * 366),
    "recordings_max_bytes": _bounded_int(0, 2**62),
}
assert set(_PARSERS) == set(FIELD_NAMES), "every setting needs a parser"


def _check_consistency(settings: Settings) -> None:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ValueError("settings tls_cert and tls_key must be given together")
    if settings.tls_self_signed and settings.tls_cert is not None:
        raise ValueError("settings tls_self_signed and tls_cert exclude each other")
