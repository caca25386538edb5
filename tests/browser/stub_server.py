"""A small stand-in for the synclass signaling server, on the real media plane.

It speaks the WebSocket part of docs/protocol.md well enough to drive the
browser pages (hello, start/end_session, join, publish, server offers and
answers by the role matrix without a stage, participant/producer pushes,
ping; no hands, stage or mute), with one lecture room and any
number of classrooms, and serves ``client_web/`` at ``/web/``. Tokens are
plain strings looked up in ``tokens``. It lets the pages be tested before and
apart from the real control plane; ``test_lesson_browser.py`` uses the real one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from media.plane import MediaPlane

CLIENT_WEB = Path(__file__).resolve().parents[2] / "client_web"
LECTURE = {"id": "L1", "name": "城关一小 主讲教室", "kind": "lecture", "school_id": "S1", "school_name": "城关第一小学"}


class Peer:
    def __init__(self, ws: web.WebSocketResponse, pid: str, role: str, room: dict[str, Any]) -> None:
        self.ws = ws
        self.id = pid
        self.role = role
        self.room = room
        self.joined = False
        self.pub: Any = None
        self.recv: Any = None
        self.consumed: set[str] = set()
        self.offer_lock = asyncio.Lock()
        self.answered: asyncio.Event = asyncio.Event()

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "room_id": self.room["id"],
                "room_name": self.room["name"], "school_id": self.room["school_id"],
                "school_name": self.room.get("school_name"), "name": self.room["name"],
                "hand": None, "on_stage": False, "muted": {"mic": None, "camera": None}}

    async def send(self, msg: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_json(msg)


class StubServer:
    def __init__(self, ice_host: str) -> None:
        self.plane = MediaPlane(ice_host_addresses=(ice_host,))
        self.tokens: dict[str, tuple[str, dict[str, Any]]] = {
            "teacher": ("teacher", LECTURE),
            "classroom": ("classroom", {"id": "C1", "name": "山区小学 听课教室", "kind": "classroom",
                                        "school_id": "S2", "school_name": "山区小学"}),
            "classroom2": ("classroom", {"id": "C2", "name": "河西小学 听课教室", "kind": "classroom",
                                         "school_id": "S3", "school_name": "河西小学"}),
        }
        self.peers: dict[str, Peer] = {}
        self.session: dict[str, Any] | None = None
        self.router: Any = None
        self.producers: dict[str, tuple[Any, dict[str, Any]]] = {}  # id -> (producer, info)
        self._ids = itertools.count(1)
        self.log: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.ws_handler)
        app.router.add_static("/web/", CLIENT_WEB)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _shutdown(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        for peer in list(self.peers.values()):
            await peer.ws.close()
        await self.plane.close()

    async def drop_sockets(self) -> None:
        """Close every socket and transport, as a network cut would (tests call this)."""
        for peer in list(self.peers.values()):
            await peer.ws.close(code=1012, message=b"restart")

    # -- socket ---------------------------------------------------------------

    async def ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=256 * 1024)
        await ws.prepare(request)
        peer: Peer | None = None
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                msg = json.loads(frame.data)
                self.log.append(msg)
                re = msg.get("id")
                if peer is None:
                    if msg.get("type") != "hello" or msg.get("token") not in self.tokens:
                        await ws.send_json({"type": "error", "code": "unauthorized", "message": "bad token", "re": re})
                        await ws.close(code=4401)
                        break
                    role, room = self.tokens[msg["token"]]
                    peer = Peer(ws, f"p{next(self._ids)}", role, room)
                    self.peers[peer.id] = peer
                    await peer.send({"type": "welcome", "re": re, "participant_id": peer.id, "role": role,
                                     "room": room, "session": self.session, "ice_servers": []})
                    continue
                try:
                    await self.handle(peer, msg)
                except Exception as exc:  # a bug in the stub shows up in the browser log
                    await peer.send({"type": "error", "code": "internal", "message": repr(exc), "re": re})
        finally:
            if peer is not None:
                await self.leave(peer)
                self.peers.pop(peer.id, None)
        return ws

    async def handle(self, peer: Peer, msg: dict[str, Any]) -> None:
        kind, re = msg["type"], msg.get("id")
        if kind == "ping":
            await peer.send({"type": "pong", "re": re})
        elif kind == "start_session":
            if self.session is None:
                self.session = {"id": f"s{next(self._ids)}", "lecture_room_id": LECTURE["id"],
                                "title": msg.get("title") or "", "subject": msg.get("subject") or "",
                                "teacher_name": "王老师", "scheduled_at": None, "started_at": time.time(),
                                "ended_at": None, "status": "live"}
                self.router = await self.plane.create_router({"session_id": self.session["id"]})
            for other in list(self.peers.values()):
                await other.send({"type": "session", "session": self.session, **({"re": re} if other is peer else {})})
        elif kind == "end_session":
            await self.end_session()
        elif kind == "join":
            if self.session is None:
                await peer.send({"type": "error", "code": "no_session", "message": "nothing live", "re": re})
                return
            peer.joined = True
            await peer.send({"type": "joined", "re": re, "session_id": self.session["id"],
                             "participants": [p.info() for p in self.peers.values() if p.joined and p is not peer],
                             "producers": [info for _, info in self.producers.values()]})
            await self.broadcast({"type": "participant_joined", "participant": peer.info()}, but=peer)
            self._spawn(self.update_offers(peer))
        elif kind == "publish":
            if peer.pub is None:
                peer.pub = await self.router.create_transport({"participant_id": peer.id, "dir": "up"})
            answer, producers = await peer.pub.publish(msg["sdp"], msg["tracks"])
            infos = []
            for producer in producers:
                info = {"id": producer.id, "participant_id": peer.id, "kind": producer.kind,
                        "source": producer.app_data.get("source"),
                        "layer": int(producer.app_data.get("layer") or 0), "paused": False}
                self.producers[producer.id] = (producer, info)
                infos.append(info)
            await peer.send({"type": "published", "re": re, "sdp": answer, "producers": infos})
            for info in infos:
                await self.broadcast({"type": "producer_added", "producer": info}, but=peer)
            for other in list(self.peers.values()):
                if other.joined and other is not peer:
                    self._spawn(self.update_offers(other))
        elif kind == "answer":
            await peer.recv.set_answer(msg["sdp"])
            peer.answered.set()
        elif kind == "leave":
            await self.leave(peer)
        else:
            await peer.send({"type": "error", "code": "unknown_type", "message": kind, "re": re})

    def receives(self, peer: Peer, info: dict[str, Any]) -> bool:
        """The role matrix without a stage: the teacher gets every classroom, classrooms the teacher.
        Layers are not switched here: a source sent as layers is received as its layer 0 only."""
        owner = self.peers.get(info["participant_id"])
        if owner is None or owner is peer or info.get("layer"):
            return False
        return (peer.role, owner.role) in (("teacher", "classroom"), ("classroom", "teacher"))

    async def update_offers(self, peer: Peer) -> None:
        """Offer the peer every producer it receives and does not have yet (one offer at a time)."""
        async with peer.offer_lock:
            if not peer.joined or self.router is None:
                return
            if peer.recv is None:
                peer.recv = await self.router.create_transport({"participant_id": peer.id, "dir": "down"})
            new = [(p, info) for pid, (p, info) in self.producers.items()
                   if pid not in peer.consumed and self.receives(peer, info)]
            if not new:
                return
            for producer, _ in new:
                await peer.recv.consume(producer, {"participant_id": peer.id})
                peer.consumed.add(producer.id)
            sdp = await peer.recv.create_offer()
            consumers = []
            for c in peer.recv._consumers:
                _, info = self.producers[c.producer_id]
                consumers.append({"id": c.id, "producer_id": c.producer_id, "participant_id": info["participant_id"],
                                  "kind": c.kind, "source": info["source"], "mid": c.mid, "layer": 0})
            peer.answered.clear()
            await peer.send({"type": "offer", "sdp": sdp, "consumers": consumers})
            await asyncio.wait_for(peer.answered.wait(), 20)

    async def leave(self, peer: Peer) -> None:
        was_joined = peer.joined
        peer.joined = False
        for t in (peer.pub, peer.recv):
            if t is not None:
                await t.close()
        peer.pub = peer.recv = None
        peer.consumed.clear()
        for pid, (_, info) in list(self.producers.items()):
            if info["participant_id"] == peer.id:
                del self.producers[pid]
                await self.broadcast({"type": "producer_removed", "producer_id": pid}, but=peer)
        if was_joined:
            await self.broadcast({"type": "participant_left", "participant_id": peer.id}, but=peer)

    async def end_session(self) -> None:
        if self.session is None:
            return
        sid = self.session["id"]
        self.session = None
        for peer in list(self.peers.values()):
            peer.joined = False
            for t in (peer.pub, peer.recv):
                if t is not None:
                    await t.close()
            peer.pub = peer.recv = None
            peer.consumed.clear()
        self.producers.clear()
        if self.router is not None:
            await self.router.close()
            self.router = None
        await self.broadcast({"type": "session_ended", "session_id": sid})

    async def broadcast(self, msg: dict[str, Any], but: Peer | None = None) -> None:
        for other in list(self.peers.values()):
            if other is not but:
                await other.send(msg)
