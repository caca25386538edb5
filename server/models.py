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
    # Consent: a recorded lesson's tracks are kept in the library (on by default).
    record: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


RecordingStatus = Literal["recording", "complete", "recovered"]
RECORDING_STATUSES: tuple[RecordingStatus, ...] = ("recording", "complete", "recovered")


@dataclass(frozen=True)
class RecordingEntry:
    """One recorded lesson in the library index (one row per session; the
    tracks are in its directory's manifest.json). Times are ISO-8601 UTC with
    milliseconds; names are those of when the lesson was recorded."""

    session_id: str
    lecture_room_id: str
    room_name: str
    school_id: str
    school_name: str
    title: str
    subject: str
    teacher_name: str
    started_at: str
    ended_at: str | None
    status: RecordingStatus
    duration_s: float
    bytes: int
    tracks: int
    dir: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["id"] = self.session_id
        del data["dir"]  # a server path: not the client's business
        return data


@dataclass(frozen=True)
class AttendanceRecord:
    """One join of a teacher or classroom to a class session, as stored, with
    its room's and school's names joined in when listed (they are the names
    of now: a renamed room shows its new name). Times are ISO-8601 UTC with
    milliseconds (``iso_utc_ms``); ``seen_at`` is the last time the server saw
    the participant connected (the heartbeat), ``left_at``/``left_reason``
    are None while connected. The JSON shape (with ``connected_s``) is
    ``server.attendance.record_json``."""

    id: str
    session_id: str
    participant_id: str
    room_id: str
    room_name: str
    school_id: str
    school_name: str
    role: str
    name: str
    joined_at: str
    seen_at: str
    left_at: str | None
    left_reason: str | None


def iso_utc(moment: datetime) -> str:
    """``2025-03-01T08:00:00Z``: second precision, always UTC."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc_ms(moment: datetime) -> str:
    """``2025-03-01T08:00:00.250Z``: millisecond precision (truncated), always
    UTC. Fixed width, so these strings sort as the times do."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """The aware datetime of an ISO-8601 string with a zone (``...Z`` too)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return moment


def utc_now() -> datetime:
    return datetime.now(UTC)
