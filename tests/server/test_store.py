from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.errors import Conflict
from server.store import MIGRATIONS, SqliteStore

NOW = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)


async def test_a_new_database_is_at_the_latest_schema_version_in_wal_mode(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    await store.close()
    db = sqlite3.connect(tmp_path / "synclass.db")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_reopening_keeps_records_and_does_not_migrate_again(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    school = await store.create_school("Urban No. 1", "Kunming")
    await store.close()
    store = SqliteStore(tmp_path)
    await store.open()
    assert await store.list_schools() == [school]
    await store.close()


async def test_a_database_from_a_newer_synclass_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "synclass.db")
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (99)")
    db.commit()
    db.close()
    store = SqliteStore(tmp_path)
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        await store.open()


async def test_the_live_session_of_a_room_is_found_and_only_one_may_be_live(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    school = await store.create_school("Urban No. 1", "")
    room = await store.create_room(school.id, "Room 101", "lecture")
    first = await store.create_session(room.id, "A", "Maths", "Li", None)
    second = await store.create_session(room.id, "B", "Maths", "Li", None)
    assert await store.live_session_of(room.id) is None
    live = await store.start_session(first.id, NOW)
    assert (live.status, live.started_at) == ("live", "2025-03-01T08:00:00Z")
    assert await store.live_session_of(room.id) == live
    with pytest.raises(
        Conflict, match=f"^lecture room {room.id} already has a live session {first.id}$"
    ):
        await store.start_session(second.id, NOW)
    await store.close()
