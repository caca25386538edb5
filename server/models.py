"""The school's records: plain frozen dataclasses with their JSON shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

RoomKind = Literal["lecture", "classroom"]
ROOM_KINDS: tuple[RoomKind, ...] = ("lecture", "classroom")
ROOM_KIND_NOUNS: dict[str, str] = {"lecture": "a lecture room", "classroom": "a classroom"}

SessionStatus = Literal["scheduled", "live", "ended"]
SESSION_STATUSES: tuple[SessionStatus, ...] = ("scheduled", "live", "ended")


@dataclass(frozen=True)
class School:
    id: str
    name: str
    region: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Room:
    id: str
    school_id: str
    name: str
    kind: RoomKind

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Pairing:
    """One lecture room streams to N classrooms; a classroom has at most one."""

    id: str
    lecture_room_id: str
    classroom_room_id: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClassSession:
    """One lesson of a lecture room. Times are ISO-8601 UTC strings (``...Z``)."""

    id: str
    lecture_room_id: str
    title: str
    subject: str
    teacher_name: str
    scheduled_at: str | None
    started_at: str | None
    ended_at: str | None
    status: SessionStatus

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def iso_utc(moment: datetime) -> str:
    """``2025-03-01T08:00:00Z``: second precision, always UTC."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC)
