from __future__ import annotations

from pathlib import Path
from typing import Any

from server.app import create_app
from server.settings import load_settings

from .conftest import ADMIN, get, make_campus, settings_for


async def test_records_survive_a_restart_on_the_same_data_dir(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    first = await aiohttp_client(create_app(settings_for(tmp_path)))
    campus = await make_campus(first)
    before = [await get(first, p) for p in ("/api/schools", "/api/rooms", "/api/pairings")]
    await first.close()

    second = await aiohttp_client(create_app(settings_for(tmp_path)))
    after = [await get(second, p) for p in ("/api/schools", "/api/rooms", "/api/pairings")]
    assert after == before
    assert after[2]["pairings"] == [campus.pairing]


async def test_generated_secrets_survive_a_restart(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    first = await aiohttp_client(create_app(settings))
    key = (tmp_path / "data" / "admin_key").read_text().strip()
    response = await first.post(
        "/api/tokens",
        json={"room_id": "*", "role": "admin"},
        headers={"Authorization": f"Bearer {key}"},
    )
    token = (await response.json())["token"]
    await first.close()

    second = await aiohttp_client(create_app(settings))
    response = await second.get("/api/schools", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    assert (tmp_path / "data" / "token_secret").stat().st_mode & 0o777 == 0o600
    assert ADMIN["Authorization"] != f"Bearer {key}"
