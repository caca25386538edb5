"""Producer: one up track (an incoming track of a publisher), fanned out to Consumers.

The hot path: aiortc hands ``on_rtp`` each packet (already SRTP-decrypted,
RTX-unwrapped, counted for receiver reports and NACKed if a gap was seen).
The producer caches it for retransmissions, serializes it once per header
extension layout its consumers negotiated, and lets every consumer patch
the 11 header bytes that differ and send. Recorders, when there are any,
get each packet as it came (not while paused). Nothing is decoded.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import aiortc_hooks as hooks
from .packetcache import PacketCache
from .rtp import ExtensionLayout, abs_send_time_now, keyframe_detector, ntp_to_unix

if TYPE_CHECKING:
    from aiortc import RTCRtpReceiver

    from .consumer import Consumer
    from .recorder import Recorder
    from .transport import Transport

logger = logging.getLogger("synclass.media.producer")

# mediasoup and Galène both ask a publisher for at most one keyframe a second:
# a keyframe is 10-20 packets, asking faster only floods the uplink.
KEYFRAME_REQUEST_INTERVAL_S = 1.0
# A track's bitrate is measured over windows this long.
RATE_WINDOW_S = 1.0
# ... and, for the allocation's demand, averaged over this many such windows:
# a slide deck sends a 30-60 KB key frame per slide and ~10 kbps between, so a
# one-second window reads 12 kbps or 400 kbps depending on when it is taken.
AVERAGE_WINDOWS = 10
# Bytes a packet takes on the wire besides its payload: RTP header with
# extensions (~20), SRTP tag (10), UDP + IPv4 (28). What a rate cap counts.
PACKET_OVERHEAD_BYTES = 60
# How many key frames before the newest ``largest_keyframe_bytes`` looks back
# at (a slide deck's key frame per slide: 24-37 KB for one deck).
KEYFRAME_SIZES_KEPT = 4


class PublisherClock:
    """Maps a publisher's NTP clock (from its sender reports) onto ours.

    One per publishing peer connection, shared by its audio and video
    producers, so the lip-sync the publisher signalled survives forwarding:
    offset = min over reports of (our arrival time - their NTP time), the
    least delayed report being the best estimate.
    """

    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset: Optional[float] = None

    def observe(self, their_time: float, our_time: float) -> None:
        delta = our_time - their_time
        if self.offset is None or delta < self.offset:
            self.offset = delta


class Producer:
    def __init__(
        self,
        transport: "Transport",
        receiver: "RTCRtpReceiver",
        kind: str,
        app_data: dict[str, Any],
        clock: PublisherClock,
        mime_type: str,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.kind = kind
        self.app_data = app_data
        # The codec our answer allowed (one per track): consumers made before
        # the publisher connects must already offer it.
        self.mime_type = mime_type
        self.clock_rate = 90000 if kind == "video" else 48000
        self.payload_types: dict[int, str] = {}
        self._transport = transport
        self._receiver = receiver
        self._clock = clock
        self._closed = False
        self._paused = False
        self._close_callbacks: list[Callable[[], None]] = []
        self._consumers: list["Consumer"] = []
        self._recorders: list["Recorder"] = []  # get every packet, even with no consumer
        self._is_keyframe: Optional[Callable[[bytes], bool]] = keyframe_detector(mime_type)
        self.cache: PacketCache[Any] = PacketCache(512 if kind == "video" else 128)
        self.media_ssrc: Optional[int] = None
        # last sender report mapped to our clock: (our unix time, rtp timestamp)
        self.sr_mapping: Optional[tuple[float, int]] = None
        # last packet seen: (our unix time, rtp timestamp) — fallback mapping
        self.last_packet: Optional[tuple[float, int]] = None
        self._last_keyframe_request = -1e9
        self.packets = 0
        self.octets = 0
        # what this track takes on a link (payload + per-packet overhead), per second
        self.bitrate_bps = 0
        self._rate_window = (0.0, 0, 0)  # (start time, packets, octets) at its start
        self._rate_history: deque[int] = deque(maxlen=AVERAGE_WINDOWS)
        self.average_bitrate_bps = 0  # over the last AVERAGE_WINDOWS windows
        self.floor_bitrate_bps = 0  # the least of those windows (a slide deck between slides)
        # the latest key frame's size on the wire (payload + overhead per packet), bytes
        self.keyframe_bytes = 0
        self._keyframe_sizes: deque[int] = deque(maxlen=KEYFRAME_SIZES_KEPT)  # the key frames before it
        self._keyframe_ts: Optional[int] = None
        self.keyframes = 0
        self.keyframe_requests = 0
        hooks.install_receiver_hooks(receiver, self)

    # -- seam ------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def on_close(self, callback: Callable[[], None]) -> None:
        self._close_callbacks.append(callback)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Forward nothing (a muted mic, a camera turned off) until ``resume``."""
        self._paused = True

    def resume(self) -> None:
        """Forward again: every consumer continues its seq/timestamps and,
        for video, waits for the keyframe asked for here."""
        if not self._paused:
            return
        self._paused = False
        for consumer in self._consumers:
            consumer._restart()
        for recorder in self._recorders:
            recorder._restart()
        if self.kind == "video":
            self._last_keyframe_request = -1e9
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Send a PLI upstream, at most once per KEYFRAME_REQUEST_INTERVAL_S."""
        if self.kind != "video" or self._closed or self.media_ssrc is None:
            return
        now = time.monotonic()
        if now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL_S:
            return
        self._last_keyframe_request = now
        self.keyframe_requests += 1
        logger.debug("> PLI producer=%s ssrc=%d", self.id, self.media_ssrc)
        asyncio.ensure_future(hooks.send_pli(self._receiver, self.media_ssrc))

    @property
    def largest_keyframe_bytes(self) -> int:
        """The largest of the newest key frame and the KEYFRAME_SIZES_KEPT before
        it (bytes on the wire)."""
        return max(self.keyframe_bytes, max(self._keyframe_sizes, default=0))

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "mime_type": self.mime_type,
            "packets": self.packets,
            "octets": self.octets,
            "bitrate_bps": self.bitrate_bps,
            "average_bitrate_bps": self.average_bitrate_bps,
            "floor_bitrate_bps": self.floor_bitrate_bps,
            "keyframe_bytes": self.keyframe_bytes,
            "keyframes": self.keyframes,
            "keyframe_requests": self.keyframe_requests,
            "consumers": len(self._consumers),
            "recorders": len(self._recorders),
            "paused": self._paused,
            "app_data": self.app_data,
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers):
            await consumer._producer_closed(self)
        self._consumers.clear()
        for recorder in list(self._recorders):
            await recorder._producer_closed()
        self._recorders.clear()
        self._transport._forget_producer(self)
        for callback in self._close_callbacks:
            _call_safely(callback)
        self._close_callbacks.clear()
        logger.debug("- producer %s closed", self.id)

    # -- consumers -------------------------------------------------------------
    def _attach(self, consumer: "Consumer") -> None:
        if self._closed:
            raise RuntimeError(f"producer {self.id} is closed")
        self._consumers.append(consumer)

    def _detach(self, consumer: "Consumer") -> None:
        try:
            self._consumers.remove(consumer)
        except ValueError:
            pass

    def _attach_recorder(self, recorder: "Recorder") -> None:
        if self._closed:
            raise RuntimeError(f"producer {self.id} is closed")
        self._recorders.append(recorder)

    def _detach_recorder(self, recorder: "Recorder") -> None:
        try:
            self._recorders.remove(recorder)
        except ValueError:
            pass

    # -- hooks (called by aiortc through media.aiortc_hooks) ---------------------
    def on_negotiated(self, mime_type: str, clock_rate: int, payload_types: dict[int, str]) -> None:
        self.mime_type = mime_type
        self.clock_rate = clock_rate
        self.payload_types = payload_types
        self._is_keyframe = keyframe_detector(mime_type)

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        now = time.time()
        their = ntp_to_unix(ntp)
        self._clock.observe(their, now)
        assert self._clock.offset is not None
        self.sr_mapping = (their + self._clock.offset, rtp_timestamp)

    def is_keyframe(self, payload: bytes) -> bool:
        test = self._is_keyframe
        return test is not None and test(payload)

    def on_rtp(self, packet: Any) -> None:
        """Hot path: one incoming RTP packet (an aiortc RtpPacket)."""
        if self._closed:
            return
        self.packets += 1
        payload = packet.payload
        self.octets += len(payload)
        self.media_ssrc = packet.ssrc
        now = time.time()
        self.last_packet = (now, packet.timestamp)
        start, packets0, octets0 = self._rate_window
        if now - start >= RATE_WINDOW_S:
            if start:
                bits = (self.octets - octets0 + (self.packets - packets0) * PACKET_OVERHEAD_BYTES) * 8
                self.bitrate_bps = int(bits / (now - start))
                self._rate_history.append(self.bitrate_bps)
                self.average_bitrate_bps = sum(self._rate_history) // len(self._rate_history)
                self.floor_bitrate_bps = min(self._rate_history)
            self._rate_window = (now, self.packets, self.octets)
        self.cache.put(packet.sequence_number, packet)
        if self._recorders and not self._paused:
            self._record(packet, now)
        consumers = self._consumers
        if not consumers or self._paused:
            return
        keyframe = self._is_keyframe is not None and self._is_keyframe(payload)
        if keyframe and packet.timestamp != self._keyframe_ts:  # a new key frame (counted once)
            self.keyframes += 1
            if self.keyframe_bytes:
                self._keyframe_sizes.append(self.keyframe_bytes)
            self._keyframe_ts = packet.timestamp
            self.keyframe_bytes = len(payload) + PACKET_OVERHEAD_BYTES
        elif packet.timestamp == self._keyframe_ts:
            self.keyframe_bytes += len(payload) + PACKET_OVERHEAD_BYTES
        abs_time = abs_send_time_now(now)
        audio_level = packet.extensions.audio_level
        # One serialization per extension layout (in practice: one).
        templates: dict[tuple[int, int], bytearray] = {}
        for consumer in consumers:
            layout = consumer.layout
            if layout is None:
                continue
            buf = templates.get(layout.key)
            if buf is None:
                buf = bytearray(layout.header_prefix(abs_time, audio_level))
                buf += payload
                templates[layout.key] = buf
            try:
                consumer.forward(buf, packet, keyframe, now, self)
            except Exception:
                # An exception reaching aiortc here closes the *publisher's*
                # DTLS transport: one subscriber's dead socket must not do that.
                logger.debug("x forward failed consumer=%s", consumer.id, exc_info=True)

    def _record(self, packet: Any, now: float) -> None:
        for recorder in self._recorders:
            try:
                recorder.on_rtp(packet, now)
            except Exception:  # like a consumer's: never let it reach aiortc
                logger.exception("x recorder %s failed on a packet", recorder.id)

    def packet_for_retransmission(self, seq: int) -> Any:
        return self.cache.get(seq)

    def build(self, layout: ExtensionLayout, packet: Any) -> bytearray:
        """A fresh packet buffer (for retransmissions)."""
        buf = bytearray(layout.header_prefix(abs_send_time_now(), packet.extensions.audio_level))
        buf += packet.payload
        return buf


def _call_safely(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # a listener's bug must not stop the close
        logger.exception("x close callback failed")
