"""A media plane that moves no media: it implements server/seam.py with
placeholder SDP so the signaling flows can be tested without aiortc.

SDP conventions: an offer or answer containing ``bad`` is refused with
``ValueError``; a publish offer containing ``explode`` raises a bug
(``KeyError``). The server's offers read ``offer:<mid>,<mid>...``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from server.seam import Kind

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


class _Closable:
    def __init__(self) -> None:
        self._closed = False
        self._callbacks: list[Callable[[], None]] = []

    @property
    def closed(self) -> bool:
        return self._closed

    def on_close(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def _mark_closed(self) -> bool:
        if self._closed:
            return False
        self._closed = True
        for callback in self._callbacks:
            callback()
        return True

    def stats(self) -> dict[str, Any]:
        return {}


class FakeProducer(_Closable):
    def __init__(self, kind: Kind, app_data: dict[str, Any], router: FakeRouter) -> None:
        super().__init__()
        self.id = _new_id("p")
        self.kind: Kind = kind
        self.app_data = app_data
        self.router = router
        self.consumers: list[FakeConsumer] = []
        self._paused = False
        self.keyframe_requests = 0

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    async def close(self) -> None:
        if self._mark_closed():
            self.router.producers.pop(self.id, None)
            for consumer in self.consumers:
                await consumer.close()


class FakeConsumer(_Closable):
    def __init__(self, producer: FakeProducer, app_data: dict[str, Any]) -> None:
        super().__init__()
        self.id = _new_id("c")
        self.kind: Kind = producer.kind
        self.producer_id = producer.id
        self.mid: str | None = None
        self.app_data = app_data
        self._paused = False
        self.current_layer: int | None = 0
        self.layer_ids: list[str] = []
        self.layer_callbacks: list[Any] = []

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def layer(self) -> int | None:
        return self.current_layer

    def set_layers(self, producers: list[Any]) -> None:
        self.layer_ids = sorted(p.id for p in producers)

    def on_layer(self, callback: Any) -> None:
        self.layer_callbacks.append(callback)

    def switch_layer(self, layer: int | None) -> None:
        """Test hook: the media plane decided on another layer."""
        self.current_layer = layer
        for callback in self.layer_callbacks:
            callback(layer)

    async def close(self) -> None:
        self._mark_closed()


class FakeTransport(_Closable):
    def __init__(self, router: FakeRouter, app_data: dict[str, Any]) -> None:
        super().__init__()
        self.id = _new_id("t")
        self.app_data = app_data
        self.router = router
        self.producers: dict[str, FakeProducer] = {}  # mid -> producer
        self.consumers: list[FakeConsumer] = []
        self.answers: list[str] = []

    @property
    def state(self) -> str:
        return "closed" if self.closed else "connected"

    async def publish(
        self, offer_sdp: str, tracks: dict[str, dict[str, Any]]
    ) -> tuple[str, list[Any]]:
        if "bad" in offer_sdp:
            raise ValueError("offer is not SDP")
        if "explode" in offer_sdp:
            raise KeyError("a bug in the media plane")
        new = []
        for mid, app_data in tracks.items():
            if mid in self.producers:
                continue
            kind: Kind = "audio" if app_data["source"] == "mic" else "video"
            producer = FakeProducer(kind, app_data, self.router)
            self.producers[mid] = producer
            self.router.producers[producer.id] = producer
            new.append(producer)
        return f"answer:{offer_sdp}", new

    async def consume(self, producer: Any, app_data: dict[str, Any]) -> FakeConsumer:
        if self.closed:
            raise RuntimeError("transport closed")
        consumer = FakeConsumer(producer, app_data)
        producer.consumers.append(consumer)
        self.consumers.append(consumer)
        return consumer

    async def create_offer(self) -> str:
        for index, consumer in enumerate(self.consumers):
            consumer.mid = str(index)
        open_mids = [c.mid for c in self.consumers if not c.closed]
        return "offer:" + ",".join(m for m in open_mids if m is not None)

    async def set_answer(self, answer_sdp: str) -> None:
        if "bad" in answer_sdp:
            raise ValueError("answer is not SDP")
        self.answers.append(answer_sdp)

    async def close(self) -> None:
        if not self.closed:
            for producer in list(self.producers.values()):
                await producer.close()
            for consumer in self.consumers:
                await consumer.close()
            self._mark_closed()

    async def vanish(self) -> None:
        """The peer went away without a word (ICE consent lost)."""
        await self.close()


class FakeRouter(_Closable):
    def __init__(self, plane: FakeMediaPlane, app_data: dict[str, Any]) -> None:
        super().__init__()
        self.id = _new_id("r")
        self.app_data = app_data
        self.plane = plane
        self.transports: list[FakeTransport] = []
        self.producers: dict[str, FakeProducer] = {}

    async def create_transport(self, app_data: dict[str, Any]) -> FakeTransport:
        transport = FakeTransport(self, app_data)
        self.transports.append(transport)
        return transport

    def get_producer(self, producer_id: str) -> FakeProducer:
        producer = self.producers.get(producer_id)
        if producer is None:
            raise LookupError(producer_id)
        return producer

    async def close(self) -> None:
        if not self.closed:
            for transport in self.transports:
                await transport.close()
            self._mark_closed()


class FakeMediaPlane:
    def __init__(self) -> None:
        self.routers: list[FakeRouter] = []

    async def create_router(self, app_data: dict[str, Any]) -> FakeRouter:
        router = FakeRouter(self, app_data)
        self.routers.append(router)
        return router

    def transport_of(self, participant_id: str, direction: str) -> FakeTransport:
        for router in self.routers:
            for transport in router.transports:
                if transport.app_data == {"participant_id": participant_id, "direction": direction}:
                    return transport
        raise LookupError(participant_id)

    def counters(self) -> dict[str, int]:
        return {
            "decoders_created": 0,
            "encoders_created": 0,
            "routers": sum(not r.closed for r in self.routers),
        }

    async def close(self) -> None:
        for router in self.routers:
            await router.close()
