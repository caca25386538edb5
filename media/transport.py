"""Transport: one RTCPeerConnection with one participant.

A participant publishes on one transport (it offers, we answer, one Producer
per offered track) and receives on another (we offer one sendonly m-line per
Consumer and renegotiate as tracks come and go). aiortc does ICE, DTLS and
SRTP; the RTP itself goes through Producers and Consumers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable, Optional

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription

from . import aiortc_hooks as hooks
from .bandwidth import DownlinkController, Pacer
from .consumer import Consumer
from .producer import Producer, PublisherClock

if TYPE_CHECKING:
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    from .router import Router

logger = logging.getLogger("synclass.media.transport")

# The video codecs we forward, in order of preference. Only one is negotiated
# per publisher track, so every subscriber gets exactly what was published.
VIDEO_CODECS = ("video/VP8", "video/H264")
AUDIO_CODECS = ("audio/opus",)

# Publisher sockets: room for ~3000 packets (a keyframe burst while the loop
# is busy fanning out the previous one).
PUBLISHER_RCVBUF_BYTES = 4 * 1024 * 1024


def strip_mdns_candidates(sdp: str) -> str:
    """Drop ``a=candidate`` lines whose address is an mDNS name (``*.local``).

    Resolving them would send multicast queries from the server's network; an
    SFU reaches such a browser through peer-reflexive candidates anyway.
    """
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) > 4 and parts[4].endswith(".local"):
                continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def parse_sdp(sdp: str, kind: str) -> SessionDescription:
    """Parse and sanity-check an SDP; ``ValueError`` with a clear message if bad."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise ValueError(f"{kind} SDP is empty")
    if not sdp.startswith("v=0"):
        raise ValueError(f"{kind} SDP must start with v=0")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises many types on garbage
        raise ValueError(f"{kind} SDP could not be parsed: {exc or type(exc).__name__}") from None
    for media in parsed.media:
        if media.kind not in ("audio", "video"):
            raise ValueError(f"{kind} SDP has an unsupported m-line of kind {media.kind}")
        if not media.rtp.muxId:
            raise ValueError(f"{kind} SDP has an m-line without a=mid")
        if media.port != 0 and (media.ice.usernameFragment is None or not media.dtls or not media.dtls.fingerprints):
            raise ValueError(f"{kind} SDP m-line {media.rtp.muxId} lacks ICE credentials or a DTLS fingerprint")
    return parsed


def _codec_preferences(kind: str, wanted: tuple[str, ...], offered: set[str]) -> list[Any]:
    caps = RTCRtpSender.getCapabilities(kind).codecs
    for mime in wanted:
        if mime.lower() in offered:
            chosen = [c for c in caps if c.mimeType.lower() == mime.lower()]
            if kind == "video":
                chosen += [c for c in caps if c.mimeType.lower() == "video/rtx"]
            return chosen
    raise ValueError(f"offer has no {kind} codec synclass can forward (wants one of {', '.join(wanted)})")


class Transport:
    def __init__(self, router: "Router", app_data: dict[str, Any], ice_servers: list[dict[str, Any]]) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.app_data = app_data
        self._router = router
        servers = [RTCIceServer(**s) for s in ice_servers]
        # MAX_BUNDLE: every m-line on one transport from the start. With aiortc's
        # default (BALANCED) a second track of a kind shares its kind's transport
        # and is marked bundled; when the answer bundles everything onto the
        # first m-line's transport, that track is left on the discarded one and
        # never sends (audio, video, video: the third one is silent).
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self._closed = False
        self._close_callbacks: list[Callable[[], None]] = []
        self._producers: dict[str, Producer] = {}  # by mid
        self._consumers: list[Consumer] = []
        self._clock = PublisherClock()
        self._controller: Optional[DownlinkController] = None  # rate control, once it consumes
        self.pacer = Pacer()  # this subscriber's video, spread at what its link carries
        self._lock = asyncio.Lock()  # one SDP exchange at a time
        self.pc.on("connectionstatechange", self._on_state)

    # -- seam ------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    @property
    def dtls(self) -> "RTCDtlsTransport":
        """The (bundled) DTLS transport, once negotiated."""
        for t in self.pc.getTransceivers():
            if t.sender.transport is not None:
                return t.sender.transport
        raise RuntimeError("transport has no DTLS transport yet")

    def on_close(self, callback: Callable[[], None]) -> None:
        self._close_callbacks.append(callback)

    async def publish(self, offer_sdp: str, tracks: dict[str, dict[str, Any]]) -> tuple[str, list[Producer]]:
        self._check_open()
        parsed = parse_sdp(offer_sdp, "offer")
        # Check everything before touching the peer connection: a refused offer
        # must leave no producer behind and the connection as it was.
        preferences: dict[str, list[Any]] = {}
        for media in parsed.media:
            mid = media.rtp.muxId
            if media.port == 0 or media.direction not in ("sendonly", "sendrecv") or mid in self._producers:
                continue
            if mid not in tracks:
                raise ValueError(f"offer has an m-line with mid {mid} that is not in tracks")
            wanted = VIDEO_CODECS if media.kind == "video" else AUDIO_CODECS
            offered = {c.mimeType.lower() for c in media.rtp.codecs}
            preferences[mid] = _codec_preferences(media.kind, wanted, offered)
        async with self._lock:
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(strip_mdns_candidates(offer_sdp), "offer"))
            except Exception as exc:
                raise ValueError(f"offer was refused: {exc or type(exc).__name__}") from None
            new: list[Producer] = []
            for transceiver in self.pc.getTransceivers():
                mid = transceiver.mid
                if mid is None or mid in self._producers or mid not in preferences:
                    continue
                kind = transceiver.kind
                transceiver.setCodecPreferences(preferences[mid])
                transceiver.direction = "recvonly"
                producer = Producer(
                    self, transceiver.receiver, kind, dict(tracks[mid]), self._clock, preferences[mid][0].mimeType
                )
                self._producers[mid] = producer
                self._router._add_producer(producer)
                new.append(producer)
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            hooks.enlarge_receive_buffers(self.pc, PUBLISHER_RCVBUF_BYTES)
        logger.info("- transport %s published %d track(s)", self.id, len(new))
        return self.pc.localDescription.sdp, new

    async def consume(self, producer: Producer, app_data: dict[str, Any]) -> Consumer:
        self._check_open()
        if producer.closed:
            raise LookupError(f"producer {producer.id} is closed")
        transceiver = self.pc.addTransceiver(producer.kind, direction="sendonly")
        codecs = [
            c
            for c in RTCRtpSender.getCapabilities(producer.kind).codecs
            if c.mimeType.lower() in (producer.mime_type.lower(), "video/rtx")
        ]
        transceiver.setCodecPreferences(codecs)
        consumer = Consumer(self, producer, transceiver, dict(app_data))
        self._consumers.append(consumer)
        if self._controller is None:
            self._controller = DownlinkController(self._consumers, pacer=self.pacer, name=self.id)
            self._controller.start()
        consumer.on_feedback = self._controller.feedback
        consumer.on_nack_loss = self._controller.nack_loss
        return consumer

    async def create_offer(self) -> str:
        self._check_open()
        async with self._lock:
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)
            return self.pc.localDescription.sdp

    async def set_answer(self, answer_sdp: str) -> None:
        self._check_open()
        parse_sdp(answer_sdp, "answer")
        async with self._lock:
            if self.pc.signalingState != "have-local-offer":
                raise ValueError("no offer is waiting for an answer")
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(strip_mdns_candidates(answer_sdp), "answer"))
            except Exception as exc:
                raise ValueError(f"answer was refused: {exc}") from None

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "producers": [p.stats() for p in self._producers.values()],
            "consumers": [c.stats() for c in self._consumers],
            "rate": self._controller.stats() if self._controller is not None else None,
            "app_data": self.app_data,
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._controller is not None:
            self._controller.stop()
        self.pacer.close()
        for producer in list(self._producers.values()):
            await producer.close()
        for consumer in list(self._consumers):
            await consumer.close()
        try:
            await self.pc.close()
        except Exception:
            logger.exception("x closing peer connection failed")
        self._router._forget_transport(self)
        for callback in self._close_callbacks:
            try:
                callback()
            except Exception:
                logger.exception("x transport close callback failed")
        self._close_callbacks.clear()
        logger.info("- transport %s closed", self.id)

    # -- internals -------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"transport {self.id} is closed")

    def _on_state(self) -> None:
        state = self.pc.connectionState
        logger.debug("- transport %s %s", self.id, state)
        if state in ("failed", "closed") and not self._closed:
            logger.info("- transport %s lost its peer (%s)", self.id, state)
            asyncio.ensure_future(self.close())

    def _forget_producer(self, producer: Producer) -> None:
        # The closed producer stays in self._producers: its mid remains taken,
        # so a re-offer that still lists that m-line does not recreate it.
        self._router._remove_producer(producer)

    async def _forget_consumer(self, consumer: Consumer) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)
            self._router._count_closed_consumer(consumer)
        if not self._closed:
            consumer.transceiver.direction = "inactive"

