"""Live state: open sockets per room, live sessions and their participants.

Kept in memory on this node (the records are in the store). One
``LiveSession`` per live class session that somebody joined; its media
Router is created on the first ``join`` and closed when the session ends.

Everything here runs on the event loop; methods that await re-check the
state they depend on afterwards (a session may end, a participant may leave
while the media plane works).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .downlink import Downlink
from .messages import RequestId, SignalError
from .models import ClassSession, utc_now
from .peer import Peer
from .policy import (
    Action,
    may_publish,
    priority,
    receives,
    refusal,
    sees_participant,
    subscription,
)
from .recording import Recordings
from .seam import MediaPlane, Producer, Router, Transport
from .store import Store

log = logging.getLogger(__name__)

ADMINS = "*"  # socket registry key of admin sockets: they hear about every session
# Open attendance records are touched this often, so a crash loses at most this much.
ATTENDANCE_TOUCH_S = 30.0
# The mute switch that turns a producer off, by the producer's source.
MUTE_SWITCH = {"mic": "mic", "camera": "camera"}  # courseware has none


class LiveSession:
    def __init__(self, session: ClassSession) -> None:
        self.session = session
        self.peers: dict[str, Peer] = {}  # participant id -> joined peer
        self.producers: dict[str, tuple[Peer, Producer]] = {}  # producer id -> (owner, producer)
        self.router: Router | None = None
        self.ended = False
        self.next_hand = 1  # raise-hand tickets grow through the session
        # Layers: producers of one owner's source (camera at 3 resolutions) form
        # a group; the group is known by its primary (its first producer), the
        # only one subscribed to — the media plane picks the layer per link.
        self.group_of: dict[str, tuple[str, str, str]] = {}  # producer id -> group key
        self.primaries: dict[tuple[str, str, str], str] = {}  # group key -> primary producer id
        self._router_lock = asyncio.Lock()

    def is_primary(self, producer_id: str) -> bool:
        key = self.group_of.get(producer_id)
        return key is not None and self.primaries.get(key) == producer_id

    def primary_of(self, producer_id: str) -> str:
        key = self.group_of.get(producer_id)
        return self.primaries.get(key, producer_id) if key is not None else producer_id

    def layers_of(self, producer_id: str) -> list[Producer]:
        key = self.group_of.get(producer_id)
        return [
            producer
            for pid, (_, producer) in self.producers.items()
            if key is not None and self.group_of.get(pid) == key
        ]

    async def get_router(self, media: MediaPlane) -> Router:
        async with self._router_lock:
            if self.router is None:
                self.router = await media.create_router({"session_id": self.session.id})
                log.info("- router %s for session %s", self.router.id, self.session.id)
            return self.router


def producer_info(owner: Peer, producer: Producer) -> dict[str, Any]:
    """The ProducerInfo shape of docs/protocol.md."""
    return {
        "id": producer.id,
        "participant_id": owner.id,
        "kind": producer.kind,
        "source": producer.app_data.get("source"),
        "layer": producer.app_data.get("layer", 0),
        "paused": producer.paused,
    }


def _consumer_app_data(producer: Producer) -> dict[str, Any]:
    """What the media plane needs to know of a consumer: its rank under scarcity, and
    its source (courseware is still content: its need is its key frames')."""
    source = producer.app_data.get("source")
    return {"priority": priority(producer.kind, source, producer.app_data.get("role", "classroom")), "source": source}


class Live:
    def __init__(
        self, store: Store, media: MediaPlane | None, recordings: Recordings | None = None
    ) -> None:
        self.store = store
        self.media = media
        self.recordings = recordings  # None: nothing is recorded (tests of signaling alone)
        self.sockets: dict[str, set[Peer]] = {}  # room id (or "*") -> open, welcomed sockets
        self.sessions: dict[str, LiveSession] = {}  # session id -> joined live session
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    # --- sockets -------------------------------------------------------------

    def register(self, peer: Peer) -> None:
        self.sockets.setdefault(peer.room_key, set()).add(peer)

    def unregister(self, peer: Peer) -> None:
        peers = self.sockets.get(peer.room_key)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self.sockets[peer.room_key]

    def _sockets_in(self, room_ids: Iterable[str]) -> list[Peer]:
        found: list[Peer] = []
        for room_id in (*room_ids, ADMINS):
            found.extend(self.sockets.get(room_id, ()))
        return found

    async def audience_rooms(self, lecture_room_id: str) -> list[str]:
        """The lecture room and every classroom paired with it."""
        pairings = await self.store.list_pairings(lecture_room_id=lecture_room_id)
        return [lecture_room_id, *(p.classroom_room_id for p in pairings)]

    async def session_of(self, peer: Peer) -> ClassSession | None:
        """The live session this peer belongs to: its lecture room's, or for a
        classroom the one of the lecture room it is paired with."""
        if peer.room is None:
            return None
        lecture_room_id = peer.room.id
        if peer.room.kind == "classroom":
            pairings = await self.store.list_pairings(classroom_room_id=peer.room.id)
            if not pairings:
                return None
            lecture_room_id = pairings[0].lecture_room_id
        return await self.store.live_session_of(lecture_room_id)

    # --- session lifecycle ------------------------------------------------

    async def session_started(
        self, session: ClassSession, origin: Peer | None = None, re: RequestId | None = None
    ) -> None:
        """Push ``session`` to every socket waiting for this lecture room."""
        for peer in self._sockets_in(await self.audience_rooms(session.lecture_room_id)):
            peer.send(
                {
                    "type": "session",
                    "session": session.to_json(),
                    "re": re if peer is origin else None,
                }
            )

    async def session_ended(
        self, session: ClassSession, origin: Peer | None = None, re: RequestId | None = None
    ) -> None:
        """Close the session's media and push ``session_ended`` to everyone concerned."""
        audience = set(self._sockets_in(await self.audience_rooms(session.lecture_room_id)))
        live = self.sessions.pop(session.id, None)
        if live is not None:
            audience.update(live.peers.values())
            await self._close_live_session(live)
        for peer in audience:
            peer.send(
                {
                    "type": "session_ended",
                    "session_id": session.id,
                    "re": re if peer is origin else None,
                }
            )

    async def _close_live_session(self, live: LiveSession) -> None:
        live.ended = True
        if self.recordings is not None:
            try:
                await self.recordings.end(live.session.id)  # before the producers close
            except Exception:
                log.exception("x ending the recording of session %s failed", live.session.id)
        live.producers.clear()
        for peer in list(live.peers.values()):
            await self._detach(peer, "session ended")
        live.peers.clear()
        if live.router is not None:
            await live.router.close()

    async def close(self) -> None:
        """Shutdown: close every router (the records keep sessions live, so
        clients rejoin a fresh router after a restart)."""
        for live in list(self.sessions.values()):
            await self._close_live_session(live)
        self.sessions.clear()
        if self.recordings is not None:
            await self.recordings.close()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for task in list(self._tasks):
            task.cancel()

    # --- joining and leaving ---------------------------------------------

    def _require_media(self, re: RequestId | None) -> MediaPlane:
        if self.media is None:
            raise SignalError("internal", "media plane not available", re)
        return self.media

    async def join(self, peer: Peer, session_id: str | None, re: RequestId | None) -> None:
        media = self._require_media(re)
        if peer.live is not None:
            raise SignalError("conflict", f"already joined session {peer.live.session.id}", re)
        session = await self._session_to_join(peer, session_id, re)
        live = self.sessions.get(session.id)
        if live is None:
            live = self.sessions[session.id] = LiveSession(session)
        router = await live.get_router(media)
        transport = await router.create_transport({"participant_id": peer.id, "direction": "down"})
        attendance_id = None
        if not (live.ended or peer.live is not None or peer.ws.closed):
            attendance_id = await self._attendance_join(peer, session.id)
        if live.ended or peer.live is not None or peer.ws.closed:
            await transport.close()
            await self._attendance_left(attendance_id, "leave")
            raise SignalError("no_session", f"session {session.id} ended while joining", re)
        self._ensure_heartbeat()
        peer.reset_interaction()
        peer.attendance_id = attendance_id
        peer.live = live
        peer.downlink = Downlink(
            transport, router, peer.id, peer.send, layers_of=live.layers_of, app_data_of=_consumer_app_data
        )
        self._watch(peer, transport)
        others = list(live.peers.values())
        live.peers[peer.id] = peer
        log.info("- %r joined session %s", peer, session.id)
        peer.send(
            {
                "type": "joined",
                "session_id": session.id,
                "participants": [p.info() for p in others if sees_participant(peer.role, p.role)],
                "producers": [producer_info(o, p) for o, p in live.producers.values()],
                "re": re,
            }
        )
        for other in others:
            if sees_participant(other.role, peer.role):
                other.send({"type": "participant_joined", "participant": peer.info()})
        auto = [
            producer_id
            for producer_id, (owner, _) in live.producers.items()
            if receives(peer.role, owner.role, owner.on_stage) and live.is_primary(producer_id)
        ]
        if auto:
            peer.downlink.want(auto)

    async def _session_to_join(
        self, peer: Peer, session_id: str | None, re: RequestId | None
    ) -> ClassSession:
        if peer.room is None:  # admin: any live session, named
            if session_id is None:
                raise SignalError("bad_message", "field 'session_id' is required for admins", re)
            session = await self.store.get_session(session_id)
            if session.status != "live":
                raise SignalError("no_session", f"session {session_id} is not live", re)
            return session
        own = await self.session_of(peer)
        if own is None:
            raise SignalError("no_session", f"nothing is live for room {peer.room.id}", re)
        if session_id is not None and session_id != own.id:
            raise SignalError(
                "forbidden", f"session {session_id} is not the live session of this room", re
            )
        return own

    async def leave(self, peer: Peer, reason: str | None = None) -> bool:
        """Take ``peer`` out of its session; False if it was not in one."""
        live = peer.live
        if live is None:
            return False
        for producer_id, (owner, _) in list(live.producers.items()):
            if owner is peer:
                self._producer_gone(live, producer_id)
        live.peers.pop(peer.id, None)
        for other in live.peers.values():
            if sees_participant(other.role, peer.role):
                other.send(
                    {"type": "participant_left", "participant_id": peer.id, "reason": reason}
                )
        await self._detach(peer, reason or "leave")
        log.info("- %r left session %s (%s)", peer, live.session.id, reason or "leave")
        return True

    async def _detach(self, peer: Peer, reason: str) -> None:
        """Close the peer's transports; forget them first so their ``on_close``
        is not taken for a vanished peer. Closes its attendance record."""
        up, downlink = peer.up, peer.downlink
        peer.live, peer.up, peer.downlink = None, None, None
        attendance_id, peer.attendance_id = peer.attendance_id, None
        peer.reset_interaction()
        await self._attendance_left(attendance_id, reason)
        if downlink is not None:
            await downlink.close()
        if up is not None:
            await up.close()

    def _watch(self, peer: Peer, transport: Transport) -> None:
        """A transport that closes while still the peer's is a vanished peer."""

        def closed() -> None:
            still_ours = peer.up is transport or (
                peer.downlink is not None and peer.downlink.transport is transport
            )
            if still_ours:
                log.info("x %r lost its media connection", peer)
                self._spawn(self._lost(peer))

        transport.on_close(closed)

    async def _lost(self, peer: Peer) -> None:
        if await self.leave(peer, reason="media connection lost"):
            peer.send({"type": "left", "reason": "media connection lost", "re": None})

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("x background task failed", exc_info=t.exception())

        task.add_done_callback(done)

    # --- publishing --------------------------------------------------------

    def _joined(self, peer: Peer, re: RequestId | None) -> LiveSession:
        if peer.live is None:
            raise SignalError("not_joined", "join the live session first", re)
        return peer.live

    async def publish(
        self, peer: Peer, sdp: str, tracks: dict[str, dict[str, Any]], re: RequestId | None
    ) -> None:
        self._require_media(re)
        live = self._joined(peer, re)
        if not may_publish(peer.role):
            raise SignalError("forbidden", f"role {peer.role} may not publish", re)
        assert live.router is not None  # created by join
        if peer.up is None:
            transport = await live.router.create_transport(
                {"participant_id": peer.id, "direction": "up"}
            )
            if peer.live is not live:
                await transport.close()
                raise SignalError("no_session", "the session ended while publishing", re)
            peer.up = transport
            self._watch(peer, transport)
        up = peer.up
        app_data = {
            mid: {
                "participant_id": peer.id,
                "role": peer.role,
                "source": t["source"],
                "layer": t.get("layer", 0),
            }
            for mid, t in tracks.items()
        }
        try:
            answer, producers = await up.publish(sdp, app_data)
        except ValueError as e:
            raise SignalError("bad_sdp", str(e), re) from None
        if peer.live is not live or peer.up is not up:
            for producer in producers:
                await producer.close()
            raise SignalError("no_session", "left the session while publishing", re)
        for producer in producers:
            live.producers[producer.id] = (peer, producer)
            key = (peer.id, str(producer.app_data.get("source")), producer.kind)
            live.group_of[producer.id] = key
            live.primaries.setdefault(key, producer.id)
            producer.on_close(self._on_producer_close(live, producer.id))
            if self._is_muted(peer, producer):
                producer.pause()
        peer.send(
            {
                "type": "published",
                "sdp": answer,
                "producers": [producer_info(peer, p) for p in producers],
                "re": re,
            }
        )
        for producer in producers:
            log.info("- %r published %s %s", peer, producer.kind, producer.id)
            primary = live.primary_of(producer.id)
            for other in live.peers.values():
                if other is peer:
                    continue
                other.send({"type": "producer_added", "producer": producer_info(peer, producer)})
                if other.downlink is None:
                    continue
                if primary != producer.id:
                    other.downlink.refresh_layers(primary)  # one more layer of a source
                elif receives(other.role, peer.role, peer.on_stage):
                    other.downlink.want([producer.id])
        self._recording_changed(live)

    async def unpublish(self, peer: Peer, producer_id: str, re: RequestId | None) -> None:
        live = self._joined(peer, re)
        entry = live.producers.get(producer_id)
        if entry is None or entry[0] is not peer:
            raise SignalError("not_found", f"producer {producer_id} not found", re)
        self._producer_gone(live, producer_id)
        await entry[1].close()
        peer.send({"type": "unpublished", "producer_id": producer_id, "re": re})

    def _on_producer_close(self, live: LiveSession, producer_id: str) -> Callable[[], None]:
        return lambda: self._producer_gone(live, producer_id)

    def _producer_gone(self, live: LiveSession, producer_id: str) -> None:
        """Forget a producer, tell the others and drop their consumers of it.
        Safe to call twice (unpublish, then the producer's on_close)."""
        entry = live.producers.pop(producer_id, None)
        if entry is None or live.ended:
            return
        owner = entry[0]
        key = live.group_of.pop(producer_id, None)
        successor = None  # the layer that takes over a closed primary
        if key is not None and live.primaries.get(key) == producer_id:
            rest = [p for pid, (_, p) in live.producers.items() if live.group_of.get(pid) == key]
            if rest:
                successor = min(rest, key=lambda p: int(p.app_data.get("layer", 0) or 0)).id
                live.primaries[key] = successor
            else:
                del live.primaries[key]
        primary = live.primaries.get(key) if key is not None else None
        for other in live.peers.values():
            if other is owner:
                continue
            if other.downlink is not None and producer_id in other.downlink.wanted:
                other.downlink.unwant([producer_id])
                if successor is not None:
                    other.downlink.want([successor])
            elif other.downlink is not None and primary is not None:
                other.downlink.refresh_layers(primary)
            other.send(
                {"type": "producer_removed", "producer_id": producer_id, "participant_id": owner.id}
            )
        self._recording_changed(live)

    def _recording_changed(self, live: LiveSession) -> None:
        """Tracks or the stage changed: the recorders follow (in the background)."""
        if self.recordings is not None:
            try:
                self.recordings.changed(live)
            except Exception:
                log.exception("x recording of session %s not updated", live.session.id)

    # --- receiving -----------------------------------------------------------

    def subscribe(self, peer: Peer, producer_ids: list[str], re: RequestId | None) -> None:
        live = self._joined(peer, re)
        for producer_id in producer_ids:
            entry = live.producers.get(producer_id)
            if entry is None:
                raise SignalError("not_found", f"producer {producer_id} not found", re)
            owner = entry[0]
            if owner is peer:
                raise SignalError(
                    "forbidden", f"producer {producer_id} is yours; you cannot receive it", re
                )
            rule = subscription(peer.role, owner.role)
            if rule == "forbidden":
                raise SignalError(
                    "forbidden", f"role {peer.role} may not receive role {owner.role}", re
                )
            if rule == "stage" and not owner.on_stage:
                raise SignalError("forbidden", f"participant {owner.id} is not on stage", re)
        assert peer.downlink is not None
        peer.downlink.want({live.primary_of(pid) for pid in producer_ids})  # a layer: its source
        peer.send({"type": "subscribed", "producer_ids": producer_ids, "re": re})

    def unsubscribe(self, peer: Peer, producer_ids: list[str], re: RequestId | None) -> None:
        live = self._joined(peer, re)
        assert peer.downlink is not None
        peer.downlink.unwant({live.primary_of(pid) for pid in producer_ids} | set(producer_ids))
        peer.send({"type": "unsubscribed", "producer_ids": producer_ids, "re": re})

    async def answer(self, peer: Peer, sdp: str, re: RequestId | None) -> None:
        self._joined(peer, re)
        assert peer.downlink is not None
        try:
            await peer.downlink.answer(sdp)
        except SignalError as e:
            e.re = re
            raise

    # --- interaction: hands, stage, mute (docs/protocol.md, section 9) -----------

    def _check(
        self, peer: Peer, action: Action, participant_id: str | None, re: RequestId | None,
        **details: Any,
    ) -> tuple[LiveSession, Peer]:
        """The session and the participant acted on, after the permission checks:
        first what the actor's role may do at all, then on this target."""
        live = self._joined(peer, re)
        on_self = participant_id is None or participant_id == peer.id
        target_id = None if on_self and action not in ("stage", "unstage") else participant_id
        problem = refusal(action, peer.role, target_id=target_id, target_role="classroom")
        if problem is not None:
            raise SignalError("forbidden", problem, re)
        target = peer
        if not on_self:
            assert participant_id is not None
            found = live.peers.get(participant_id)
            if found is None or not sees_participant(peer.role, found.role):
                raise SignalError("not_found", f"participant {participant_id} not found", re)
            target = found
        problem = refusal(action, peer.role, target_id=target_id, target_role=target.role, **details)
        if problem is not None:
            raise SignalError("forbidden", problem, re)
        return live, target

    def _updated(self, live: LiveSession, changed: list[Peer], origin: Peer, action: Action,
                 re: RequestId | None) -> None:
        """Push every changed participant to everyone who sees it, then reply."""
        for target in changed:
            message = {"type": "participant_updated", "participant": target.info()}
            for other in live.peers.values():
                if sees_participant(other.role, target.role):
                    other.send(message)
            log.info("- %r %s %r", origin, action, target)
        origin.send(
            {
                "type": "moderated",
                "action": action,
                "participant_ids": [p.id for p in changed],
                "re": re,
            }
        )

    async def raise_hand(self, peer: Peer, re: RequestId | None) -> None:
        live, target = self._check(peer, "raise_hand", None, re)
        changed = []
        if target.hand is None:
            target.hand = live.next_hand
            live.next_hand += 1
            changed.append(target)
        self._updated(live, changed, peer, "raise_hand", re)

    async def lower_hand(self, peer: Peer, participant_id: str | None, re: RequestId | None) -> None:
        live, target = self._check(peer, "lower_hand", participant_id, re)
        changed = []
        if target.hand is not None:
            target.hand = None
            changed.append(target)
        self._updated(live, changed, peer, "lower_hand", re)

    async def lower_all_hands(self, peer: Peer, re: RequestId | None) -> None:
        live, _ = self._check(peer, "lower_all_hands", None, re)
        changed = [p for p in live.peers.values() if p.hand is not None]
        for p in changed:
            p.hand = None
        self._updated(live, changed, peer, "lower_all_hands", re)

    async def stage(
        self, peer: Peer, participant_id: str, limit: int, re: RequestId | None
    ) -> None:
        live, target = self._check(peer, "stage", participant_id, re)
        changed = []
        if not target.on_stage:
            on_stage = sum(1 for p in live.peers.values() if p.on_stage)
            if on_stage >= limit:
                noun = "classroom" if limit == 1 else "classrooms"
                raise SignalError(
                    "conflict", f"at most {limit} {noun} may be on stage; unstage one first", re
                )
            target.on_stage = True
            target.hand = None  # taken
            changed.append(target)
            self._follow_stage(live, target)
        self._updated(live, changed, peer, "stage", re)

    async def unstage(self, peer: Peer, participant_id: str, re: RequestId | None) -> None:
        live, target = self._check(peer, "unstage", participant_id, re)
        changed = []
        if target.on_stage:
            target.on_stage = False
            changed.append(target)
            self._follow_stage(live, target)
        self._updated(live, changed, peer, "unstage", re)

    def _follow_stage(self, live: LiveSession, target: Peer) -> None:
        """Give (or take away) ``target``'s tracks to those who receive it only on
        stage; its recording starts or stops with it."""
        self._recording_changed(live)
        own = [pid for pid, (owner, _) in live.producers.items() if owner is target and live.is_primary(pid)]
        if not own:
            return
        for other in live.peers.values():
            if other is target or other.downlink is None:
                continue
            if subscription(other.role, target.role) != "stage":
                continue
            if target.on_stage:
                other.downlink.want(own)
            else:
                other.downlink.unwant(own)

    async def mute(
        self, peer: Peer, participant_id: str | None, source: str, muted: bool,
        re: RequestId | None,
    ) -> None:
        live = self._joined(peer, re)
        current = peer.muted.get(source)
        if participant_id is not None and participant_id != peer.id:
            found = live.peers.get(participant_id)
            current = found.muted.get(source) if found is not None else None
        live, target = self._check(
            peer, "mute", participant_id, re, muting=muted, source=source, muted_by=current
        )
        if not muted:
            state = None
        elif (peer.role == "teacher" and target is not peer) or current == "teacher":
            state = "teacher"
        else:
            state = "self"
        changed = []
        if state != current:
            target.muted[source] = state  # type: ignore[assignment]
            changed.append(target)
            for owner, producer in list(live.producers.values()):
                if owner is target and MUTE_SWITCH.get(producer.app_data.get("source", "")) == source:
                    if state is None:
                        producer.resume()
                    else:
                        producer.pause()
        self._updated(live, changed, peer, "mute", re)

    @staticmethod
    def _is_muted(peer: Peer, producer: Producer) -> bool:
        switch = MUTE_SWITCH.get(producer.app_data.get("source", ""))
        return switch is not None and peer.muted.get(switch) is not None

    # --- attendance --------------------------------------------------------------

    async def _attendance_join(self, peer: Peer, session_id: str) -> str | None:
        """Open the attendance record of this join (teachers and classrooms).
        A store failure is logged, never a reason to refuse the lesson."""
        if peer.room is None:
            return None
        try:
            return await self.store.attendance_join(
                session_id, peer.id, peer.room.id, peer.role, peer.name, utc_now()
            )
        except Exception:
            log.exception("x attendance of %r not recorded", peer)
            return None

    async def _attendance_left(self, record_id: str | None, reason: str) -> None:
        if record_id is None:
            return
        try:
            await self.store.attendance_leave(record_id, utc_now(), reason)
        except Exception:
            log.exception("x attendance record %s not closed", record_id)

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._touch_attendance(), name="attendance-heartbeat"
            )

    async def _touch_attendance(self) -> None:
        while True:
            await asyncio.sleep(ATTENDANCE_TOUCH_S)
            open_ids = [
                p.attendance_id
                for live in self.sessions.values()
                for p in live.peers.values()
                if p.attendance_id is not None
            ]
            if not open_ids:
                continue
            try:
                await self.store.attendance_touch(open_ids, utc_now())
            except Exception:
                log.exception("x attendance heartbeat failed")

    def links(self, session_id: str) -> list[dict[str, Any]]:
        """Per joined participant: its downlink's rate control and consumers
        (empty when the session is not joined on this node)."""
        live = self.sessions.get(session_id)
        if live is None or live.router is None:
            return []
        by_participant = {
            t.get("app_data", {}).get("participant_id"): t
            for t in live.router.stats().get("transports", [])
            if t.get("app_data", {}).get("direction") == "down"
        }
        found = []
        for peer in live.peers.values():
            transport = by_participant.get(peer.id, {})
            rate = transport.get("rate") or {}
            estimate = (rate.get("estimate") or {}).get("estimate_bps")
            found.append(
                {
                    "participant": peer.info(),
                    "state": transport.get("state"),
                    "estimate_bps": estimate,
                    "consumers": [
                        {
                            "id": c.get("id"),
                            "producer_id": c.get("producer_id"),
                            "publisher_id": c.get("app_data", {}).get("publisher_id"),
                            "kind": c.get("kind"),
                            "source": c.get("app_data", {}).get("source"),
                            "layer": c.get("layer"),
                            "layers": c.get("layers"),
                            "fraction_lost": c.get("fraction_lost"),
                            "rtt_ms": c.get("rtt_ms"),
                            "remb_bps": c.get("remb_bps"),
                            "packets": c.get("packets"),
                        }
                        for c in transport.get("consumers", [])
                    ],
                }
            )
        return found

    # --- stats -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        sessions: list[dict[str, Any]] = [
            {
                "session_id": live.session.id,
                "lecture_room_id": live.session.lecture_room_id,
                "title": live.session.title,
                "participants": [p.info() for p in live.peers.values()],
                "producers": len(live.producers),
                "router": live.router.stats() if live.router is not None else None,
            }
            for live in self.sessions.values()
        ]
        return {
            "sockets": sum(len(peers) for peers in self.sockets.values()),
            "participants": sum(len(live.peers) for live in self.sessions.values()),
            "sessions": sessions,
        }
