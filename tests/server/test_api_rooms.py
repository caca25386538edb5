from __future__ import annotations

from aiohttp.test_utils import TestClient

from .conftest import ADMIN, get, make_campus, post


async def test_a_room_is_created_in_a_school_and_fetched(client: TestClient) -> None:
    school = await post(client, "/api/schools", {"name": "Urban No. 1"})
    room = await post(
        client, f"/api/schools/{school['id']}/rooms", {"name": "Room 101", "kind": "lecture"}
    )
    assert {k: room[k] for k in ("school_id", "name", "kind")} == {
        "school_id": school["id"],
        "name": "Room 101",
        "kind": "lecture",
    }
    assert await get(client, f"/api/rooms/{room['id']}") == room


async def test_rooms_are_listed_by_school_and_kind(client: TestClient) -> None:
    campus = await make_campus(client)
    everything = await get(client, "/api/rooms")
    assert [r["id"] for r in everything["rooms"]] == [
        campus.lecture["id"],
        campus.classroom["id"],
        campus.lonely_classroom["id"],
    ]
    rural = await get(client, f"/api/rooms?school_id={campus.classroom['school_id']}")
    assert [r["name"] for r in rural["rooms"]] == ["Grade 3", "Grade 4"]
    lectures = await get(client, "/api/rooms?kind=lecture")
    assert lectures == {"rooms": [campus.lecture]}


async def test_listing_rooms_of_an_unknown_kind_is_refused(client: TestClient) -> None:
    data = await get(client, "/api/rooms?kind=gym", status=422)
    assert data["error"]["message"] == "query 'kind' must be one of lecture, classroom"


async def test_a_room_kind_must_be_lecture_or_classroom(client: TestClient) -> None:
    school = await post(client, "/api/schools", {"name": "Urban No. 1"})
    data = await post(
        client, f"/api/schools/{school['id']}/rooms", {"name": "Gym", "kind": "gym"}, status=422
    )
    assert data == {
        "error": {
            "code": "invalid",
            "message": "field 'kind' must be one of lecture, classroom",
            "field": "kind",
        }
    }


async def test_a_room_in_an_unknown_school_is_not_found(client: TestClient) -> None:
    data = await post(
        client, "/api/schools/nope/rooms", {"name": "Room 1", "kind": "lecture"}, status=404
    )
    assert data["error"]["message"] == "school nope not found"


async def test_renaming_a_room_keeps_its_kind(client: TestClient) -> None:
    campus = await make_campus(client)
    response = await client.patch(
        f"/api/rooms/{campus.lecture['id']}", json={"name": "Room 201"}, headers=ADMIN
    )
    assert await response.json() == {**campus.lecture, "name": "Room 201"}


async def test_a_room_kind_cannot_be_patched(client: TestClient) -> None:
    campus = await make_campus(client)
    response = await client.patch(
        f"/api/rooms/{campus.lecture['id']}", json={"kind": "classroom"}, headers=ADMIN
    )
    assert response.status == 422
    assert (await response.json())["error"]["message"] == "field 'kind' is not allowed"


async def test_deleting_an_unpaired_room_removes_it(client: TestClient) -> None:
    campus = await make_campus(client)
    response = await client.delete(f"/api/rooms/{campus.lonely_classroom['id']}", headers=ADMIN)
    assert response.status == 204
    await get(client, f"/api/rooms/{campus.lonely_classroom['id']}", status=404)


async def test_deleting_a_paired_room_is_a_conflict(client: TestClient) -> None:
    campus = await make_campus(client)
    response = await client.delete(f"/api/rooms/{campus.classroom['id']}", headers=ADMIN)
    assert response.status == 409
    assert (await response.json())["error"]["message"] == (
        f"room {campus.classroom['id']} is in pairing {campus.pairing['id']}; "
        "delete the pairing first"
    )


async def test_deleting_a_lecture_room_with_sessions_is_a_conflict(client: TestClient) -> None:
    school = await post(client, "/api/schools", {"name": "Urban No. 1"})
    room = await post(
        client, f"/api/schools/{school['id']}/rooms", {"name": "Room 101", "kind": "lecture"}
    )
    await post(
        client,
        "/api/sessions",
        {"lecture_room_id": room["id"], "title": "T", "subject": "S", "teacher_name": "Li"},
    )
    response = await client.delete(f"/api/rooms/{room['id']}", headers=ADMIN)
    assert response.status == 409
    assert (await response.json())["error"]["message"] == (
        f"room {room['id']} has 1 class session, which are kept as the school's records"
    )
