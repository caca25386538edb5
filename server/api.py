"""The REST API under ``/api/`` (docs/protocol.md, "REST API").

Handlers are thin: read and check the input, call the store (or live state),
answer JSON. Errors are raised as domain errors and become HTTP in
``server.middleware``; admin auth is a middleware too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from . import attendance, tokens
from .keys import LIVE, MEDIA, SETTINGS, STORE
from .models import ROOM_KINDS, SESSION_STATUSES, iso_utc, utc_now
from .validation import Body, parse_json, query_choice, query_text

# A classroom's screen keeps its URL for a school year or more.
MAX_TOKEN_TTL_S = 5 * 366 * 24 * 3600
MIN_TOKEN_TTL_S = 60


async def read_body(request: web.Request, allowed: tuple[str, ...]) -> Body:
    return Body(parse_json(await request.read()), allowed)


def created(data: dict[str, Any]) -> web.Response:
    return web.json_response(data, status=201)


def no_content() -> web.Response:
    return web.Response(status=204)


# --- health and stats ----------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "media": request.app[MEDIA] is not None})


async def stats(request: web.Request) -> web.Response:
    media = request.app[MEDIA]
    return web.json_response(
        {"media": media.counters() if media is not None else None, **request.app[LIVE].stats()}
    )


async def session_links(request: web.Request) -> web.Response:
    """Each participant's downlink in a live session: the server's estimate and,
    per track it receives, the layer and what the receiver reports."""
    session = await request.app[STORE].get_session(request.match_info["id"])
    return web.json_response({"session_id": session.id, "links": request.app[LIVE].links(session.id)})


# --- schools -------------------------------------------------------------------


async def list_schools(request: web.Request) -> web.Response:
    schools = await request.app[STORE].list_schools()
    return web.json_response({"schools": [s.to_json() for s in schools]})


async def create_school(request: web.Request) -> web.Response:
    body = await read_body(request, ("name", "region"))
    school = await request.app[STORE].create_school(
        name=body.text("name"), region=body.optional_text("region", default="") or ""
    )
    return created(school.to_json())


async def get_school(request: web.Request) -> web.Response:
    school = await request.app[STORE].get_school(request.match_info["id"])
    return web.json_response(school.to_json())


async def update_school(request: web.Request) -> web.Response:
    body = await read_body(request, ("name", "region"))
    school = await request.app[STORE].update_school(
        request.match_info["id"],
        name=body.optional_text("name"),
        region=body.optional_text("region"),
    )
    return web.json_response(school.to_json())


async def delete_school(request: web.Request) -> web.Response:
    await request.app[STORE].delete_school(request.match_info["id"])
    return no_content()


# --- rooms -----------------------------------------------------------------------


async def create_room(request: web.Request) -> web.Response:
    body = await read_body(request, ("name", "kind"))
    name = body.text("name")
    kind = body.choice("kind", ROOM_KINDS)
    room = await request.app[STORE].create_room(request.match_info["id"], name, kind)
    return created(room.to_json())


async def list_rooms(request: web.Request) -> web.Response:
    rooms = await request.app[STORE].list_rooms(
        school_id=query_text(request.query, "school_id"),
        kind=query_choice(request.query, "kind", ROOM_KINDS),
    )
    return web.json_response({"rooms": [r.to_json() for r in rooms]})


async def get_room(request: web.Request) -> web.Response:
    room = await request.app[STORE].get_room(request.match_info["id"])
    return web.json_response(room.to_json())


async def update_room(request: web.Request) -> web.Response:
    body = await read_body(request, ("name",))
    room = await request.app[STORE].update_room(
        request.match_info["id"], name=body.optional_text("name")
    )
    return web.json_response(room.to_json())


async def delete_room(request: web.Request) -> web.Response:
    await request.app[STORE].delete_room(request.match_info["id"])
    return no_content()


# --- pairings ----------------------------------------------------------------------


async def create_pairing(request: web.Request) -> web.Response:
    body = await read_body(request, ("lecture_room_id", "classroom_room_id"))
    lecture_room_id = body.text("lecture_room_id")
    classroom_room_id = body.text("classroom_room_id")
    pairing = await request.app[STORE].create_pairing(lecture_room_id, classroom_room_id)
    return created(pairing.to_json())


async def list_pairings(request: web.Request) -> web.Response:
    pairings = await request.app[STORE].list_pairings(
        lecture_room_id=query_text(request.query, "lecture_room_id"),
        classroom_room_id=query_text(request.query, "classroom_room_id"),
    )
    return web.json_response({"pairings": [p.to_json() for p in pairings]})


async def get_pairing(request: web.Request) -> web.Response:
    pairing = await request.app[STORE].get_pairing(request.match_info["id"])
    return web.json_response(pairing.to_json())


async def delete_pairing(request: web.Request) -> web.Response:
    await request.app[STORE].delete_pairing(request.match_info["id"])
    return no_content()


# --- class sessions ------------------------------------------------------------------


async def create_session(request: web.Request) -> web.Response:
    body = await read_body(
        request, ("lecture_room_id", "title", "subject", "teacher_name", "scheduled_at", "record")
    )
    lecture_room_id = body.text("lecture_room_id")
    title = body.text("title")
    subject = body.text("subject")
    teacher_name = body.text("teacher_name")
    scheduled_at = body.optional_time("scheduled_at")
    record = body.optional_bool("record", default=True)
    session = await request.app[STORE].create_session(
        lecture_room_id, title, subject, teacher_name, scheduled_at, record
    )
    return created(session.to_json())


async def list_sessions(request: web.Request) -> web.Response:
    sessions = await request.app[STORE].list_sessions(
        status=query_choice(request.query, "status", SESSION_STATUSES),
        lecture_room_id=query_text(request.query, "lecture_room_id"),
    )
    return web.json_response({"sessions": [s.to_json() for s in sessions]})


async def get_session(request: web.Request) -> web.Response:
    session = await request.app[STORE].get_session(request.match_info["id"])
    return web.json_response(session.to_json())


async def start_session(request: web.Request) -> web.Response:
    session = await request.app[STORE].start_session(request.match_info["id"], utc_now())
    await request.app[LIVE].session_started(session)
    return web.json_response(session.to_json())


async def end_session(request: web.Request) -> web.Response:
    session = await request.app[STORE].end_session(request.match_info["id"], utc_now())
    await request.app[LIVE].session_ended(session)
    return web.json_response(session.to_json())


# --- attendance ------------------------------------------------------------------------


async def get_attendance(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    records = await request.app[STORE].list_attendance(session_id)
    now = utc_now()
    return web.json_response(
        {
            "session_id": session_id,
            "records": [attendance.record_json(r, now) for r in records],
            "rooms": attendance.summarize(records, now),
        }
    )


async def get_attendance_csv(request: web.Request) -> web.Response:
    store = request.app[STORE]
    session = await store.get_session(request.match_info["id"])
    records = await store.list_attendance(session.id)
    text = attendance.to_csv(session, records, utc_now())
    return web.Response(
        body=text.encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="attendance-{session.id}.csv"'},
    )


# --- tokens ----------------------------------------------------------------------------


async def create_token(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await read_body(request, ("room_id", "role", "name", "ttl_s"))
    room_id = body.text("room_id")
    role = body.choice("role", tokens.ROLES)
    name = body.optional_text("name", max_chars=100)
    ttl_s = body.optional_int("ttl_s", low=MIN_TOKEN_TTL_S, high=MAX_TOKEN_TTL_S)
    room = None
    if room_id != tokens.ADMIN_SUBJECT:
        room = await request.app[STORE].get_room(room_id)
    tokens.check_role_for_room(role, room)
    token, claims = tokens.mint(
        settings.token_secret or "",
        sub=room_id,
        role=role,
        name=name,
        ttl_s=ttl_s if ttl_s is not None else settings.token_ttl_s,
    )
    page = f"{tokens.PAGES[role]}?token={token}"
    return created(
        {
            "token": token,
            "expires_at": iso_utc(datetime.fromtimestamp(claims.exp, UTC)),
            "url": f"{settings.public_url}{page}" if settings.public_url else page,
        }
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/health", health)
    r.add_get("/api/stats", stats)
    r.add_get("/api/schools", list_schools)
    r.add_post("/api/schools", create_school)
    r.add_get("/api/schools/{id}", get_school)
    r.add_patch("/api/schools/{id}", update_school)
    r.add_delete("/api/schools/{id}", delete_school)
    r.add_post("/api/schools/{id}/rooms", create_room)
    r.add_get("/api/rooms", list_rooms)
    r.add_get("/api/rooms/{id}", get_room)
    r.add_patch("/api/rooms/{id}", update_room)
    r.add_delete("/api/rooms/{id}", delete_room)
    r.add_post("/api/pairings", create_pairing)
    r.add_get("/api/pairings", list_pairings)
    r.add_get("/api/pairings/{id}", get_pairing)
    r.add_delete("/api/pairings/{id}", delete_pairing)
    r.add_post("/api/sessions", create_session)
    r.add_get("/api/sessions", list_sessions)
    r.add_get("/api/sessions/{id}", get_session)
    r.add_post("/api/sessions/{id}/start", start_session)
    r.add_post("/api/sessions/{id}/end", end_session)
    r.add_get("/api/sessions/{id}/attendance", get_attendance)
    r.add_get("/api/sessions/{id}/links", session_links)
    r.add_get("/api/sessions/{id}/attendance.csv", get_attendance_csv)
    r.add_post("/api/tokens", create_token)
