"""The down side of one participant: what it receives and the offers for it.

The participant's receive transport is touched only by this object's one
task, which reconciles the wanted producers with the consumers and then
renegotiates: one offer outstanding at a time, the next offer only after the
client's ``answer``. Callers just say what they want (``want``/``unwant``);
several changes in a row are folded into one offer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .messages import SignalError
from .seam import Consumer, Producer, Router, Transport

LayersOf = Callable[[str], list[Producer]]  # primary producer id -> every layer of its source

log = logging.getLogger(__name__)


def consumer_info(consumer: Consumer) -> dict[str, Any]:
    """The ConsumerInfo shape of docs/protocol.md."""
    return {
        "id": consumer.id,
        "producer_id": consumer.producer_id,
        "participant_id": consumer.app_data.get("publisher_id"),
        "kind": consumer.kind,
        "source": consumer.app_data.get("source"),
        "mid": consumer.mid,
        "layer": consumer.layer,
    }


class Downlink:
    def __init__(
        self,
        transport: Transport,
        router: Router,
        subscriber_id: str,
        send: Callable[[dict[str, Any]], None],
        layers_of: LayersOf | None = None,
        app_data_of: Callable[[Producer], dict[str, Any]] | None = None,
    ) -> None:
        self.transport = transport
        self._layers_of = layers_of or (lambda producer_id: [])
        self._app_data_of = app_data_of or (lambda producer: {})
        self._router = router
        self._subscriber_id = subscriber_id
        self._send = send
        self.wanted: set[str] = set()  # producer ids
        self.consumers: dict[str, Consumer] = {}  # producer id -> its consumer here
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._answer: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def awaiting_answer(self) -> bool:
        return self._answer is not None and not self._answer.done()

    def want(self, producer_ids: Iterable[str]) -> None:
        self.wanted.update(producer_ids)
        self._kick()

    def unwant(self, producer_ids: Iterable[str]) -> None:
        self.wanted.difference_update(producer_ids)
        self._kick()

    def refresh_layers(self, producer_id: str) -> None:
        """The layers of ``producer_id``'s source changed (one published or closed)."""
        consumer = self.consumers.get(producer_id)
        if consumer is not None and not consumer.closed:
            consumer.set_layers(self._layers_of(producer_id))

    def _kick(self) -> None:
        if self._closed:
            return
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"downlink-{self._subscriber_id}")

    async def _run(self) -> None:
        while self._dirty and not self._closed:
            self._dirty = False
            try:
                if not await self._reconcile():
                    continue
                sdp = await self.transport.create_offer()
                self._answer = asyncio.get_running_loop().create_future()
                consumers = [consumer_info(c) for c in self.consumers.values() if not c.closed]
                self._send({"type": "offer", "sdp": sdp, "consumers": consumers})
                await self._answer
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.transport.closed:
                    return  # the participant is going away; nothing to renegotiate
                log.exception("x downlink of %s failed to renegotiate", self._subscriber_id)
                self._send(
                    {
                        "type": "error",
                        "code": "internal",
                        "message": "the server failed to update what you receive",
                        "re": None,
                    }
                )
            finally:
                self._answer = None

    async def _reconcile(self) -> bool:
        """Make the consumers match ``wanted``; True if anything changed."""
        changed = False
        for producer_id, consumer in list(self.consumers.items()):
            if producer_id not in self.wanted or consumer.closed:
                del self.consumers[producer_id]
                await consumer.close()
                changed = True
        for producer_id in sorted(self.wanted - self.consumers.keys()):
            try:
                producer = self._router.get_producer(producer_id)
            except LookupError:
                self.wanted.discard(producer_id)  # closed meanwhile
                continue
            consumer = self.consumers[producer_id] = await self.transport.consume(
                producer,
                {
                    "subscriber_id": self._subscriber_id,
                    "publisher_id": producer.app_data.get("participant_id"),
                    "source": producer.app_data.get("source"),
                    **self._app_data_of(producer),
                },
            )
            consumer.set_layers(self._layers_of(producer_id))
            consumer.on_layer(self._layer_changed(consumer))
            changed = True
        return changed

    def _layer_changed(self, consumer: Consumer) -> Callable[[int | None], None]:
        def changed(layer: int | None) -> None:
            self._send(
                {
                    "type": "consumer_layer",
                    "consumer_id": consumer.id,
                    "producer_id": consumer.producer_id,
                    "layer": layer,
                }
            )

        return changed

    async def answer(self, sdp: str) -> None:
        """Apply the client's answer to the outstanding offer."""
        future = self._answer
        if future is None or future.done():
            raise SignalError("bad_message", "no offer is waiting for an answer")
        try:
            await self.transport.set_answer(sdp)
        except ValueError as e:
            raise SignalError("bad_sdp", str(e)) from None
        if not future.done():
            future.set_result(None)

    async def close(self) -> None:
        """Stop renegotiating and close the transport (and so its consumers)."""
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.transport.close()
