from __future__ import annotations

from aiohttp.test_utils import TestClient

from .conftest import ADMIN, get, make_campus, post


async def test_a_pairing_links_a_lecture_room_to_a_classroom(client: TestClient) -> None:
    campus = await make_campus(client)
    assert campus.pairing == {
        "id": campus.pairing["id"],
        "lecture_room_id": campus.lecture["id"],
        "classroom_room_id": campus.classroom["id"],
    }
    assert await get(client, f"/api/pairings/{campus.pairing['id']}") == campus.pairing


async def test_a_lecture_room_pairs_with_many_classrooms(client: TestClient) -> None:
    campus = await make_campus(client)
    second = await post(
        client,
        "/api/pairings",
        {
            "lecture_room_id": campus.lecture["id"],
            "classroom_room_id": campus.lonely_classroom["id"],
        },
    )
    listed = await get(client, f"/api/pairings?lecture_room_id={campus.lecture['id']}")
    assert listed == {"pairings": [campus.pairing, second]}


async def test_a_classroom_pairs_with_at_most_one_lecture_room(client: TestClient) -> None:
    campus = await make_campus(client)
    other = await post(
        client, f"/api/schools/{campus.school['id']}/rooms", {"name": "Room 102", "kind": "lecture"}
    )
    data = await post(
        client,
        "/api/pairings",
        {"lecture_room_id": other["id"], "classroom_room_id": campus.classroom["id"]},
        status=409,
    )
    assert data["error"]["message"] == (
        f"classroom {campus.classroom['id']} is already paired with lecture room "
        f"{campus.lecture['id']} (pairing {campus.pairing['id']})"
    )


async def test_a_pairing_needs_a_lecture_room_first(client: TestClient) -> None:
    campus = await make_campus(client)
    data = await post(
        client,
        "/api/pairings",
        {
            "lecture_room_id": campus.lonely_classroom["id"],
            "classroom_room_id": campus.classroom["id"],
        },
        status=422,
    )
    assert data["error"] == {
        "code": "invalid",
        "message": f"room {campus.lonely_classroom['id']} is a classroom, not a lecture room",
        "field": "lecture_room_id",
    }


async def test_a_pairing_with_an_unknown_room_is_not_found(client: TestClient) -> None:
    campus = await make_campus(client)
    data = await post(
        client,
        "/api/pairings",
        {"lecture_room_id": campus.lecture["id"], "classroom_room_id": "ghost"},
        status=404,
    )
    assert data["error"]["message"] == "room ghost not found"


async def test_deleting_a_pairing_frees_the_classroom(client: TestClient) -> None:
    campus = await make_campus(client)
    response = await client.delete(f"/api/pairings/{campus.pairing['id']}", headers=ADMIN)
    assert response.status == 204
    assert await get(client, "/api/pairings") == {"pairings": []}
    response = await client.delete(f"/api/rooms/{campus.classroom['id']}", headers=ADMIN)
    assert response.status == 204
