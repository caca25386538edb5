from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from server import tokens

from .conftest import TOKEN_SECRET, make_campus, post


@pytest.mark.parametrize(
    ("room", "role", "page"),
    [
        ("lecture", "teacher", "/web/teacher.html"),
        ("classroom", "classroom", "/web/classroom.html"),
        ("*", "admin", "/web/admin.html"),
    ],
)
async def test_a_token_comes_with_the_page_its_holder_opens(
    client: TestClient, room: str, role: str, page: str
) -> None:
    campus = await make_campus(client)
    room_id = {"lecture": campus.lecture["id"], "classroom": campus.classroom["id"]}.get(room, "*")
    data = await post(client, "/api/tokens", {"room_id": room_id, "role": role, "name": "Ms Li"})
    assert data["url"] == f"{page}?token={data['token']}"
    claims = tokens.verify(TOKEN_SECRET, data["token"])
    assert (claims.sub, claims.role, claims.name) == (room_id, role, "Ms Li")
    assert claims.exp - claims.iat == 12 * 3600


async def test_a_token_lives_for_the_asked_ttl(client: TestClient) -> None:
    campus = await make_campus(client)
    data = await post(
        client,
        "/api/tokens",
        {"room_id": campus.classroom["id"], "role": "classroom", "ttl_s": 600},
    )
    claims = tokens.verify(TOKEN_SECRET, data["token"])
    assert claims.exp - claims.iat == 600
    assert data["expires_at"].endswith("Z")


@pytest.mark.parametrize(
    ("room", "role", "message"),
    [
        ("classroom", "teacher", "role teacher needs a lecture room; room {id} is a classroom"),
        ("lecture", "classroom", "role classroom needs a classroom; room {id} is a lecture room"),
        ("lecture", "admin", "admin tokens are not for a room: use room_id '*'"),
        ("*", "teacher", "teacher tokens need a room id, not '*'"),
    ],
)
async def test_a_token_role_must_fit_the_room(
    client: TestClient, room: str, role: str, message: str
) -> None:
    campus = await make_campus(client)
    room_id = {"lecture": campus.lecture["id"], "classroom": campus.classroom["id"]}.get(room, "*")
    data = await post(client, "/api/tokens", {"room_id": room_id, "role": role}, status=422)
    assert data["error"]["message"] == message.format(id=room_id)


async def test_a_token_role_must_be_known(client: TestClient) -> None:
    data = await post(client, "/api/tokens", {"room_id": "*", "role": "janitor"}, status=422)
    assert data["error"]["message"] == "field 'role' must be one of teacher, classroom, admin"


async def test_a_token_ttl_is_bounded(client: TestClient) -> None:
    data = await post(
        client, "/api/tokens", {"room_id": "*", "role": "admin", "ttl_s": 5}, status=422
    )
    assert data["error"]["message"] == "field 'ttl_s' must be between 60 and 158112000"


async def test_a_token_for_an_unknown_room_is_not_found(client: TestClient) -> None:
    data = await post(client, "/api/tokens", {"room_id": "ghost", "role": "teacher"}, status=404)
    assert data["error"]["message"] == "room ghost not found"
