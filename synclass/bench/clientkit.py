"""The bench client's tools: a pre-encoded publisher, light subscribers, latency probes.

Everything that touches aiortc's or aioice's private names on the *client*
side of the benchmark is here (the server side's hooks live in
``media.aiortc_hooks``). Pinned to aiortc 1.16.0 / aioice 0.13.0 like the
media plane; ``check_private_api()`` fails loudly if an upgrade moved one.

- ``encode_loop``: encode the synthetic test pattern once with aiortc's
  ``Vp8Encoder`` settings at a fixed bitrate, a keyframe every ~2 s, so the
  publisher costs almost nothing at run time (``ReplayVideoTrack`` yields the
  encoded frames as ``av.Packet``; aiortc's sender packetizes them without
  encoding).
- ``LightSubscriber``: a real aiortc peer connection (ICE, DTLS, SRTP, RTCP)
  that does not decrypt or decode RTP: its aioice socket reads the clear
  12-byte RTP header of each SRTP packet and counts packets and sequence
  gaps per SSRC. STUN, DTLS and SRTCP go to aiortc as usual (consent checks
  and sender reports keep working) and aiortc's own receiver-report loop
  keeps sending truthful RRs from these counts.
- ``LatencyProbe``: publisher-side send time and subscriber-side receive
  time of the same RTP payload, matched by a hash of the payload bytes.
"""

from __future__ import annotations

import asyncio
import fractions
import os
import time
from collections.abc import Coroutine
from typing import Any, Callable, Optional, TypeVar

import aioice.ice
import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.rtcrtpreceiver import StreamStatistics

VIDEO_CLOCK = 90000
_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)


def check_private_api() -> None:
    """Raise if aiortc/aioice moved a private name the bench uses."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtcrtpreceiver import RTCRtpReceiver
    from aiortc.rtcrtpsender import RTCRtpSender

    missing = [
        name
        for owner, name in (
            (RTCDtlsTransport, "_send_rtp"),
            (RTCDtlsTransport, "_handle_rtp_data"),
            (RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder"),
            (RTCRtpReceiver, "_handle_rtp_packet"),
            (RTCRtpSender, "_send_keyframe"),
            (aioice.ice.StunProtocol, "datagram_received"),
            (aioice.ice, "get_host_addresses"),
        )
        if not hasattr(owner, name)
    ]
    import inspect

    init = inspect.getsource(RTCRtpReceiver.__init__)
    missing += [f"RTCRtpReceiver.{n}" for n in ("__jitter_buffer", "__remote_bitrate_estimator") if f"self.{n} =" not in init]
    if missing:
        raise RuntimeError(f"aiortc/aioice private API moved: {missing}")


# --- a browser-like voice bitrate -----------------------------------------------------
def set_opus_bitrate(bps: int) -> None:
    """aiortc's Opus encoder sends 96 kbps; browsers send ~32 kbps of voice.
    Synthetic publishers call this so links carry what a real teacher sends."""
    from aiortc.codecs import opus

    original = opus.OpusEncoder.__init__
    if getattr(original, "_synclass_bps", None) == bps:
        return
    base = getattr(original, "_synclass_original", original)

    def init(self: Any) -> None:
        base(self)
        self.codec.bit_rate = bps

    init._synclass_bps = bps  # type: ignore[attr-defined]
    init._synclass_original = base  # type: ignore[attr-defined]
    opus.OpusEncoder.__init__ = init  # type: ignore[method-assign]


T = TypeVar("T")


# --- running a benchmark's client side --------------------------------------------
def run_clients(coro: Coroutine[Any, Any, T], cpu: int) -> T:
    """``asyncio.run(coro)`` with ICE on loopback and this process pinned to ``cpu``
    (when the machine has it; the server under test is pinned to another one), both
    undone afterwards."""
    pinned = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu
    saved = os.sched_getaffinity(0) if pinned else None
    restore_ice = allow_loopback_ice()
    try:
        if pinned:
            os.sched_setaffinity(0, {cpu})
        return asyncio.run(coro)
    finally:
        restore_ice()
        if saved is not None:
            os.sched_setaffinity(0, saved)


# --- loopback ICE ------------------------------------------------------------------
def allow_loopback_ice() -> Callable[[], None]:
    """Gather ICE candidates on 127.0.0.1 only; returns a function that undoes it."""
    original = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = get_host_addresses  # type: ignore[assignment]

    def restore() -> None:
        aioice.ice.get_host_addresses = original  # type: ignore[assignment]

    return restore


# --- the publisher ---------------------------------------------------------------------
async def encode_loop(
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    frames: int = 300,
    keyframe_every: int = 60,
    bitrate: int = 1_000_000,
    warmup_frames: int = 60,
    grain: int = 4,
) -> tuple[list[bytes], dict[str, Any]]:
    """Encode ``frames`` frames of the test pattern to VP8 once.

    Uses aiortc's ``Vp8Encoder`` (its libvpx settings: CBR, realtime) with the
    target bitrate set, lets rate control settle over ``warmup_frames``,
    then keeps ``frames`` frames that start with a keyframe and have one every
    ``keyframe_every`` frames, so the loop can repeat and a new subscriber
    waits at most ``keyframe_every / fps`` seconds for a picture.

    ``grain``: add 0..grain to every pixel (like a camera's sensor noise).
    The flat test pattern alone compresses to ~750 kbps even with a 1 Mbps
    CBR target; with grain 4 the encoder reaches the target.
    """
    import cv2
    import numpy as np
    import aiortc.codecs.vpx as vpx
    from aiortc.codecs.vpx import Vp8Encoder

    from synclass.synthetic import TestPatternTrack

    vpx.DEFAULT_BITRATE = vpx.MIN_BITRATE = vpx.MAX_BITRATE = bitrate
    track = TestPatternTrack(width, height, fps)
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, grain + 1, (height, width, 3), dtype=np.uint8) for _ in range(7)] if grain > 0 else []
    count = 0

    async def next_frame() -> av.VideoFrame:
        nonlocal count
        frame = await track.recv()
        if noise:
            grainy = av.VideoFrame.from_ndarray(cv2.add(frame.to_ndarray(format="rgb24"), noise[count % len(noise)]), format="rgb24")
            grainy.pts, grainy.time_base = frame.pts, frame.time_base
            frame = grainy
        count += 1
        return frame

    encoder = Vp8Encoder()
    encoder.target_bitrate = bitrate
    started = time.perf_counter()

    async def produce() -> list[bytes]:
        # recv() paces to real time from its first call; start it in the past
        # so the frames come as fast as we can encode them (pts stay 1/fps apart).
        track._start = time.time() - 1e6  # noqa: SLF001 (our own synthetic track)
        out: list[bytes] = []
        for _ in range(warmup_frames):
            encoder.encode(await next_frame())  # creates encoder.codec, settles rate control
        codec = encoder.codec
        assert codec is not None
        for i in range(frames):
            frame = (await next_frame()).reformat(format="yuv420p")
            if i % keyframe_every == 0:
                frame.pict_type = av.video.frame.PictureType.I
            data = b"".join(bytes(p) for p in codec.encode(frame))
            if not data:
                raise RuntimeError("VP8 encoder returned no data for a frame")
            out.append(data)
        return out

    out = await produce()
    elapsed = time.perf_counter() - started
    total = sum(len(d) for d in out)
    info = {
        "loop_frames": len(out),
        "loop_kbps": round(total * 8 * fps / len(out) / 1000),
        "keyframe_interval_s": keyframe_every / fps,
        "encode_ms_per_frame": round(elapsed * 1000 / (warmup_frames + frames), 2),
    }
    return out, info


class ReplayVideoTrack(MediaStreamTrack):
    """Yields pre-encoded VP8 frames (``av.Packet``) at ``fps``, in a loop."""

    kind = "video"

    def __init__(self, frames: list[bytes], fps: int = 30, keyframe_every: int = 0) -> None:
        super().__init__()
        self._frames = frames
        self._fps = fps
        self._n = 0
        self._skip = 0  # loop position = (n + skip) % len(frames)
        self._keyframe_every = keyframe_every
        self._start: Optional[float] = None

    def keyframe_now(self) -> None:
        """Answer a keyframe request like a live encoder: the next frame sent is
        the loop's next keyframe (``keyframe_every``: their spacing in the loop)."""
        if self._keyframe_every:
            pos = (self._n + self._skip) % len(self._frames)
            self._skip += (-pos) % self._keyframe_every

    def answer_keyframe_requests(self, sender: Any) -> None:
        """Make ``sender`` (sending this track) jump to a keyframe on PLI/FIR."""
        original = sender._send_keyframe

        def send_keyframe() -> None:
            self.keyframe_now()
            original()

        sender._send_keyframe = send_keyframe

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._n / self._fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._frames[(self._n + self._skip) % len(self._frames)])
        packet.pts = self._n * VIDEO_CLOCK // self._fps
        packet.time_base = _TIME_BASE
        self._n += 1
        return packet


# --- helpers on peer connections ------------------------------------------------------
def dtls_of(pc: RTCPeerConnection) -> Any:
    for transceiver in pc.getTransceivers():
        for end in (transceiver.receiver, transceiver.sender):
            if end.transport is not None:
                return end.transport
    raise RuntimeError("peer connection has no DTLS transport yet")


async def wait_connected(pc: RTCPeerConnection, timeout: float) -> None:
    if pc.connectionState == "connected":
        return
    done = asyncio.get_running_loop().create_future()

    def on_state() -> None:
        state = pc.connectionState
        if done.done():
            return
        if state == "connected":
            done.set_result(None)
        elif state in ("failed", "closed"):
            done.set_exception(ConnectionError(f"peer connection {state}"))

    pc.on("connectionstatechange", on_state)
    on_state()
    await asyncio.wait_for(done, timeout)


def stop_decoders(pc: RTCPeerConnection) -> None:
    """Stop the decoder threads aiortc starts per receiver (light subscribers need none)."""
    for transceiver in pc.getTransceivers():
        transceiver.receiver._RTCRtpReceiver__stop_decoder()  # noqa: SLF001


class FrameCounter:
    """Reads a remote track (decoding), counting frames and remembering the size."""

    def __init__(self) -> None:
        self.frames = {"video": 0, "audio": 0}
        self.size: Optional[str] = None
        self.tasks: list[asyncio.Task[None]] = []

    def attach(self, pc: RTCPeerConnection) -> None:
        pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.tasks.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.frames[track.kind] += 1
            if track.kind == "video":
                self.size = f"{frame.width}x{frame.height}"


# --- light subscribers --------------------------------------------------------------------
class LightStream(StreamStatistics):
    """Counts of one incoming SSRC, kept from the clear RTP header only.

    A ``StreamStatistics`` so aiortc's receiver-report loop reads it as its
    own: receiver reports carry the real highest sequence number and losses.
    Jitter is not computed (no per-packet clock read) and stays 0.
    """

    def __init__(self, kind: str, clockrate: int) -> None:
        super().__init__(clockrate)
        self.kind = kind
        self.gaps = 0  # packets missing between consecutive received ones
        self.late = 0  # older than the highest seen (reordered or duplicated)


def _parse_rtp_payload(data: bytes) -> bytes:
    """The payload of a clear RTP packet (after CSRCs and header extension)."""
    pos = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        pos += 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
    return data[pos:]


def _is_rtcp(data: bytes) -> bool:
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


class LightSubscriber:
    """Makes a subscriber peer connection count SRTP packets instead of processing them.

    Install after ``setLocalDescription`` (the ICE sockets exist) and before
    the connection is up, so no RTP packet reaches aiortc's receive path.
    """

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.streams: dict[int, LightStream] = {}
        dtls = dtls_of(pc)
        connection = dtls.transport._connection  # noqa: SLF001
        if not connection._protocols:  # noqa: SLF001
            raise RuntimeError("install LightSubscriber after setLocalDescription")
        self._dtls = dtls
        for protocol in connection._protocols:  # noqa: SLF001
            protocol.datagram_received = self._wrap(protocol.datagram_received)

    def _new_stream(self, ssrc: int, payload_type: int) -> Optional[LightStream]:
        router = self._dtls._rtp_router  # noqa: SLF001
        receiver = router.ssrc_table.get(ssrc)
        if receiver is None:
            candidates = router.payload_type_table.get(payload_type, set())
            if len(candidates) != 1:
                return None
            receiver = next(iter(candidates))
        kind = receiver.track.kind
        stream = LightStream(kind, VIDEO_CLOCK if kind == "video" else 48000)
        # aiortc's RR loop reports every stream in this dict
        receiver._RTCRtpReceiver__remote_streams[ssrc] = stream  # noqa: SLF001
        self.streams[ssrc] = stream
        return stream

    def _wrap(self, original: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        streams = self.streams
        new_stream = self._new_stream

        def datagram_received(data: bytes, addr: Any) -> None:
            b0 = data[0]
            if 127 < b0 < 192 and len(data) >= 12 and not 64 <= (data[1] & 0x7F) <= 95:
                ssrc = int.from_bytes(data[8:12], "big")
                stream = streams.get(ssrc)
                if stream is None:
                    stream = new_stream(ssrc, data[1] & 0x7F)
                    if stream is None:
                        return
                seq = (data[2] << 8) | data[3]
                last = stream.max_seq
                stream.packets_received += 1
                if last is None:
                    stream.base_seq = stream.max_seq = seq
                    return
                delta = (seq - last) & 0xFFFF
                if delta == 1:
                    if seq == 0:
                        stream.cycles += 1 << 16
                    stream.max_seq = seq
                elif 0 < delta < 0x8000:
                    stream.gaps += delta - 1
                    if seq < last:
                        stream.cycles += 1 << 16
                    stream.max_seq = seq
                else:
                    stream.late += 1
                return
            original(data, addr)

        return datagram_received

    def totals(self) -> dict[str, dict[str, int]]:
        out = {"video": {"packets": 0, "gaps": 0, "late": 0}, "audio": {"packets": 0, "gaps": 0, "late": 0}}
        for stream in self.streams.values():
            t = out[stream.kind]
            t["packets"] += stream.packets_received
            t["gaps"] += stream.gaps
            t["late"] += stream.late
        return out


# --- latency ------------------------------------------------------------------------------
class LatencyProbe:
    """Send time (publisher) vs receive time (subscribers) of identical RTP payloads.

    All ends live in this process, so one clock (``time.perf_counter``). A
    payload sent twice (silent audio frames repeat) is ambiguous and ignored.
    Only packets sent while ``active`` are measured.
    """

    MAX_PENDING = 20000

    def __init__(self) -> None:
        self.active = False
        self._sent: dict[int, Optional[tuple[float, str]]] = {}
        self.samples: dict[str, list[float]] = {"video": [], "audio": []}

    def hook_publisher(self, pc: RTCPeerConnection, kinds_by_pt: dict[int, str]) -> None:
        dtls = dtls_of(pc)
        original = dtls._send_rtp  # noqa: SLF001
        sent = self._sent

        async def send_rtp(data: bytes) -> None:
            if self.active and not _is_rtcp(data):
                key = hash(_parse_rtp_payload(data))
                if key in sent:
                    sent[key] = None
                else:
                    sent[key] = (time.perf_counter(), kinds_by_pt.get(data[1] & 0x7F, "video"))
                    if len(sent) > self.MAX_PENDING:
                        for old in list(sent)[: self.MAX_PENDING // 2]:
                            del sent[old]
            await original(data)

        dtls._send_rtp = send_rtp  # noqa: SLF001

    def hook_subscriber(self, pc: RTCPeerConnection) -> None:
        """Time each RTP packet where it leaves the socket, match it after SRTP.

        Install after ``setLocalDescription``. The receive time is taken in
        aioice's ``datagram_received`` (keyed by the clear SSRC and sequence
        number), so this process's own queueing behind DTLS/SRTP does not
        count; the payload is matched once decrypted.
        """
        dtls = dtls_of(pc)
        original = dtls._handle_rtp_data  # noqa: SLF001
        sent = self._sent
        samples = self.samples
        arrivals: dict[int, float] = {}

        for protocol in dtls.transport._connection._protocols:  # noqa: SLF001
            received = protocol.datagram_received

            def datagram_received(data: bytes, addr: Any, received: Any = received) -> None:
                if self.active and 127 < data[0] < 192 and len(data) >= 12 and not _is_rtcp(data):
                    arrivals[(int.from_bytes(data[8:12], "big") << 16) | (data[2] << 8) | data[3]] = time.perf_counter()
                    if len(arrivals) > self.MAX_PENDING:
                        arrivals.clear()
                received(data, addr)

            protocol.datagram_received = datagram_received

        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            if len(data) >= 12:
                arrived = arrivals.pop((int.from_bytes(data[8:12], "big") << 16) | (data[2] << 8) | data[3], None)
                entry = sent.get(hash(_parse_rtp_payload(data)))
                if entry is not None and arrived is not None:
                    samples[entry[1]].append((arrived - entry[0]) * 1000.0)
            await original(data, arrival_time_ms)

        dtls._handle_rtp_data = handle_rtp_data  # noqa: SLF001


def kinds_by_payload_type(sdp: str) -> dict[int, str]:
    from aiortc.sdp import SessionDescription

    out: dict[int, str] = {}
    for media in SessionDescription.parse(sdp).media:
        for codec in media.rtp.codecs:
            out[codec.payloadType] = media.kind
    return out


def percentile(values: list[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[index]
