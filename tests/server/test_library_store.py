"""The store's side of the library: schema 2 -> 3, the index rows, the
search's WHERE clause."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.errors import NotFound
from server.models import RecordingEntry
from server.store import MIGRATIONS, RecordingQuery, SqliteStore, recording_where


def entry(session_id: str, started_at: str, **extra: object) -> RecordingEntry:
    values: dict[str, object] = {
        "session_id": session_id, "lecture_room_id": "r1", "room_name": "Room 101", "school_id": "s1",
        "school_name": "Urban No. 1", "title": "Fractions", "subject": "Maths", "teacher_name": "Ms Li",
        "started_at": started_at, "ended_at": None, "status": "complete", "duration_s": 60.0,
        "bytes": 10, "tracks": 2, "dir": f"/rec/{session_id}",
    }
    values.update(extra)
    return RecordingEntry(**values)  # type: ignore[arg-type]


async def test_a_version_2_database_migrates_to_3_keeping_sessions_recorded(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "synclass.db")
    for script in MIGRATIONS[:2]:
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (2)")
    db.execute("INSERT INTO schools VALUES ('s1', 'Urban No. 1', 'Kunming')")
    db.execute("INSERT INTO rooms VALUES ('r1', 's1', 'Room 101', 'lecture')")
    db.execute("INSERT INTO sessions VALUES ('c1', 'r1', 'Fractions', 'Maths', 'Li', NULL, NULL, NULL, 'scheduled')")
    db.commit()
    db.close()

    store = SqliteStore(tmp_path)
    await store.open()
    try:
        assert (await store.get_session("c1")).record is True  # recorded unless refused
        assert (await store.get_session("c1")).to_json()["record"] is True
        refused = await store.create_session("r1", "Art", "Art", "Li", None, record=False)
        assert (await store.get_session(refused.id)).record is False
        assert await store.list_recordings(RecordingQuery()) == []
        await store.put_recording(entry("c1", "2025-03-01T08:00:00.000Z", status="recording"))
        await store.put_recording(entry("c1", "2025-03-01T08:00:00.000Z", status="recovered"))  # replaced
        assert (await store.get_recording("c1")).status == "recovered"
        await store.delete_recording("c1")
        with pytest.raises(NotFound, match="^recording c1 not found$"):
            await store.get_recording("c1")
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / "synclass.db")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO recordings (session_id, lecture_room_id, room_name, school_id, school_name,"
                   " title, subject, teacher_name, started_at, status, dir)"
                   " VALUES ('x', '', '', '', '', '', '', '', '', 'done', '')")
    db.close()


@pytest.mark.parametrize(
    ("query", "where", "params"),
    [
        (RecordingQuery(), "", ()),
        (RecordingQuery(lecture_room_id="r1", status="complete"),
         " WHERE lecture_room_id = ? AND status = ?", ("r1", "complete")),
        (RecordingQuery(teacher="50%_off"), " WHERE teacher_name LIKE ? ESCAPE '\\'", ("%50\\%\\_off%",)),
        (RecordingQuery(since="2025-03-01T00:00:00.000Z", until="2025-03-02T00:00:00.000Z"),
         " WHERE started_at >= ? AND started_at < ?", ("2025-03-01T00:00:00.000Z", "2025-03-02T00:00:00.000Z")),
    ],
)
def test_the_search_clause(query: RecordingQuery, where: str, params: tuple[object, ...]) -> None:
    assert recording_where(query) == (where, params)


async def test_a_school_finds_the_lessons_its_classrooms_attended(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        city = await store.create_school("City", "")
        village = await store.create_school("Village", "")
        lecture = await store.create_room(city.id, "Room 101", "lecture")
        classroom = await store.create_room(village.id, "Grade 3", "classroom")
        attended = await store.create_session(lecture.id, "A", "Maths", "Li", None)
        missed = await store.create_session(lecture.id, "B", "Maths", "Li", None)
        await store.attendance_join(attended.id, "p1", classroom.id, "classroom", "Grade 3", datetime.now(UTC))
        for session, started in ((attended, "2025-03-01T08:00:00.000Z"), (missed, "2025-03-02T08:00:00.000Z")):
            await store.put_recording(entry(session.id, started, school_id=city.id, lecture_room_id=lecture.id))
        found = await store.list_recordings(RecordingQuery(school_id=village.id))
        assert [e.session_id for e in found] == [attended.id]
        found = await store.list_recordings(RecordingQuery(school_id=city.id))
        assert [e.session_id for e in found] == [missed.id, attended.id]  # newest first
    finally:
        await store.close()
