from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from server import tokens
from server.app import create_app

from .conftest import TOKEN_SECRET, Campus, make_campus, post, settings_for, token_for
from .wsutil import connect, nothing_more, receive, request


async def closed_with(ws: Any) -> int:
    frame = await ws.receive()
    assert frame.type == WSMsgType.CLOSE, frame
    code: int = frame.data
    return code


# --- hello ---------------------------------------------------------------------


async def test_a_classroom_is_welcomed_with_its_room_and_no_session(client: TestClient) -> None:
    campus = await make_campus(client)
    token = await token_for(client, campus.classroom["id"], "classroom")
    _, welcome = await connect(client, token, name="Grade 3 screen")
    assert welcome == {
        "type": "welcome",
        "participant_id": welcome["participant_id"],
        "role": "classroom",
        "room": campus.classroom,
        "session": None,
        "ice_servers": [],
        "re": "h",
    }


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not.a.jwt", "token is malformed"),
        (tokens.mint("f" * 40, sub="*", role="admin", ttl_s=3600)[0], "token signature is invalid"),
        (tokens.mint(TOKEN_SECRET, sub="*", role="admin", ttl_s=60, now=0)[0], "token expired"),
        (
            tokens.mint(TOKEN_SECRET, sub="ghost", role="teacher", ttl_s=3600)[0],
            "room ghost no longer exists",
        ),
    ],
    ids=["malformed", "forged", "expired", "deleted-room"],
)
async def test_hello_with_a_bad_token_gets_an_error_and_close_4401(
    client: TestClient, token: str, message: str
) -> None:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "token": token, "id": 1})
    assert await receive(ws) == {
        "type": "error",
        "code": "unauthorized",
        "message": message,
        "re": 1,
    }
    assert await closed_with(ws) == 4401


async def test_a_first_message_other_than_hello_closes_with_4400(client: TestClient) -> None:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "ping"})
    assert await receive(ws) == {
        "type": "error",
        "code": "bad_message",
        "message": "the first message must be hello",
        "re": None,
    }
    assert await closed_with(ws) == 4400


async def test_a_silent_socket_is_closed_with_4408(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(settings_for(tmp_path, hello_timeout_s=0.1)))
    ws = await client.ws_connect("/ws")
    error = await receive(ws)
    assert (error["code"], error["message"]) == ("unauthorized", "no hello within 0.1 s")
    assert await closed_with(ws) == 4408


async def test_a_second_hello_is_a_bad_message(client: TestClient) -> None:
    ws, _ = await connect(client, await token_for(client, "*", "admin"))
    reply = await request(ws, {"type": "hello", "token": "x", "id": 2})
    assert reply == {
        "type": "error",
        "code": "bad_message",
        "message": "hello was already received",
        "re": 2,
    }


# --- malformed input keeps the socket ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "message", "re"),
    [
        ("{not json", "bad_message", "message is not valid JSON", None),
        ("[1, 2]", "bad_message", "message must be a JSON object", None),
        ('{"id": 3}', "bad_message", "field 'type' is required", 3),
        ('{"type": "dance", "id": "d"}', "unknown_type", "unknown message type 'dance'", "d"),
        ('{"type": "answer", "id": 4}', "bad_message", "field 'sdp' is required", 4),
        ('{"type": "answer", "sdp": 5}', "bad_message", "field 'sdp' must be a string", None),
        (
            '{"type": "ping", "id": true}',
            "bad_message",
            "field 'id' must be a string or a number",
            None,
        ),
        (
            '{"type": "subscribe", "producer_ids": "p1"}',
            "bad_message",
            "field 'producer_ids' must be a list of strings",
            None,
        ),
        (
            '{"type": "publish", "sdp": "v=0", "tracks": {"0": {"source": "webcam"}}}',
            "bad_message",
            "tracks['0'].source must be one of camera, mic, courseware",
            None,
        ),
    ],
)
async def test_malformed_input_gets_an_error_and_the_socket_stays_usable(
    client: TestClient, text: str, code: str, message: str, re: Any
) -> None:
    ws, _ = await connect(client, await token_for(client, "*", "admin"))
    await ws.send_str(text)
    assert await receive(ws) == {"type": "error", "code": code, "message": message, "re": re}
    assert await request(ws, {"type": "ping", "id": 9}) == {"type": "pong", "re": 9}


async def test_a_binary_frame_is_a_bad_message(client: TestClient) -> None:
    ws, _ = await connect(client, await token_for(client, "*", "admin"))
    await ws.send_bytes(b"\x00\x01")
    error = await receive(ws)
    assert (error["code"], error["message"]) == (
        "bad_message",
        "binary frames are not accepted; send JSON text",
    )
    await nothing_more(ws)


async def test_a_too_large_message_gets_too_large_and_the_socket_stays_usable(
    client: TestClient,
) -> None:
    ws, _ = await connect(client, await token_for(client, "*", "admin"))
    text = '{"type": "answer", "sdp": "' + "a" * 262144 + '"}'
    await ws.send_str(text)
    assert await receive(ws) == {
        "type": "error",
        "code": "too_large",
        "message": f"message is {len(text)} bytes; the limit is 262144",
        "re": None,
    }
    await nothing_more(ws)


# --- sessions ---------------------------------------------------------------------


async def test_a_classroom_may_not_start_a_session(client: TestClient) -> None:
    campus = await make_campus(client)
    ws, _ = await connect(client, await token_for(client, campus.classroom["id"], "classroom"))
    reply = await request(ws, {"type": "start_session", "id": "s"})
    assert reply == {
        "type": "error",
        "code": "forbidden",
        "message": "role classroom may not start a session",
        "re": "s",
    }


async def open_campus(client: TestClient) -> tuple[Campus, Any, Any, Any]:
    """A campus with the teacher, the paired classroom and the unpaired
    classroom connected."""
    campus = await make_campus(client)
    teacher, _ = await connect(
        client, await token_for(client, campus.lecture["id"], "teacher", name="Ms Li")
    )
    paired, _ = await connect(client, await token_for(client, campus.classroom["id"], "classroom"))
    lonely, _ = await connect(
        client, await token_for(client, campus.lonely_classroom["id"], "classroom")
    )
    return campus, teacher, paired, lonely


async def test_a_teacher_starting_a_session_reaches_her_and_the_paired_classrooms(
    client: TestClient,
) -> None:
    campus, teacher, paired, lonely = await open_campus(client)
    reply = await request(
        teacher, {"type": "start_session", "title": "Fractions", "subject": "Maths", "id": 7}
    )
    assert reply["type"] == "session"
    assert reply["re"] == 7
    session = reply["session"]
    assert {
        k: session[k] for k in ("lecture_room_id", "title", "subject", "teacher_name", "status")
    } == {
        "lecture_room_id": campus.lecture["id"],
        "title": "Fractions",
        "subject": "Maths",
        "teacher_name": "Ms Li",
        "status": "live",
    }
    assert await receive(paired) == {"type": "session", "session": session, "re": None}
    await nothing_more(lonely)


async def test_a_teacher_starts_her_scheduled_session(client: TestClient) -> None:
    campus, teacher, paired, _ = await open_campus(client)
    scheduled = await post(
        client,
        "/api/sessions",
        {
            "lecture_room_id": campus.lecture["id"],
            "title": "Poems",
            "subject": "Chinese",
            "teacher_name": "Ms Li",
        },
    )
    reply = await request(teacher, {"type": "start_session", "session_id": scheduled["id"]})
    assert (reply["session"]["id"], reply["session"]["status"]) == (scheduled["id"], "live")
    assert (await receive(paired))["session"]["id"] == scheduled["id"]


async def test_a_second_start_while_live_is_a_conflict(client: TestClient) -> None:
    campus, teacher, _, _ = await open_campus(client)
    first = (await request(teacher, {"type": "start_session"}))["session"]
    reply = await request(teacher, {"type": "start_session", "id": 2})
    assert reply == {
        "type": "error",
        "code": "conflict",
        "message": f"lecture room {campus.lecture['id']} already has a live session {first['id']}",
        "re": 2,
    }


async def test_a_session_started_over_rest_is_pushed_to_waiting_sockets(client: TestClient) -> None:
    campus, teacher, paired, _ = await open_campus(client)
    scheduled = await post(
        client,
        "/api/sessions",
        {
            "lecture_room_id": campus.lecture["id"],
            "title": "Poems",
            "subject": "Chinese",
            "teacher_name": "Ms Li",
        },
    )
    live = await post(client, f"/api/sessions/{scheduled['id']}/start", None, status=200)
    assert await receive(teacher) == {"type": "session", "session": live, "re": None}
    assert await receive(paired) == {"type": "session", "session": live, "re": None}


async def test_a_classroom_arriving_during_a_lesson_is_welcomed_with_it(client: TestClient) -> None:
    campus = await make_campus(client)
    teacher, _ = await connect(client, await token_for(client, campus.lecture["id"], "teacher"))
    session = (await request(teacher, {"type": "start_session"}))["session"]
    _, welcome = await connect(client, await token_for(client, campus.classroom["id"], "classroom"))
    assert welcome["session"] == session


async def test_ending_the_session_tells_everyone_concerned(client: TestClient) -> None:
    _, teacher, paired, lonely = await open_campus(client)
    session = (await request(teacher, {"type": "start_session"}))["session"]
    await receive(paired)
    reply = await request(teacher, {"type": "end_session", "id": "e"})
    assert reply == {"type": "session_ended", "session_id": session["id"], "re": "e"}
    assert await receive(paired) == {
        "type": "session_ended",
        "session_id": session["id"],
        "re": None,
    }
    await nothing_more(lonely)


async def test_ending_with_nothing_live_is_no_session(client: TestClient) -> None:
    campus, teacher, _, _ = await open_campus(client)
    reply = await request(teacher, {"type": "end_session"})
    assert (reply["code"], reply["message"]) == (
        "no_session",
        f"nothing is live in lecture room {campus.lecture['id']}",
    )


async def test_an_admin_socket_hears_about_every_session(client: TestClient) -> None:
    campus, teacher, _, _ = await open_campus(client)
    admin, welcome = await connect(client, await token_for(client, "*", "admin"))
    assert (welcome["role"], welcome["room"], welcome["session"]) == ("admin", None, None)
    session = (await request(teacher, {"type": "start_session"}))["session"]
    assert await receive(admin) == {"type": "session", "session": session, "re": None}


# --- media without a media plane ----------------------------------------------------


async def test_join_without_a_media_plane_is_an_internal_error(client: TestClient) -> None:
    campus, teacher, _, _ = await open_campus(client)
    await request(teacher, {"type": "start_session"})
    reply = await request(teacher, {"type": "join", "id": "j"})
    assert reply == {
        "type": "error",
        "code": "internal",
        "message": "media plane not available",
        "re": "j",
    }


async def test_publish_without_a_media_plane_is_an_internal_error(client: TestClient) -> None:
    campus, teacher, _, _ = await open_campus(client)
    reply = await request(
        teacher, {"type": "publish", "sdp": "v=0", "tracks": {"0": {"source": "camera"}}, "id": "p"}
    )
    assert reply == {
        "type": "error",
        "code": "internal",
        "message": "media plane not available",
        "re": "p",
    }


async def test_leave_before_join_is_not_joined(client: TestClient) -> None:
    _, teacher, _, _ = await open_campus(client)
    reply = await request(teacher, {"type": "leave", "id": 1})
    assert reply == {"type": "error", "code": "not_joined", "message": "not in a session", "re": 1}
