"""Fixtures for the control plane: an app on a temporary data dir, admin
headers, and helpers that build a school with a paired lecture room."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings, load_settings

ADMIN_KEY = "test-admin-key-0123456789"
TOKEN_SECRET = "test-token-secret-0123456789abcdef-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "admin_key": ADMIN_KEY,
        "token_secret": TOKEN_SECRET,
        "hello_timeout_s": 2.0,
    }
    values.update(overrides)
    return load_settings(env={}, **values)


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(create_app(settings_for(tmp_path)))


async def post(client: TestClient, path: str, body: Any, status: int = 201) -> Any:
    response = await client.post(path, json=body, headers=ADMIN)
    data = await response.json()
    assert response.status == status, data
    return data


async def get(client: TestClient, path: str, status: int = 200) -> Any:
    response = await client.get(path, headers=ADMIN)
    data = await response.json()
    assert response.status == status, data
    return data


@dataclass
class Campus:
    """An urban school's lecture room paired with a rural classroom; plus an
    unpaired classroom."""

    school: dict[str, Any]
    lecture: dict[str, Any]
    classroom: dict[str, Any]
    lonely_classroom: dict[str, Any]
    pairing: dict[str, Any]


async def make_campus(client: TestClient) -> Campus:
    school = await post(client, "/api/schools", {"name": "Urban No. 1", "region": "Kunming"})
    rural = await post(client, "/api/schools", {"name": "Village Primary", "region": "Lufeng"})
    lecture = await post(
        client, f"/api/schools/{school['id']}/rooms", {"name": "Room 101", "kind": "lecture"}
    )
    classroom = await post(
        client, f"/api/schools/{rural['id']}/rooms", {"name": "Grade 3", "kind": "classroom"}
    )
    lonely = await post(
        client, f"/api/schools/{rural['id']}/rooms", {"name": "Grade 4", "kind": "classroom"}
    )
    pairing = await post(
        client,
        "/api/pairings",
        {"lecture_room_id": lecture["id"], "classroom_room_id": classroom["id"]},
    )
    return Campus(school, lecture, classroom, lonely, pairing)


async def token_for(client: TestClient, room_id: str, role: str, **extra: Any) -> str:
    data = await post(client, "/api/tokens", {"room_id": room_id, "role": role, **extra})
    token: str = data["token"]
    return token
