"""Typed keys of the objects shared through the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from .exports import Exports
    from .live import Live
    from .recording import Recordings
    from .seam import MediaPlane

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORE: web.AppKey[Store] = web.AppKey("store")
# None only in API-only tests: join/publish then answer `internal`.
MEDIA: web.AppKey[MediaPlane | None] = web.AppKey("media")
LIVE: web.AppKey[Live] = web.AppKey("live")
RECORDINGS: web.AppKey[Recordings] = web.AppKey("recordings")
EXPORTS: web.AppKey[Exports] = web.AppKey("exports")
# every open signaling socket, welcomed or not (closed on shutdown)
WEBSOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("websockets")
