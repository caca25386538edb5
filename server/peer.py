"""One open signaling socket: who is on it, its outbox, its media state.

Messages to the client go through an outbox drained by one task, so callers
anywhere (including the media plane's synchronous ``on_close`` callbacks)
send with a plain ``send()`` and per-socket order is kept. A client that
does not read its socket for ``MAX_OUTBOX`` messages is disconnected rather
than allowed to hold memory.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import Room
from .policy import MutedBy
from .tokens import Role

if TYPE_CHECKING:
    from .downlink import Downlink
    from .live import LiveSession
    from .seam import Transport

log = logging.getLogger(__name__)

MAX_OUTBOX = 1000


class Peer:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        participant_id: str,
        role: Role,
        room: Room | None,
        name: str,
        school_name: str | None = None,
    ) -> None:
        self.ws = ws
        self.id = participant_id
        self.role: Role = role
        self.room = room
        self.name = name
        self.school_name = school_name
        # interaction state of the current join (docs/protocol.md, section 9)
        self.hand: int | None = None  # raise-hand ticket: lower = earlier
        self.on_stage = False
        self.muted: dict[str, MutedBy | None] = {"mic": None, "camera": None}
        self.attendance_id: str | None = None  # the store's record of this join
        # media state, set while joined to a live session
        self.live: LiveSession | None = None
        self.up: Transport | None = None  # the client publishes on it
        self.downlink: Downlink | None = None  # the client receives on it
        self._outbox: collections.deque[dict[str, Any]] = collections.deque()
        self._ready = asyncio.Event()
        self._closing = False
        self._sender = asyncio.create_task(self._drain(), name=f"peer-{participant_id}-send")

    def __repr__(self) -> str:
        return f"Peer({self.id} {self.role} {self.room.id if self.room else '*'})"

    @property
    def room_key(self) -> str:
        """The socket registry key: the room id, ``*`` for admins."""
        return self.room.id if self.room is not None else "*"

    def info(self) -> dict[str, Any]:
        """The Participant shape of docs/protocol.md."""
        return {
            "id": self.id,
            "role": self.role,
            "room_id": self.room.id if self.room else None,
            "room_name": self.room.name if self.room else None,
            "school_id": self.room.school_id if self.room else None,
            "school_name": self.school_name,
            "name": self.name,
            "hand": self.hand,
            "on_stage": self.on_stage,
            "muted": dict(self.muted),
        }

    def reset_interaction(self) -> None:
        """Back to hand down, off stage, unmuted (a new join starts clean)."""
        self.hand = None
        self.on_stage = False
        self.muted = {"mic": None, "camera": None}

    def send(self, message: dict[str, Any]) -> None:
        self._enqueue(message, first=False)

    def send_first(self, message: dict[str, Any]) -> None:
        """Send ahead of anything queued (the ``welcome`` must come first)."""
        self._enqueue(message, first=True)

    def _enqueue(self, message: dict[str, Any], *, first: bool) -> None:
        if self._closing:
            return
        if len(self._outbox) >= MAX_OUTBOX:
            log.warning("x %r does not read its socket; disconnecting", self)
            self._closing = True
            asyncio.get_running_loop().create_task(self.ws.close(code=4429, message=b"too slow"))
            return
        if first:
            self._outbox.appendleft(message)
        else:
            self._outbox.append(message)
        self._ready.set()

    async def _drain(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._outbox:
                message = self._outbox.popleft()
                if self.ws.closed:
                    self._outbox.clear()
                    return
                log.debug("> %r %s", self, message.get("type"))
                try:
                    await self.ws.send_str(json.dumps(message))
                except (ConnectionError, RuntimeError) as e:
                    log.debug("x %r send failed: %s", self, e)
                    self._outbox.clear()
                    return
            if self._closing:
                return

    async def close(self) -> None:
        """Stop sending (after flushing what is queued, if the socket is open)."""
        self._closing = True
        self._ready.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._sender), timeout=1.0)
        except TimeoutError:
            self._sender.cancel()
