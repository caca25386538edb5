"""The control plane's aiohttp application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from . import api, library, retention, signaling
from .exports import Exports
from .keys import EXPORTS, LIVE, MEDIA, RECORDINGS, SETTINGS, STORE, WEBSOCKETS
from .live import Live
from .recording import Recordings
from .middleware import MAX_BODY_BYTES, admin_auth_middleware, error_middleware
from .seam import MediaPlane
from .settings import Settings, ensure_secrets
from .store import SqliteStore, Store

__all__ = ["LIVE", "MEDIA", "SETTINGS", "STORE", "WEBSOCKETS", "create_app"]

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, media: MediaPlane | None = None, store: Store | None = None
) -> web.Application:
    """The application: REST under ``/api/``, signaling on ``/ws``, the
    browser pages under ``/web/``.

    ``media`` is owned by the caller (who closes it); routers this app
    created are closed on cleanup. ``store`` defaults to SQLite in
    ``settings.data_dir`` and is opened and closed with the app. Missing
    secrets are read from (or created in) ``settings.data_dir``.
    """
    settings = ensure_secrets(settings)
    store = store if store is not None else SqliteStore(settings.data_dir)
    app = web.Application(
        middlewares=[error_middleware, admin_auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[SETTINGS] = settings
    app[STORE] = store
    app[MEDIA] = media
    recordings = Recordings(store, media, settings.recordings_root)
    app[RECORDINGS] = recordings
    app[EXPORTS] = Exports()
    app[LIVE] = Live(store, media, recordings)
    app[WEBSOCKETS] = set()
    app.cleanup_ctx.append(_store_lifetime)
    app.cleanup_ctx.append(_live_lifetime)
    app.on_shutdown.append(signaling.close_all)

    api.add_routes(app)
    library.add_routes(app)
    app.router.add_get("/ws", signaling.websocket_handler)
    app.router.add_get("/", _index)
    if settings.web_root.is_dir():
        app.router.add_static("/web/", settings.web_root)
    else:
        log.warning("- no browser pages: %s is not a directory", settings.web_root)
    return app


async def _index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/web/admin.html")


async def _store_lifetime(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    await store.open()
    try:
        # records a crash left open end when the server last saw them connected
        closed = await store.close_open_attendance()
    except BaseException:
        await store.close()
        raise
    if closed:
        log.info("- closed %d attendance records left open by the last run", closed)
    yield
    await app[STORE].close()


async def _live_lifetime(app: web.Application) -> AsyncIterator[None]:
    # interrupted recordings are recovered in the background: serving starts at once
    recordings, exports, settings = app[RECORDINGS], app[EXPORTS], app[SETTINGS]
    recordings.start()
    keeping = asyncio.get_running_loop().create_task(
        retention.loop(
            recordings,
            max_age_days=settings.recordings_max_age_days,
            max_bytes=settings.recordings_max_bytes,
            busy=lambda session_id: exports.running(session_id) is not None,
        ),
        name="retention",
    )
    yield
    keeping.cancel()
    await exports.close()
    await app[LIVE].close()
