"""Consumer: one down track, forwarding one Producer's packets to one subscriber.

Per packet it patches payload type, sequence number, timestamp and SSRC into
the producer's shared buffer and sends it on the subscriber's SRTP session.
Sequence numbers and timestamps are offsets from the producer's, chosen when
the consumer starts (or resumes) so the subscriber sees one continuous
stream. A video consumer starts only on a keyframe; until then it asks the
producer for one, at most once a second.

Layers: a source published as several tracks (layer 0 = full resolution,
1, 2 = lower) is consumed by ONE consumer that forwards one of them. It is
created on its primary producer (the one the control plane knows it by) and
told the others with ``set_layers``; ``set_layer`` picks one. A switch waits
for a keyframe of the target layer (asked for) while the current layer keeps
flowing, then continues the subscriber's sequence numbers and timestamps, so
the receiver sees one stream whose resolution changed. ``set_layer(None)``
pauses the video (bandwidth too low) until a layer is set again.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import aiortc_hooks as hooks
from .adapt import NackMeter
from .rtp import ExtensionLayout, abs_send_time_now, ntp_time, patch_header

if TYPE_CHECKING:
    from aiortc import RTCRtpTransceiver

    from .producer import Producer
    from .transport import Transport

logger = logging.getLogger("synclass.media.consumer")

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

# How long before a waiting video consumer asks again for a keyframe (the
# first PLI or its keyframe may have been lost).
KEYFRAME_RETRY_S = 1.0
# A packet is retransmitted again only this many (smoothed) round trips after
# its last retransmission, and never sooner than the minimum; the last
# RETRANSMIT_REMEMBER retransmitted sequence numbers are remembered.
RETRANSMIT_AGAIN_RTTS = 1.5
RETRANSMIT_AGAIN_MIN_S = 0.1
RETRANSMIT_REMEMBER = 1024
# A padding-only RTX packet carries at most 255 bytes of padding (RFC 3550:
# the last padding byte counts them).
PADDING_MAX_BYTES = 255
# Sender reports remembered to match the receiver reports that answer them.
SR_REMEMBER = 16
# NACKs of sequence numbers from before a resume are old loss for this long after it.
PAUSE_TAIL_S = 5.0


class Consumer:
    def __init__(
        self,
        transport: "Transport",
        producer: "Producer",
        transceiver: "RTCRtpTransceiver",
        app_data: dict[str, Any],
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.kind = producer.kind
        self.producer_id = producer.id
        self.app_data = app_data
        self.transceiver = transceiver
        self._transport = transport
        self._producer = producer  # the layer being forwarded
        self._primary = producer  # the layer the consumer was made for; it dies with it
        self._layers: dict[int, "Producer"] = {_layer_of(producer): producer}
        self._pending: Optional["Producer"] = None  # the layer being switched to
        self._starved = False  # paused because the link cannot carry any layer
        # the first sequence number after a pause, until a receiver report reaches it
        self._resumed_seq: Optional[int] = None
        # ... and for a while after the resume (monotonic time), for NACKs
        self._resumed: Optional[tuple[int, float]] = None
        # the newest receiver report reaches across a pause: the packets lost at the
        # pause's tail (in the queue that overflowed) show only in it, its loss is old
        self.report_spans_pause = False
        self._layer_callbacks: list[Callable[[Optional[int]], None]] = []
        self._segment_start = 0  # first outgoing seq of the current layer's stretch
        self.layer_switches = 0
        self._closed = False
        self._paused = False
        self._close_callbacks: list[Callable[[], None]] = []
        self._is_video = producer.kind == "video"
        # video goes through the subscriber's pacer (audio never waits)
        self._pacer: Optional[Any] = getattr(transport, "pacer", None) if self._is_video else None
        # negotiated
        self.layout: Optional[ExtensionLayout] = None
        self.ssrc = 0
        self.rtx_ssrc = 0
        self.payload_type = 0
        self.rtx_payload_type: Optional[int] = None
        self.clock_rate = producer.clock_rate
        # forwarding state
        self._send: Optional[hooks.SendFn] = None
        self._waiting = True
        self._start_seq = 0
        self._seq_off = 0
        self._ts_off = 0
        self._next_seq = random.randrange(0, 32768)
        self._next_ts = random.randrange(0, 1 << 32)
        self._last_seq = 0
        self._last_ts = 0
        self._last_time = 0.0
        self._rtx_seq = random.randrange(0, 32768)
        self._last_keyframe_ask = -1e9
        # counters
        self.packets = 0
        self.octets = 0
        self.retransmissions = 0
        self.rtx_octets = 0  # retransmissions on the wire (RTP header included)
        self.nacks = 0
        self.nack_misses = 0
        self.retransmissions_skipped = 0
        self.discarded_packets = 0  # waiting in the pacer when the video was paused or switched layer
        self._resent: dict[int, float] = {}  # out seq -> when it was last retransmitted (insertion order)
        self.plis = 0
        self.plis_held = 0
        self.keyframes_started = 0
        # receiver feedback
        self.fraction_lost = 0.0
        self.packets_lost = 0
        self.jitter = 0
        self.rtt_s: Optional[float] = None
        # (arrival time, rtt s, when the sender report it answers went out) of the latest sample, monotonic
        self.last_rtt: Optional[tuple[float, float, float]] = None
        self.remb_bps: Optional[int] = None
        self.receiver_reports = 0  # counts RR blocks about this track (the controller reads deltas)
        # (arrival time, extended highest seq received, cumulative lost) of the last RR
        self.last_report: Optional[tuple[float, int, int]] = None
        self.on_feedback: Optional[Callable[[], None]] = None  # the rate controller's hook
        # The fast loss signal: loss as the subscriber's NACKs tell it.
        self.nack_meter = NackMeter()
        self.on_nack_loss: Optional[Callable[[], None]] = None  # the rate controller's hook
        # Probe padding (see send_padding) and what the subscriber reports of it.
        self.padding_packets = 0
        self.padding_octets = 0
        self.rtx_reports = 0
        self._rtx_reported: Optional[int] = None  # the highest RTX sequence number the receiver reported
        self.rtx_fraction_lost = 0.0
        # the sender reports of late, (LSR, wall time sent): a receiver report answers
        # the last one that reached it, which need not be the last one sent
        self._srs: deque[tuple[int, float]] = deque(maxlen=SR_REMEMBER)
        self._report_now: Optional[Callable[[], None]] = None
        producer._attach(self)
        hooks.install_sender_hooks(transceiver.sender, self)

    @property
    def mid(self) -> Optional[str]:
        return self.transceiver.mid

    # -- seam ------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        self._restart()

    def on_close(self, callback: Callable[[], None]) -> None:
        self._close_callbacks.append(callback)

    # -- layers ------------------------------------------------------------------
    @property
    def layer(self) -> Optional[int]:
        """The layer forwarded now (None while starved)."""
        return None if self._starved else _layer_of(self._producer)

    @property
    def layers(self) -> dict[int, "Producer"]:
        return dict(self._layers)

    @property
    def target_layer(self) -> Optional[int]:
        if self._starved:
            return None
        return _layer_of(self._pending) if self._pending is not None else _layer_of(self._producer)

    @property
    def rtx_unreported(self) -> bool:
        """Whether RTX packets went out after the highest one the receiver last
        reported (those it never got count as lost in its next report)."""
        if self._rtx_reported is None:
            return bool(self.retransmissions or self.padding_packets)
        return (self._rtx_seq - 1) & 0xFFFF != self._rtx_reported

    def on_layer(self, callback: Callable[[Optional[int]], None]) -> None:
        """Call ``callback(layer)`` whenever the forwarded layer changes (None: starved)."""
        self._layer_callbacks.append(callback)

    def set_layers(self, producers: list["Producer"]) -> None:
        """The producers that are layers of this consumer's source (the primary included)."""
        layers = {_layer_of(p): p for p in producers if not p.closed and p.kind == self.kind}
        layers[_layer_of(self._primary)] = self._primary
        self._layers = layers
        if self._pending is not None and self._pending not in layers.values():
            self._cancel_pending()

    def set_layer(self, layer: Optional[int]) -> None:
        """Forward ``layer`` from its next keyframe on; None pauses (starved)."""
        if self._closed:
            return
        if layer is None:
            if not self._starved:
                self._cancel_pending()
                self._starved = True
                self._discard_waiting()
                self._notify_layer()
            return
        target = self._layers.get(layer)
        if target is None:
            raise LookupError(f"consumer {self.id} has no layer {layer}")
        if self._starved:
            self._starved = False
            self._cancel_pending()
            if target is not self._producer:
                self._producer._detach(self)
                self._producer = target
                target._attach(self)
            self._restart()
            if self.packets:
                self._resumed_seq = self._next_seq
                self._resumed = (self._next_seq, time.monotonic())
            self._notify_layer()
            return
        if target is self._producer:
            self._cancel_pending()
            return
        if target is self._pending:
            return
        self._cancel_pending()
        self._pending = target
        target._attach(self)
        self._last_keyframe_ask = -1e9
        self._ask_keyframe()

    @property
    def unsent_seq(self) -> int:
        """The sequence number of the next packet to go on the wire: the first
        still waiting in the pacer, or the next one to be given."""
        if not self.packets:
            return self._next_seq
        waiting = self._pacer.waiting_packets(self.id) if self._pacer is not None else 0
        return (self._last_seq + 1 - waiting) & 0xFFFF

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending._detach(self)
            self._pending = None

    def _discard_waiting(self) -> None:
        """Forget the video of this consumer still waiting in the pacer (paused,
        or a keyframe of another layer makes it useless). Its sequence numbers
        are the newest given, so the stream goes on after the last one sent."""
        if self._pacer is not None:
            waiting = self._pacer.discard(self.id)
            if waiting:
                self._last_seq = (self._last_seq - waiting) & 0xFFFF
                self.discarded_packets += waiting

    def _switch_to_pending(self) -> None:
        """The target layer's keyframe is here: forward it from this packet on.
        What still waits in the pacer of the old layer goes: the receiver starts
        over at this keyframe, and on a link that just dropped a second of the
        old layer (1.5 Mbps into a 300 kbps pacer) held the new one back 3 s."""
        assert self._pending is not None
        self._producer._detach(self)
        self._producer = self._pending
        self._pending = None
        self.layer_switches += 1
        self._discard_waiting()
        self._restart(ask=False)
        self._notify_layer()

    def _notify_layer(self) -> None:
        layer = self.layer
        for callback in self._layer_callbacks:
            try:
                callback(layer)
            except Exception:
                logger.exception("x layer callback failed")

    async def _producer_closed(self, producer: "Producer") -> None:
        """One of this consumer's layers closed: the primary takes the consumer
        with it; another layer is just dropped (falling back to the primary)."""
        if producer is self._primary:
            await self.close()
            return
        self._layers = {k: p for k, p in self._layers.items() if p is not producer}
        if producer is self._pending:
            self._pending = None
        if producer is self._producer:
            if self._primary.closed:  # the whole source is going (its transport closes)
                await self.close()
                return
            self._producer = self._primary
            self._primary._attach(self)
            self._restart()
            self._notify_layer()

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "producer_id": self.producer_id,
            "mid": self.mid,
            "paused": self._paused,
            "started": not self._waiting,
            "layer": self.layer,
            "target_layer": self.target_layer,
            "layers": sorted(self._layers),
            "layer_switches": self.layer_switches,
            "packets": self.packets,
            "octets": self.octets,
            "retransmissions": self.retransmissions,
            "nacks": self.nacks,
            "plis": self.plis,
            "plis_held": self.plis_held,
            "retransmitted_octets": self.rtx_octets,
            "retransmissions_skipped": self.retransmissions_skipped,
            "discarded_packets": self.discarded_packets,
            "padding_packets": self.padding_packets,
            "fraction_lost": self.fraction_lost,
            "packets_lost": self.packets_lost,
            "jitter": self.jitter,
            "rtt_ms": None if self.rtt_s is None else round(self.rtt_s * 1000, 1),
            "remb_bps": self.remb_bps,
            "app_data": self.app_data,
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._send = None
        self._producer._detach(self)
        self._cancel_pending()
        self._layer_callbacks.clear()
        await self._transport._forget_consumer(self)
        for callback in self._close_callbacks:
            try:
                callback()
            except Exception:
                logger.exception("x consumer close callback failed")
        self._close_callbacks.clear()

    # -- forwarding (hot path) --------------------------------------------------
    def _restart(self, ask: bool = True) -> None:
        """Wait for the next keyframe (video) and continue seq/timestamps from there."""
        self._waiting = True
        if self.packets:
            self._next_seq = (self._last_seq + 1) & 0xFFFF
            elapsed = max(0.0, time.time() - self._last_time)
            self._next_ts = (self._last_ts + int(elapsed * self.clock_rate) + 1) & 0xFFFFFFFF
        if self._is_video and ask:
            self._ask_keyframe()

    def _ask_keyframe(self) -> None:
        now = time.monotonic()
        if now - self._last_keyframe_ask >= KEYFRAME_RETRY_S:
            self._last_keyframe_ask = now
            (self._pending or self._producer).request_keyframe()

    def forward(self, buf: bytearray, packet: Any, keyframe: bool, now: float, producer: Any = None) -> None:
        if producer is not self._producer and producer is not None:
            # a layer being switched to: only its keyframe makes the switch
            if producer is not self._pending or self._paused or self._starved:
                return
            if not keyframe:
                self._ask_keyframe()
                return
            self._switch_to_pending()
        send = self._send
        if send is None:
            send = self._send = hooks.fast_sender(self._transport.dtls)
            if send is None:
                return
            if self._is_video:
                self._ask_keyframe()
        if self._paused or self._starved:
            return
        in_seq = packet.sequence_number
        if self._waiting:
            if self._is_video and not keyframe:
                self._ask_keyframe()
                return
            self._waiting = False
            self._start_seq = in_seq
            self._segment_start = self._next_seq
            self._seq_off = (self._next_seq - in_seq) & 0xFFFF
            self._ts_off = (self._next_ts - packet.timestamp) & 0xFFFFFFFF
            self.keyframes_started += 1
        else:
            d = (in_seq - self._start_seq) & 0xFFFF
            if d >= 0x8000:
                return  # older than where this consumer started
            if d > 0x4000:
                self._start_seq = (in_seq - 0x2000) & 0xFFFF
        seq = (in_seq + self._seq_off) & 0xFFFF
        ts = (packet.timestamp + self._ts_off) & 0xFFFFFFFF
        patch_header(buf, 0x80 | self.payload_type if packet.marker else self.payload_type, seq, ts, self.ssrc)
        pacer = self._pacer
        if pacer is None or pacer.rate_bps is None:
            send(bytes(buf))
        else:
            pacer.send(send, bytes(buf), self.id)
        self.packets += 1
        self.octets += len(packet.payload)
        self._last_seq = seq
        self._last_ts = ts
        self._last_time = now

    def _retransmit(self, out_seq: int) -> None:
        send = self._send
        layout = self.layout
        if send is None or layout is None or self._waiting or self._starved or self._paused:
            return  # starved: the link has no room, least of all for old packets
        if (out_seq - self._segment_start) & 0xFFFF >= 0x8000:
            self.nack_misses += 1  # sent from another layer before a switch: gone
            return
        in_seq = (out_seq - self._seq_off) & 0xFFFF
        if (in_seq - self._start_seq) & 0xFFFF >= 0x8000:
            return
        now = time.monotonic()
        again = self._resent.get(out_seq)
        if again is not None and now - again < max(RETRANSMIT_AGAIN_MIN_S, (self.rtt_s or 0.0) * RETRANSMIT_AGAIN_RTTS):
            # Sent again less than a round trip ago: its retransmission is still on the way.
            # aiortc's receiver repeats every missing number at each new gap it sees; a
            # browser waits a round trip. Answering each repeat kept a 300 kbps link busy
            # with 370 kbps of retransmissions of a slide deck's key frames.
            self.retransmissions_skipped += 1
            return
        packet = self._producer.packet_for_retransmission(in_seq)
        if packet is None:
            self.nack_misses += 1
            return
        self._resent.pop(out_seq, None)  # to the end: the dict is oldest first
        self._resent[out_seq] = now
        if len(self._resent) > RETRANSMIT_REMEMBER:
            del self._resent[next(iter(self._resent))]
        ts = (packet.timestamp + self._ts_off) & 0xFFFFFFFF
        marker = 0x80 if packet.marker else 0
        if self.rtx_payload_type is not None:
            # RFC 4588: RTX payload = original sequence number + original payload
            buf = bytearray(layout.header_prefix(abs_send_time_now(), None))
            buf += out_seq.to_bytes(2, "big")
            buf += packet.payload
            patch_header(buf, marker | self.rtx_payload_type, self._rtx_seq, ts, self.rtx_ssrc)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        else:
            buf = self._producer.build(layout, packet)
            patch_header(buf, marker | self.payload_type, out_seq, ts, self.ssrc)
        pacer = self._pacer
        if pacer is None or pacer.rate_bps is None:
            send(bytes(buf))
        elif not pacer.send_first(send, bytes(buf)):  # ahead of the video waiting, within the link's rate
            if self.rtx_payload_type is not None:
                # dropped: its RTX sequence number goes to the next one (a gap in the RTX
                # stream is loss to the receiver, and that stream's loss judges probes)
                self._rtx_seq = (self._rtx_seq - 1) & 0xFFFF
            return
        self.retransmissions += 1
        self.rtx_octets += len(buf)

    # -- hooks (called by aiortc through media.aiortc_hooks) ---------------------
    def on_negotiated(
        self,
        ssrc: int,
        rtx_ssrc: int,
        payload_type: int,
        rtx_payload_type: Optional[int],
        mime_type: str,
        clock_rate: int,
        header_extensions: dict[str, int],
    ) -> None:
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self.clock_rate = clock_rate
        self.layout = ExtensionLayout(
            abs_send_time=header_extensions.get(ABS_SEND_TIME_URI, 0) if self._is_video else 0,
            audio_level=header_extensions.get(AUDIO_LEVEL_URI, 0) if not self._is_video else 0,
        )
        logger.debug(
            "- consumer %s negotiated %s pt=%d rtx=%s ssrc=%d",
            self.id, mime_type, payload_type, rtx_payload_type, ssrc,
        )

    def on_rtcp(self, packet: Any) -> None:
        if self._closed:
            return
        if isinstance(packet, (hooks.RTCP_CLASSES["rr"], hooks.RTCP_CLASSES["sr"])):
            for report in packet.reports:
                if report.ssrc != self.ssrc:
                    if report.ssrc == self.rtx_ssrc and self.rtx_ssrc:
                        # the RTX stream: retransmissions and probe padding
                        self.rtx_reports += 1
                        self.rtx_fraction_lost = report.fraction_lost / 256
                        self._rtx_reported = report.highest_sequence & 0xFFFF
                    continue
                self.receiver_reports += 1
                self.fraction_lost = report.fraction_lost / 256
                self.last_report = (time.monotonic(), report.highest_sequence, report.packets_lost)
                self.report_spans_pause = False
                if self._resumed_seq is not None and (
                        (report.highest_sequence - self._resumed_seq) & 0xFFFF) < 0x8000:
                    self.report_spans_pause = True
                    self._resumed_seq = None
                if self.on_feedback is not None:
                    self.on_feedback()
                self.packets_lost = report.packets_lost
                self.jitter = report.jitter
                sent_at = next((at for lsr, at in self._srs if lsr == report.lsr), None) if report.lsr else None
                if sent_at is not None:
                    wall = time.time()
                    rtt = wall - sent_at - report.dlsr / 65536
                    if rtt >= 0:
                        mono = time.monotonic()
                        self.last_rtt = (mono, rtt, mono - (wall - sent_at))
                        self.rtt_s = rtt if self.rtt_s is None else 0.85 * self.rtt_s + 0.15 * rtt
        elif isinstance(packet, hooks.RTCP_CLASSES["rtpfb"]):
            if packet.fmt == hooks.RTPFB_NACK:
                self.nacks += 1
                lost = packet.lost
                for seq in lost:
                    self._retransmit(seq)
                now = time.monotonic()
                if self._resumed is not None and now - self._resumed[1] <= PAUSE_TAIL_S:
                    # lost at the pause's tail, found only now that packets follow:
                    # old loss, not the link's now (see report_spans_pause)
                    first = self._resumed[0]
                    lost = [seq for seq in lost if ((seq - first) & 0xFFFF) < 0x8000]
                if self.nack_meter.add(now, lost) and self.on_nack_loss is not None:
                    self.on_nack_loss()
        elif isinstance(packet, hooks.RTCP_CLASSES["psfb"]):
            if packet.fmt in (hooks.PSFB_PLI, hooks.PSFB_FIR):
                self.plis += 1
                if self._pacer is not None and self._pacer.queued_for(self.id):
                    # this track's video still waits to go out to this subscriber (a key
                    # frame crossing a slow link): another key frame would only queue behind it
                    self.plis_held += 1
                else:
                    self._producer.request_keyframe()
            elif packet.fmt == hooks.PSFB_APP:
                try:
                    bitrate, ssrcs = hooks.unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if self.ssrc in ssrcs:
                    self.remb_bps = bitrate
                    if self.on_feedback is not None:
                        self.on_feedback()

    @property
    def can_pad(self) -> bool:
        """Whether send_padding can send (an RTX stream was negotiated and the transport is up)."""
        return self.rtx_payload_type is not None and self.layout is not None and not self._closed

    def send_padding(self, nbytes: int) -> int:
        """Send about ``nbytes`` of padding-only RTX packets (a bandwidth probe:
        they carry no media, receivers drop them after counting them, and
        their losses show in the receiver reports of the RTX stream).
        Returns the bytes sent on the wire (headers included)."""
        layout = self.layout
        if self.rtx_payload_type is None or layout is None or self._closed or nbytes <= 0:
            return 0
        send = self._send
        if send is None:
            send = self._send = hooks.fast_sender(self._transport.dtls)
            if send is None:
                return 0
        sent = 0
        while sent < nbytes:
            pad = PADDING_MAX_BYTES
            buf = bytearray(layout.header_prefix(abs_send_time_now(), None))
            buf[0] |= 0x20  # P: the packet ends in padding
            buf += bytes(pad - 1) + bytes([pad])
            patch_header(buf, self.rtx_payload_type, self._rtx_seq, self._last_ts, self.rtx_ssrc)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            send(bytes(buf))
            self.padding_packets += 1
            self.padding_octets += len(buf)
            sent += len(buf) + 38  # SRTP tag, UDP, IP (what PACKET_OVERHEAD_BYTES counts, less the RTP header)
        return sent

    def sender_report(self) -> Optional[tuple[int, int, int, int]]:
        """(ntp, rtp timestamp, packet count, octet count) for an RTCP SR, or None.

        The RTP timestamp is the producer's clock at this instant, mapped by
        its publisher's sender reports when there are any, so receivers keep
        the publisher's lip-sync; packet and octet counts are what this
        consumer really sent.
        """
        if self._closed or (self._waiting and not self.packets):
            return None
        now = time.time()
        mapping = self._producer.sr_mapping or self._producer.last_packet
        if mapping is None:
            return None
        t0, rtp0 = mapping
        in_ts = rtp0 + int((now - t0) * self.clock_rate)
        ts = (in_ts + self._ts_off) & 0xFFFFFFFF
        ntp = ntp_time(now)
        self._srs.append(((ntp >> 16) & 0xFFFFFFFF, now))
        return ntp, ts, self.packets & 0xFFFFFFFF, self.octets & 0xFFFFFFFF

    def bind_report_now(self, trigger: Callable[[], None]) -> None:
        self._report_now = trigger

    def report_now(self) -> None:
        """Send a sender report at once (a probe wants a round trip measured
        from this moment on, not from up to 1.5 s ago)."""
        if self._report_now is not None and not self._closed:
            self._report_now()

    def goodbye(self) -> None:
        self._send = None


def _layer_of(producer: Any) -> int:
    return int(producer.app_data.get("layer", 0) or 0)
