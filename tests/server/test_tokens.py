from __future__ import annotations

import jwt
import pytest

from server import tokens
from server.errors import Unauthorized

SECRET = "s" * 40
NOW = 1_750_000_000


def test_a_minted_token_verifies_to_its_claims() -> None:
    token, claims = tokens.mint(SECRET, sub="room1", role="teacher", ttl_s=60, name="Li", now=NOW)
    assert tokens.verify(SECRET, token, now=NOW + 59) == claims
    assert claims == tokens.Claims(sub="room1", role="teacher", name="Li", iat=NOW, exp=NOW + 60)


def test_a_token_expires_at_its_exp() -> None:
    token, _ = tokens.mint(SECRET, sub="room1", role="teacher", ttl_s=60, now=NOW)
    with pytest.raises(Unauthorized, match="^token expired$"):
        tokens.verify(SECRET, token, now=NOW + 60)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token, _ = tokens.mint("x" * 40, sub="room1", role="teacher", ttl_s=60, now=NOW)
    with pytest.raises(Unauthorized, match="^token signature is invalid$"):
        tokens.verify(SECRET, token, now=NOW)


def test_a_forged_expired_token_reads_as_forged() -> None:
    token, _ = tokens.mint("x" * 40, sub="room1", role="teacher", ttl_s=60, now=NOW)
    with pytest.raises(Unauthorized, match="^token signature is invalid$"):
        tokens.verify(SECRET, token, now=NOW + 3600)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30"])
def test_garbage_is_a_malformed_token(garbage: str) -> None:
    with pytest.raises(Unauthorized, match="^token is malformed$"):
        tokens.verify(SECRET, garbage, now=NOW)


def test_an_unsigned_token_is_refused() -> None:
    token = jwt.encode(
        {"sub": "r", "role": "admin", "iat": NOW, "exp": NOW + 60, "iss": "synclass"},
        "",
        algorithm="none",
    )
    with pytest.raises(Unauthorized, match="^token signature is invalid$"):
        tokens.verify(SECRET, token, now=NOW)


def test_a_token_with_an_unknown_role_is_refused() -> None:
    token = jwt.encode(
        {"sub": "r", "role": "janitor", "iat": NOW, "exp": NOW + 60, "iss": "synclass"},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(Unauthorized, match="^token role must be one of teacher, classroom, admin$"):
        tokens.verify(SECRET, token, now=NOW)


def test_a_token_without_expiry_is_malformed() -> None:
    token = jwt.encode({"sub": "r", "role": "teacher", "iat": NOW, "iss": "synclass"}, SECRET)
    with pytest.raises(Unauthorized, match="^token is malformed$"):
        tokens.verify(SECRET, token, now=NOW)


def test_an_admin_token_for_a_room_is_malformed() -> None:
    token = jwt.encode(
        {"sub": "room1", "role": "admin", "iat": NOW, "exp": NOW + 60, "iss": "synclass"}, SECRET
    )
    with pytest.raises(Unauthorized, match="^token is malformed$"):
        tokens.verify(SECRET, token, now=NOW)
