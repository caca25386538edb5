"""Hands, stage and mute over the signaling socket, against a fake media plane.

A lecture room with two paired classrooms (A and B) and an inspector; every
request goes through the real server (routing, permission checks, pushes)
and the media side is the fake plane, so what is forwarded is read from
which consumers exist and which producers are paused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

from server.app import create_app

from .conftest import make_campus, post, settings_for, token_for
from .fakemedia import FakeMediaPlane
from .wsutil import call, connect, nothing_more, receive, request

CAMERA_AND_MIC = {"0": {"source": "camera"}, "1": {"source": "mic"}}
Ws = ClientWebSocketResponse


@pytest.fixture
def media() -> FakeMediaPlane:
    return FakeMediaPlane()


@pytest.fixture
def max_on_stage() -> int:
    return 1


@pytest.fixture
async def client(
    aiohttp_client: Any, tmp_path: Path, media: FakeMediaPlane, max_on_stage: int
) -> TestClient:
    settings = settings_for(tmp_path, max_on_stage=max_on_stage)
    return await aiohttp_client(create_app(settings, media=media))


class Room:
    """A lesson: the teacher, classrooms A and B, an inspector — all joined;
    the teacher and both classrooms publish camera and mic."""

    def __init__(self, client: TestClient, media: FakeMediaPlane) -> None:
        self.client = client
        self.media = media
        self.ids: dict[str, str] = {}
        self.ws: dict[str, Ws] = {}
        self.producers: dict[str, list[dict[str, Any]]] = {}
        self.pushes: dict[str, list[dict[str, Any]]] = {}

    async def open(self) -> Room:
        campus = await make_campus(self.client)
        await post(
            self.client,
            "/api/pairings",
            {"lecture_room_id": campus.lecture["id"], "classroom_room_id": campus.lonely_classroom["id"]},
        )
        rooms = {
            "teacher": (campus.lecture["id"], "teacher"),
            "A": (campus.classroom["id"], "classroom"),
            "B": (campus.lonely_classroom["id"], "classroom"),
            "admin": ("*", "admin"),
        }
        for who, (room_id, role) in rooms.items():
            ws, welcome = await connect(self.client, await token_for(self.client, room_id, role))
            self.ws[who], self.ids[who] = ws, welcome["participant_id"]
        self.session = (await ask(self, "teacher", {"type": "start_session"}))["session"]
        for who in ("teacher", "A", "B"):
            assert (await ask(self, who, {"type": "join"}))["type"] == "joined"
        joined = await ask(self, "admin", {"type": "join", "session_id": self.session["id"]})
        assert joined["type"] == "joined"
        for who in ("teacher", "A", "B"):
            reply = await ask(self, who, {"type": "publish", "sdp": who, "tracks": CAMERA_AND_MIC})
            self.producers[who] = reply["producers"]
        for who in self.ws:
            await pushed(self, who)
        return self

    async def settle(self, ws: Ws) -> list[dict[str, Any]]:
        """Answer every offer until the socket is quiet; the messages seen."""
        seen = []
        quiet = 0
        while True:
            reply = await request(ws, {"type": "ping", "id": "fence"})
            if reply == {"type": "pong", "re": "fence"}:
                # the server renegotiates in a task of its own: quiet twice
                quiet += 1
                if quiet == 2:
                    return seen
                await asyncio.sleep(0.05)
                continue
            quiet = 0
            seen.append(reply)
            if reply["type"] == "offer":
                await ws.send_json({"type": "answer", "sdp": "a"})
            while True:  # the pong is still coming
                message = await receive(ws)
                if message.get("re") == "fence":
                    break
                seen.append(message)
                if message["type"] == "offer":
                    await ws.send_json({"type": "answer", "sdp": "a"})

    def consumed_by(self, who: str) -> set[str]:
        """Producer ids the participant receives now (open consumers)."""
        transport = self.media.transport_of(self.ids[who], "down")
        return {c.producer_id for c in transport.consumers if not c.closed}

    def producer_ids(self, who: str) -> set[str]:
        return {p["id"] for p in self.producers[who]}

    def fake_producer(self, who: str, source: str) -> Any:
        (info,) = [p for p in self.producers[who] if p["source"] == source]
        return self.media.routers[0].producers[info["id"]]


@pytest.fixture
async def room(client: TestClient, media: FakeMediaPlane) -> Room:
    return await Room(client, media).open()


async def ask(room: Room, who: str, message: dict[str, Any]) -> dict[str, Any]:
    """Send a request; its reply. Pushes read meanwhile are kept for ``seen``."""
    ws = room.ws[who]
    await ws.send_json({**message, "id": "m"})
    while True:
        reply = await receive(ws)
        if reply.get("re") == "m":
            return reply
        room.pushes.setdefault(who, []).append(reply)
        if reply["type"] == "offer":
            await ws.send_json({"type": "answer", "sdp": "a"})


async def pushed(room: Room, who: str) -> list[dict[str, Any]]:
    """Every push to ``who`` since the last call, the socket settled."""
    pushes = room.pushes.pop(who, [])
    return pushes + await room.settle(room.ws[who])


def updates(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["participant"] for m in messages if m["type"] == "participant_updated"]


async def test_each_side_starts_with_what_the_role_matrix_gives(room: Room) -> None:
    assert room.consumed_by("teacher") == room.producer_ids("A") | room.producer_ids("B")
    assert room.consumed_by("A") == room.producer_ids("teacher")
    assert room.consumed_by("B") == room.producer_ids("teacher")
    assert room.consumed_by("admin") == set()


async def test_hands_are_kept_in_arrival_order_and_everyone_sees_them(room: Room) -> None:
    assert await ask(room, "B", {"type": "raise_hand"}) == {
        "type": "moderated", "action": "raise_hand", "participant_ids": [room.ids["B"]], "re": "m"
    }
    await ask(room, "A", {"type": "raise_hand"})
    again = await ask(room, "B", {"type": "raise_hand"})
    assert again["participant_ids"] == []  # raising a raised hand keeps its place
    seen = updates(await pushed(room, "teacher"))
    assert [(p["id"], p["hand"]) for p in seen] == [(room.ids["B"], 1), (room.ids["A"], 2)]
    # the subject sees its own state; the inspector sees it too
    assert [p["hand"] for p in updates(await pushed(room, "A"))] == [1, 2]
    assert len(updates(await pushed(room, "admin"))) == 2

    lowered = await ask(room, "teacher", {"type": "lower_hand", "participant_id": room.ids["B"]})
    assert lowered["participant_ids"] == [room.ids["B"]]
    own = await ask(room, "A", {"type": "lower_hand"})
    assert own["participant_ids"] == [room.ids["A"]]
    await ask(room, "A", {"type": "raise_hand"})
    await ask(room, "B", {"type": "raise_hand"})
    seen = updates(await pushed(room, "teacher"))
    assert [(p["id"], p["hand"]) for p in seen[-2:]] == [(room.ids["A"], 3), (room.ids["B"], 4)]
    everyone = await ask(room, "teacher", {"type": "lower_all_hands"})
    assert sorted(everyone["participant_ids"]) == sorted([room.ids["A"], room.ids["B"]])
    seen = updates(await pushed(room, "B"))
    assert [p["hand"] for p in seen[-2:]] == [None, None]


async def test_staging_sends_the_classroom_to_every_classroom_and_unstaging_stops_it(
    room: Room,
) -> None:
    await ask(room, "A", {"type": "raise_hand"})
    reply = await ask(room, "teacher", {"type": "stage", "participant_id": room.ids["A"]})
    assert reply["participant_ids"] == [room.ids["A"]]
    seen = await pushed(room, "B")
    staged = updates(seen)[-1]
    assert (staged["id"], staged["on_stage"], staged["hand"]) == (room.ids["A"], True, None)
    offer = [m for m in seen if m["type"] == "offer"][-1]
    assert {c["producer_id"] for c in offer["consumers"] if c["participant_id"] == room.ids["A"]} == (
        room.producer_ids("A")
    )
    assert room.consumed_by("B") == room.producer_ids("teacher") | room.producer_ids("A")
    # A does not receive itself; the teacher already had it; the inspector still asks
    assert room.consumed_by("A") == room.producer_ids("teacher")
    assert room.consumed_by("admin") == set()

    await ask(room, "teacher", {"type": "unstage", "participant_id": room.ids["A"]})
    seen = await pushed(room, "B")
    assert updates(seen)[-1]["on_stage"] is False
    assert room.consumed_by("B") == room.producer_ids("teacher")
    assert room.consumed_by("teacher") == room.producer_ids("A") | room.producer_ids("B")


async def test_a_track_published_on_stage_reaches_the_other_classrooms(room: Room) -> None:
    await ask(room, "teacher", {"type": "stage", "participant_id": room.ids["A"]})
    await pushed(room, "B")
    reply = await ask(
        room, "A", {"type": "publish", "sdp": "A2", "tracks": {**CAMERA_AND_MIC, "2": {"source": "courseware"}}}
    )
    (extra,) = reply["producers"]
    await pushed(room, "B")
    assert extra["id"] in room.consumed_by("B")


async def test_the_stage_holds_max_on_stage_classrooms(room: Room) -> None:
    await ask(room, "teacher", {"type": "stage", "participant_id": room.ids["A"]})
    reply = await ask(room, "teacher", {"type": "stage", "participant_id": room.ids["B"]})
    assert reply == {
        "type": "error",
        "code": "conflict",
        "message": "at most 1 classroom may be on stage; unstage one first",
        "re": "m",
    }
    again = await ask(room, "teacher", {"type": "stage", "participant_id": room.ids["A"]})
    assert again["participant_ids"] == []  # already on stage: no change, no conflict


@pytest.mark.parametrize("max_on_stage", [2])
async def test_two_on_stage_receive_each_other(room: Room) -> None:
    for who in ("A", "B"):
        reply = await ask(room, "teacher", {"type": "stage", "participant_id": room.ids[who]})
        assert reply["type"] == "moderated"
    await pushed(room, "A")
    await pushed(room, "B")
    assert room.consumed_by("A") == room.producer_ids("teacher") | room.producer_ids("B")
    assert room.consumed_by("B") == room.producer_ids("teacher") | room.producer_ids("A")


async def test_muting_pauses_the_source_everywhere_and_only_the_teacher_lifts_it(
    room: Room,
) -> None:
    mic, camera = room.fake_producer("A", "mic"), room.fake_producer("A", "camera")
    reply = await ask(
        room, "teacher", {"type": "mute", "participant_id": room.ids["A"], "source": "mic", "muted": True}
    )
    assert reply["participant_ids"] == [room.ids["A"]]
    assert (mic.paused, camera.paused) == (True, False)
    own = updates(await pushed(room, "A"))[-1]
    assert own["muted"] == {"mic": "teacher", "camera": None}

    refused = await ask(room, "A", {"type": "mute", "source": "mic", "muted": False})
    assert refused == {
        "type": "error",
        "code": "forbidden",
        "message": "your mic was turned off by the teacher; only the teacher can turn it back on",
        "re": "m",
    }
    # muting itself again does not weaken the teacher's mute
    again = await ask(room, "A", {"type": "mute", "source": "mic", "muted": True})
    assert again["participant_ids"] == []
    assert mic.paused

    await ask(
        room, "teacher", {"type": "mute", "participant_id": room.ids["A"], "source": "mic", "muted": False}
    )
    assert mic.paused is False
    assert updates(await pushed(room, "A"))[-1]["muted"]["mic"] is None


async def test_a_classroom_mutes_and_unmutes_itself(room: Room) -> None:
    camera = room.fake_producer("B", "camera")
    await ask(room, "B", {"type": "mute", "source": "camera", "muted": True})
    assert camera.paused
    assert updates(await pushed(room, "teacher"))[-1]["muted"] == {"mic": None, "camera": "self"}
    reply = await ask(room, "B", {"type": "mute", "participant_id": room.ids["B"], "source": "camera", "muted": False})
    assert reply["participant_ids"] == [room.ids["B"]]
    assert not camera.paused


async def test_a_track_published_while_muted_starts_paused(room: Room) -> None:
    await ask(room, "teacher", {"type": "mute", "participant_id": room.ids["A"], "source": "camera", "muted": True})
    reply = await ask(
        room, "A", {"type": "publish", "sdp": "A2", "tracks": {**CAMERA_AND_MIC, "2": {"source": "camera", "layer": 1}}}
    )
    (extra,) = reply["producers"]
    assert extra["paused"] is True
    assert room.media.routers[0].producers[extra["id"]].paused


async def test_rejoining_starts_clean(room: Room) -> None:
    await ask(room, "A", {"type": "raise_hand"})
    await ask(room, "teacher", {"type": "mute", "participant_id": room.ids["A"], "source": "mic", "muted": True})
    await ask(room, "A", {"type": "leave"})
    joined = await ask(room, "A", {"type": "join"})
    assert joined["type"] == "joined"
    seen = await pushed(room, "teacher")
    rejoined = [m["participant"] for m in seen if m["type"] == "participant_joined"][-1]
    assert (rejoined["hand"], rejoined["on_stage"], rejoined["muted"]) == (
        None, False, {"mic": None, "camera": None}
    )


async def test_acting_on_an_unknown_or_invisible_participant_is_not_found(room: Room) -> None:
    for target in ("ghost", room.ids["admin"]):
        reply = await ask(room, "teacher", {"type": "stage", "participant_id": target})
        assert (reply["code"], reply["message"]) == ("not_found", f"participant {target} not found")


async def test_bad_fields_are_bad_messages(room: Room) -> None:
    reply = await ask(room, "teacher", {"type": "mute", "source": "speaker", "muted": True})
    assert (reply["code"], reply["message"]) == ("bad_message", "field 'source' must be one of mic, camera")
    reply = await ask(room, "teacher", {"type": "mute", "source": "mic", "muted": "yes"})
    assert (reply["code"], reply["message"]) == ("bad_message", "field 'muted' must be a boolean")
    reply = await ask(room, "teacher", {"type": "stage"})
    assert (reply["code"], reply["message"]) == ("bad_message", "field 'participant_id' is required")


async def test_moderating_before_joining_is_not_joined(client: TestClient) -> None:
    campus = await make_campus(client)
    ws, _ = await connect(client, await token_for(client, campus.classroom["id"], "classroom"))
    reply = await call(ws, {"type": "raise_hand"})
    assert (reply["code"], reply["message"]) == ("not_joined", "join the live session first")


# Who may do what, over the wire: (actor, message builder, expected error or None).
# ``T`` is the target classroom A, ``S`` the actor itself.
WIRE_PERMISSIONS = [
    ("teacher", {"type": "raise_hand"}, "role teacher may not raise a hand"),
    ("B", {"type": "raise_hand"}, None),
    ("admin", {"type": "raise_hand"}, "role admin may not raise a hand"),
    ("teacher", {"type": "lower_hand", "participant_id": "T"}, None),
    ("B", {"type": "lower_hand", "participant_id": "T"}, "role classroom may not lower another participant's hand"),
    ("B", {"type": "lower_hand", "participant_id": "S"}, None),
    ("admin", {"type": "lower_hand", "participant_id": "T"}, "role admin may not lower hands"),
    ("teacher", {"type": "lower_all_hands"}, None),
    ("B", {"type": "lower_all_hands"}, "role classroom may not lower all hands"),
    ("admin", {"type": "lower_all_hands"}, "role admin may not lower hands"),
    ("teacher", {"type": "stage", "participant_id": "T"}, None),
    ("teacher", {"type": "stage", "participant_id": "S"}, "only classrooms go on stage; S is a teacher"),
    ("B", {"type": "stage", "participant_id": "T"}, "role classroom may not stage participants"),
    ("B", {"type": "stage", "participant_id": "S"}, "role classroom may not stage participants"),
    ("admin", {"type": "stage", "participant_id": "T"}, "role admin may not stage participants"),
    ("teacher", {"type": "unstage", "participant_id": "T"}, None),
    ("B", {"type": "unstage", "participant_id": "T"}, "role classroom may not stage participants"),
    ("admin", {"type": "unstage", "participant_id": "T"}, "role admin may not stage participants"),
    ("teacher", {"type": "mute", "participant_id": "T", "source": "mic", "muted": True}, None),
    ("teacher", {"type": "mute", "source": "camera", "muted": True}, None),
    ("B", {"type": "mute", "participant_id": "T", "source": "mic", "muted": True}, "role classroom may only mute itself"),
    ("B", {"type": "mute", "source": "mic", "muted": True}, None),
    ("admin", {"type": "mute", "participant_id": "T", "source": "mic", "muted": True}, "role admin may not mute participants"),
    ("admin", {"type": "mute", "source": "mic", "muted": True}, "role admin may not mute participants"),
]


@pytest.mark.parametrize(("actor", "message", "expected"), WIRE_PERMISSIONS)
async def test_the_permission_table_over_the_wire(
    room: Room, actor: str, message: dict[str, Any], expected: str | None
) -> None:
    names = {"T": room.ids["A"], "S": room.ids[actor]}
    sent = {k: names.get(v, v) if k == "participant_id" else v for k, v in message.items()}
    reply = await ask(room, actor, sent)
    if expected is None:
        assert reply["type"] == "moderated", reply
        assert reply["action"] == message["type"]
    else:
        want = expected.replace(" S ", f" {room.ids[actor]} ")
        assert reply == {"type": "error", "code": "forbidden", "message": want, "re": "m"}
        await nothing_more(room.ws["A"])  # a refused request changes nothing for anyone
