"""The signaling WebSocket, ``GET /ws`` (docs/protocol.md).

One socket per participant. The first message must be ``hello`` with a join
token; then messages are handled one at a time in arrival order. Bad input
gets an ``error`` message and the socket stays open; a bug gets a logged
traceback and an ``internal`` error, and the lesson carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from . import tokens
from .errors import DomainError, Invalid, NotFound, Unauthorized
from .ids import new_id
from .keys import LIVE, SETTINGS, STORE, WEBSOCKETS
from .messages import SCHEMAS, ErrorCode, Message, SignalError, check_size, parse
from .models import utc_now
from .peer import Peer
from .policy import may_start_session
from .validation import check_text

log = logging.getLogger(__name__)

HEARTBEAT_S = 20.0  # aiohttp pings; a dead TCP peer is noticed within ~2 heartbeats
# aiohttp closes the socket (1009) above max_msg_size; up to this much above
# our own limit we answer ``too_large`` instead and keep the socket.
OVERSIZE_GRACE_BYTES = 64 * 1024

CLOSE_BAD_HELLO = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_HELLO_TIMEOUT = 4408

MAX_NAME_CHARS = 100
DEFAULT_TITLE = "Lesson"

DOMAIN_CODES: dict[str, ErrorCode] = {
    "not_found": "not_found",
    "conflict": "conflict",
    "forbidden": "forbidden",
    "unauthorized": "unauthorized",
    "too_large": "too_large",
}

Handler = Callable[[web.Application, Peer, Message], Awaitable[None]]


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    settings = app[SETTINGS]
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_S,
        max_msg_size=settings.max_ws_message_bytes + OVERSIZE_GRACE_BYTES,
    )
    await ws.prepare(request)
    app[WEBSOCKETS].add(ws)
    try:
        peer = await _hello(app, ws)
        if peer is not None:
            await _serve(app, peer)
    finally:
        app[WEBSOCKETS].discard(ws)
    return ws


async def _refuse(ws: web.WebSocketResponse, error: SignalError, close_code: int) -> None:
    log.info("x websocket refused: %s %s", error.code, error.message)
    await ws.send_json(error.to_json())
    await ws.close(code=close_code, message=error.message.encode()[:120])


async def _hello(app: web.Application, ws: web.WebSocketResponse) -> Peer | None:
    """Wait for ``hello``; the welcomed peer, or None after closing the socket."""
    settings = app[SETTINGS]
    try:
        frame = await ws.receive(timeout=settings.hello_timeout_s)
    except TimeoutError:
        await _refuse(
            ws,
            SignalError("unauthorized", f"no hello within {settings.hello_timeout_s:g} s"),
            CLOSE_HELLO_TIMEOUT,
        )
        return None
    if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    if frame.type != WSMsgType.TEXT:
        await _refuse(
            ws, SignalError("bad_message", "the first message must be hello"), CLOSE_BAD_HELLO
        )
        return None
    try:
        check_size(frame.data, settings.max_ws_message_bytes)
        message = parse(frame.data)
        if message.type != "hello":
            raise SignalError("bad_message", "the first message must be hello", message.re)
    except SignalError as e:
        await _refuse(ws, e, CLOSE_BAD_HELLO)
        return None
    try:
        claims = tokens.verify(settings.token_secret or "", message.fields["token"])
        room = None
        if claims.room_id is not None:
            try:
                room = await app[STORE].get_room(claims.room_id)
            except NotFound:
                raise Unauthorized(f"room {claims.room_id} no longer exists") from None
        try:
            tokens.check_role_for_room(claims.role, room)
        except Invalid as e:
            raise Unauthorized(e.message) from None
        name = _display_name(message.fields["name"], claims.name, room.name if room else None)
        school_name = None
        if room is not None:
            try:
                school_name = (await app[STORE].get_school(room.school_id)).name
            except NotFound:
                school_name = None
    except (Unauthorized, Invalid) as e:
        await _refuse(ws, SignalError("unauthorized", e.message, message.re), CLOSE_UNAUTHORIZED)
        return None
    live = app[LIVE]
    peer = Peer(ws, new_id(), claims.role, room, name, school_name)
    live.register(peer)  # before looking up the session, so no `session` push is missed
    session = await live.session_of(peer)
    peer.send_first(
        {
            "type": "welcome",
            "participant_id": peer.id,
            "role": peer.role,
            "room": room.to_json() if room else None,
            "session": session.to_json() if session else None,
            "ice_servers": list(settings.ice_servers),
            "re": message.re,
        }
    )
    log.info("- %r connected as %r", peer, name)
    return peer


def _display_name(asked: str | None, from_token: str | None, room_name: str | None) -> str:
    if asked is not None:
        try:
            return check_text("name", asked, max_chars=MAX_NAME_CHARS, label="field")
        except Invalid:
            pass  # a bad display name is not worth refusing a classroom over
    return from_token or room_name or "admin"


async def _serve(app: web.Application, peer: Peer) -> None:
    live = app[LIVE]
    try:
        async for frame in peer.ws:
            if frame.type == WSMsgType.TEXT:
                await _handle_text(app, peer, frame.data)
            elif frame.type == WSMsgType.BINARY:
                peer.send(
                    SignalError(
                        "bad_message", "binary frames are not accepted; send JSON text"
                    ).to_json()
                )
            elif frame.type == WSMsgType.ERROR:
                log.info("x %r socket error: %s", peer, peer.ws.exception())
                break
    finally:
        live.unregister(peer)
        try:
            await live.leave(peer, reason="disconnected")
        finally:
            await peer.close()
            log.info("- %r disconnected", peer)


async def _handle_text(app: web.Application, peer: Peer, text: str) -> None:
    re = None
    kind = "?"
    try:
        check_size(text, app[SETTINGS].max_ws_message_bytes)
        message = parse(text)
        re, kind = message.re, message.type
        log.debug("< %r %s", peer, kind)
        await HANDLERS[kind](app, peer, message)
    except SignalError as e:
        if e.re is None:
            e.re = re
        peer.send(e.to_json())
    except DomainError as e:
        code = DOMAIN_CODES.get(e.code, "bad_message")
        peer.send(SignalError(code, e.message, re).to_json())
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("x %r: handling %s failed", peer, kind)
        peer.send(SignalError("internal", "internal error; the lesson carries on", re).to_json())


# --- handlers: one per message type -------------------------------------------


async def _on_hello(app: web.Application, peer: Peer, message: Message) -> None:
    raise SignalError("bad_message", "hello was already received")


async def _on_ping(app: web.Application, peer: Peer, message: Message) -> None:
    peer.send({"type": "pong", "re": message.re})


async def _on_start_session(app: web.Application, peer: Peer, message: Message) -> None:
    if not may_start_session(peer.role) or peer.room is None:
        raise SignalError("forbidden", f"role {peer.role} may not start a session")
    store = app[STORE]
    session_id = message.fields["session_id"]
    if session_id is not None:
        session = await store.get_session(session_id)
        if session.lecture_room_id != peer.room.id:
            raise SignalError("forbidden", f"session {session_id} belongs to another lecture room")
    else:
        live_session = await store.live_session_of(peer.room.id)
        if live_session is not None:
            raise SignalError(
                "conflict",
                f"lecture room {peer.room.id} already has a live session {live_session.id}",
            )
        session = await store.create_session(
            peer.room.id,
            title=_optional_text(message.fields["title"], "title") or DEFAULT_TITLE,
            subject=_optional_text(message.fields["subject"], "subject") or "",
            teacher_name=peer.name,
            scheduled_at=None,
            record=message.fields["record"] is not False,  # consent: on unless refused
        )
    session = await store.start_session(session.id, utc_now())
    log.info("- %r started session %s", peer, session.id)
    await app[LIVE].session_started(session, origin=peer, re=message.re)


def _optional_text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    return check_text(field, value, max_chars=200, label="field")


async def _on_end_session(app: web.Application, peer: Peer, message: Message) -> None:
    if not may_start_session(peer.role) or peer.room is None:
        raise SignalError("forbidden", f"role {peer.role} may not end a session")
    store = app[STORE]
    session = await store.live_session_of(peer.room.id)
    if session is None:
        raise SignalError("no_session", f"nothing is live in lecture room {peer.room.id}")
    session = await store.end_session(session.id, utc_now())
    log.info("- %r ended session %s", peer, session.id)
    await app[LIVE].session_ended(session, origin=peer, re=message.re)


async def _on_join(app: web.Application, peer: Peer, message: Message) -> None:
    await app[LIVE].join(peer, message.fields["session_id"], message.re)


async def _on_leave(app: web.Application, peer: Peer, message: Message) -> None:
    if not await app[LIVE].leave(peer):
        raise SignalError("not_joined", "not in a session")
    peer.send({"type": "left", "reason": None, "re": message.re})


async def _on_publish(app: web.Application, peer: Peer, message: Message) -> None:
    tracks: dict[str, dict[str, Any]] = message.fields["tracks"]
    await app[LIVE].publish(peer, message.fields["sdp"], tracks, message.re)


async def _on_unpublish(app: web.Application, peer: Peer, message: Message) -> None:
    await app[LIVE].unpublish(peer, message.fields["producer_id"], message.re)


async def _on_answer(app: web.Application, peer: Peer, message: Message) -> None:
    await app[LIVE].answer(peer, message.fields["sdp"], message.re)


async def _on_subscribe(app: web.Application, peer: Peer, message: Message) -> None:
    app[LIVE].subscribe(peer, message.fields["producer_ids"], message.re)


async def _on_unsubscribe(app: web.Application, peer: Peer, message: Message) -> None:
    app[LIVE].unsubscribe(peer, message.fields["producer_ids"], message.re)


async def _on_raise_hand(app: web.Application, peer: Peer, message: Message) -> None:
    await app[LIVE].raise_hand(peer, message.re)


async def _on_lower_hand(app: web.Application, peer: Peer, message: Message) -> None:
    await app[LIVE].lower_hand(peer, message.fields["participant_id"], message.re)


async def _on_lower_all_hands(app: web.Application, peer: Peer, message: Message) -> None:
    await app[LIVE].lower_all_hands(peer, message.re)


async def _on_stage(app: web.Application, peer: Peer, message: Message) -> None:
    await app[LIVE].stage(
        peer, message.fields["participant_id"], app[SETTINGS].max_on_stage, message.re
    )


async def _on_unstage(app: web.Application, peer: Peer, message: Message) -> None:
    await app[LIVE].unstage(peer, message.fields["participant_id"], message.re)


async def _on_mute(app: web.Application, peer: Peer, message: Message) -> None:
    fields = message.fields
    await app[LIVE].mute(
        peer, fields["participant_id"], fields["source"], fields["muted"], message.re
    )


HANDLERS: dict[str, Handler] = {
    "hello": _on_hello,
    "ping": _on_ping,
    "start_session": _on_start_session,
    "end_session": _on_end_session,
    "join": _on_join,
    "leave": _on_leave,
    "publish": _on_publish,
    "unpublish": _on_unpublish,
    "answer": _on_answer,
    "subscribe": _on_subscribe,
    "unsubscribe": _on_unsubscribe,
    "raise_hand": _on_raise_hand,
    "lower_hand": _on_lower_hand,
    "lower_all_hands": _on_lower_all_hands,
    "stage": _on_stage,
    "unstage": _on_unstage,
    "mute": _on_mute,
}


async def close_all(app: web.Application) -> None:
    """``on_shutdown``: close every open socket (clients reconnect by themselves)."""
    sockets: set[web.WebSocketResponse] = app[WEBSOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


assert set(HANDLERS) == set(SCHEMAS), "every message type needs a handler"
