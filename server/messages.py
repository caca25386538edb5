"""Signaling messages: parsing and checking client messages, no I/O.

Every client message is a JSON object with a ``type``; its fields are checked
against ``SCHEMAS`` (unknown fields are ignored, so clients may add their
own). Anything wrong raises ``SignalError`` with the code and exact message
the client gets in its ``error`` message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

ErrorCode = Literal[
    "bad_message",
    "unknown_type",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "no_session",
    "not_joined",
    "bad_sdp",
    "too_large",
    "internal",
]

RequestId = str | int | float

FieldKind = Literal["string", "object", "string_list", "tracks", "boolean", "mute_source"]

# type -> field -> (kind, required)
SCHEMAS: dict[str, dict[str, tuple[FieldKind, bool]]] = {
    "hello": {"token": ("string", True), "name": ("string", False)},
    "ping": {},
    "start_session": {
        "session_id": ("string", False),
        "title": ("string", False),
        "subject": ("string", False),
        "record": ("boolean", False),
    },
    "end_session": {},
    "join": {"session_id": ("string", False)},
    "leave": {},
    "publish": {"sdp": ("string", True), "tracks": ("tracks", True)},
    "unpublish": {"producer_id": ("string", True)},
    "answer": {"sdp": ("string", True)},
    "subscribe": {"producer_ids": ("string_list", True)},
    "unsubscribe": {"producer_ids": ("string_list", True)},
    "raise_hand": {},
    "lower_hand": {"participant_id": ("string", False)},
    "lower_all_hands": {},
    "stage": {"participant_id": ("string", True)},
    "unstage": {"participant_id": ("string", True)},
    "mute": {
        "participant_id": ("string", False),
        "source": ("mute_source", True),
        "muted": ("boolean", True),
    },
}

SOURCES = ("camera", "mic", "courseware")
MUTE_SOURCES = ("mic", "camera")  # what a mute turns off: the mic, or the camera
MAX_LAYER = 2  # layers of one source: 0 = full resolution, 1, 2 = lower


class SignalError(Exception):
    """An ``error`` message for the client: ``code``, exact ``message``, ``re``."""

    def __init__(self, code: ErrorCode, message: str, re: RequestId | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.re = re

    def to_json(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message, "re": self.re}


@dataclass(frozen=True)
class Message:
    type: str
    re: RequestId | None  # the client's ``id``, echoed as ``re`` in the reply
    fields: dict[str, Any]  # the checked fields; absent optional ones are None


def check_size(text: str, limit: int) -> None:
    size = len(text.encode("utf-8")) if len(text) * 4 > limit else len(text)
    if size > limit:
        raise SignalError("too_large", f"message is {size} bytes; the limit is {limit}")


def parse(text: str) -> Message:
    """Parse and check one text frame."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise SignalError("bad_message", "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise SignalError("bad_message", "message must be a JSON object")
    re = data.get("id")
    if re is not None and (isinstance(re, bool) or not isinstance(re, (str, int, float))):
        raise SignalError("bad_message", "field 'id' must be a string or a number")
    kind = data.get("type")
    if kind is None:
        raise SignalError("bad_message", "field 'type' is required", re)
    if not isinstance(kind, str):
        raise SignalError("bad_message", "field 'type' must be a string", re)
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise SignalError("unknown_type", f"unknown message type {kind!r}", re)
    fields: dict[str, Any] = {}
    for name, (field_kind, required) in schema.items():
        value = data.get(name)
        if value is None:
            if required:
                raise SignalError("bad_message", f"field '{name}' is required", re)
            fields[name] = None
            continue
        problem = _check(field_kind, name, value)
        if problem is not None:
            raise SignalError("bad_message", problem, re)
        fields[name] = value
    return Message(type=kind, re=re, fields=fields)


def _check(kind: FieldKind, name: str, value: Any) -> str | None:
    """None if ``value`` fits ``kind``, else the exact problem."""
    if kind == "string":
        return None if isinstance(value, str) else f"field '{name}' must be a string"
    if kind == "object":
        return None if isinstance(value, dict) else f"field '{name}' must be an object"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"field '{name}' must be a boolean"
    if kind == "mute_source":
        if value in MUTE_SOURCES:
            return None
        return f"field '{name}' must be one of {', '.join(MUTE_SOURCES)}"
    if kind == "string_list":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return None
        return f"field '{name}' must be a list of strings"
    return _check_tracks(name, value)


def _check_tracks(name: str, value: Any) -> str | None:
    if not isinstance(value, dict) or not value:
        return f"field '{name}' must be a non-empty object mapping each mid to {{source}}"
    for mid, track in value.items():
        where = f"{name}[{mid!r}]"
        if not isinstance(track, dict):
            return f'{where} must be an object like {{"source": "camera"}}'
        if track.get("source") not in SOURCES:
            return f"{where}.source must be one of {', '.join(SOURCES)}"
        layer = track.get("layer")
        if layer is not None and (
            isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer <= MAX_LAYER
        ):
            return f"{where}.layer must be an integer from 0 to {MAX_LAYER}"
    return None
