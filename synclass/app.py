"""The composition root: the control plane with a real media plane plugged in.

``server`` never imports the media plane and ``media`` never imports aiohttp;
this is the one place that knows both.
"""

from __future__ import annotations

from aiohttp import web

from media.plane import MediaPlane
from server.app import create_app
from server.settings import Settings


def build_app(settings: Settings) -> web.Application:
    plane = MediaPlane(ice_host_addresses=settings.ice_host_addresses)
    app = create_app(settings, media=plane)

    async def close_media(app: web.Application) -> None:
        await plane.close()

    app.on_cleanup.append(close_media)
    return app
