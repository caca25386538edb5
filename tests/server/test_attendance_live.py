"""Attendance written by the live session: joins, a drop, a rejoin, the end.

Real server, real SQLite store, fake media plane (a vanished peer is the fake
transport closing by itself, as aiortc's does on consent loss).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app

from .conftest import get, make_campus, settings_for, token_for
from .fakemedia import FakeMediaPlane
from .wsutil import call, connect, receive

CAMERA_AND_MIC = {"0": {"source": "camera"}, "1": {"source": "mic"}}


@pytest.fixture
def media() -> FakeMediaPlane:
    return FakeMediaPlane()


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, media: FakeMediaPlane) -> TestClient:
    return await aiohttp_client(create_app(settings_for(tmp_path), media=media))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_joins_a_drop_and_a_rejoin_are_recorded(
    client: TestClient, media: FakeMediaPlane
) -> None:
    campus = await make_campus(client)
    teacher, _ = await connect(
        client, await token_for(client, campus.lecture["id"], "teacher", name="Ms Li")
    )
    classroom, welcome = await connect(
        client, await token_for(client, campus.classroom["id"], "classroom", name="三年级")
    )
    inspector, _ = await connect(client, await token_for(client, "*", "admin"))
    session = (await call(teacher, {"type": "start_session"}))["session"]
    await call(teacher, {"type": "join"})
    await call(classroom, {"type": "join"})
    await call(inspector, {"type": "join", "session_id": session["id"]})  # not recorded
    await call(classroom, {"type": "publish", "sdp": "c", "tracks": CAMERA_AND_MIC})

    # the classroom's link drops: its media connection is lost, the socket stays
    await media.transport_of(welcome["participant_id"], "up").vanish()
    while (await receive(classroom))["type"] != "left":
        pass
    rejoined = await call(classroom, {"type": "join"})
    assert rejoined["type"] == "joined"

    live = await get(client, f"/api/sessions/{session['id']}/attendance")
    records = live["records"]
    assert [(r["role"], r["name"], r["left_reason"]) for r in records] == [
        ("teacher", "Ms Li", None),
        ("classroom", "三年级", "media connection lost"),
        ("classroom", "三年级", None),
    ]
    dropped, back = records[1], records[2]
    assert dropped["participant_id"] == back["participant_id"] == welcome["participant_id"]
    assert at(dropped["joined_at"]) <= at(dropped["left_at"]) <= at(back["joined_at"])
    (room,) = [r for r in live["rooms"] if r["room_id"] == campus.classroom["id"]]
    assert (room["joins"], room["connected_now"], room["last_left_at"]) == (2, True, None)
    assert room["school_name"] == "Village Primary"

    await classroom.close()  # the screen is switched off
    ended = await call(teacher, {"type": "end_session"})
    assert ended["type"] == "session_ended"

    final = await get(client, f"/api/sessions/{session['id']}/attendance")
    assert [r["left_reason"] for r in final["records"]] == [
        "session ended",
        "media connection lost",
        "disconnected",
    ]
    assert all(r["left_at"] is not None for r in final["records"])
    (room,) = [r for r in final["rooms"] if r["room_id"] == campus.classroom["id"]]
    first, second = final["records"][1], final["records"][2]
    expected = sum(
        (at(r["left_at"]) - at(r["joined_at"])).total_seconds() for r in (first, second)
    )
    assert room["connected_now"] is False
    assert room["connected_s"] == pytest.approx(expected, abs=0.11)
    assert room["last_left_at"] == second["left_at"]
