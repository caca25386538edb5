from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from .conftest import Campus, get, make_campus, post


async def schedule(client: TestClient, campus: Campus, **extra: Any) -> dict[str, Any]:
    body = {
        "lecture_room_id": campus.lecture["id"],
        "title": "Fractions",
        "subject": "Maths",
        "teacher_name": "Ms Li",
        **extra,
    }
    return await post(client, "/api/sessions", body)  # type: ignore[no-any-return]


async def test_a_new_session_is_scheduled(client: TestClient) -> None:
    campus = await make_campus(client)
    session = await schedule(client, campus, scheduled_at="2025-03-01T16:00:00+08:00")
    assert session == {
        "id": session["id"],
        "lecture_room_id": campus.lecture["id"],
        "title": "Fractions",
        "subject": "Maths",
        "teacher_name": "Ms Li",
        "scheduled_at": "2025-03-01T08:00:00Z",
        "started_at": None,
        "ended_at": None,
        "status": "scheduled",
        "record": True,
    }
    assert await get(client, f"/api/sessions/{session['id']}") == session


async def test_a_session_goes_live_then_ends(client: TestClient) -> None:
    campus = await make_campus(client)
    session = await schedule(client, campus)
    live = await post(client, f"/api/sessions/{session['id']}/start", None, status=200)
    assert live["status"] == "live"
    assert live["started_at"].endswith("Z")
    ended = await post(client, f"/api/sessions/{session['id']}/end", None, status=200)
    assert (ended["status"], ended["started_at"]) == ("ended", live["started_at"])
    assert ended["ended_at"].endswith("Z")


async def test_sessions_are_listed_by_status(client: TestClient) -> None:
    campus = await make_campus(client)
    first = await schedule(client, campus, title="One")
    second = await schedule(client, campus, title="Two")
    await post(client, f"/api/sessions/{first['id']}/start", None, status=200)
    live = await get(client, "/api/sessions?status=live")
    assert [s["id"] for s in live["sessions"]] == [first["id"]]
    scheduled = await get(
        client, f"/api/sessions?status=scheduled&lecture_room_id={campus.lecture['id']}"
    )
    assert [s["id"] for s in scheduled["sessions"]] == [second["id"]]


async def test_listing_sessions_of_an_unknown_status_is_refused(client: TestClient) -> None:
    data = await get(client, "/api/sessions?status=paused", status=422)
    assert data["error"]["message"] == "query 'status' must be one of scheduled, live, ended"


async def test_a_second_live_session_in_one_lecture_room_is_a_conflict(client: TestClient) -> None:
    campus = await make_campus(client)
    first = await schedule(client, campus)
    second = await schedule(client, campus)
    await post(client, f"/api/sessions/{first['id']}/start", None, status=200)
    data = await post(client, f"/api/sessions/{second['id']}/start", None, status=409)
    assert data["error"] == {
        "code": "conflict",
        "message": f"lecture room {campus.lecture['id']} already has a live session {first['id']}",
    }


async def test_an_ended_session_cannot_restart(client: TestClient) -> None:
    campus = await make_campus(client)
    session = await schedule(client, campus)
    await post(client, f"/api/sessions/{session['id']}/start", None, status=200)
    await post(client, f"/api/sessions/{session['id']}/end", None, status=200)
    data = await post(client, f"/api/sessions/{session['id']}/start", None, status=409)
    assert data["error"]["message"] == f"session {session['id']} has ended"


async def test_a_scheduled_session_cannot_end(client: TestClient) -> None:
    campus = await make_campus(client)
    session = await schedule(client, campus)
    data = await post(client, f"/api/sessions/{session['id']}/end", None, status=409)
    assert data["error"]["message"] == f"session {session['id']} is not live (it is scheduled)"


async def test_a_session_belongs_to_a_lecture_room(client: TestClient) -> None:
    campus = await make_campus(client)
    data = await post(
        client,
        "/api/sessions",
        {
            "lecture_room_id": campus.classroom["id"],
            "title": "T",
            "subject": "S",
            "teacher_name": "Li",
        },
        status=422,
    )
    assert data["error"]["message"] == (
        f"room {campus.classroom['id']} is a classroom, not a lecture room"
    )


async def test_a_scheduled_time_needs_a_timezone(client: TestClient) -> None:
    campus = await make_campus(client)
    data = await post(
        client,
        "/api/sessions",
        {
            "lecture_room_id": campus.lecture["id"],
            "title": "T",
            "subject": "S",
            "teacher_name": "Li",
            "scheduled_at": "2025-03-01T08:00:00",
        },
        status=422,
    )
    assert data["error"] == {
        "code": "invalid",
        "message": "field 'scheduled_at' must be an ISO-8601 time with a timezone, "
        "like 2025-03-01T08:00:00Z",
        "field": "scheduled_at",
    }


async def test_a_session_needs_a_teacher_name(client: TestClient) -> None:
    campus = await make_campus(client)
    data = await post(
        client,
        "/api/sessions",
        {"lecture_room_id": campus.lecture["id"], "title": "T", "subject": "S"},
        status=422,
    )
    assert data["error"]["message"] == "field 'teacher_name' is required"


async def test_starting_an_unknown_session_is_not_found(client: TestClient) -> None:
    data = await post(client, "/api/sessions/ghost/start", None, status=404)
    assert data["error"]["message"] == "session ghost not found"
