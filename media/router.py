"""Router: all media of one live class session on this node."""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

from .recorder import CODECS, CONTAINERS, Recorder
from .transport import Transport

if TYPE_CHECKING:
    from .consumer import Consumer
    from .plane import MediaPlane
    from .producer import Producer

logger = logging.getLogger("synclass.media.router")


class Router:
    def __init__(self, plane: "MediaPlane", app_data: dict[str, Any]) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.app_data = app_data
        self._plane = plane
        self._closed = False
        self._transports: list[Transport] = []
        self._producers: dict[str, "Producer"] = {}
        self._recorders: list[Recorder] = []

    @property
    def closed(self) -> bool:
        return self._closed

    async def create_transport(self, app_data: dict[str, Any]) -> Transport:
        if self._closed:
            raise RuntimeError(f"router {self.id} is closed")
        transport = Transport(self, dict(app_data), self._plane.ice_servers)
        self._transports.append(transport)
        self._plane.totals["transports"] += 1
        return transport

    def get_producer(self, producer_id: str) -> "Producer":
        producer = self._producers.get(producer_id)
        if producer is None or producer.closed:
            raise LookupError(f"no producer {producer_id}")
        return producer

    async def create_recorder(self, producer_id: str, directory: str, stem: str) -> Recorder:
        """Record a producer into ``directory/stem`` + ``.webm`` (VP8, Opus) or
        ``.mkv`` (H.264). ``LookupError`` if there is no such open producer,
        ``ValueError`` for a codec that cannot be recorded, ``FileExistsError``
        if the file is there already (a recording is never overwritten). The
        file is created empty at once (the name is taken) and written from the
        first keyframe on (asked for now)."""
        if self._closed:
            raise RuntimeError(f"router {self.id} is closed")
        producer = self.get_producer(producer_id)
        codec = CODECS.get(producer.mime_type.lower())
        if codec is None:
            raise ValueError(f"cannot record {producer.mime_type}")
        path = os.path.abspath(os.path.join(directory, f"{stem}.{CONTAINERS[codec][0]}"))
        os.makedirs(directory, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))  # FileExistsError
        try:
            recorder = Recorder(self, producer, path)
        except BaseException:
            os.unlink(path)
            raise
        self._recorders.append(recorder)
        producer.request_keyframe()
        logger.info("- recorder %s of producer %s to %s", recorder.id, producer.id, path)
        return recorder

    @property
    def recorders(self) -> list[Recorder]:
        return list(self._recorders)

    @property
    def producers(self) -> list["Producer"]:
        return list(self._producers.values())

    @property
    def transports(self) -> list[Transport]:
        return list(self._transports)

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app_data": self.app_data,
            "transports": [t.stats() for t in self._transports],
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for recorder in list(self._recorders):
            await recorder.close()
        for transport in list(self._transports):
            await transport.close()
        self._plane._forget_router(self)
        logger.info("- router %s closed", self.id)

    # -- bookkeeping called by children ----------------------------------------
    def _add_producer(self, producer: "Producer") -> None:
        self._producers[producer.id] = producer
        self._plane.totals["producers"] += 1

    def _remove_producer(self, producer: "Producer") -> None:
        if self._producers.pop(producer.id, None) is not None:
            self._plane._closed_in += producer.packets

    def _count_closed_consumer(self, consumer: "Consumer") -> None:
        self._plane._closed_out += consumer.packets

    def _forget_recorder(self, recorder: Recorder) -> None:
        if recorder in self._recorders:
            self._recorders.remove(recorder)

    def _forget_transport(self, transport: Transport) -> None:
        if transport in self._transports:
            self._transports.remove(transport)
