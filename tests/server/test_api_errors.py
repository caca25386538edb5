from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app

from .conftest import ADMIN, get, settings_for


async def test_malformed_json_is_a_bad_request(client: TestClient) -> None:
    response = await client.post("/api/schools", data=b"{name:", headers=ADMIN)
    assert response.status == 400
    assert await response.json() == {
        "error": {"code": "bad_request", "message": "request body is not valid JSON"}
    }


async def test_a_body_that_is_not_an_object_is_invalid(client: TestClient) -> None:
    response = await client.post("/api/schools", json=["Urban"], headers=ADMIN)
    assert response.status == 422
    assert (await response.json())["error"]["message"] == "request body must be a JSON object"


async def test_a_body_over_one_mebibyte_is_too_large(client: TestClient) -> None:
    response = await client.post(
        "/api/schools", data=b'{"name": "' + b"x" * (1024 * 1024) + b'"}', headers=ADMIN
    )
    assert response.status == 413
    assert await response.json() == {
        "error": {"code": "too_large", "message": "request body is larger than 1048576 bytes"}
    }


async def test_an_unknown_api_path_answers_json(client: TestClient) -> None:
    data = await get(client, "/api/nothing", status=404)
    assert data == {"error": {"code": "not_found", "message": "no such endpoint: GET /api/nothing"}}


async def test_a_wrong_method_answers_json(client: TestClient) -> None:
    response = await client.put("/api/schools", json={}, headers=ADMIN)
    assert response.status == 405
    assert (await response.json())["error"] == {
        "code": "method_not_allowed",
        "message": "method PUT is not allowed on /api/schools",
    }


async def test_the_root_redirects_to_the_admin_page(aiohttp_client: Any, tmp_path: Path) -> None:
    web_root = tmp_path / "web"
    web_root.mkdir()
    (web_root / "admin.html").write_text("<title>synclass admin</title>")
    client = await aiohttp_client(create_app(settings_for(tmp_path, web_root=web_root)))
    response = await client.get("/", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/web/admin.html")
    page = await client.get("/web/admin.html")
    assert await page.text() == "<title>synclass admin</title>"


async def test_stats_without_media_list_live_sessions(client: TestClient) -> None:
    assert await get(client, "/api/stats") == {
        "media": None,
        "sockets": 0,
        "participants": 0,
        "sessions": [],
    }
