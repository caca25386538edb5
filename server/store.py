"""Where the school's records live: the ``Store`` interface and its SQLite
implementation.

``SqliteStore`` keeps everything in one file, ``data_dir/synclass.db`` (WAL
mode). sqlite3 blocks, so every call runs on one dedicated thread that owns
the connection: calls are serialized, which also makes each check-then-write
method atomic with respect to the others.

The schema is versioned (``schema_version``); ``MIGRATIONS[n]`` brings a
database from version n to n+1 and runs once, in a transaction, on open. New
records (attendance, the recordings index) are new migrations appended there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .errors import Conflict, Invalid, NotFound
from .ids import new_id
from .models import (
    ROOM_KIND_NOUNS,
    AttendanceRecord,
    ClassSession,
    Pairing,
    RecordingEntry,
    RecordingStatus,
    Room,
    RoomKind,
    School,
    SessionStatus,
    iso_utc,
    iso_utc_ms,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RecordingQuery:
    """A library search; every field narrows it, None does not. ``since``/
    ``until`` are ISO-8601 UTC strings (``since <= started_at < until``);
    ``teacher``, ``subject`` and ``text`` match parts of words, case aside;
    ``school_id`` matches the lecture room's school and the schools of the
    classrooms that attended."""

    school_id: str | None = None
    lecture_room_id: str | None = None
    teacher: str | None = None
    subject: str | None = None
    since: str | None = None
    until: str | None = None
    text: str | None = None
    status: RecordingStatus | None = None
    limit: int = 200

DB_FILE_NAME = "synclass.db"

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: schools, rooms, pairings, class sessions.
    """
    CREATE TABLE schools (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        region TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        school_id TEXT NOT NULL REFERENCES schools(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('lecture', 'classroom'))
    );
    CREATE INDEX rooms_by_school ON rooms(school_id);
    CREATE TABLE pairings (
        id TEXT PRIMARY KEY,
        lecture_room_id TEXT NOT NULL REFERENCES rooms(id),
        classroom_room_id TEXT NOT NULL UNIQUE REFERENCES rooms(id)
    );
    CREATE INDEX pairings_by_lecture_room ON pairings(lecture_room_id);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        lecture_room_id TEXT NOT NULL REFERENCES rooms(id),
        title TEXT NOT NULL,
        subject TEXT NOT NULL,
        teacher_name TEXT NOT NULL,
        scheduled_at TEXT,
        started_at TEXT,
        ended_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('scheduled', 'live', 'ended'))
    );
    CREATE INDEX sessions_by_room ON sessions(lecture_room_id, status);
    -- at most one live session per lecture room
    CREATE UNIQUE INDEX sessions_one_live ON sessions(lecture_room_id) WHERE status = 'live';
    """,
    # 1 -> 2: attendance, one row per join of a teacher or classroom. Times are
    # ISO-8601 UTC with milliseconds (fixed width: they sort as text). room_id
    # does not reference rooms: a classroom may be deleted after its lessons,
    # and its attendance stays as the school's record.
    """
    CREATE TABLE attendance (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        participant_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('teacher', 'classroom')),
        name TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        left_at TEXT,
        left_reason TEXT
    );
    CREATE INDEX attendance_by_session ON attendance(session_id, joined_at);
    CREATE INDEX attendance_open ON attendance(left_at) WHERE left_at IS NULL;
    """,
    # 2 -> 3: consent to record (per session, on by default) and the recordings
    # index, one row per recorded lesson, with the names of when it was recorded
    # (the library lists and searches it without opening manifests). Times as
    # in attendance; session_id does not reference sessions: the index may be
    # rebuilt from manifests.
    """
    ALTER TABLE sessions ADD COLUMN record INTEGER NOT NULL DEFAULT 1 CHECK (record IN (0, 1));
    CREATE TABLE recordings (
        session_id TEXT PRIMARY KEY,
        lecture_room_id TEXT NOT NULL,
        room_name TEXT NOT NULL,
        school_id TEXT NOT NULL,
        school_name TEXT NOT NULL,
        title TEXT NOT NULL,
        subject TEXT NOT NULL,
        teacher_name TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'recovered')),
        duration_s REAL NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        tracks INTEGER NOT NULL DEFAULT 0,
        dir TEXT NOT NULL
    );
    CREATE INDEX recordings_by_start ON recordings(started_at);
    CREATE INDEX recordings_by_status ON recordings(status);
    """,
)

ATTENDANCE_ROLES = ("teacher", "classroom")


class Store(Protocol):
    """The records. Every method raises ``NotFound``/``Conflict``/``Invalid``
    with a message fit for the client."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_school(self, name: str, region: str) -> School: ...

    async def get_school(self, school_id: str) -> School: ...

    async def list_schools(self) -> list[School]: ...

    async def update_school(
        self, school_id: str, *, name: str | None = None, region: str | None = None
    ) -> School: ...

    async def delete_school(self, school_id: str) -> None: ...

    async def create_room(self, school_id: str, name: str, kind: RoomKind) -> Room: ...

    async def get_room(self, room_id: str) -> Room: ...

    async def list_rooms(
        self, *, school_id: str | None = None, kind: RoomKind | None = None
    ) -> list[Room]: ...

    async def update_room(self, room_id: str, *, name: str | None = None) -> Room: ...

    async def delete_room(self, room_id: str) -> None: ...

    async def create_pairing(self, lecture_room_id: str, classroom_room_id: str) -> Pairing: ...

    async def get_pairing(self, pairing_id: str) -> Pairing: ...

    async def list_pairings(
        self, *, lecture_room_id: str | None = None, classroom_room_id: str | None = None
    ) -> list[Pairing]: ...

    async def delete_pairing(self, pairing_id: str) -> None: ...

    async def create_session(
        self,
        lecture_room_id: str,
        title: str,
        subject: str,
        teacher_name: str,
        scheduled_at: str | None,
        record: bool = True,
    ) -> ClassSession: ...

    async def get_session(self, session_id: str) -> ClassSession: ...

    async def list_sessions(
        self, *, status: SessionStatus | None = None, lecture_room_id: str | None = None
    ) -> list[ClassSession]: ...

    async def live_session_of(self, lecture_room_id: str) -> ClassSession | None: ...

    async def start_session(self, session_id: str, now: datetime) -> ClassSession: ...

    async def end_session(self, session_id: str, now: datetime) -> ClassSession: ...

    # attendance (docs/protocol.md, AttendanceRecord)

    async def attendance_join(
        self,
        session_id: str,
        participant_id: str,
        room_id: str,
        role: str,
        name: str,
        at: datetime,
    ) -> str:
        """A new open record (``seen_at`` = ``at``); its id. ``role`` is
        ``teacher`` or ``classroom`` (admins are not recorded). NotFound for
        an unknown session."""
        ...

    async def attendance_leave(self, record_id: str, at: datetime, reason: str) -> None:
        """Close a record if it is still open; otherwise (or for an unknown
        id) do nothing."""
        ...

    async def attendance_touch(self, record_ids: list[str], at: datetime) -> None:
        """Heartbeat: the still-open ones of these records were seen at ``at``."""
        ...

    async def close_open_attendance(self, reason: str = "server restarted") -> int:
        """On startup: close every open record at its ``seen_at``; how many."""
        ...

    async def list_attendance(self, session_id: str) -> list[AttendanceRecord]:
        """A session's records in join order. NotFound for an unknown session."""
        ...

    # the recordings index (docs/protocol.md, Recording)

    async def put_recording(self, entry: RecordingEntry) -> None:
        """Insert or replace the lesson's row."""
        ...

    async def get_recording(self, session_id: str) -> RecordingEntry:
        """NotFound ``recording X not found``."""
        ...

    async def list_recordings(self, query: RecordingQuery) -> list[RecordingEntry]:
        """Newest first (by ``started_at``)."""
        ...

    async def delete_recording(self, session_id: str) -> None:
        """Forget the row (nothing happens for an unknown id)."""
        ...


class SqliteStore:
    """``Store`` on one SQLite file; see the module docstring."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_FILE_NAME
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        try:
            await self._call(self._open)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 5000")
        self._db = db
        self._migrate(db)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {version} is newer than this synclass "
                f"({len(MIGRATIONS)}); upgrade synclass"
            )
        for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("- migrating %s to schema version %d", db, target)
            db.execute("BEGIN")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` in one transaction on the store thread."""
        return await self._call(self._in_transaction, fn, *args)

    def _in_transaction(self, fn: Callable[..., T], *args: Any) -> T:
        db = self._db
        if db is None:
            raise RuntimeError("store is not open")
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db, *args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    # --- schools ------------------------------------------------------------

    async def create_school(self, name: str, region: str) -> School:
        school = School(id=new_id(), name=name, region=region)
        await self._tx(_insert, "schools", school.to_json())
        return school

    async def get_school(self, school_id: str) -> School:
        return await self._tx(_get_school, school_id)

    async def list_schools(self) -> list[School]:
        rows = await self._tx(_select, "SELECT * FROM schools ORDER BY rowid", ())
        return [School(**row) for row in rows]

    async def update_school(
        self, school_id: str, *, name: str | None = None, region: str | None = None
    ) -> School:
        def update(db: sqlite3.Connection) -> School:
            _get_school(db, school_id)
            _update(db, "schools", school_id, {"name": name, "region": region})
            return _get_school(db, school_id)

        return await self._tx(update)

    async def delete_school(self, school_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            _get_school(db, school_id)
            (count,) = db.execute(
                "SELECT COUNT(*) FROM rooms WHERE school_id = ?", (school_id,)
            ).fetchone()
            if count:
                raise Conflict(
                    f"school {school_id} still has {_plural(count, 'room')}; delete them first"
                )
            db.execute("DELETE FROM schools WHERE id = ?", (school_id,))

        await self._tx(delete)

    # --- rooms --------------------------------------------------------------

    async def create_room(self, school_id: str, name: str, kind: RoomKind) -> Room:
        room = Room(id=new_id(), school_id=school_id, name=name, kind=kind)

        def create(db: sqlite3.Connection) -> None:
            _get_school(db, school_id)
            _insert(db, "rooms", room.to_json())

        await self._tx(create)
        return room

    async def get_room(self, room_id: str) -> Room:
        return await self._tx(_get_room, room_id)

    async def list_rooms(
        self, *, school_id: str | None = None, kind: RoomKind | None = None
    ) -> list[Room]:
        sql, params = _where("SELECT * FROM rooms", {"school_id": school_id, "kind": kind})
        rows = await self._tx(_select, sql + " ORDER BY rowid", params)
        return [Room(**row) for row in rows]

    async def update_room(self, room_id: str, *, name: str | None = None) -> Room:
        def update(db: sqlite3.Connection) -> Room:
            _get_room(db, room_id)
            _update(db, "rooms", room_id, {"name": name})
            return _get_room(db, room_id)

        return await self._tx(update)

    async def delete_room(self, room_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            _get_room(db, room_id)
            row = db.execute(
                "SELECT id FROM pairings WHERE lecture_room_id = ? OR classroom_room_id = ?"
                " ORDER BY rowid LIMIT 1",
                (room_id, room_id),
            ).fetchone()
            if row is not None:
                raise Conflict(f"room {room_id} is in pairing {row[0]}; delete the pairing first")
            (count,) = db.execute(
                "SELECT COUNT(*) FROM sessions WHERE lecture_room_id = ?", (room_id,)
            ).fetchone()
            if count:
                raise Conflict(
                    f"room {room_id} has {_plural(count, 'class session')}, "
                    "which are kept as the school's records"
                )
            db.execute("DELETE FROM rooms WHERE id = ?", (room_id,))

        await self._tx(delete)

    # --- pairings -----------------------------------------------------------

    async def create_pairing(self, lecture_room_id: str, classroom_room_id: str) -> Pairing:
        pairing = Pairing(
            id=new_id(), lecture_room_id=lecture_room_id, classroom_room_id=classroom_room_id
        )

        def create(db: sqlite3.Connection) -> None:
            _require_kind(_get_room(db, lecture_room_id), "lecture", "lecture_room_id")
            _require_kind(_get_room(db, classroom_room_id), "classroom", "classroom_room_id")
            row = db.execute(
                "SELECT id, lecture_room_id FROM pairings WHERE classroom_room_id = ?",
                (classroom_room_id,),
            ).fetchone()
            if row is not None:
                raise Conflict(
                    f"classroom {classroom_room_id} is already paired with lecture room "
                    f"{row['lecture_room_id']} (pairing {row['id']})"
                )
            _insert(db, "pairings", pairing.to_json())

        await self._tx(create)
        return pairing

    async def get_pairing(self, pairing_id: str) -> Pairing:
        def get(db: sqlite3.Connection) -> Pairing:
            return Pairing(**_get_row(db, "pairings", pairing_id, "pairing"))

        return await self._tx(get)

    async def list_pairings(
        self, *, lecture_room_id: str | None = None, classroom_room_id: str | None = None
    ) -> list[Pairing]:
        sql, params = _where(
            "SELECT * FROM pairings",
            {"lecture_room_id": lecture_room_id, "classroom_room_id": classroom_room_id},
        )
        rows = await self._tx(_select, sql + " ORDER BY rowid", params)
        return [Pairing(**row) for row in rows]

    async def delete_pairing(self, pairing_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            _get_row(db, "pairings", pairing_id, "pairing")
            db.execute("DELETE FROM pairings WHERE id = ?", (pairing_id,))

        await self._tx(delete)

    # --- class sessions -----------------------------------------------------

    async def create_session(
        self,
        lecture_room_id: str,
        title: str,
        subject: str,
        teacher_name: str,
        scheduled_at: str | None,
        record: bool = True,
    ) -> ClassSession:
        session = ClassSession(
            id=new_id(),
            lecture_room_id=lecture_room_id,
            title=title,
            subject=subject,
            teacher_name=teacher_name,
            scheduled_at=scheduled_at,
            started_at=None,
            ended_at=None,
            status="scheduled",
            record=record,
        )

        def create(db: sqlite3.Connection) -> None:
            _require_kind(_get_room(db, lecture_room_id), "lecture", "lecture_room_id")
            _insert(db, "sessions", {**session.to_json(), "record": int(record)})

        await self._tx(create)
        return session

    async def get_session(self, session_id: str) -> ClassSession:
        return await self._tx(_get_session, session_id)

    async def list_sessions(
        self, *, status: SessionStatus | None = None, lecture_room_id: str | None = None
    ) -> list[ClassSession]:
        sql, params = _where(
            "SELECT * FROM sessions", {"status": status, "lecture_room_id": lecture_room_id}
        )
        rows = await self._tx(_select, sql + " ORDER BY rowid", params)
        return [_session(row) for row in rows]

    async def live_session_of(self, lecture_room_id: str) -> ClassSession | None:
        rows = await self._tx(
            _select,
            "SELECT * FROM sessions WHERE lecture_room_id = ? AND status = 'live'",
            (lecture_room_id,),
        )
        return _session(rows[0]) if rows else None

    async def start_session(self, session_id: str, now: datetime) -> ClassSession:
        def start(db: sqlite3.Connection) -> ClassSession:
            session = _get_session(db, session_id)
            if session.status == "live":
                raise Conflict(f"session {session_id} is already live")
            if session.status == "ended":
                raise Conflict(f"session {session_id} has ended")
            row = db.execute(
                "SELECT id FROM sessions WHERE lecture_room_id = ? AND status = 'live'",
                (session.lecture_room_id,),
            ).fetchone()
            if row is not None:
                raise Conflict(
                    f"lecture room {session.lecture_room_id} already has a live session {row[0]}"
                )
            _update(db, "sessions", session_id, {"status": "live", "started_at": iso_utc(now)})
            return _get_session(db, session_id)

        return await self._tx(start)

    async def end_session(self, session_id: str, now: datetime) -> ClassSession:
        def end(db: sqlite3.Connection) -> ClassSession:
            session = _get_session(db, session_id)
            if session.status != "live":
                raise Conflict(f"session {session_id} is not live (it is {session.status})")
            _update(db, "sessions", session_id, {"status": "ended", "ended_at": iso_utc(now)})
            return _get_session(db, session_id)

        return await self._tx(end)

    # --- attendance -----------------------------------------------------------

    async def attendance_join(
        self,
        session_id: str,
        participant_id: str,
        room_id: str,
        role: str,
        name: str,
        at: datetime,
    ) -> str:
        if role not in ATTENDANCE_ROLES:
            raise ValueError(f"attendance is kept for teachers and classrooms, not {role!r}")
        record_id = new_id()
        when = iso_utc_ms(at)

        def join(db: sqlite3.Connection) -> None:
            _get_session(db, session_id)
            _insert(
                db,
                "attendance",
                {
                    "id": record_id,
                    "session_id": session_id,
                    "participant_id": participant_id,
                    "room_id": room_id,
                    "role": role,
                    "name": name,
                    "joined_at": when,
                    "seen_at": when,
                    "left_at": None,
                    "left_reason": None,
                },
            )

        await self._tx(join)
        return record_id

    async def attendance_leave(self, record_id: str, at: datetime, reason: str) -> None:
        when = iso_utc_ms(at)

        def leave(db: sqlite3.Connection) -> None:
            # never before the join, however the clock stepped
            db.execute(
                "UPDATE attendance SET left_at = MAX(joined_at, ?), left_reason = ?,"
                " seen_at = MAX(seen_at, ?) WHERE id = ? AND left_at IS NULL",
                (when, reason, when, record_id),
            )

        await self._tx(leave)

    async def attendance_touch(self, record_ids: list[str], at: datetime) -> None:
        if not record_ids:
            return
        when = iso_utc_ms(at)

        def touch(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE attendance SET seen_at = MAX(seen_at, ?) WHERE id = ? AND left_at IS NULL",
                [(when, record_id) for record_id in record_ids],
            )

        await self._tx(touch)

    async def close_open_attendance(self, reason: str = "server restarted") -> int:
        def close_open(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE attendance SET left_at = seen_at, left_reason = ? WHERE left_at IS NULL",
                (reason,),
            )
            return cursor.rowcount

        return await self._tx(close_open)

    async def list_attendance(self, session_id: str) -> list[AttendanceRecord]:
        def list_(db: sqlite3.Connection) -> list[AttendanceRecord]:
            _get_session(db, session_id)
            rows = _select(
                db,
                # rooms and schools may be gone (a deleted classroom): names empty
                "SELECT a.id, a.session_id, a.participant_id, a.room_id,"
                " COALESCE(r.name, '') AS room_name, COALESCE(r.school_id, '') AS school_id,"
                " COALESCE(s.name, '') AS school_name, a.role, a.name, a.joined_at,"
                " a.seen_at, a.left_at, a.left_reason"
                " FROM attendance a LEFT JOIN rooms r ON r.id = a.room_id"
                " LEFT JOIN schools s ON s.id = r.school_id"
                " WHERE a.session_id = ? ORDER BY a.joined_at, a.rowid",
                (session_id,),
            )
            return [AttendanceRecord(**row) for row in rows]

        return await self._tx(list_)


    # --- the recordings index ------------------------------------------------------

    async def put_recording(self, entry: RecordingEntry) -> None:
        def put(db: sqlite3.Connection) -> None:
            values = dataclasses.asdict(entry)
            columns = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            db.execute(
                f"INSERT OR REPLACE INTO recordings ({columns}) VALUES ({marks})",
                tuple(values.values()),
            )

        await self._tx(put)

    async def get_recording(self, session_id: str) -> RecordingEntry:
        def get(db: sqlite3.Connection) -> RecordingEntry:
            row = db.execute(
                "SELECT * FROM recordings WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"recording {session_id} not found")
            return RecordingEntry(**dict(row))

        return await self._tx(get)

    async def list_recordings(self, query: RecordingQuery) -> list[RecordingEntry]:
        where, params = recording_where(query)
        rows = await self._tx(
            _select,
            f"SELECT * FROM recordings{where} ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (*params, query.limit),
        )
        return [RecordingEntry(**row) for row in rows]

    async def delete_recording(self, session_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM recordings WHERE session_id = ?", (session_id,))

        await self._tx(delete)


# --- helpers run on the store thread ----------------------------------------


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _insert(db: sqlite3.Connection, table: str, values: dict[str, Any]) -> None:
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))


def _update(db: sqlite3.Connection, table: str, row_id: str, values: dict[str, Any]) -> None:
    """Set the columns whose value is not None."""
    changes = {k: v for k, v in values.items() if v is not None}
    if not changes:
        return
    assignments = ", ".join(f"{column} = ?" for column in changes)
    db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*changes.values(), row_id))


def _select(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [dict(row) for row in db.execute(sql, params)]


def _where(sql: str, filters: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return sql, ()
    return sql + " WHERE " + " AND ".join(f"{k} = ?" for k in used), tuple(used.values())


def _get_row(db: sqlite3.Connection, table: str, row_id: str, noun: str) -> dict[str, Any]:
    row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
    if row is None:
        raise NotFound(f"{noun} {row_id} not found")
    return dict(row)


def _get_school(db: sqlite3.Connection, school_id: str) -> School:
    return School(**_get_row(db, "schools", school_id, "school"))


def _get_room(db: sqlite3.Connection, room_id: str) -> Room:
    return Room(**_get_row(db, "rooms", room_id, "room"))


def _session(row: dict[str, Any]) -> ClassSession:
    return ClassSession(**{**row, "record": bool(row.get("record", 1))})


def _get_session(db: sqlite3.Connection, session_id: str) -> ClassSession:
    return _session(_get_row(db, "sessions", session_id, "session"))


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere (``\\`` escapes % and _)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# the attendance of a school's classrooms makes a lesson that school's too
_SCHOOL_ATTENDED = (
    "session_id IN (SELECT a.session_id FROM attendance a JOIN rooms r ON r.id = a.room_id"
    " WHERE r.school_id = ?)"
)
_TEXT_COLUMNS = ("title", "subject", "teacher_name", "room_name", "school_name")


def recording_where(query: RecordingQuery) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (``""`` when nothing narrows) and its parameters."""
    parts: list[str] = []
    params: list[Any] = []
    if query.school_id is not None:
        parts.append(f"(school_id = ? OR {_SCHOOL_ATTENDED})")
        params += [query.school_id, query.school_id]
    if query.lecture_room_id is not None:
        parts.append("lecture_room_id = ?")
        params.append(query.lecture_room_id)
    for column, value in (("teacher_name", query.teacher), ("subject", query.subject)):
        if value is not None:
            parts.append(f"{column} LIKE ? ESCAPE '\\'")
            params.append(_like(value))
    if query.since is not None:
        parts.append("started_at >= ?")
        params.append(query.since)
    if query.until is not None:
        parts.append("started_at < ?")
        params.append(query.until)
    if query.status is not None:
        parts.append("status = ?")
        params.append(query.status)
    if query.text is not None:
        likes = " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in _TEXT_COLUMNS)
        parts.append(f"(session_id = ? OR {likes})")
        params += [query.text, *(_like(query.text) for _ in _TEXT_COLUMNS)]
    return (" WHERE " + " AND ".join(parts) if parts else ""), tuple(params)


def _require_kind(room: Room, kind: RoomKind, field: str) -> None:
    if room.kind != kind:
        raise Invalid(
            field, f"room {room.id} is {ROOM_KIND_NOUNS[room.kind]}, not {ROOM_KIND_NOUNS[kind]}"
        )
