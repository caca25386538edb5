"""Layers of one source on the control plane (fake media plane).

The teacher publishes her camera three times (layers 0, 1, 2): a classroom
gets ONE consumer for the camera, made on the primary (first) layer and told
every layer; the media plane picks the layer per link and the client hears of
it in ``consumer_layer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app

from .conftest import get, make_campus, settings_for, token_for
from .fakemedia import FakeMediaPlane
from .wsutil import call, connect, receive

LAYERED = {
    "0": {"source": "camera", "layer": 0},
    "1": {"source": "camera", "layer": 1},
    "2": {"source": "camera", "layer": 2},
    "3": {"source": "mic"},
    "4": {"source": "courseware"},
}


@pytest.fixture
def media() -> FakeMediaPlane:
    return FakeMediaPlane()


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, media: FakeMediaPlane) -> TestClient:
    return await aiohttp_client(create_app(settings_for(tmp_path), media=media))


async def until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message = await receive(ws)
        if message["type"] == kind:
            return message


@pytest.fixture
async def lesson(client: TestClient, media: FakeMediaPlane) -> dict[str, Any]:
    campus = await make_campus(client)
    teacher, tw = await connect(client, await token_for(client, campus.lecture["id"], "teacher"))
    classroom, cw = await connect(client, await token_for(client, campus.classroom["id"], "classroom"))
    await call(teacher, {"type": "start_session"})
    await call(teacher, {"type": "join"})
    await call(classroom, {"type": "join"})
    published = await call(teacher, {"type": "publish", "sdp": "t", "tracks": LAYERED})
    by_mid = dict(zip("01234", published["producers"], strict=True))
    offer = await until(classroom, "offer")
    return {
        "teacher": teacher, "classroom": classroom, "teacher_id": tw["participant_id"],
        "classroom_id": cw["participant_id"], "producers": by_mid, "offer": offer, "campus": campus,
    }


def down_consumers(media: FakeMediaPlane, participant_id: str) -> list[Any]:
    return [c for c in media.transport_of(participant_id, "down").consumers if not c.closed]


async def test_a_layered_camera_is_one_consumer_that_knows_every_layer(
    lesson: dict[str, Any], media: FakeMediaPlane
) -> None:
    p = lesson["producers"]
    offered = sorted(c["producer_id"] for c in lesson["offer"]["consumers"])
    assert offered == sorted([p["0"]["id"], p["3"]["id"], p["4"]["id"]])  # camera once, mic, courseware
    assert all(c["layer"] == 0 for c in lesson["offer"]["consumers"])
    (camera,) = [c for c in down_consumers(media, lesson["classroom_id"]) if c.producer_id == p["0"]["id"]]
    assert camera.layer_ids == sorted(p[m]["id"] for m in "012")


async def test_consumers_carry_their_priority_under_scarcity_and_their_source(
    lesson: dict[str, Any], media: FakeMediaPlane
) -> None:
    p = lesson["producers"]
    priorities = {c.producer_id: c.app_data["priority"] for c in down_consumers(media, lesson["classroom_id"])}
    assert priorities == {p["3"]["id"]: 0, p["4"]["id"]: 1, p["0"]["id"]: 2}
    # ... and their source: the media plane takes the courseware's need from its key frames
    sources = {c.producer_id: c.app_data["source"] for c in down_consumers(media, lesson["classroom_id"])}
    assert sources == {p["3"]["id"]: "mic", p["4"]["id"]: "courseware", p["0"]["id"]: "camera"}
    await call(lesson["classroom"], {"type": "publish", "sdp": "c", "tracks": {"0": {"source": "camera"}}})
    await until(lesson["teacher"], "offer")
    (at_teacher,) = down_consumers(media, lesson["teacher_id"])
    assert at_teacher.app_data["priority"] == 3  # another classroom: last


async def test_the_client_hears_when_its_layer_changes_or_video_pauses(
    lesson: dict[str, Any], media: FakeMediaPlane
) -> None:
    p = lesson["producers"]
    (camera,) = [c for c in down_consumers(media, lesson["classroom_id"]) if c.producer_id == p["0"]["id"]]
    camera.switch_layer(2)
    camera.switch_layer(None)
    assert await until(lesson["classroom"], "consumer_layer") == {
        "type": "consumer_layer", "consumer_id": camera.id, "producer_id": p["0"]["id"], "layer": 2,
    }
    assert (await until(lesson["classroom"], "consumer_layer"))["layer"] is None


async def test_closing_the_primary_layer_hands_the_source_to_the_next(
    lesson: dict[str, Any], media: FakeMediaPlane
) -> None:
    p = lesson["producers"]
    classroom = lesson["classroom"]
    await classroom.send_json({"type": "answer", "sdp": "a"})
    await call(lesson["teacher"], {"type": "unpublish", "producer_id": p["0"]["id"]})
    offer = await until(classroom, "offer")
    assert sorted(c["producer_id"] for c in offer["consumers"]) == sorted([p["1"]["id"], p["3"]["id"], p["4"]["id"]])
    (camera,) = [c for c in down_consumers(media, lesson["classroom_id"]) if c.producer_id == p["1"]["id"]]
    assert camera.layer_ids == sorted([p["1"]["id"], p["2"]["id"]])


async def test_asking_for_any_layer_subscribes_to_the_source(
    lesson: dict[str, Any], client: TestClient, media: FakeMediaPlane
) -> None:
    p = lesson["producers"]
    admin, _ = await connect(client, await token_for(client, "*", "admin"))
    joined = await call(admin, {"type": "join", "session_id": media.routers[0].app_data["session_id"]})
    assert joined["type"] == "joined"
    reply = await call(admin, {"type": "subscribe", "producer_ids": [p["2"]["id"]]})
    assert reply["producer_ids"] == [p["2"]["id"]]
    offer = await until(admin, "offer")
    assert [c["producer_id"] for c in offer["consumers"]] == [p["0"]["id"]]


async def test_the_links_api_lists_each_participants_downlink(
    lesson: dict[str, Any], client: TestClient
) -> None:
    sessions = await get(client, "/api/sessions?status=live")
    (live,) = sessions["sessions"]
    data = await get(client, f"/api/sessions/{live['id']}/links")
    assert data["session_id"] == live["id"]
    assert sorted(link["participant"]["id"] for link in data["links"]) == sorted(
        [lesson["teacher_id"], lesson["classroom_id"]]
    )
    assert all(set(link) == {"participant", "state", "estimate_bps", "consumers"} for link in data["links"])
    missing = await get(client, "/api/sessions/nope/links", status=404)
    assert missing["error"]["message"] == "session nope not found"
