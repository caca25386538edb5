from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient

from server import tokens

from .conftest import TOKEN_SECRET, make_campus


async def error_of(client: TestClient, headers: dict[str, str], status: int) -> dict[str, str]:
    response = await client.get("/api/schools", headers=headers)
    assert response.status == status
    error: dict[str, str] = (await response.json())["error"]
    return error


async def test_the_api_without_credentials_is_unauthorized(client: TestClient) -> None:
    assert await error_of(client, {}, 401) == {
        "code": "unauthorized",
        "message": "missing Authorization header",
    }


async def test_a_wrong_admin_key_is_unauthorized(client: TestClient) -> None:
    error = await error_of(client, {"Authorization": "Bearer not-the-key"}, 401)
    assert error["message"] == "admin key is invalid"


async def test_a_non_bearer_scheme_is_unauthorized(client: TestClient) -> None:
    error = await error_of(client, {"Authorization": "Basic YWRtaW46YWRtaW4="}, 401)
    assert error["message"] == "Authorization header must be 'Bearer <admin key or token>'"


async def test_an_admin_token_opens_the_api(client: TestClient) -> None:
    token, _ = tokens.mint(TOKEN_SECRET, sub="*", role="admin", ttl_s=60)
    response = await client.get("/api/schools", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200


async def test_a_teacher_token_is_forbidden_on_the_api(client: TestClient) -> None:
    campus = await make_campus(client)
    token, _ = tokens.mint(TOKEN_SECRET, sub=campus.lecture["id"], role="teacher", ttl_s=60)
    error = await error_of(client, {"Authorization": f"Bearer {token}"}, 403)
    assert error == {
        "code": "forbidden",
        "message": "an admin token is required; this token's role is teacher",
    }


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (
            lambda: tokens.mint(
                TOKEN_SECRET, sub="*", role="admin", ttl_s=60, now=time.time() - 120
            )[0],
            "token expired",
        ),
        (
            lambda: tokens.mint("f" * 40, sub="*", role="admin", ttl_s=60)[0],
            "token signature is invalid",
        ),
        (lambda: "not.a.jwt", "token is malformed"),
    ],
    ids=["expired", "forged", "malformed"],
)
async def test_a_bad_admin_token_is_unauthorized(
    client: TestClient, make_token: object, message: str
) -> None:
    token = make_token()  # type: ignore[operator]
    error = await error_of(client, {"Authorization": f"Bearer {token}"}, 401)
    assert error == {"code": "unauthorized", "message": message}


async def test_health_needs_no_credentials(client: TestClient) -> None:
    response = await client.get("/api/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "media": False}
