"""Join tokens: HS256 JWTs minted by an admin, presented by browsers.

Claims: ``sub`` (a room id, ``*`` for admin), ``role``, ``name`` (optional),
``iat``, ``exp`` (seconds since the epoch) and ``iss`` = ``synclass``.
Time is a parameter (``now``) so expiry is testable without patching clocks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard, cast

import jwt

from .errors import Forbidden, Invalid, Unauthorized
from .models import ROOM_KIND_NOUNS, Room

Role = Literal["teacher", "classroom", "admin"]
ROLES: tuple[Role, ...] = ("teacher", "classroom", "admin")
ISSUER = "synclass"
ALGORITHM = "HS256"
ADMIN_SUBJECT = "*"

# The page a token's holder opens.
PAGES: dict[Role, str] = {
    "teacher": "/web/teacher.html",
    "classroom": "/web/classroom.html",
    "admin": "/web/admin.html",
}


@dataclass(frozen=True)
class Claims:
    sub: str
    role: Role
    name: str | None
    iat: int
    exp: int

    @property
    def room_id(self) -> str | None:
        return None if self.sub == ADMIN_SUBJECT else self.sub


def mint(
    secret: str,
    *,
    sub: str,
    role: Role,
    ttl_s: int,
    name: str | None = None,
    now: float | None = None,
) -> tuple[str, Claims]:
    """A signed token and its claims. Role/room consistency is checked by
    ``check_role_for_room`` before (it needs the room)."""
    issued = int(time.time() if now is None else now)
    claims = Claims(sub=sub, role=role, name=name, iat=issued, exp=issued + ttl_s)
    payload: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "iat": claims.iat,
        "exp": claims.exp,
        "iss": ISSUER,
    }
    if name is not None:
        payload["name"] = name
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


def verify(secret: str, token: str, *, now: float | None = None) -> Claims:
    """The claims of a valid token; ``Unauthorized`` with an exact message otherwise."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            # expiry is checked below against ``now``; the signature first,
            # so a forged expired token reads as forged
            options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat", "iss"]},
        )
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        raise Unauthorized("token signature is invalid") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized("token issuer is not synclass") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("token is malformed") from None
    role = payload.get("role")
    if role not in ROLES:
        raise Unauthorized("token role must be one of teacher, classroom, admin")
    sub, name, iat, exp = (payload.get(k) for k in ("sub", "name", "iat", "exp"))
    if (
        not isinstance(sub, str)
        or not sub
        or (sub == ADMIN_SUBJECT) != (role == "admin")
        or not (name is None or isinstance(name, str))
        or not _is_int(iat)
        or not _is_int(exp)
    ):
        raise Unauthorized("token is malformed")
    if (time.time() if now is None else now) >= exp:
        raise Unauthorized("token expired")
    return Claims(sub=sub, role=cast(Role, role), name=name, iat=iat, exp=exp)


def check_role_for_room(role: Role, room: Room | None) -> None:
    """Teacher tokens are for lecture rooms, classroom tokens for classrooms,
    admin tokens for no room (``*``). ``Invalid`` otherwise."""
    if role == "admin":
        if room is not None:
            raise Invalid("room_id", "admin tokens are not for a room: use room_id '*'")
        return
    if room is None:
        raise Invalid("room_id", f"{role} tokens need a room id, not '*'")
    wanted = "lecture" if role == "teacher" else "classroom"
    if room.kind != wanted:
        raise Invalid(
            "role",
            f"role {role} needs {ROOM_KIND_NOUNS[wanted]}; "
            f"room {room.id} is {ROOM_KIND_NOUNS[room.kind]}",
        )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# --- access tokens: a signed URL for one recording's files ---------------------------
#
# A <video> element cannot send an Authorization header, so the library hands
# out file URLs carrying ``?access=<token>``: a JWT for one recording
# (``sub``), with its own audience so it is never taken for a join token (nor
# a join token for it), valid for ACCESS_TTL_S.

ACCESS_AUDIENCE = "synclass-recording"
ACCESS_TTL_S = 4 * 3600  # a lesson and its replay, with room to pause


def mint_access(secret: str, recording_id: str, *, ttl_s: int = ACCESS_TTL_S,
                now: float | None = None) -> tuple[str, int]:
    """A token for the files of ``recording_id`` and its expiry (unix seconds)."""
    issued = int(time.time() if now is None else now)
    payload = {"sub": recording_id, "aud": ACCESS_AUDIENCE, "iss": ISSUER,
               "iat": issued, "exp": issued + ttl_s}
    return jwt.encode(payload, secret, algorithm=ALGORITHM), issued + ttl_s


def verify_access(secret: str, token: str, recording_id: str, *, now: float | None = None) -> None:
    """Return if ``token`` opens ``recording_id``'s files; else ``Unauthorized``
    (``access token is malformed``, ``access token signature is invalid``,
    ``access token expired``) or ``Forbidden`` (``access token is for
    recording A, not B``)."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=ACCESS_AUDIENCE,
            issuer=ISSUER,
            options={"verify_exp": False, "verify_iat": False,
                     "require": ["sub", "aud", "exp", "iss"]},
        )
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        raise Unauthorized("access token signature is invalid") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("access token is malformed") from None
    sub, exp = payload.get("sub"), payload.get("exp")
    if not isinstance(sub, str) or not _is_int(exp):
        raise Unauthorized("access token is malformed")
    if (time.time() if now is None else now) >= exp:
        raise Unauthorized("access token expired")
    if sub != recording_id:
        raise Forbidden(f"access token is for recording {sub}, not {recording_id}")
