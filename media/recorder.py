"""Recorder: one up track written to a file as it arrives (a consumer whose subscriber is a disk).

On the event loop, per packet (``Producer`` hands it over after aiortc
unwrapped RTX): put it in sequence order (a small reorder window, so
retransmissions after a NACK still make it), cut frames at timestamp changes
and marker bits, and depayload them (aiortc's VP8 and H.264 depayloaders;
an Opus packet is one frame). A frame with a packet missing is never
written; after a video loss nothing is written until the next keyframe,
which is asked for. Nothing is decoded or encoded.

Per frame, a writer thread (one per process, shared by every recorder)
muxes it with PyAV into WebM (VP8, Opus) or Matroska (H.264), so the loop
that forwards media to hundreds of subscribers never waits on the disk.

Crash safety: clusters close at least every second, every packet flushes
what the muxer wrote to the kernel (a SIGKILL loses at most the open
cluster) and the file is fsynced at most once a second. A killed file has
no cues and no duration; ``recover_file`` rewrites its playable prefix as a
properly closed file.
"""

from __future__ import annotations

import asyncio
import fractions
import io
import logging
import os
import queue
import struct
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

import av
from aiortc.codecs import h264_depayload, vp8_depayload

from .rtp import h264_is_keyframe, vp8_frame_info, vp8_is_keyframe

if TYPE_CHECKING:
    from .producer import Producer
    from .router import Router

logger = logging.getLogger("synclass.media.recorder")

# How long a missing packet is waited for before its frame is given up. aiortc
# NACKs a gap once; the retransmission takes one round trip (tens to a few
# hundred ms). Audio is not retransmitted: only reordering is waited for.
VIDEO_REORDER_WINDOW_S = 0.5
AUDIO_REORDER_WINDOW_S = 0.1
# Packets held while a gap is open, at most (a 0.5 s gap of a 3 Mbps track is ~150).
MAX_BUFFERED_PACKETS = 1000
# A sequence number this far behind the next expected one is a restarted
# stream (a new SSRC), not a late packet.
SEQ_RESTART_DISTANCE = 3000
# Frames waiting for the writer thread, per recorder, before frames are
# dropped (a stalled disk must not eat the memory): ~30 s of 30 fps video.
MAX_PENDING_FRAMES = 1000

# Matroska muxer settings for crash safety: a cluster closes after 1 s of
# media (or 2 MiB), and every packet flushes the muxer's I/O buffer to the
# kernel, so a SIGKILL loses at most the open cluster (~1 s).
# No CRC-32 elements: the start time tag is patched in place once known (see
# _FileWriter.set_started_at), and a CRC over it would then be wrong.
MUXER_OPTIONS = {"cluster_time_limit": "1000", "cluster_size_limit": str(2 << 20), "flush_packets": "1", "write_crc32": "0"}
# fsync at most this often: a SIGKILL keeps what the kernel has; fsync is for a power cut.
FSYNC_INTERVAL_S = 1.0
# A video frame's duration is the time to the next one, but not across a
# pause: longer intervals count as the previous normal one.
MAX_FRAME_INTERVAL_S = 0.5

# A global Matroska tag: the unix time of the first frame, "%.6f" (fixed length,
# so a better value can overwrite it in place).
STARTED_AT_TAG = "synclass_started_at"
# The header (where the tag lives) is within this many bytes of the file's start.
HEADER_BYTES = 65536

CODECS = {"video/vp8": "vp8", "video/h264": "h264", "audio/opus": "opus"}
CONTAINERS = {"vp8": ("webm", "webm"), "opus": ("webm", "webm"), "h264": ("mkv", "matroska")}

# OpusHead (RFC 7845 5.1): version 1, 2 channels (the SDP's opus/48000/2),
# no pre-skip (RTP does not carry it), 48 kHz, 0 dB, mapping family 0.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, 48000, 0, 0)


class Frame(NamedTuple):
    timestamp: int  # RTP timestamp
    data: bytes  # the codec's bitstream (VP8 frame, H.264 Annex-B access unit, Opus packet)
    keyframe: bool
    size: Optional[tuple[int, int]]  # (width, height) from a keyframe's header, when known
    duration: int  # in RTP clock units, 0 when the codec does not say (video)


# --- codec helpers (pure) --------------------------------------------------------------
def opus_samples(packet: bytes) -> int:
    """Samples (at 48 kHz) in an Opus packet, from its TOC byte (RFC 6716 3.1)."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        frame = (480, 960, 1920, 2880)[config & 3]
    elif config < 16:  # hybrid: 10, 20 ms
        frame = (480, 960)[config & 1]
    else:  # CELT: 2.5, 5, 10, 20 ms
        frame = (120, 240, 480, 960)[config & 3]
    code = toc & 3
    if code == 0:
        count = 1
    elif code < 3:
        count = 2
    else:
        count = packet[1] & 0x3F if len(packet) > 1 else 0
    return frame * count


def annexb_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream (start codes removed)."""
    units: list[bytes] = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        unit = data[start:end]
        if nxt >= 0 and unit.endswith(b"\x00"):  # the next start code was 4 bytes long
            unit = unit.rstrip(b"\x00")
        if unit:
            units.append(unit)
        pos = nxt
    return units


class _BitReader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("SPS is truncated")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("SPS has an invalid Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def h264_sps_size(sps: bytes) -> tuple[int, int]:
    """(width, height) of an H.264 sequence parameter set NAL unit (ITU-T H.264 7.3.2.1.1)."""
    if not sps or sps[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    rbsp = sps[1:].replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention bytes
    r = _BitReader(rbsp)
    profile_idc = r.bits(8)
    r.bits(16)  # constraint flags, level_idc
    r.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_colour_plane = 0
    if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format_idc = r.ue()
        if chroma_format_idc == 3:
            separate_colour_plane = r.bit()
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.bit()  # qpprime_y_zero_transform_bypass_flag
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.bit():
                    last, nxt = 8, 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + r.se() + 256) % 256
                        last = nxt or last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()  # mb_adaptive_frame_field_flag
    r.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        if chroma_format_idc == 0 or separate_colour_plane:
            crop_x, crop_y = 1, 2 - frame_mbs_only
        else:
            crop_x = 1 if chroma_format_idc == 3 else 2
            crop_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    return width, height


def _vp8_frame(timestamp: int, payloads: list[bytes]) -> Optional[Frame]:
    starts, keyframe, size = vp8_frame_info(payloads[0])
    if not starts:  # the frame's first packet is not the start of partition 0
        return None
    data = b"".join(vp8_depayload(p) for p in payloads)
    return Frame(timestamp, data, keyframe, size, 0)


def _h264_frame(timestamp: int, payloads: list[bytes]) -> Optional[Frame]:
    data = b"".join(h264_depayload(p) for p in payloads)
    keyframe = False
    size = None
    for unit in annexb_nal_units(data):
        nal_type = unit[0] & 0x1F
        if nal_type == 5:
            keyframe = True
        elif nal_type == 7 and size is None:
            try:
                size = h264_sps_size(unit)
            except ValueError:
                pass
    return Frame(timestamp, data, keyframe, size, 0)


# --- reassembly (pure, no I/O) -------------------------------------------------------------
class Depacketizer:
    """RTP packets of one track in (in any order, duplicated, some lost), whole frames out, in order.

    Packets are taken in sequence order. A missing one is waited for up to
    ``window_s`` (its retransmission after a NACK); then it is lost: the frame
    it belonged to is dropped and, for video, so is everything up to the next
    keyframe (``needs_keyframe`` says so: ask the publisher for one). Video
    also starts on a keyframe. A frame ends at its marker bit or where the
    next timestamp starts.
    """

    def __init__(self, codec: str, window_s: Optional[float] = None) -> None:
        if codec not in ("vp8", "h264", "opus"):
            raise ValueError(f"cannot record codec {codec}")
        self.codec = codec
        self.video = codec != "opus"
        self._starts_keyframe: Callable[[bytes], bool] = vp8_is_keyframe if codec == "vp8" else h264_is_keyframe
        self._assemble = _vp8_frame if codec == "vp8" else _h264_frame
        self._window_s = window_s if window_s is not None else (VIDEO_REORDER_WINDOW_S if self.video else AUDIO_REORDER_WINDOW_S)
        # seq -> (timestamp, marker, payload, arrival time)
        self._buffer: dict[int, tuple[int, bool, bytes, float]] = {}
        self._next: Optional[int] = None  # the sequence number to take next
        self._frame: list[bytes] = []
        self._frame_ts = 0
        self._skipping = self.video  # video: drop until a keyframe starts
        self.packets_lost = 0
        self.frames_lost = 0  # frames given up (a packet missing or undecodable payload)
        self.packets_late = 0  # duplicates and packets behind the window

    @property
    def needs_keyframe(self) -> bool:
        return self._skipping

    def reset(self) -> None:
        """Forget everything in flight (the stream paused); video waits for a keyframe."""
        self._buffer.clear()
        self._next = None
        self._frame = []
        self._skipping = self.video

    def push(self, seq: int, timestamp: int, marker: bool, payload: bytes, now: float) -> list[Frame]:
        out: list[Frame] = []
        buffer = self._buffer
        nxt = self._next
        if nxt is None:
            if self.video and not self._starts_keyframe(payload):
                # not yet: video starts at a keyframe; keep the packet in case
                # it overtook the keyframe's first one
                if len(buffer) >= MAX_BUFFERED_PACKETS:
                    buffer.clear()
                buffer[seq] = (timestamp, marker, payload, now)
                return out
            nxt = seq
            self._skipping = self.video
            for s in [s for s in buffer if (s - seq) & 0xFFFF >= 0x8000]:
                del buffer[s]  # before the keyframe
        else:
            behind = (nxt - seq) & 0xFFFF
            if 0 < behind < 0x8000:
                if behind > SEQ_RESTART_DISTANCE:  # the sender restarted its sequence
                    self.flush()
                    self.reset()
                    return self.push(seq, timestamp, marker, payload, now)
                self.packets_late += 1
                return out
        if seq in buffer:
            self.packets_late += 1
            return out
        buffer[seq] = (timestamp, marker, payload, now)
        while True:
            nxt = self._drain(nxt, out)
            if not buffer:
                break
            # ``nxt`` is missing: give it up once the oldest packet after it waited too long
            first = min(buffer, key=lambda s: (s - nxt) & 0xFFFF)  # type: ignore[operator]
            if now - buffer[first][3] < self._window_s and len(buffer) <= MAX_BUFFERED_PACKETS:
                break
            missing = (first - nxt) & 0xFFFF
            self.packets_lost += missing
            logger.debug("x recorder lost %d packet(s) from seq %d", missing, nxt)
            # audio: a packet is a frame; video: the frame they were in (and
            # what follows until a keyframe, which is not counted)
            self.frames_lost += 1 if self.video else missing
            self._frame = []
            self._skipping = self.video
            nxt = first
        self._next = nxt
        return out

    def flush(self) -> None:
        """At the end: nothing more will come; a frame still open is incomplete."""
        if self._frame:
            self.frames_lost += 1
            self._frame = []
        self._buffer.clear()

    def _drain(self, nxt: int, out: list[Frame]) -> int:
        buffer = self._buffer
        while True:
            entry = buffer.pop(nxt, None)
            if entry is None:
                return nxt
            nxt = (nxt + 1) & 0xFFFF
            timestamp, marker, payload, _ = entry
            if not self.video:
                out.append(Frame(timestamp, payload, True, None, opus_samples(payload)))
                continue
            if self._frame and timestamp != self._frame_ts:  # ended without a marker bit
                self._finish(out)
            if not self._frame:
                if self._skipping:
                    if not self._starts_keyframe(payload):
                        continue
                    self._skipping = False
                self._frame_ts = timestamp
            self._frame.append(payload)
            if marker:
                self._finish(out)

    def _finish(self, out: list[Frame]) -> None:
        payloads, self._frame = self._frame, []
        try:
            frame = self._assemble(self._frame_ts, payloads)
        except ValueError as exc:
            logger.debug("x recorder dropped a frame: %s", exc)
            frame = None
        if frame is None:
            self.frames_lost += 1
            self._skipping = True
            return
        out.append(frame)


# --- the writer thread -------------------------------------------------------------------
class _WriterThread:
    """One thread per process doing every recorder's file work, in submission order."""

    _instance: Optional["_WriterThread"] = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="synclass-recorder", daemon=True)
        self._thread.start()

    @classmethod
    def get(cls) -> "_WriterThread":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def _run(self) -> None:
        get = self._queue.get
        while True:
            fn, args = get()
            try:
                fn(*args)
            except Exception:  # one file's failure must not stop the others
                logger.exception("x recorder writer failed")


def _opus_template() -> Any:
    """A stream to copy Opus codec parameters from, without opening any codec."""
    scratch = av.open(io.BytesIO(), "w", format="webm")
    return scratch.add_stream("libopus", rate=48000)


class _FileWriter:
    """The file side of one recorder; every method runs on the writer thread."""

    def __init__(self, path: str, codec: str, clock_rate: int) -> None:
        self.path = path
        self.codec = codec
        self.clock_rate = clock_rate
        self.time_base = fractions.Fraction(1, clock_rate)
        self.container: Any = None
        self.stream: Any = None
        self.fd = -1
        self.failed = False
        self.done = 0  # frames handled (written or dropped), read by the loop
        self._last_sync = 0.0
        self._tag: Optional[str] = None  # the start time tag's value in the file now
        self._header_tag: Optional[str] = None  # its value when the header was written

    def open(self, width: Optional[int], height: Optional[int], started_at: Optional[float]) -> None:
        try:
            _, fmt = CONTAINERS[self.codec]
            container = av.open(self.path, "w", format=fmt, container_options=dict(MUXER_OPTIONS))
            if started_at is not None:
                self._tag = self._header_tag = f"{started_at:.6f}"
                container.metadata[STARTED_AT_TAG] = self._tag
            if self.codec == "opus":
                stream = container.add_stream_from_template(_opus_template(), opaque=True)
                stream.codec_context.extradata = OPUS_HEAD
            else:
                stream = container.add_mux_stream(self.codec, width=width or 0, height=height or 0)
            stream.time_base = self.time_base
            self.container, self.stream = container, stream
        except Exception:
            self.failed = True
            logger.exception("x recorder could not open %s", self.path)

    def write(self, data: bytes, pts: int, keyframe: bool, duration: int) -> None:
        self.done += 1
        if self.failed or self.container is None:
            return
        try:
            packet = av.Packet(data)
            packet.pts = packet.dts = pts
            if duration:
                packet.duration = duration
            packet.time_base = self.time_base
            packet.is_keyframe = keyframe
            packet.stream = self.stream
            self.container.mux_one(packet)
            now = time.monotonic()
            if self.fd < 0:  # the muxer creates the file with the first packet
                self.fd = os.open(self.path, os.O_RDONLY)
                self._last_sync = now
            elif now - self._last_sync >= FSYNC_INTERVAL_S:
                os.fsync(self.fd)
                self._last_sync = now
        except Exception:
            self.failed = True
            logger.exception("x recorder could not write %s", self.path)

    def set_started_at(self, started_at: float) -> None:
        """A better start time (the publisher's sender report came): overwrite
        the tag's value in the header, in place (same length)."""
        value = f"{started_at:.6f}"
        if self._tag is None or self._tag == value or self.failed:
            return
        if self.fd < 0:  # the header is not written yet
            if self.container is not None:
                self.container.metadata[STARTED_AT_TAG] = self._tag = self._header_tag = value
            return
        if self._patch(self._tag, value):
            self._tag = value

    def _patch(self, old: str, new: str) -> bool:
        if len(old) != len(new):
            return False
        try:
            with open(self.path, "r+b") as f:
                head = f.read(HEADER_BYTES)
                if head.count(old.encode()) != 1:
                    return False
                f.seek(head.find(old.encode()))
                f.write(new.encode())
            return True
        except OSError:
            logger.exception("x recorder could not update the start time of %s", self.path)
            return False

    def close(self, done: Callable[[], None]) -> None:
        try:
            if self.container is not None:
                try:
                    self.container.close()  # cues, duration, segment size
                except Exception:
                    logger.exception("x recorder could not finalize %s", self.path)
                self.container = None
                # the trailer rewrote the tags as they were when the header was written
                if self._header_tag is not None and self._tag is not None and self._header_tag != self._tag:
                    self._patch(self._header_tag, self._tag)
            if self.fd >= 0:
                try:
                    os.fsync(self.fd)
                finally:
                    os.close(self.fd)
                    self.fd = -1
        finally:
            done()


# --- the recorder ----------------------------------------------------------------------------
def _signed32(delta: int) -> int:
    delta &= 0xFFFFFFFF
    return delta - (1 << 32) if delta >= 1 << 31 else delta


class Recorder:
    """Records one producer into ``path`` (see server.seam.Recorder)."""

    def __init__(self, router: "Router", producer: "Producer", path: str) -> None:
        codec = CODECS.get(producer.mime_type.lower())
        if codec is None:
            raise ValueError(f"cannot record {producer.mime_type}")
        self.id = uuid.uuid4().hex[:12]
        self.producer_id = producer.id
        self.path = path
        self.kind = producer.kind
        self.codec = codec
        self.container_name = CONTAINERS[codec][0]
        self._router = router
        self._producer: Optional["Producer"] = producer
        self._clock_rate = 90000 if producer.kind == "video" else 48000
        self._depacketizer = Depacketizer(codec)
        self._writer = _FileWriter(path, codec, self._clock_rate)
        self._thread = _WriterThread.get()
        self._closed = False
        self._closing: Optional[asyncio.Future[dict[str, Any]]] = None
        self._close_callbacks: list[Callable[[], None]] = []
        # timeline
        self._first_ts: Optional[int] = None  # RTP timestamp of the first written frame
        self._first_wall: Optional[float] = None  # its wall clock from arrival (fallback)
        self._started_at_sr: Optional[float] = None  # its wall clock from the publisher's SR
        self._last_raw_ts = 0
        self._last_ext_ts = 0
        self._last_pts = -1
        self._interval = 0  # the last normal video frame interval, RTP units
        self._ssrc: Optional[int] = None
        self._rebase = False  # the next frame continues the timeline whatever its timestamp
        self._held: Optional[tuple[Frame, int]] = None  # video: written when the next one says its duration
        self._end_pts = 0  # pts + duration of the last frame submitted
        # counters
        self.frames = 0
        self.frames_dropped = 0  # out of order, or the writer fell behind
        self.width: Optional[int] = None
        self.height: Optional[int] = None
        self._overloaded = False
        producer._attach_recorder(self)

    # -- seam ------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def on_close(self, callback: Callable[[], None]) -> None:
        self._close_callbacks.append(callback)

    @property
    def started_at(self) -> Optional[float]:
        """Unix time of the first written frame: by the publisher's sender reports when known."""
        self._refine_started_at()
        return self._started_at_sr if self._started_at_sr is not None else self._first_wall

    def _refine_started_at(self) -> None:
        """Once the publisher's first sender report is known, map the first
        frame's RTP timestamp to its wall clock, and correct the file's tag."""
        if self._started_at_sr is not None or self._first_ts is None or self._producer is None:
            return
        mapping = self._producer.sr_mapping
        if mapping is None:
            return
        wall, rtp = mapping
        self._started_at_sr = wall + _signed32(self._first_ts - rtp) / self._clock_rate
        self._thread.submit(self._writer.set_started_at, self._started_at_sr)

    def stats(self) -> dict[str, Any]:
        try:
            size = os.path.getsize(self.path) if self.frames else 0
        except OSError:
            size = 0
        return {
            "file": os.path.basename(self.path),
            "kind": self.kind,
            "codec": self.codec,
            "container": self.container_name,
            "started_at": self.started_at,
            "duration_s": round(self._end_pts / self._clock_rate, 3),
            "frames": self.frames,
            "bytes": size,
            "width": self.width,
            "height": self.height,
        }

    async def close(self) -> dict[str, Any]:
        """Finalize the file (cues, duration) and return the final stats; safe twice."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._finalize())
        return await asyncio.shield(self._closing)

    # -- from the producer ------------------------------------------------------------
    def on_rtp(self, packet: Any, now: float) -> None:
        """One packet of the producer (not called while it is paused)."""
        depacketizer = self._depacketizer
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:  # the sender restarted its stream: new seq and timestamps
                logger.info("- recorder %s: the stream restarted (new SSRC)", self.id)
                depacketizer.reset()
                self._rebase = True
                if self._started_at_sr is None and self._first_wall is not None:
                    self._started_at_sr = self._first_wall  # new timestamps: no mapping for the first frame now
            self._ssrc = packet.ssrc
        frames = depacketizer.push(packet.sequence_number, packet.timestamp, packet.marker, packet.payload, now)
        for frame in frames:
            self._take(frame, now)
        if depacketizer.needs_keyframe and self._producer is not None:
            self._producer.request_keyframe()  # rate-limited inside

    def _restart(self) -> None:
        """The producer resumed: what was in flight is gone; video waits for a keyframe."""
        self._depacketizer.reset()

    async def _producer_closed(self) -> None:
        await self.close()

    # -- internals -------------------------------------------------------------------------
    def _take(self, frame: Frame, now: float) -> None:
        if self._closed:
            return
        if self._first_ts is None:
            if not frame.keyframe:
                return
            self._start(frame, now)
        if self._started_at_sr is None:
            self._refine_started_at()
        delta = _signed32(frame.timestamp - self._last_raw_ts)
        if self._rebase or delta < -self._clock_rate:
            # a new stream (or timestamps more than a second back): its
            # timestamps say nothing about ours, the timeline goes on from here
            self._rebase = False
            delta = (self._interval or self._clock_rate // 30) if self.kind == "video" else self._clock_rate // 50
        ext = self._last_ext_ts + delta
        pts = ext - self._first_ts  # type: ignore[operator]
        if pts <= self._last_pts:
            self.frames_dropped += 1  # muxers need increasing timestamps
            return
        self._last_raw_ts, self._last_ext_ts = frame.timestamp, ext
        self._last_pts = pts
        if self.kind == "audio":
            self._submit(frame, pts, frame.duration)
            return
        held, self._held = self._held, (frame, pts)
        if held is not None:
            interval = pts - held[1]
            if interval <= MAX_FRAME_INTERVAL_S * self._clock_rate:
                self._interval = interval
            self._submit(held[0], held[1], self._interval)

    def _start(self, frame: Frame, now: float) -> None:
        self._first_ts = frame.timestamp
        self._last_raw_ts = self._last_ext_ts = frame.timestamp
        self._first_wall = now
        self._last_pts = -1
        if frame.size is not None:
            self.width, self.height = frame.size
        self._thread.submit(self._writer.open, self.width, self.height, self.started_at)
        logger.info("- recorder %s started %s", self.id, self.path)

    def _submit(self, frame: Frame, pts: int, duration: int) -> None:
        pending = self.frames - self._writer.done
        if pending >= MAX_PENDING_FRAMES:
            if not self._overloaded:
                logger.warning("x recorder %s: the writer is %d frames behind, dropping", self.id, pending)
            self._overloaded = True
        elif self._overloaded and pending < MAX_PENDING_FRAMES // 2 and (self.kind == "audio" or frame.keyframe):
            self._overloaded = False  # video restarts at a keyframe
        if self._overloaded:
            self.frames_dropped += 1
            if self.kind == "video" and self._producer is not None:
                self._producer.request_keyframe()
            return
        self.frames += 1
        self._end_pts = pts + duration
        self._thread.submit(self._writer.write, frame.data, pts, frame.keyframe, duration)

    async def _finalize(self) -> dict[str, Any]:
        self._closed = True
        self._refine_started_at()
        producer, self._producer = self._producer, None
        if producer is not None:
            producer._detach_recorder(self)
        self._depacketizer.flush()
        if self._held is not None:
            frame, pts = self._held
            self._held = None
            self._submit(frame, pts, self._interval)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finished() -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        self._thread.submit(self._writer.close, finished)
        await done
        if not self.frames:  # nothing came: leave no empty file behind
            try:
                os.unlink(self.path)
            except OSError:
                pass
        stats = self.stats()
        self._router._forget_recorder(self)
        logger.info(
            "- recorder %s closed: %d frames, %.1f s, %d bytes", self.id, stats["frames"], stats["duration_s"], stats["bytes"]
        )
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a listener's bug must not stop the close
                logger.exception("x recorder close callback failed")
        return stats


# --- recovery ----------------------------------------------------------------------------------
def recover_file(path: str) -> Optional[dict[str, Any]]:
    """Rewrite an interrupted recording's playable prefix as a properly closed
    file (cues, duration), in place through a temporary file; the stats dict,
    or None when nothing in it is playable (the file is left as it is).
    Blocking: run it off the event loop."""
    base, ext = os.path.splitext(path)
    container_name = ext.lstrip(".").lower()
    if container_name not in ("webm", "mkv"):
        raise ValueError(f"not a recording: {path}")
    fmt = "webm" if container_name == "webm" else "matroska"
    try:
        source = av.open(path)
    except (av.FFmpegError, OSError) as exc:
        logger.info("x nothing to recover in %s: %s", path, exc)
        return None
    tmp = f"{base}.recovering{ext}"
    frames = 0
    first_pts: Optional[int] = None
    last_dts: Optional[int] = None
    end = 0
    try:
        if not source.streams:
            return None
        in_stream = source.streams[0]
        kind = in_stream.type
        codec = in_stream.codec_context.name
        width = in_stream.codec_context.width if kind == "video" else None
        height = in_stream.codec_context.height if kind == "video" else None
        metadata = dict(source.metadata)
        started_at = None
        for key, value in metadata.items():
            if key.lower() == STARTED_AT_TAG:
                try:
                    started_at = float(value)
                except ValueError:
                    pass
        out = av.open(tmp, "w", format=fmt)
        try:
            for key in (STARTED_AT_TAG, "creation_time"):
                value = next((v for k, v in metadata.items() if k.lower() == key), None)
                if value is not None:
                    out.metadata[key] = value
            out_stream = out.add_stream_from_template(in_stream, opaque=True)
            time_base = in_stream.time_base
            try:
                for packet in source.demux(in_stream):
                    if packet.pts is None or packet.is_corrupt or packet.size == 0:
                        continue
                    if first_pts is None:
                        if kind == "video" and not packet.is_keyframe:
                            continue
                        first_pts = packet.pts
                    dts = packet.dts if packet.dts is not None else packet.pts
                    if last_dts is not None and dts <= last_dts:
                        continue
                    last_dts = dts
                    end = max(end, packet.pts + (packet.duration or 0))
                    packet.stream = out_stream
                    out.mux_one(packet)
                    frames += 1
            except (av.FFmpegError, OSError) as exc:  # the file ends mid-cluster
                logger.info("- %s is readable up to %d frames: %s", path, frames, exc)
        finally:
            out.close()
        if not frames:
            os.unlink(tmp)
            return None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        source.close()
    duration_s = float((end - (first_pts or 0)) * time_base) if time_base else 0.0
    return {
        "file": os.path.basename(path),
        "kind": kind,
        "codec": codec,
        "container": container_name,
        "started_at": started_at,
        "duration_s": round(duration_s, 3),
        "frames": frames,
        "bytes": os.path.getsize(path),
        "width": width or None,
        "height": height or None,
    }
