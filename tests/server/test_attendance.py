"""Attendance: the store's records (real SQLite in a temp dir), the migration
from a version-1 database, and the pure summary and CSV of server.attendance."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from server.attendance import record_json, summarize, to_csv, union_seconds
from server.errors import NotFound
from server.models import AttendanceRecord, ClassSession, iso_utc_ms
from server.store import MIGRATIONS, SqliteStore

T0 = datetime(2025, 3, 1, 8, 0, 0, 250_000, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return iso_utc_ms(at(seconds))


@dataclass
class Lesson:
    store: SqliteStore
    session: ClassSession
    lecture_id: str
    classroom_id: str
    school_ids: tuple[str, str]


@pytest.fixture
async def lesson(tmp_path: Path) -> AsyncIterator[Lesson]:
    store = SqliteStore(tmp_path)
    await store.open()
    urban = await store.create_school("城区第一小学", "昆明")
    rural = await store.create_school("村小", "禄丰")
    lecture = await store.create_room(urban.id, "101 教室", "lecture")
    classroom = await store.create_room(rural.id, "三年级", "classroom")
    session = await store.create_session(lecture.id, "分数", "数学", "李老师", None)
    yield Lesson(store, session, lecture.id, classroom.id, (urban.id, rural.id))
    await store.close()


# --- time strings ---------------------------------------------------------------


def test_times_are_utc_with_milliseconds_truncated() -> None:
    beijing = datetime(2025, 3, 1, 16, 0, 0, 250_999, tzinfo=timezone(timedelta(hours=8)))
    assert iso_utc_ms(beijing) == "2025-03-01T08:00:00.250Z"
    assert iso_utc_ms(datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)) == "2025-03-01T08:00:00.000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        iso_utc_ms(datetime(2025, 3, 1, 8, 0, 0))


# --- the store ------------------------------------------------------------------


async def test_a_join_is_an_open_record_with_names_joined_in(lesson: Lesson) -> None:
    record_id = await lesson.store.attendance_join(
        lesson.session.id, "p-1", lesson.classroom_id, "classroom", "三年级", at(0)
    )
    assert await lesson.store.list_attendance(lesson.session.id) == [
        AttendanceRecord(
            id=record_id,
            session_id=lesson.session.id,
            participant_id="p-1",
            room_id=lesson.classroom_id,
            room_name="三年级",
            school_id=lesson.school_ids[1],
            school_name="村小",
            role="classroom",
            name="三年级",
            joined_at="2025-03-01T08:00:00.250Z",
            seen_at="2025-03-01T08:00:00.250Z",
            left_at=None,
            left_reason=None,
        )
    ]


async def test_leave_closes_once_and_ignores_unknown_ids(lesson: Lesson) -> None:
    store = lesson.store
    record_id = await store.attendance_join(
        lesson.session.id, "p-1", lesson.lecture_id, "teacher", "李老师", at(0)
    )
    await store.attendance_leave(record_id, at(95.5), "leave")
    await store.attendance_leave(record_id, at(200), "disconnected")  # already closed: no-op
    await store.attendance_leave("no-such-record", at(300), "leave")
    (record,) = await store.list_attendance(lesson.session.id)
    assert (record.left_at, record.left_reason) == ("2025-03-01T08:01:35.750Z", "leave")


async def test_touch_moves_seen_at_of_open_records_only(lesson: Lesson) -> None:
    store = lesson.store
    sid = lesson.session.id
    open_id = await store.attendance_join(sid, "p-1", lesson.lecture_id, "teacher", "李", at(0))
    closed_id = await store.attendance_join(
        sid, "p-2", lesson.classroom_id, "classroom", "三年级", at(1)
    )
    await store.attendance_leave(closed_id, at(5), "disconnected")
    await store.attendance_touch([open_id, closed_id, "unknown"], at(30))
    await store.attendance_touch([], at(40))
    seen = {r.id: (r.seen_at, r.left_at) for r in await store.list_attendance(sid)}
    assert seen == {
        open_id: (iso(30), None),
        closed_id: (iso(5), iso(5)),
    }


async def test_close_open_attendance_ends_records_when_last_seen(lesson: Lesson) -> None:
    store = lesson.store
    sid = lesson.session.id
    crashed = await store.attendance_join(sid, "p-1", lesson.lecture_id, "teacher", "李", at(0))
    left = await store.attendance_join(
        sid, "p-2", lesson.classroom_id, "classroom", "三年级", at(2)
    )
    await store.attendance_touch([crashed, left], at(20))
    await store.attendance_leave(left, at(25), "leave")
    assert await store.close_open_attendance() == 1
    assert await store.close_open_attendance() == 0
    records = {r.id: (r.left_at, r.left_reason) for r in await store.list_attendance(sid)}
    assert records == {crashed: (iso(20), "server restarted"), left: (iso(25), "leave")}


async def test_records_come_in_join_order_not_insertion_order(lesson: Lesson) -> None:
    store = lesson.store
    sid = lesson.session.id
    late = await store.attendance_join(sid, "p-1", lesson.lecture_id, "teacher", "A", at(10))
    early = await store.attendance_join(sid, "p-2", lesson.lecture_id, "teacher", "B", at(5))
    tie = await store.attendance_join(sid, "p-3", lesson.classroom_id, "classroom", "C", at(10))
    other = await store.create_session(lesson.lecture_id, "Other", "", "", None)
    await store.attendance_join(other.id, "p-4", lesson.lecture_id, "teacher", "D", at(0))
    assert [r.id for r in await store.list_attendance(sid)] == [early, late, tie]


async def test_an_unknown_session_is_not_found(lesson: Lesson) -> None:
    with pytest.raises(NotFound, match="^session nope not found$"):
        await lesson.store.list_attendance("nope")
    with pytest.raises(NotFound, match="^session nope not found$"):
        await lesson.store.attendance_join("nope", "p", lesson.lecture_id, "teacher", "x", at(0))


async def test_admins_are_not_recorded(lesson: Lesson) -> None:
    with pytest.raises(ValueError, match="not 'admin'"):
        await lesson.store.attendance_join(lesson.session.id, "p", "*", "admin", "x", at(0))
    assert await lesson.store.list_attendance(lesson.session.id) == []


async def test_records_of_a_deleted_classroom_stay(lesson: Lesson) -> None:
    store = lesson.store
    record_id = await store.attendance_join(
        lesson.session.id, "p", lesson.classroom_id, "classroom", "三年级", at(0)
    )
    await store.delete_room(lesson.classroom_id)
    (record,) = await store.list_attendance(lesson.session.id)
    assert (record.id, record.room_id, record.room_name, record.school_name) == (
        record_id,
        lesson.classroom_id,
        "",
        "",
    )


async def test_records_survive_reopening(lesson: Lesson, tmp_path: Path) -> None:
    record_id = await lesson.store.attendance_join(
        lesson.session.id, "p", lesson.lecture_id, "teacher", "李", at(0)
    )
    before = await lesson.store.list_attendance(lesson.session.id)
    again = SqliteStore(tmp_path)
    await again.open()
    try:
        assert await again.list_attendance(lesson.session.id) == before
        assert before[0].id == record_id
    finally:
        await again.close()


async def test_a_version_1_database_migrates_and_keeps_its_records(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "synclass.db")
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute("INSERT INTO schools VALUES ('s1', 'Urban No. 1', 'Kunming')")
    db.execute("INSERT INTO rooms VALUES ('r1', 's1', 'Room 101', 'lecture')")
    db.execute(
        "INSERT INTO sessions VALUES ('c1', 'r1', 'Fractions', 'Maths', 'Li', NULL,"
        " '2025-02-28T08:00:00Z', '2025-02-28T08:45:00Z', 'ended')"
    )
    db.commit()
    assert "attendance" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    db.close()

    store = SqliteStore(tmp_path)
    await store.open()
    try:
        assert (await store.get_session("c1")).ended_at == "2025-02-28T08:45:00Z"
        assert await store.list_attendance("c1") == []
        record_id = await store.attendance_join("c1", "p", "r1", "teacher", "Li", at(0))
        (record,) = await store.list_attendance("c1")
        assert (record.id, record.room_name, record.school_name) == (
            record_id,
            "Room 101",
            "Urban No. 1",
        )
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / "synclass.db")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]


# --- the pure summary -------------------------------------------------------------


def rec(
    record_id: str,
    room: str,
    joined: float,
    left: float | None,
    *,
    name: str = "x",
    role: str = "classroom",
    reason: str | None = None,
) -> AttendanceRecord:
    return AttendanceRecord(
        id=record_id,
        session_id="sess",
        participant_id=f"p-{record_id}",
        room_id=room,
        room_name=f"name of {room}",
        school_id=f"school of {room}",
        school_name=f"学校 {room}",
        role=role,
        name=name,
        joined_at=iso(joined),
        seen_at=iso(joined if left is None else left),
        left_at=None if left is None else iso(left),
        left_reason=reason if reason is not None else (None if left is None else "leave"),
    )


def test_record_json_counts_closed_records_to_their_leave_and_open_ones_to_now() -> None:
    closed = rec("a", "r1", 0, 61.26, reason="disconnected")
    assert record_json(closed, at(1000)) == {
        "id": "a",
        "session_id": "sess",
        "participant_id": "p-a",
        "room_id": "r1",
        "room_name": "name of r1",
        "school_id": "school of r1",
        "school_name": "学校 r1",
        "role": "classroom",
        "name": "x",
        "joined_at": "2025-03-01T08:00:00.250Z",
        "left_at": "2025-03-01T08:01:01.510Z",
        "left_reason": "disconnected",
        "connected_s": 61.3,
    }
    open_ = rec("b", "r1", 10, None)
    assert record_json(open_, at(70.04))["connected_s"] == 60.0
    assert record_json(open_, at(70.04))["left_at"] is None
    assert record_json(open_, at(5))["connected_s"] == 0.0  # a clock behind the join


def test_a_drop_and_rejoin_is_two_records_and_one_room() -> None:
    records = [
        rec("a", "r1", 0, 100, reason="media connection lost"),
        rec("b", "r1", 130, 400),
    ]
    assert summarize(records, at(10_000)) == [
        {
            "room_id": "r1",
            "room_name": "name of r1",
            "school_id": "school of r1",
            "school_name": "学校 r1",
            "role": "classroom",
            "joins": 2,
            "first_joined_at": iso(0),
            "last_left_at": iso(400),
            "connected_now": False,
            "connected_s": 370.0,  # the 30 s gap does not count
        }
    ]


def test_two_screens_of_one_room_at_once_count_once() -> None:
    records = [rec("a", "r1", 0, 300), rec("b", "r1", 100, 250), rec("c", "r1", 200, 500)]
    (room,) = summarize(records, at(10_000))
    assert (room["joins"], room["connected_s"], room["last_left_at"]) == (3, 500.0, iso(500))


def test_an_open_record_counts_to_now_and_keeps_the_room_connected() -> None:
    records = [rec("a", "r1", 0, 50), rec("b", "r1", 40, None)]
    (room,) = summarize(records, at(100))
    assert room["connected_now"] is True
    assert room["last_left_at"] is None
    assert room["connected_s"] == 100.0
    (later,) = summarize(records, at(160))
    assert later["connected_s"] == 160.0


def test_rooms_come_in_first_join_order_with_their_own_totals() -> None:
    records = [
        rec("t", "lecture", 0, 600, role="teacher"),
        rec("c1", "grade3", 5, 65),
        rec("c2", "grade4", 10, None),
        rec("c3", "grade3", 70, 100),
    ]
    rooms = summarize(records, at(610))
    assert [(r["room_id"], r["role"], r["joins"], r["connected_s"]) for r in rooms] == [
        ("lecture", "teacher", 1, 600.0),
        ("grade3", "classroom", 2, 90.0),
        ("grade4", "classroom", 1, 600.0),
    ]
    assert [r["first_joined_at"] for r in rooms] == [iso(0), iso(5), iso(10)]


def test_summary_of_no_records_is_empty() -> None:
    assert summarize([], at(0)) == []


def test_union_of_touching_and_nested_intervals() -> None:
    assert union_seconds([(at(0), at(10)), (at(10), at(20)), (at(2), at(3))]) == 20.0
    assert union_seconds([(at(30), at(40)), (at(0), at(10))]) == 20.0
    assert union_seconds([]) == 0.0


# --- CSV ------------------------------------------------------------------------------


SESSION = ClassSession(
    id="sess",
    lecture_room_id="lecture",
    title="分数, 第一课",
    subject="数学",
    teacher_name="李老师",
    scheduled_at=None,
    started_at=None,
    ended_at=None,
    status="live",
)


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_starts_with_a_bom_and_the_header() -> None:
    text = to_csv(SESSION, [], at(0))
    assert text.startswith("\ufeffsession_id,session_title,school,room,role,name,")
    assert text.encode("utf-8")[:3] == b"\xef\xbb\xbf"
    assert rows_of(text.removeprefix("\ufeff")) == [
        [
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
        ]
    ]


def test_csv_rows_hold_the_records_with_chinese_names_intact() -> None:
    records = [
        replace(rec("a", "r1", 0, 100, reason="disconnected"), name="王小明 \"班长\""),
        rec("b", "r1", 50, None, name="三年级"),
        rec("c", "r2", 60, 90.08, role="teacher", name="李老师"),
    ]
    text = to_csv(SESSION, records, at(200))
    raw = text.encode("utf-8")
    header, *rows = rows_of(raw.decode("utf-8-sig"))
    assert header[-1] == "room_connected_s"
    assert rows == [
        ["sess", "分数, 第一课", "学校 r1", "name of r1", "classroom", "王小明 \"班长\"",
         iso(0), iso(100), "disconnected", "100.0", "200.0"],
        ["sess", "分数, 第一课", "学校 r1", "name of r1", "classroom", "三年级",
         iso(50), "", "", "150.0", "200.0"],
        ["sess", "分数, 第一课", "学校 r2", "name of r2", "teacher", "李老师",
         iso(60), iso(90.08), "leave", "30.1", "30.1"],
    ]  # fmt: skip


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_defused() -> None:
    records = [replace(rec("a", "r1", 0, 1), name="=HYPERLINK(\"http://x\")")]
    (_, row) = rows_of(to_csv(SESSION, records, at(2)).removeprefix("\ufeff"))
    assert row[5] == "'=HYPERLINK(\"http://x\")"
    assert row[6] == iso(0)  # times are never touched
