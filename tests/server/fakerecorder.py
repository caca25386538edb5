"""The fake media plane with recorders (seam: ``Router.create_recorder``,
``MediaPlane.recover_recording``): files hold placeholder bytes, stats are
made up from a clock, so the control plane's recording lifecycle is tested
without aiortc or av.

``fail_sources``: creating a recorder for a producer of these sources raises
(a media plane failure). ``recoverable``: what ``recover_recording`` returns
per file name (None: nothing playable)."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from typing import Any

from .fakemedia import FakeMediaPlane, FakeProducer, FakeRouter

_ids = itertools.count(1)


class FakeRecorder:
    def __init__(self, producer: FakeProducer, directory: str, stem: str, clock: Callable[[], float]) -> None:
        self.id = f"rec{next(_ids)}"
        self.producer_id = producer.id
        self.kind = producer.kind
        self.path = os.path.join(directory, stem + ".webm")
        self.clock = clock
        self.created_at = clock()
        self._closed = False
        self._callbacks: list[Callable[[], None]] = []
        self.final: dict[str, Any] | None = None
        with open(self.path, "wb") as f:
            f.write(b"\x1a\x45\xdf\xa3" + stem.encode() * 64)  # an EBML magic and some bytes
        producer.on_close(self._producer_closed)

    @property
    def closed(self) -> bool:
        return self._closed

    def on_close(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def stats(self) -> dict[str, Any]:
        if self.final is not None:
            return dict(self.final)
        video = self.kind == "video"
        return {
            "file": os.path.basename(self.path),
            "kind": self.kind,
            "codec": "vp8" if video else "opus",
            "container": "webm",
            "started_at": self.created_at + 0.25,  # the first keyframe came a little later
            "duration_s": max(0.0, self.clock() - self.created_at - 0.25),
            "frames": 10,
            "bytes": os.path.getsize(self.path),
            "width": 640 if video else None,
            "height": 480 if video else None,
        }

    def _producer_closed(self) -> None:
        self._finalize()

    def _finalize(self) -> None:
        if self._closed:
            return
        self.final = self.stats()
        self._closed = True
        for callback in self._callbacks:
            callback()

    async def close(self) -> dict[str, Any]:
        self._finalize()
        assert self.final is not None
        return dict(self.final)


class RecordingRouter(FakeRouter):
    async def create_recorder(self, producer_id: str, directory: str, stem: str) -> FakeRecorder:
        producer = self.get_producer(producer_id)
        plane = self.plane
        assert isinstance(plane, RecordingMediaPlane)
        if producer.app_data.get("source") in plane.fail_sources:
            raise RuntimeError("the recorder could not open its file")
        recorder = FakeRecorder(producer, directory, stem, plane.clock)
        plane.recorders.append(recorder)
        return recorder

    async def close(self) -> None:
        if not self.closed:
            plane = self.plane
            assert isinstance(plane, RecordingMediaPlane)
            for recorder in plane.recorders:
                if recorder.producer_id in self.producers:
                    recorder._finalize()
        await super().close()


class RecordingMediaPlane(FakeMediaPlane):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.clock = clock
        self.recorders: list[FakeRecorder] = []
        self.fail_sources: set[str] = set()
        self.recoverable: dict[str, dict[str, Any] | None] = {}
        self.recovered: list[str] = []

    async def create_router(self, app_data: dict[str, Any]) -> RecordingRouter:
        router = RecordingRouter(self, app_data)
        self.routers.append(router)
        return router

    async def recover_recording(self, path: str) -> dict[str, Any] | None:
        self.recovered.append(path)
        return self.recoverable.get(os.path.basename(path))

    def open_recorders(self) -> list[FakeRecorder]:
        return [r for r in self.recorders if not r.closed]
