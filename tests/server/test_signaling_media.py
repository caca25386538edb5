"""Join, publish, subscribe and renegotiation against a fake media plane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app

from .conftest import get, make_campus, token_for
from .fakemedia import FakeMediaPlane
from .wsutil import call, connect, nothing_more, receive, request

CAMERA_AND_MIC = {"0": {"source": "camera"}, "1": {"source": "mic"}}


@pytest.fixture
def media() -> FakeMediaPlane:
    return FakeMediaPlane()


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, media: FakeMediaPlane) -> TestClient:
    from .conftest import settings_for

    return await aiohttp_client(create_app(settings_for(tmp_path), media=media))


class Lesson:
    """A live lesson with the teacher and the paired classroom connected."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def open(self) -> Lesson:
        self.campus = await make_campus(self.client)
        self.teacher, self.teacher_welcome = await connect(
            self.client,
            await token_for(self.client, self.campus.lecture["id"], "teacher", name="Ms Li"),
        )
        self.classroom, self.classroom_welcome = await connect(
            self.client, await token_for(self.client, self.campus.classroom["id"], "classroom")
        )
        self.session = (await request(self.teacher, {"type": "start_session"}))["session"]
        assert (await receive(self.classroom))["type"] == "session"
        return self

    @property
    def teacher_id(self) -> str:
        return str(self.teacher_welcome["participant_id"])

    @property
    def classroom_id(self) -> str:
        return str(self.classroom_welcome["participant_id"])


@pytest.fixture
async def lesson(client: TestClient) -> Lesson:
    return await Lesson(client).open()


async def test_the_teacher_joins_and_publishes_camera_and_mic(lesson: Lesson) -> None:
    joined = await request(lesson.teacher, {"type": "join", "id": "j"})
    assert joined == {
        "type": "joined",
        "session_id": lesson.session["id"],
        "participants": [],
        "producers": [],
        "re": "j",
    }
    published = await request(
        lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_AND_MIC, "id": "p"}
    )
    assert published["sdp"] == "answer:o1"
    assert [(p["kind"], p["source"], p["participant_id"]) for p in published["producers"]] == [
        ("video", "camera", lesson.teacher_id),
        ("audio", "mic", lesson.teacher_id),
    ]


async def test_a_classroom_joining_late_receives_the_teachers_tracks(lesson: Lesson) -> None:
    await request(lesson.teacher, {"type": "join"})
    producers = (
        await request(lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_AND_MIC})
    )["producers"]
    joined = await request(lesson.classroom, {"type": "join", "id": 1})
    assert [p["id"] for p in joined["producers"]] == [p["id"] for p in producers]
    assert [p["id"] for p in joined["participants"]] == [lesson.teacher_id]
    offer = await receive(lesson.classroom)
    assert offer["type"] == "offer"
    assert offer["sdp"] == "offer:0,1"
    assert sorted(
        (c["producer_id"], c["participant_id"], c["mid"]) for c in offer["consumers"]
    ) == sorted(
        (p["id"], lesson.teacher_id, mid)
        for p, mid in zip(sorted(producers, key=lambda p: p["id"]), "01", strict=True)
    )
    assert await receive(lesson.teacher) == {
        "type": "participant_joined",
        "participant": {
            "id": lesson.classroom_id,
            "role": "classroom",
            "room_id": lesson.campus.classroom["id"],
            "room_name": "Grade 3",
            "school_id": lesson.campus.classroom["school_id"],
            "school_name": "Village Primary",
            "name": "Grade 3",
            "hand": None,
            "on_stage": False,
            "muted": {"mic": None, "camera": None},
        },
    }


async def test_a_new_teacher_track_is_announced_and_offered_to_a_joined_classroom(
    lesson: Lesson,
) -> None:
    await request(lesson.teacher, {"type": "join"})
    await request(lesson.classroom, {"type": "join"})
    await receive(lesson.teacher)  # participant_joined
    published = await request(
        lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": {"0": {"source": "courseware"}}}
    )
    producer = published["producers"][0]
    assert await receive(lesson.classroom) == {"type": "producer_added", "producer": producer}
    offer = await receive(lesson.classroom)
    assert (offer["type"], [c["producer_id"] for c in offer["consumers"]]) == (
        "offer",
        [producer["id"]],
    )
    assert offer["consumers"][0]["source"] == "courseware"


async def test_only_one_offer_is_outstanding_until_the_answer(
    lesson: Lesson, media: FakeMediaPlane
) -> None:
    await request(lesson.teacher, {"type": "join"})
    await request(lesson.classroom, {"type": "join"})
    await receive(lesson.teacher)
    await request(
        lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": {"0": {"source": "camera"}}}
    )
    assert (await receive(lesson.classroom))["type"] == "producer_added"
    first = await receive(lesson.classroom)
    await request(lesson.teacher, {"type": "publish", "sdp": "o2", "tracks": {**CAMERA_AND_MIC}})
    assert (await receive(lesson.classroom))["type"] == "producer_added"
    await nothing_more(lesson.classroom)  # no second offer before the answer
    await lesson.classroom.send_json({"type": "answer", "sdp": "a1"})
    second = await receive(lesson.classroom)
    assert (first["sdp"], second["sdp"]) == ("offer:0", "offer:0,1")
    assert media.transport_of(lesson.classroom_id, "down").answers == ["a1"]


async def test_an_answer_without_an_offer_is_a_bad_message(lesson: Lesson) -> None:
    await request(lesson.classroom, {"type": "join"})
    reply = await request(lesson.classroom, {"type": "answer", "sdp": "a", "id": 5})
    assert reply == {
        "type": "error",
        "code": "bad_message",
        "message": "no offer is waiting for an answer",
        "re": 5,
    }


async def test_a_refused_offer_is_bad_sdp(lesson: Lesson) -> None:
    await request(lesson.teacher, {"type": "join"})
    reply = await request(
        lesson.teacher, {"type": "publish", "sdp": "bad", "tracks": CAMERA_AND_MIC, "id": 1}
    )
    assert reply == {"type": "error", "code": "bad_sdp", "message": "offer is not SDP", "re": 1}


async def test_a_bug_in_the_media_plane_is_internal_and_the_lesson_carries_on(
    lesson: Lesson,
) -> None:
    await request(lesson.teacher, {"type": "join"})
    reply = await request(
        lesson.teacher, {"type": "publish", "sdp": "explode", "tracks": CAMERA_AND_MIC, "id": 1}
    )
    assert reply == {
        "type": "error",
        "code": "internal",
        "message": "internal error; the lesson carries on",
        "re": 1,
    }
    published = await request(
        lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_AND_MIC}
    )
    assert published["type"] == "published"


async def test_publishing_before_joining_is_not_joined(lesson: Lesson) -> None:
    reply = await request(lesson.teacher, {"type": "publish", "sdp": "o", "tracks": CAMERA_AND_MIC})
    assert (reply["code"], reply["message"]) == ("not_joined", "join the live session first")


async def test_an_unpaired_classroom_has_nothing_to_join(lesson: Lesson) -> None:
    lonely, _ = await connect(
        lesson.client,
        await token_for(lesson.client, lesson.campus.lonely_classroom["id"], "classroom"),
    )
    reply = await request(lesson.classroom, {"type": "join"})
    assert reply["type"] == "joined"
    reply = await request(lonely, {"type": "join"})
    assert (reply["code"], reply["message"]) == (
        "no_session",
        f"nothing is live for room {lesson.campus.lonely_classroom['id']}",
    )


async def teacher_and_classroom_publishing(
    lesson: Lesson,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    await request(lesson.teacher, {"type": "join"})
    await request(lesson.classroom, {"type": "join"})
    await receive(lesson.teacher)  # participant_joined
    teacher_producers = (
        await request(lesson.teacher, {"type": "publish", "sdp": "t", "tracks": CAMERA_AND_MIC})
    )["producers"]
    classroom_producers = (
        await call(lesson.classroom, {"type": "publish", "sdp": "c", "tracks": CAMERA_AND_MIC})
    )["producers"]
    return teacher_producers, classroom_producers


async def drain_until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message = await receive(ws)
        if message["type"] == kind:
            return message


async def test_the_teacher_receives_every_classroom_automatically(lesson: Lesson) -> None:
    _, classroom_producers = await teacher_and_classroom_publishing(lesson)
    added = [await receive(lesson.teacher), await receive(lesson.teacher)]
    assert [m["type"] for m in added] == ["producer_added", "producer_added"]
    offer = await receive(lesson.teacher)
    assert offer["type"] == "offer"
    ids = [p["id"] for p in classroom_producers]
    assert sorted(c["producer_id"] for c in offer["consumers"]) == sorted(ids)
    assert {c["participant_id"] for c in offer["consumers"]} == {lesson.classroom_id}


async def test_a_classroom_may_not_ask_for_a_classroom_that_is_not_on_stage(
    lesson: Lesson,
) -> None:
    _, classroom_producers = await teacher_and_classroom_publishing(lesson)
    other, _ = await connect(
        lesson.client, await token_for(lesson.client, lesson.campus.classroom["id"], "classroom")
    )
    await request(other, {"type": "join"})
    producer_id = classroom_producers[0]["id"]
    reply = await call(other, {"type": "subscribe", "producer_ids": [producer_id], "id": 2})
    assert reply == {
        "type": "error",
        "code": "forbidden",
        "message": f"participant {lesson.classroom_id} is not on stage",
        "re": 2,
    }


async def test_subscribing_to_ones_own_producer_is_forbidden(lesson: Lesson) -> None:
    teacher_producers, _ = await teacher_and_classroom_publishing(lesson)
    producer_id = teacher_producers[0]["id"]
    reply = await call(
        lesson.teacher, {"type": "subscribe", "producer_ids": [producer_id], "id": 1}
    )
    assert reply == {
        "type": "error",
        "code": "forbidden",
        "message": f"producer {producer_id} is yours; you cannot receive it",
        "re": 1,
    }


async def test_subscribing_to_an_unknown_producer_is_not_found(lesson: Lesson) -> None:
    await request(lesson.teacher, {"type": "join"})
    reply = await request(lesson.teacher, {"type": "subscribe", "producer_ids": ["ghost"]})
    assert (reply["code"], reply["message"]) == ("not_found", "producer ghost not found")


async def test_an_admin_may_not_publish(lesson: Lesson) -> None:
    admin, _ = await connect(lesson.client, await token_for(lesson.client, "*", "admin"))
    joined = await request(admin, {"type": "join", "session_id": lesson.session["id"]})
    assert joined["type"] == "joined"
    reply = await request(admin, {"type": "publish", "sdp": "o", "tracks": CAMERA_AND_MIC})
    assert (reply["code"], reply["message"]) == ("forbidden", "role admin may not publish")


async def test_an_inspector_joins_silently(lesson: Lesson) -> None:
    await request(lesson.teacher, {"type": "join"})
    admin, _ = await connect(lesson.client, await token_for(lesson.client, "*", "admin"))
    joined = await request(admin, {"type": "join", "session_id": lesson.session["id"]})
    assert [p["role"] for p in joined["participants"]] == ["teacher"]
    await nothing_more(lesson.teacher)  # no participant_joined for an inspector


async def test_leaving_removes_the_producers_then_the_participant(lesson: Lesson) -> None:
    await request(lesson.teacher, {"type": "join"})
    await request(lesson.classroom, {"type": "join"})
    await receive(lesson.teacher)  # participant_joined
    teacher_producers = (
        await request(lesson.teacher, {"type": "publish", "sdp": "t", "tracks": CAMERA_AND_MIC})
    )["producers"]
    await drain_until(lesson.classroom, "offer")
    await lesson.classroom.send_json({"type": "answer", "sdp": "a"})
    reply = await request(lesson.teacher, {"type": "leave", "id": "l"})
    assert reply == {"type": "left", "reason": None, "re": "l"}
    removed = [await receive(lesson.classroom) for _ in teacher_producers]
    assert removed == [
        {"type": "producer_removed", "producer_id": p["id"], "participant_id": lesson.teacher_id}
        for p in teacher_producers
    ]
    assert await receive(lesson.classroom) == {
        "type": "participant_left",
        "participant_id": lesson.teacher_id,
        "reason": None,
    }
    offer = await receive(lesson.classroom)
    assert (offer["type"], offer["consumers"]) == ("offer", [])


async def test_a_vanished_participant_is_removed_and_the_others_carry_on(
    lesson: Lesson, media: FakeMediaPlane
) -> None:
    await teacher_and_classroom_publishing(lesson)
    await drain_until(lesson.teacher, "producer_added")
    await media.transport_of(lesson.classroom_id, "up").vanish()
    assert await receive(lesson.classroom) == {
        "type": "left",
        "reason": "media connection lost",
        "re": None,
    }
    await drain_until(lesson.teacher, "participant_left")
    await nothing_more(lesson.teacher)
    assert media.transport_of(lesson.classroom_id, "down").closed
    assert not media.transport_of(lesson.teacher_id, "up").closed
    rejoined = await request(lesson.classroom, {"type": "join"})
    assert rejoined["type"] == "joined"


async def test_closing_a_socket_is_leaving(lesson: Lesson) -> None:
    await request(lesson.teacher, {"type": "join"})
    await request(lesson.classroom, {"type": "join"})
    await receive(lesson.teacher)
    await lesson.classroom.close()
    assert await receive(lesson.teacher) == {
        "type": "participant_left",
        "participant_id": lesson.classroom_id,
        "reason": "disconnected",
    }


async def test_ending_the_session_closes_its_router(lesson: Lesson, media: FakeMediaPlane) -> None:
    await teacher_and_classroom_publishing(lesson)
    await request(lesson.teacher, {"type": "end_session"})
    ended = await drain_until(lesson.classroom, "session_ended")
    assert ended == {"type": "session_ended", "session_id": lesson.session["id"], "re": None}
    assert [r.closed for r in media.routers] == [True]
    assert all(t.closed for t in media.routers[0].transports)


async def test_stats_list_the_live_participants(lesson: Lesson) -> None:
    await request(lesson.teacher, {"type": "join"})
    stats = await get(lesson.client, "/api/stats")
    assert stats["media"] == {"decoders_created": 0, "encoders_created": 0, "routers": 1}
    assert (stats["sockets"], stats["participants"]) == (2, 1)
    assert [s["session_id"] for s in stats["sessions"]] == [lesson.session["id"]]
