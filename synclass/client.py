"""A synclass participant in Python: aiortc peer connections + the signaling socket.

Used by ``synclass demo`` (a synthetic teacher and classrooms), by the
end-to-end tests and by benchmarks. It speaks exactly the protocol in
docs/protocol.md, like the browser pages' protocol.js.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import aiohttp
from aiortc import MediaStreamTrack, RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

import media.aiortc_hooks  # noqa: F401  (routes retransmissions to the right receiver)

logger = logging.getLogger("synclass.client")


class SignalingError(Exception):
    """The server answered a request with an ``error`` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class ReceivedTrack:
    """What one incoming track delivered to this participant."""

    kind: str
    info: dict[str, Any]
    frames: int = 0
    width: int = 0
    height: int = 0
    first_frame_at: Optional[float] = None
    last_frame_at: Optional[float] = None
    sizes: set[tuple[int, int]] = field(default_factory=set)
    ended: bool = False
    # (monotonic time, width, height) per decoded frame, when the client keeps a log
    log: Optional[list[tuple[float, int, int]]] = None

    @property
    def source(self) -> str:
        return str(self.info.get("source", ""))


ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def without_remb(sdp: str) -> str:
    """``sdp`` without its ``goog-remb`` feedback and abs-send-time extension
    lines: an offer answered from it negotiates no REMB (aiortc's receivers
    estimate, and send REMB, whenever packets carry abs-send-time)."""
    lines = sdp.split("\r\n")
    return "\r\n".join(line for line in lines if not (
        (line.startswith("a=rtcp-fb:") and line.endswith(" goog-remb"))
        or (line.startswith("a=extmap:") and line.endswith(" " + ABS_SEND_TIME_URI))))


class LessonClient:
    def __init__(
        self, base_url: str, token: str, name: str | None = None, decode: bool = True, frame_log: bool = False,
        remb: bool = True,
    ) -> None:
        """``remb`` False: the receive side negotiates no REMB (goog-remb) and the
        server adapts by loss alone. aiortc's receive-side estimate reads event
        loop stalls as queueing: clients sharing one process on a loaded machine
        (the demo) sent REMBs of ~150 kbps on loopback and had their video paused."""
        self.base_url = base_url.rstrip("/")
        self.remb = remb
        self.token = token
        self.name = name
        self.decode = decode
        self.frame_log = frame_log
        # (monotonic time, consumer id, layer) for every consumer_layer push
        self.layer_changes: list[tuple[float, str, Optional[int]]] = []
        self.welcome: dict[str, Any] = {}
        self.session: Optional[dict[str, Any]] = None
        self.events: list[dict[str, Any]] = []
        self.received: list[ReceivedTrack] = []
        self.pc_publish: Optional[RTCPeerConnection] = None
        self.pc_receive: Optional[RTCPeerConnection] = None
        self.producers: list[dict[str, Any]] = []
        # the other participants and oneself (``me``), kept from the pushes
        self.participants: dict[str, dict[str, Any]] = {}
        self.me: dict[str, Any] = {}
        self._track_specs: dict[str, dict[str, Any]] = {}  # publish mid -> {source, layer}
        self._http: Optional[aiohttp.ClientSession] = None
        self._ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._reader: Optional[asyncio.Task[None]] = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._changed = asyncio.Event()
        self._consumers_by_mid: dict[str, dict[str, Any]] = {}
        self._negotiation = asyncio.Lock()

    # -- connection ------------------------------------------------------------
    async def connect(self) -> dict[str, Any]:
        self._http = aiohttp.ClientSession()
        ws_url = self.base_url.replace("http", "ws", 1) + "/ws"
        self._ws = await self._http.ws_connect(ws_url, max_msg_size=4 * 1024 * 1024)
        self._reader = asyncio.ensure_future(self._read())
        hello: dict[str, Any] = {"token": self.token}
        if self.name:
            hello["name"] = self.name
        self.welcome = await self.request("hello", **hello)
        self.session = self.welcome.get("session")
        return self.welcome

    async def request(self, type_: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        """Send a message with an id and wait for the reply carrying ``re``."""
        assert self._ws is not None, "connect() first"
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        await self._ws.send_json({"type": type_, "id": rid, **fields})
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(rid, None)
        if reply.get("type") == "error":
            raise SignalingError(reply.get("code", ""), reply.get("message", ""))
        return reply

    async def send(self, type_: str, **fields: Any) -> None:
        assert self._ws is not None
        await self._ws.send_json({"type": type_, **fields})

    async def wait_for(self, type_: str, timeout: float = 20.0, since: int = 0) -> dict[str, Any]:
        """Wait for a pushed message of ``type_`` (looking at events from index ``since``)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[since:]:
                if event.get("type") == type_:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError(f"no {type_!r} message within {timeout} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = msg.json()
                re = data.get("re")
                if re is not None and re in self._pending and not self._pending[re].done():
                    self._pending[re].set_result(data)
                self.events.append(data)
                self._changed.set()
                kind = data.get("type")
                if kind == "session":
                    self.session = data.get("session")
                elif kind == "session_ended":
                    self.session = None
                elif kind == "offer":
                    self._spawn(self._on_offer(data))
                elif kind == "joined":
                    self.participants = {p["id"]: p for p in data.get("participants", [])}
                elif kind in ("participant_joined", "participant_updated"):
                    participant = data["participant"]
                    if participant["id"] == self.welcome.get("participant_id"):
                        self.me = participant
                    else:
                        self.participants[participant["id"]] = participant
                elif kind == "consumer_layer":
                    self.layer_changes.append((time.monotonic(), data.get("consumer_id", ""), data.get("layer")))
                elif kind == "participant_left":
                    self.participants.pop(data.get("participant_id"), None)
        except Exception:
            logger.exception("x signaling reader failed")
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("signaling socket closed"))
            self.events.append({"type": "_closed"})
            self._changed.set()

    def _spawn(self, coro: Any) -> None:
        if self._closing:  # an offer that arrives while we say goodbye is not answered
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lesson ----------------------------------------------------------------
    async def start_session(self, **fields: Any) -> dict[str, Any]:
        reply = await self.request("start_session", **fields)
        self.session = reply.get("session", self.session)
        return reply

    async def join(self) -> dict[str, Any]:
        return await self.request("join")

    async def publish(self, tracks: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """Publish ``(track, source)`` or ``(track, source, layer)`` tuples; the
        producers created by this call.

        The first call opens the publish connection; later calls renegotiate
        it, adding tracks (a teacher who starts sharing courseware). Tracks
        with the same source and different layers are layers of one source."""
        if self.pc_publish is None:
            self.pc_publish = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
            self._track_specs = {}
        pc = self.pc_publish
        added = {}
        for track, source, *layer in tracks:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            added[id(transceiver)] = {"source": source, **({"layer": layer[0]} if layer else {})}
        await pc.setLocalDescription(await pc.createOffer())
        for t in pc.getTransceivers():
            if id(t) in added and t.mid is not None:
                self._track_specs[t.mid] = added[id(t)]
        reply = await self.request("publish", sdp=pc.localDescription.sdp, tracks=dict(self._track_specs))
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        new = list(reply.get("producers", []))
        self.producers.extend(new)
        return new

    # -- interaction (docs/protocol.md, section 9) --------------------------------
    async def raise_hand(self) -> dict[str, Any]:
        return await self.request("raise_hand")

    async def lower_hand(self, participant_id: str | None = None) -> dict[str, Any]:
        return await self.request("lower_hand", **_given(participant_id=participant_id))

    async def lower_all_hands(self) -> dict[str, Any]:
        return await self.request("lower_all_hands")

    async def stage(self, participant_id: str) -> dict[str, Any]:
        return await self.request("stage", participant_id=participant_id)

    async def unstage(self, participant_id: str) -> dict[str, Any]:
        return await self.request("unstage", participant_id=participant_id)

    async def mute(self, source: str, muted: bool = True, participant_id: str | None = None) -> dict[str, Any]:
        return await self.request("mute", source=source, muted=muted, **_given(participant_id=participant_id))

    def hands(self) -> list[str]:
        """Participant ids with a raised hand, in arrival order."""
        raised = [p for p in self.participants.values() if p.get("hand") is not None]
        return [p["id"] for p in sorted(raised, key=lambda p: p["hand"])]

    async def _on_offer(self, message: dict[str, Any]) -> None:
        async with self._negotiation:
            if self.pc_receive is None:
                self.pc_receive = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
                self.pc_receive.on("track", self._on_track)
            for info in message.get("consumers", []):
                if info.get("mid") is not None:
                    self._consumers_by_mid[str(info["mid"])] = info
            pc = self.pc_receive
            sdp = message["sdp"] if self.remb else without_remb(message["sdp"])
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await self.send("answer", sdp=pc.localDescription.sdp)

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.pc_receive is not None
        info: dict[str, Any] = {}
        for transceiver in self.pc_receive.getTransceivers():
            if transceiver.receiver.track is track and transceiver.mid is not None:
                info = self._consumers_by_mid.get(transceiver.mid, {})
        received = ReceivedTrack(kind=track.kind, info=info, log=[] if self.frame_log else None)
        self.received.append(received)
        if self.decode:
            self._spawn(self._read_track(track, received))

    async def _read_track(self, track: MediaStreamTrack, received: ReceivedTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                received.ended = True
                return
            now = time.monotonic()
            received.frames += 1
            received.last_frame_at = now
            if received.first_frame_at is None:
                received.first_frame_at = now
            if track.kind == "video":
                received.width, received.height = frame.width, frame.height
                received.sizes.add((frame.width, frame.height))
            if received.log is not None:
                received.log.append((now, getattr(frame, "width", 0), getattr(frame, "height", 0)))

    def tracks(
        self, kind: str | None = None, source: str | None = None, participant_id: str | None = None
    ) -> list[ReceivedTrack]:
        return [
            r
            for r in self.received
            if (kind is None or r.kind == kind)
            and (source is None or r.source == source)
            and (participant_id is None or r.info.get("participant_id") == participant_id)
        ]

    async def leave(self) -> None:
        await self.request("leave")
        await self._close_pcs()

    async def _close_pcs(self) -> None:
        for pc in (self.pc_publish, self.pc_receive):
            if pc is not None:
                await pc.close()
        self.pc_publish = self.pc_receive = None

    async def close(self) -> None:
        """Say goodbye: close both connections and the socket."""
        self._closing = True
        for task in list(self._tasks):  # a renegotiation in flight must not run into a closed connection
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_pcs()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()

    async def vanish(self) -> None:
        """Disappear without a goodbye, like a classroom whose link died:
        the UDP sockets stop (no DTLS close, no RTCP BYE) and the signaling
        socket is dropped without a close frame."""
        from media.aiortc_hooks import vanish_peer_connection

        for pc in (self.pc_publish, self.pc_receive):
            if pc is not None:
                vanish_peer_connection(pc)
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()  # drops the TCP connection: no close frame


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that are not None (optional message fields)."""
    return {k: v for k, v in fields.items() if v is not None}
