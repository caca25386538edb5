"""GET /api/sessions/{id}/attendance and .csv on the real app (docs/protocol.md)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import tokens
from server.app import create_app
from server.keys import STORE
from server.models import iso_utc_ms, utc_now
from server.store import Store

from .conftest import ADMIN, TOKEN_SECRET, Campus, get, make_campus, post, settings_for

T0 = datetime(2025, 3, 1, 8, 0, 0, 250_000, tzinfo=UTC)

RECORD_KEYS = {
    "id", "session_id", "participant_id", "room_id", "room_name", "school_id", "school_name",
    "role", "name", "joined_at", "left_at", "left_reason", "connected_s",
}  # fmt: skip
ROOM_KEYS = {
    "room_id", "room_name", "school_id", "school_name", "role", "joins", "first_joined_at",
    "last_left_at", "connected_now", "connected_s",
}  # fmt: skip


def store_of(client: TestClient) -> Store:
    app = client.app
    assert app is not None
    store: Store = app[STORE]
    return store


async def lesson(client: TestClient) -> tuple[Campus, dict[str, Any]]:
    campus = await make_campus(client)
    session = await post(
        client,
        "/api/sessions",
        {
            "lecture_room_id": campus.lecture["id"],
            "title": "分数",
            "subject": "数学",
            "teacher_name": "李老师",
        },
    )
    return campus, session


async def test_attendance_needs_admin_credentials(client: TestClient) -> None:
    _, session = await lesson(client)
    campus_token, _ = tokens.mint(TOKEN_SECRET, sub="r", role="classroom", ttl_s=60)
    admin_token, _ = tokens.mint(TOKEN_SECRET, sub="*", role="admin", ttl_s=60)
    for suffix in ("attendance", "attendance.csv"):
        path = f"/api/sessions/{session['id']}/{suffix}"
        response = await client.get(path)
        assert response.status == 401
        assert (await response.json())["error"]["message"] == "missing Authorization header"
        response = await client.get(path, headers={"Authorization": f"Bearer {campus_token}"})
        assert response.status == 403
        response = await client.get(path, headers={"Authorization": f"Bearer {admin_token}"})
        assert response.status == 200


async def test_an_unknown_session_is_404_for_both(client: TestClient) -> None:
    for suffix in ("attendance", "attendance.csv"):
        data = await get(client, f"/api/sessions/nope/{suffix}", status=404)
        assert data == {"error": {"code": "not_found", "message": "session nope not found"}}


async def test_a_session_nobody_joined_has_empty_attendance(client: TestClient) -> None:
    _, session = await lesson(client)
    data = await get(client, f"/api/sessions/{session['id']}/attendance")
    assert data == {"session_id": session["id"], "records": [], "rooms": []}


async def test_attendance_lists_records_and_rooms(client: TestClient) -> None:
    campus, session = await lesson(client)
    store = store_of(client)
    sid = session["id"]
    teacher = await store.attendance_join(
        sid, "p-t", campus.lecture["id"], "teacher", "李老师", T0
    )
    first = await store.attendance_join(
        sid, "p-c1", campus.classroom["id"], "classroom", "三年级", T0 + timedelta(seconds=5)
    )
    await store.attendance_leave(first, T0 + timedelta(seconds=65), "media connection lost")
    await store.attendance_leave(teacher, T0 + timedelta(seconds=2700), "session ended")
    now = utc_now()
    second = await store.attendance_join(
        sid, "p-c2", campus.classroom["id"], "classroom", "三年级", now - timedelta(seconds=60)
    )

    data = await get(client, f"/api/sessions/{sid}/attendance")
    assert set(data) == {"session_id", "records", "rooms"}
    assert data["session_id"] == sid
    assert all(set(r) == RECORD_KEYS for r in data["records"])
    assert all(set(r) == ROOM_KEYS for r in data["rooms"])
    records = data["records"]
    assert [r["id"] for r in records] == [teacher, first, second]
    assert records[0] == {
        "id": teacher,
        "session_id": sid,
        "participant_id": "p-t",
        "room_id": campus.lecture["id"],
        "room_name": "Room 101",
        "school_id": campus.school["id"],
        "school_name": "Urban No. 1",
        "role": "teacher",
        "name": "李老师",
        "joined_at": "2025-03-01T08:00:00.250Z",
        "left_at": "2025-03-01T08:45:00.250Z",
        "left_reason": "session ended",
        "connected_s": 2700.0,
    }
    assert (records[1]["left_reason"], records[1]["connected_s"]) == ("media connection lost", 60.0)
    assert records[2]["left_at"] is None and records[2]["left_reason"] is None
    assert 60.0 <= records[2]["connected_s"] < 70.0  # counts up to now

    lecture_room, classroom = data["rooms"]
    assert lecture_room == {
        "room_id": campus.lecture["id"],
        "room_name": "Room 101",
        "school_id": campus.school["id"],
        "school_name": "Urban No. 1",
        "role": "teacher",
        "joins": 1,
        "first_joined_at": "2025-03-01T08:00:00.250Z",
        "last_left_at": "2025-03-01T08:45:00.250Z",
        "connected_now": False,
        "connected_s": 2700.0,
    }
    assert classroom["room_name"] == "Grade 3"
    assert classroom["school_name"] == "Village Primary"
    assert (classroom["joins"], classroom["connected_now"], classroom["last_left_at"]) == (
        2,
        True,
        None,
    )
    assert classroom["first_joined_at"] == "2025-03-01T08:00:05.250Z"
    assert 120.0 <= classroom["connected_s"] < 130.0


async def test_attendance_csv_is_an_attachment_with_a_bom(client: TestClient) -> None:
    campus, session = await lesson(client)
    store = store_of(client)
    sid = session["id"]
    record = await store.attendance_join(
        sid, "p-c1", campus.classroom["id"], "classroom", "王老师 (三年级)", T0
    )
    await store.attendance_leave(record, T0 + timedelta(seconds=90.5), "disconnected")

    response = await client.get(f"/api/sessions/{sid}/attendance.csv", headers=ADMIN)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="attendance-{sid}.csv"'
    )
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows == [
        [
            "session_id", "session_title", "school", "room", "role", "name", "joined_at",
            "left_at", "left_reason", "connected_s", "room_connected_s",
        ],
        [
            sid, "分数", "Village Primary", "Grade 3", "classroom", "王老师 (三年级)",
            "2025-03-01T08:00:00.250Z", "2025-03-01T08:01:30.750Z", "disconnected",
            "90.5", "90.5",
        ],
    ]  # fmt: skip


@pytest.mark.parametrize("suffix", ["attendance", "attendance.csv"])
async def test_only_get_is_allowed(client: TestClient, suffix: str) -> None:
    _, session = await lesson(client)
    response = await client.post(f"/api/sessions/{session['id']}/{suffix}", headers=ADMIN)
    assert response.status == 405


async def test_a_restart_closes_records_a_crash_left_open(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    first = await aiohttp_client(create_app(settings_for(tmp_path)))
    campus, session = await lesson(first)
    store = store_of(first)
    sid = session["id"]
    record = await store.attendance_join(
        sid, "p-t", campus.lecture["id"], "teacher", "李老师", T0
    )
    await store.attendance_touch([record], T0 + timedelta(seconds=600))
    await first.close()  # as if the process died: nobody called attendance_leave

    second = await aiohttp_client(create_app(settings_for(tmp_path)))
    data = await get(second, f"/api/sessions/{sid}/attendance")
    (closed,) = data["records"]
    assert (closed["left_at"], closed["left_reason"], closed["connected_s"]) == (
        iso_utc_ms(T0 + timedelta(seconds=600)),
        "server restarted",
        600.0,
    )
    assert data["rooms"][0]["connected_now"] is False
