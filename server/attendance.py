"""Attendance as the API shows it (docs/protocol.md, AttendanceRecord and
RoomAttendance): the JSON of one record, the per-room summary, the CSV.

Pure functions: no I/O, no clock; ``now`` (an aware datetime) is passed in
and is where a record still open stops counting.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .models import AttendanceRecord, ClassSession, parse_iso

CSV_COLUMNS = (
    "session_id",
    "session_title",
    "school",
    "room",
    "role",
    "name",
    "joined_at",
    "left_at",
    "left_reason",
    "connected_s",
    "room_connected_s",
)
BOM = "\ufeff"
# A text cell starting with one of these is a formula to a spreadsheet program
# (display names come from the clients): such a cell gets a leading "'".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _interval(record: AttendanceRecord, now: datetime) -> tuple[datetime, datetime]:
    """(joined, left or now), never negative."""
    start = parse_iso(record.joined_at)
    end = parse_iso(record.left_at) if record.left_at is not None else now
    return start, max(start, end)


def _seconds(total: float) -> float:
    return round(total, 1)


def connected_seconds(record: AttendanceRecord, now: datetime) -> float:
    start, end = _interval(record, now)
    return _seconds((end - start).total_seconds())


def union_seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    """The time covered by the union of these intervals (overlaps once)."""
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = (start, end)
        elif end > current[1]:
            current = (current[0], end)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return _seconds(total)


def record_json(record: AttendanceRecord, now: datetime) -> dict[str, Any]:
    """The AttendanceRecord shape; ``connected_s`` counts to ``now`` while open."""
    return {
        "id": record.id,
        "session_id": record.session_id,
        "participant_id": record.participant_id,
        "room_id": record.room_id,
        "room_name": record.room_name,
        "school_id": record.school_id,
        "school_name": record.school_name,
        "role": record.role,
        "name": record.name,
        "joined_at": record.joined_at,
        "left_at": record.left_at,
        "left_reason": record.left_reason,
        "connected_s": connected_seconds(record, now),
    }


def summarize(records: Sequence[AttendanceRecord], now: datetime) -> list[dict[str, Any]]:
    """One RoomAttendance per room, rooms in the order they first joined."""
    by_room: dict[str, list[AttendanceRecord]] = {}
    for record in sorted(records, key=lambda r: r.joined_at):  # stable: ties keep their order
        by_room.setdefault(record.room_id, []).append(record)
    rooms = []
    for room_id, mine in by_room.items():
        first = mine[0]
        open_now = any(r.left_at is None for r in mine)
        rooms.append(
            {
                "room_id": room_id,
                "room_name": first.room_name,
                "school_id": first.school_id,
                "school_name": first.school_name,
                "role": first.role,
                "joins": len(mine),
                "first_joined_at": first.joined_at,
                "last_left_at": None
                if open_now
                else max(r.left_at for r in mine if r.left_at is not None),
                "connected_now": open_now,
                "connected_s": union_seconds(_interval(r, now) for r in mine),
            }
        )
    return rooms


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(session: ClassSession, records: Sequence[AttendanceRecord], now: datetime) -> str:
    """The records as CSV text: a BOM (so spreadsheet programs read UTF-8),
    the header, one row per record in the given order. ``room_connected_s``
    repeats the room's union time on each of its rows."""
    room_totals = {room["room_id"]: room["connected_s"] for room in summarize(records, now)}
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow(
            (
                session.id,
                _cell(session.title),
                _cell(record.school_name),
                _cell(record.room_name),
                record.role,
                _cell(record.name),
                record.joined_at,
                record.left_at or "",
                record.left_reason or "",
                f"{connected_seconds(record, now):.1f}",
                f"{room_totals[record.room_id]:.1f}",
            )
        )
    return out.getvalue()
