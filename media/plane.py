"""MediaPlane: the media side of one node process (implements server.seam.MediaPlane)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from . import aiortc_hooks as hooks
from .recorder import recover_file
from .router import Router

logger = logging.getLogger("synclass.media")


class MediaPlane:
    """Creates Routers; owns process-wide settings and counters.

    ``ice_host_addresses``: gather ICE candidates only there (empty: every
    interface but loopback, aioice's default). ``ice_servers``: STUN/TURN
    servers for the server's own peer connections (usually none: the server
    has a public or LAN address; browsers get their own list).
    ``consent_interval_s``/``consent_failures``: how fast a vanished peer is
    noticed (RFC 7675 default 5 s × 6).
    """

    def __init__(
        self,
        ice_host_addresses: tuple[str, ...] | list[str] = (),
        ice_servers: list[dict[str, Any]] | None = None,
        consent_interval_s: float = 5.0,
        consent_failures: int = 6,
    ) -> None:
        hooks.set_ice_host_addresses(ice_host_addresses)
        hooks.set_ice_consent(consent_interval_s, consent_failures)
        self.ice_servers = list(ice_servers or [])
        self._routers: list[Router] = []
        self.totals = {"routers": 0, "transports": 0, "producers": 0}
        self._closed_in = 0
        self._closed_out = 0

    async def create_router(self, app_data: dict[str, Any]) -> Router:
        router = Router(self, dict(app_data))
        self._routers.append(router)
        self.totals["routers"] += 1
        return router

    def counters(self) -> dict[str, int]:
        producers = [p for r in self._routers for p in r.producers]
        transports = [t for r in self._routers for t in r.transports]
        consumers = [c for t in transports for c in t._consumers]
        return {
            "decoders_created": hooks.COUNTERS["decoders_created"],
            "encoders_created": hooks.COUNTERS["encoders_created"],
            "routers": len(self._routers),
            "transports": len(transports),
            "producers": len(producers),
            "consumers": len(consumers),
            "recorders": sum(len(r.recorders) for r in self._routers),
            "routers_created": self.totals["routers"],
            "transports_created": self.totals["transports"],
            "producers_created": self.totals["producers"],
            "rtp_packets_in": self._closed_in + sum(p.packets for p in producers),
            "rtp_packets_out": self._closed_out + sum(c.packets for c in consumers),
        }

    async def recover_recording(self, path: str) -> dict[str, Any] | None:
        """Rewrite an interrupted recording (the process was killed) as a
        properly closed file, in place; its stats, or None if nothing in it
        is playable. Runs in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(None, recover_file, path)

    async def close(self) -> None:
        for router in list(self._routers):
            await router.close()

    def _forget_router(self, router: Router) -> None:
        if router in self._routers:
            self._routers.remove(router)
