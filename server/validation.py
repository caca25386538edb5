"""Small validators for JSON request bodies and query strings.

Every failure is an ``Invalid(field, message)`` with an exact message, e.g.
``field 'name' is required``. Unknown fields are refused, so a typo is an
error rather than a silently ignored value. ``null`` counts as absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from .errors import BadRequest, Invalid
from .models import iso_utc

S = TypeVar("S", bound=str)

MAX_TEXT_CHARS = 200


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("request body is not valid JSON") from None


class Body:
    """A JSON object body, read field by field."""

    def __init__(self, data: Any, allowed: Iterable[str]) -> None:
        if not isinstance(data, dict):
            raise Invalid(None, "request body must be a JSON object")
        allowed_set = set(allowed)
        for key in data:
            if key not in allowed_set:
                raise Invalid(key, f"field '{key}' is not allowed")
        self._data: dict[str, Any] = data

    def has(self, name: str) -> bool:
        return self._data.get(name) is not None

    def text(self, name: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
        value = self._data.get(name)
        if value is None:
            raise Invalid(name, f"field '{name}' is required")
        return check_text(name, value, max_chars=max_chars, label="field")

    def optional_text(
        self, name: str, *, default: str | None = None, max_chars: int = MAX_TEXT_CHARS
    ) -> str | None:
        if not self.has(name):
            return default
        return self.text(name, max_chars=max_chars)

    def choice(self, name: str, choices: tuple[S, ...]) -> S:
        value = self._data.get(name)
        if value is None:
            raise Invalid(name, f"field '{name}' is required")
        return check_choice(name, value, choices, label="field")

    def optional_int(self, name: str, *, low: int, high: int) -> int | None:
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(name, f"field '{name}' must be an integer")
        if not low <= value <= high:
            raise Invalid(name, f"field '{name}' must be between {low} and {high}")
        return value

    def optional_bool(self, name: str, *, default: bool) -> bool:
        value = self._data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise Invalid(name, f"field '{name}' must be a boolean")
        return value

    def optional_time(self, name: str) -> str | None:
        """An ISO-8601 time with a timezone, normalized to ``...Z`` UTC."""
        value = self._data.get(name)
        if value is None:
            return None
        message = (
            f"field '{name}' must be an ISO-8601 time with a timezone, like 2025-03-01T08:00:00Z"
        )
        if not isinstance(value, str):
            raise Invalid(name, message)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise Invalid(name, message) from None
        if moment.tzinfo is None:
            raise Invalid(name, message)
        return iso_utc(moment)


def check_text(name: str, value: Any, *, max_chars: int, label: str) -> str:
    if not isinstance(value, str):
        raise Invalid(name, f"{label} '{name}' must be a string")
    value = value.strip()
    if not value:
        raise Invalid(name, f"{label} '{name}' must not be empty")
    if len(value) > max_chars:
        raise Invalid(name, f"{label} '{name}' must be at most {max_chars} characters")
    return value


def check_choice(name: str, value: Any, choices: tuple[S, ...], *, label: str) -> S:
    for choice in choices:
        if value == choice:
            return choice
    raise Invalid(name, f"{label} '{name}' must be one of {', '.join(choices)}")


def query_choice(query: Mapping[str, str], name: str, choices: tuple[S, ...]) -> S | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    return check_choice(name, value, choices, label="query")


def query_text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    return value if value else None
