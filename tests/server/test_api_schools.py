from __future__ import annotations

from aiohttp.test_utils import TestClient

from .conftest import ADMIN, get, post


async def test_a_created_school_is_listed_and_fetched(client: TestClient) -> None:
    school = await post(client, "/api/schools", {"name": "Urban No. 1", "region": "Kunming"})
    assert set(school) == {"id", "name", "region"}
    assert (school["name"], school["region"]) == ("Urban No. 1", "Kunming")
    assert await get(client, "/api/schools") == {"schools": [school]}
    assert await get(client, f"/api/schools/{school['id']}") == school


async def test_a_school_without_region_gets_an_empty_region(client: TestClient) -> None:
    school = await post(client, "/api/schools", {"name": "Hill School"})
    assert school["region"] == ""


async def test_patching_a_school_changes_only_the_given_fields(client: TestClient) -> None:
    school = await post(client, "/api/schools", {"name": "Urban No. 1", "region": "Kunming"})
    response = await client.patch(
        f"/api/schools/{school['id']}", json={"region": "Dali"}, headers=ADMIN
    )
    assert response.status == 200
    assert await response.json() == {**school, "region": "Dali"}


async def test_deleting_a_school_removes_it(client: TestClient) -> None:
    school = await post(client, "/api/schools", {"name": "Urban No. 1"})
    response = await client.delete(f"/api/schools/{school['id']}", headers=ADMIN)
    assert response.status == 204
    data = await get(client, f"/api/schools/{school['id']}", status=404)
    assert data == {"error": {"code": "not_found", "message": f"school {school['id']} not found"}}


async def test_deleting_a_school_with_rooms_is_a_conflict(client: TestClient) -> None:
    school = await post(client, "/api/schools", {"name": "Urban No. 1"})
    for name in ("Room 101", "Room 102"):
        await post(client, f"/api/schools/{school['id']}/rooms", {"name": name, "kind": "lecture"})
    response = await client.delete(f"/api/schools/{school['id']}", headers=ADMIN)
    assert response.status == 409
    assert await response.json() == {
        "error": {
            "code": "conflict",
            "message": f"school {school['id']} still has 2 rooms; delete them first",
        }
    }


async def test_a_school_needs_a_name(client: TestClient) -> None:
    data = await post(client, "/api/schools", {"region": "Kunming"}, status=422)
    assert data == {
        "error": {"code": "invalid", "message": "field 'name' is required", "field": "name"}
    }


async def test_a_blank_school_name_is_refused(client: TestClient) -> None:
    data = await post(client, "/api/schools", {"name": "   "}, status=422)
    assert data["error"]["message"] == "field 'name' must not be empty"


async def test_a_school_name_must_be_a_string(client: TestClient) -> None:
    data = await post(client, "/api/schools", {"name": 7}, status=422)
    assert data["error"]["message"] == "field 'name' must be a string"


async def test_an_unknown_school_field_is_refused(client: TestClient) -> None:
    data = await post(client, "/api/schools", {"name": "A", "regoin": "B"}, status=422)
    assert data["error"]["message"] == "field 'regoin' is not allowed"


async def test_patching_an_unknown_school_is_not_found(client: TestClient) -> None:
    response = await client.patch("/api/schools/nope", json={"name": "X"}, headers=ADMIN)
    assert response.status == 404
    assert (await response.json())["error"]["message"] == "school nope not found"
