"""The recorder: real RTP in, real files out, opened and decoded with PyAV.

Packets come either from a real aiortc publisher through a Router (the
whole path: SRTP, the producer's tap, the writer thread) or, where a test
must control losses and order exactly, straight from aiortc's VP8 encoder and
packetizer into the depacketizer or a Recorder. Decoding happens only here
in the tests; the server side opens no codec.
"""

from __future__ import annotations

import asyncio
import fractions
import multiprocessing
import os
import random
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Callable

import av
import numpy as np
import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import vp8_depayload
from aiortc.codecs import h264_depayload
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

from media.plane import MediaPlane
from media.recorder import Depacketizer, Recorder, annexb_nal_units, h264_sps_size, opus_samples, recover_file
from media.router import Router
from synclass import synthetic

from ._recorder_process import RecordingServer

pytestmark = pytest.mark.timeout(40)

LOOPBACK = ["127.0.0.1"]
CUES_ID = bytes.fromhex("1C53BB6B")  # Matroska Cues element


# --- peers --------------------------------------------------------------------------------------
class Publishers:
    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []

    async def offer(self, video: Any, audio: Any = None, h264: bool = False) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pcs.append(pc)
        transceiver = pc.addTransceiver(video, direction="sendonly")
        if h264:
            caps = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences([c for c in caps if c.mimeType.lower() == "video/h264"])
        if audio is not None:
            pc.addTransceiver(audio, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc

    async def publish(self, router: Router, video: Any, audio: Any = None, h264: bool = False) -> tuple[Any, list[Any]]:
        pc = await self.offer(video, audio, h264)
        tracks = {t.mid: {"source": t.kind} for t in pc.getTransceivers()}
        up = await router.create_transport({"peer": "teacher"})
        answer, producers = await up.publish(pc.localDescription.sdp, tracks)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return up, producers

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()


@pytest.fixture
async def publishers() -> AsyncIterator[Publishers]:
    p = Publishers()
    yield p
    await p.close()


@pytest.fixture
async def plane() -> AsyncIterator[MediaPlane]:
    p = MediaPlane(ice_host_addresses=LOOPBACK)
    yield p
    await p.close()


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


# --- reading files back ---------------------------------------------------------------------------
class Track:
    """What PyAV finds in a recording: every packet and every decoded frame."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with av.open(self.path) as container:
            self.duration_s = None if container.duration is None else container.duration / 1e6
            self.metadata = {k.lower(): v for k, v in container.metadata.items()}
            stream = container.streams[0]
            self.kind = stream.type
            self.codec = stream.codec_context.name
            self.packet_times: list[float] = []
            self.keyframes: list[bool] = []
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                self.packet_times.append(float(packet.pts * packet.time_base))
                self.keyframes.append(packet.is_keyframe)
        self.frame_times: list[float] = []
        self.sizes: set[tuple[int, int]] = set()
        self.images: dict[float, np.ndarray] = {}
        self.samples = 0
        self.peak = 0.0
        with av.open(self.path) as container:
            stream = container.streams[0]
            for frame in container.decode(stream):
                self.frame_times.append(float(frame.time))
                if self.kind == "video":
                    self.sizes.add((frame.width, frame.height))
                    if len(self.images) < 400:
                        self.images[round(float(frame.time), 3)] = frame.to_ndarray(format="gray")
                else:
                    self.samples += frame.samples
                    self.peak = max(self.peak, float(np.abs(frame.to_ndarray()).max()))

    @property
    def started_at(self) -> float:
        return float(self.metadata["synclass_started_at"])

    def largest_gap(self) -> tuple[float, int]:
        """(seconds, index of the packet after it) of the longest pause between two packets."""
        gaps = [(b - a, i + 1) for i, (a, b) in enumerate(zip(self.packet_times, self.packet_times[1:]))]
        return max(gaps)


# --- RTP from aiortc's own encoder and packetizer ---------------------------------------------------
def _image(i: int, width: int, height: int) -> np.ndarray:
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[:, :, 0] = (np.arange(width)[None, :] + i * 4) % 256
    img[:, :, 1] = (np.arange(height)[:, None] * 2) % 256
    x = (i * 7) % (width - 40)
    img[40:80, x : x + 40] = 255
    # grain, like a camera's: frames of several packets each
    return img + np.random.default_rng(i).integers(0, 24, img.shape, dtype=np.uint8)


def encode_vp8(count: int = 90, keyframe_every: int = 30, width: int = 320, height: int = 240) -> list[tuple[int, list[bytes]]]:
    """``count`` frames of 30 fps VP8 as aiortc packetizes them: (RTP timestamp, payloads)."""
    encoder = Vp8Encoder()
    encoder.target_bitrate = 1_500_000
    frames = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(_image(i, width, height), format="rgb24")
        frame.pts = i * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=i % keyframe_every == 0)
        frames.append((timestamp, payloads))
    return frames


def rtp_packets(
    frames: list[tuple[int, list[bytes]]], seq0: int = 65500, ts0: int = 4294960000, ssrc: int = 1234
) -> list[RtpPacket]:
    """Real aiortc RtpPackets (sequence numbers and timestamps that wrap)."""
    packets = []
    seq = seq0
    for timestamp, payloads in frames:
        for k, payload in enumerate(payloads):
            packets.append(
                RtpPacket(
                    payload_type=96,
                    marker=int(k == len(payloads) - 1),
                    sequence_number=seq & 0xFFFF,
                    timestamp=(ts0 + timestamp) & 0xFFFFFFFF,
                    ssrc=ssrc,
                    payload=payload,
                )
            )
            seq += 1
    return packets


@pytest.fixture(scope="module")
def vp8_frames() -> list[tuple[int, list[bytes]]]:
    return encode_vp8()


def frame_bytes(payloads: list[bytes]) -> bytes:
    return b"".join(vp8_depayload(p) for p in payloads)


def push_all(depacketizer: Depacketizer, packets: list[RtpPacket], spacing_s: float = 0.003) -> list[Any]:
    out = []
    for i, p in enumerate(packets):
        out += depacketizer.push(p.sequence_number, p.timestamp, bool(p.marker), p.payload, 1000.0 + i * spacing_s)
    return out


def packets_of_frame(packets: list[RtpPacket], frames: list[tuple[int, list[bytes]]], n: int) -> list[int]:
    """Indices of frame ``n``'s packets."""
    ts = (packets[0].timestamp + frames[n][0] - frames[0][0]) & 0xFFFFFFFF
    return [i for i, p in enumerate(packets) if p.timestamp == ts]


class StubProducer:
    """Stands in for media.producer.Producer where a test feeds packets itself."""

    def __init__(self, kind: str = "video", mime_type: str = "video/VP8") -> None:
        self.id = "stub"
        self.kind = kind
        self.mime_type = mime_type
        self.sr_mapping: tuple[float, int] | None = None
        self.keyframe_requests = 0
        self.recorders: list[Recorder] = []

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def _attach_recorder(self, recorder: Recorder) -> None:
        self.recorders.append(recorder)

    def _detach_recorder(self, recorder: Recorder) -> None:
        self.recorders.remove(recorder)


class StubRouter:
    def _forget_recorder(self, recorder: Recorder) -> None:
        pass


def feed(recorder: Recorder, packets: list[RtpPacket], first: RtpPacket, base: float = 1_763_860_000.0) -> None:
    for packet in packets:  # arriving in real time: a frame's packets together, 30 frames a second
        recorder.on_rtp(packet, base + ((packet.timestamp - first.timestamp) & 0xFFFFFFFF) / 90000)


async def record_packets(path: Path, packets: list[RtpPacket], producer: StubProducer | None = None) -> tuple[Recorder, dict[str, Any]]:
    producer = producer or StubProducer()
    recorder = Recorder(StubRouter(), producer, str(path))  # type: ignore[arg-type]
    feed(recorder, packets, packets[0])
    return recorder, await recorder.close()


def started_at_tag(path: str | Path) -> str:
    with av.open(str(path)) as container:
        return next(v for k, v in container.metadata.items() if k.lower() == "synclass_started_at")


def reference_images(frames: list[tuple[int, list[bytes]]]) -> dict[float, np.ndarray]:
    """The whole stream decoded (test side) by RTP time, to compare what a recording shows."""
    decoder = av.CodecContext.create("vp8", "r")
    images = {}
    ts0 = frames[0][0]
    for timestamp, payloads in frames:
        for image in decoder.decode(av.Packet(frame_bytes(payloads))):
            images[round((timestamp - ts0) / 90000, 3)] = image.to_ndarray(format="gray")
    return images


# --- the depacketizer ------------------------------------------------------------------------------
def test_in_order_packets_give_back_exactly_the_encoded_frames(vp8_frames: list[tuple[int, list[bytes]]]) -> None:
    packets = rtp_packets(vp8_frames)
    out = push_all(Depacketizer("vp8"), packets)

    assert [f.data for f in out] == [frame_bytes(p) for _, p in vp8_frames]
    assert [f.keyframe for f in out] == [i % 30 == 0 for i in range(len(vp8_frames))]
    assert out[0].size == (320, 240)
    assert [f.timestamp for f in out] == [p.timestamp for p in packets if p.marker]


def test_reordered_duplicated_and_retransmitted_packets_still_give_every_frame(vp8_frames: list[tuple[int, list[bytes]]]) -> None:
    packets = rtp_packets(vp8_frames)
    rng = random.Random(5)
    shuffled = list(packets)
    for i in range(0, len(shuffled) - 4, 4):  # swap neighbours within small groups
        group = shuffled[i : i + 4]
        rng.shuffle(group)
        shuffled[i : i + 4] = group
    late = shuffled.pop(200)  # "lost", then retransmitted 40 packets later (~120 ms)
    shuffled.insert(240, late)
    shuffled.insert(100, shuffled[90])  # a duplicate
    depacketizer = Depacketizer("vp8")
    out = push_all(depacketizer, shuffled)

    assert [f.data for f in out] == [frame_bytes(p) for _, p in vp8_frames]
    assert depacketizer.frames_lost == 0 and depacketizer.packets_lost == 0
    assert depacketizer.packets_late >= 1


@pytest.mark.parametrize("which", ["first", "middle", "marker"])
def test_a_lost_packet_drops_its_frame_and_everything_until_the_next_keyframe(
    vp8_frames: list[tuple[int, list[bytes]]], which: str
) -> None:
    packets = rtp_packets(vp8_frames)
    lost_frame = 40  # a delta frame; keyframes are 0, 30, 60
    indices = packets_of_frame(packets, vp8_frames, lost_frame)
    assert len(indices) >= 3, "the test wants a frame of several packets"
    drop = {"first": indices[0], "middle": indices[len(indices) // 2], "marker": indices[-1]}[which]
    depacketizer = Depacketizer("vp8")
    out = []
    waiting_for_keyframe = []
    for i, p in enumerate(packets):
        if i == drop:
            continue
        out += depacketizer.push(p.sequence_number, p.timestamp, bool(p.marker), p.payload, 1000.0 + i * 0.01)
        waiting_for_keyframe.append(depacketizer.needs_keyframe)

    expected = [frame_bytes(p) for n, (_, p) in enumerate(vp8_frames) if not lost_frame <= n < 60]
    assert [f.data for f in out] == expected
    assert depacketizer.frames_lost >= 1 and depacketizer.packets_lost == 1
    assert any(waiting_for_keyframe), "the depacketizer never said it needs a keyframe"
    assert not waiting_for_keyframe[-1]


def test_video_starts_at_a_keyframe(vp8_frames: list[tuple[int, list[bytes]]]) -> None:
    packets = rtp_packets(vp8_frames)
    start = packets_of_frame(packets, vp8_frames, 5)[0]  # join at frame 5
    out = push_all(Depacketizer("vp8"), packets[start:])
    assert out[0].keyframe and out[0].data == frame_bytes(vp8_frames[30][1])
    assert len(out) == 60


def test_opus_and_h264_helpers_read_real_headers() -> None:
    encoder = OpusEncoder()
    packets = []
    for i in range(5):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        packets += encoder.encode(frame)[0]
    assert packets and [opus_samples(p) for p in packets] == [960] * len(packets)  # aiortc sends 20 ms
    assert opus_samples(bytes([0x18])) == 2880  # SILK 60 ms, one frame
    assert opus_samples(bytes([0x7B, 0x03])) == 2880  # hybrid 20 ms, three frames (code 3)
    assert opus_samples(bytes([0xE9, 0x00])) == 480  # CELT 5 ms, two frames (code 1)
    # SPS of libx264 at 320x180 (aiortc's H264Encoder): 12 macroblock rows cropped by 6 lines
    assert h264_sps_size(bytes.fromhex("6742c01fd901419f9e10000003001000000303c8f1832480")) == (320, 180)
    for width, height in ((640, 480), (200, 120), (1280, 720)):
        image = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), dtype=np.uint8), format="rgb24")
        image.pts, image.time_base = 0, fractions.Fraction(1, 90000)
        payloads, _ = H264Encoder().encode(image)
        units = annexb_nal_units(b"".join(h264_depayload(p) for p in payloads))
        sps = next(u for u in units if u[0] & 0x1F == 7)
        assert h264_sps_size(sps) == (width, height)
        assert {u[0] & 0x1F for u in units} >= {7, 8, 5}  # SPS, PPS, IDR
    with pytest.raises(ValueError, match="not an SPS"):
        h264_sps_size(bytes.fromhex("68ce3c80"))


# --- the recorder on a lossy stream (packets fed by the test) -------------------------------------------
async def test_a_recorder_fed_a_lossy_stream_writes_only_whole_frames_and_asks_for_a_keyframe(
    tmp_path: Path, vp8_frames: list[tuple[int, list[bytes]]]
) -> None:
    packets = rtp_packets(vp8_frames)
    lost = packets_of_frame(packets, vp8_frames, 35)[1]
    producer = StubProducer()
    recorder, stats = await record_packets(tmp_path / "lossy.webm", packets[:lost] + packets[lost + 1 :], producer)

    assert recorder.closed and producer.recorders == []
    assert producer.keyframe_requests >= 1
    track = Track(recorder.path)
    # frames 35..59 are gone (35 lost a packet, 36..59 depend on it), the rest is there
    assert stats["frames"] == len(track.frame_times) == 90 - 25
    assert (stats["width"], stats["height"]) == (320, 240)
    assert track.sizes == {(320, 240)}
    reference = reference_images(vp8_frames)
    written = sorted(track.images)
    assert written[:35] == sorted(reference)[:35] and written[35] == 2.0  # the keyframe after the gap
    for t in written:  # every written frame decodes to exactly the picture the encoder made
        assert np.array_equal(track.images[t], reference[t]), f"frame at {t} s differs from the source"
    assert track.duration_s == pytest.approx(3.0, abs=0.01)  # 90 frames at 30 fps, the last one lasting 1/30 s
    assert stats["duration_s"] == pytest.approx(3.0, abs=0.01)


async def test_a_stream_that_restarts_its_sequence_numbers_and_timestamps_goes_on_in_the_file(
    tmp_path: Path, vp8_frames: list[tuple[int, list[bytes]]]
) -> None:
    # the publisher's stream starts over at frame 30 (a keyframe): new SSRC, random seq and timestamps
    packets = rtp_packets(vp8_frames[:30]) + rtp_packets(vp8_frames[30:], seq0=20000, ts0=2_000_000_000, ssrc=99)
    recorder, stats = await record_packets(tmp_path / "restart.webm", packets)

    assert stats["frames"] == 90
    track = Track(recorder.path)
    assert len(track.frame_times) == 90 and track.sizes == {(320, 240)}
    assert all(b > a for a, b in zip(track.packet_times, track.packet_times[1:]))
    assert track.duration_s == pytest.approx(3.0, abs=0.05)


async def test_the_start_time_moves_once_to_the_sender_report_mapping_in_the_stats_and_the_file(
    tmp_path: Path, vp8_frames: list[tuple[int, list[bytes]]]
) -> None:
    packets = rtp_packets(vp8_frames)
    producer = StubProducer()
    recorder = Recorder(StubRouter(), producer, str(tmp_path / "sync.webm"))  # type: ignore[arg-type]
    half = packets_of_frame(packets, vp8_frames, 45)[0]
    base = 1_763_860_000.0
    feed(recorder, packets[:half], packets[0], base)
    assert recorder.stats()["started_at"] == base  # no sender report yet: the first frame's arrival
    await wait_for(lambda: os.path.exists(recorder.path) and os.path.getsize(recorder.path) > 1000, 5,
                   "the header on disk")  # the writer thread creates the file with the first frame
    assert started_at_tag(recorder.path) == f"{base:.6f}"

    # the publisher's first sender report: its clock says the first frame was captured 0.25 s before it arrived
    producer.sr_mapping = (base - 0.25 + 1.0, (packets[0].timestamp + 90000) & 0xFFFFFFFF)
    feed(recorder, packets[half:], packets[0], base)
    assert recorder.stats()["started_at"] == pytest.approx(base - 0.25, abs=1e-6)
    await asyncio.sleep(0.3)  # the writer thread patches the header
    assert started_at_tag(recorder.path) == f"{base - 0.25:.6f}", "a crash now would recover the old start"
    producer.sr_mapping = (base + 5.0, packets[0].timestamp)  # later reports do not move it again
    stats = await recorder.close()
    assert stats["started_at"] == pytest.approx(base - 0.25, abs=1e-6)
    assert started_at_tag(recorder.path) == f"{base - 0.25:.6f}"  # the trailer rewrote the tags; fixed again
    assert Track(recorder.path).duration_s == pytest.approx(3.0, abs=0.01)


# --- real peers -----------------------------------------------------------------------------------------
async def test_a_vp8_and_opus_publisher_is_recorded_and_finalized_when_its_producers_close(
    plane: MediaPlane, publishers: Publishers, tmp_path: Path
) -> None:
    router = await plane.create_router({})
    up, producers = await publishers.publish(router, synthetic.TestPatternTrack(640, 480), synthetic.ToneTrack())
    video = next(p for p in producers if p.kind == "video")
    audio = next(p for p in producers if p.kind == "audio")
    created = time.time()
    rec_video = await router.create_recorder(video.id, str(tmp_path / "lesson"), "01-teacher-camera")
    rec_audio = await router.create_recorder(audio.id, str(tmp_path / "lesson"), "02-teacher-mic")
    assert rec_video.path == str(tmp_path / "lesson" / "01-teacher-camera.webm")
    assert rec_audio.path.endswith("02-teacher-mic.webm")
    assert plane.counters()["recorders"] == 2
    closed: list[str] = []
    rec_video.on_close(lambda: closed.append("video"))
    rec_audio.on_close(lambda: closed.append("audio"))
    with pytest.raises(FileExistsError):
        await router.create_recorder(video.id, str(tmp_path / "lesson"), "01-teacher-camera")  # nothing clobbered
    with pytest.raises(LookupError):
        await router.create_recorder("nope", str(tmp_path), "x")

    await wait_for(lambda: rec_video.stats()["frames"] > 0 and rec_audio.stats()["frames"] > 0, 10, "first frames")
    first = time.time()
    await asyncio.sleep(3.0)
    assert not rec_video.closed
    await up.close()  # the publisher leaves: its producers close, the recorders finalize
    ended = time.time()

    assert sorted(closed) == ["audio", "video"] and rec_video.closed and rec_audio.closed
    assert plane.counters()["recorders"] == 0
    assert await rec_video.close() == rec_video.stats()  # idempotent
    v, a = rec_video.stats(), rec_audio.stats()
    assert (v["kind"], v["codec"], v["container"], v["width"], v["height"]) == ("video", "vp8", "webm", 640, 480)
    assert (a["kind"], a["codec"], a["container"], a["width"], a["height"]) == ("audio", "opus", "webm", None, None)
    for stats in (v, a):
        assert created - 0.5 < stats["started_at"] < first + 0.5
        assert stats["duration_s"] == pytest.approx(ended - first, abs=0.6)
        assert stats["bytes"] == os.path.getsize(tmp_path / "lesson" / stats["file"])

    video_track = Track(rec_video.path)
    assert video_track.codec == "vp8" and video_track.sizes == {(640, 480)}
    assert len(video_track.frame_times) == v["frames"]
    assert video_track.keyframes[0]
    assert video_track.duration_s == pytest.approx(v["duration_s"], abs=0.05)
    assert len(video_track.frame_times) / video_track.duration_s == pytest.approx(30, abs=2.5)
    audio_track = Track(rec_audio.path)
    assert audio_track.codec == "opus" and len(audio_track.frame_times) == a["frames"]
    assert audio_track.duration_s == pytest.approx(a["duration_s"], abs=0.05)
    assert audio_track.samples / 48000 == pytest.approx(a["duration_s"], abs=0.1)
    assert audio_track.peak > 0.05, "the recorded audio is silent, the tone should be there"
    for track, stats in ((video_track, v), (audio_track, a)):
        assert track.started_at == pytest.approx(stats["started_at"], abs=2e-6)
        assert CUES_ID in Path(track.path).read_bytes(), "no cues: seeking would not work"


async def test_a_paused_producer_writes_nothing_and_leaves_a_gap_in_the_timeline(
    plane: MediaPlane, publishers: Publishers, tmp_path: Path
) -> None:
    router = await plane.create_router({})
    _, producers = await publishers.publish(router, synthetic.TestPatternTrack(320, 240), synthetic.ToneTrack())
    recorders = {p.kind: await router.create_recorder(p.id, str(tmp_path), p.kind) for p in producers}
    await wait_for(lambda: all(r.stats()["frames"] > 0 for r in recorders.values()), 10, "first frames")
    first = time.time()
    await asyncio.sleep(1.0)
    for p in producers:
        p.pause()
    await asyncio.sleep(0.2)
    during = {kind: r.stats()["frames"] for kind, r in recorders.items()}
    await asyncio.sleep(1.5)
    assert {kind: r.stats()["frames"] for kind, r in recorders.items()} == during, "frames written while paused"
    for p in producers:
        p.resume()
    await wait_for(lambda: all(r.stats()["frames"] > during[k] + 10 for k, r in recorders.items()), 5, "frames after resume")
    await asyncio.sleep(0.5)
    await router.close()  # closes its recorders
    ended = time.time()

    assert all(r.closed for r in recorders.values())
    for kind, recorder in recorders.items():
        track = Track(recorder.path)
        gap, after = track.largest_gap()
        assert 1.4 < gap < 2.2, f"{kind}: the pause should leave a ~1.7 s gap, largest is {gap:.2f} s"
        assert track.duration_s == pytest.approx(ended - first, abs=0.6), f"{kind}: the gap must stay in the timeline"
        if kind == "video":
            assert track.keyframes[after], "video must restart on a keyframe after the pause"
            assert track.sizes == {(320, 240)}


async def test_an_h264_publisher_is_recorded_to_matroska_at_its_size(
    plane: MediaPlane, publishers: Publishers, tmp_path: Path
) -> None:
    router = await plane.create_router({})
    _, producers = await publishers.publish(router, synthetic.TestPatternTrack(320, 180), h264=True)
    assert producers[0].mime_type.lower() == "video/h264"
    recorder = await router.create_recorder(producers[0].id, str(tmp_path), "01-courseware")
    await wait_for(lambda: recorder.stats()["frames"] > 0, 10, "first frame")
    await asyncio.sleep(2.0)
    stats = await recorder.close()

    assert recorder.path.endswith("01-courseware.mkv")
    assert (stats["codec"], stats["container"], stats["width"], stats["height"]) == ("h264", "mkv", 320, 180)
    track = Track(recorder.path)
    assert track.codec == "h264" and track.sizes == {(320, 180)}
    assert len(track.frame_times) == stats["frames"] >= 45
    assert track.duration_s == pytest.approx(stats["duration_s"], abs=0.05)
    assert stats["duration_s"] == pytest.approx(2.0, abs=0.5)

    cut = tmp_path / "cut.mkv"  # Matroska recovers too (the SPS/PPS live in the header)
    cut.write_bytes(Path(recorder.path).read_bytes()[: stats["bytes"] * 2 // 3])
    recovered = recover_file(str(cut))
    assert recovered is not None
    assert (recovered["codec"], recovered["container"], recovered["width"], recovered["height"]) == ("h264", "mkv", 320, 180)
    again = Track(cut)
    assert again.sizes == {(320, 180)} and 0 < len(again.frame_times) == recovered["frames"] < stats["frames"]
    assert CUES_ID in cut.read_bytes()


# --- crashes -------------------------------------------------------------------------------------------
async def test_recordings_survive_sigkill_up_to_the_last_2_s_and_are_recovered(publishers: Publishers, tmp_path: Path) -> None:
    server = RecordingServer(multiprocessing.get_context("spawn"))
    try:
        await server.call("start", LOOPBACK)
        pc = await publishers.offer(synthetic.TestPatternTrack(320, 240), synthetic.ToneTrack())
        tracks = {t.mid: {"source": t.kind} for t in pc.getTransceivers()}
        answer = await server.call("publish", pc.localDescription.sdp, tracks)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        paths = await server.call("record", str(tmp_path))
        deadline = time.monotonic() + 10
        while not all(s["frames"] > 0 for s in await server.call("stats")):
            assert time.monotonic() < deadline, "no frames recorded"
            await asyncio.sleep(0.1)
        await asyncio.sleep(4.0)
        counters = await server.call("counters")
        stats = await server.call("stats")
        killed_at = time.time()
        server.kill()  # SIGKILL: no trailer, no cues
    finally:
        await server.stop()
    assert counters["decoders_created"] == 0 and counters["encoders_created"] == 0
    assert counters["recorders"] == 2

    plane = MediaPlane()
    try:
        for path, live in zip(paths, stats):
            killed = Track(path)
            raw = Path(path).read_bytes()
            assert CUES_ID not in raw and killed.duration_s is None, "the killed file looks finalized"
            assert killed.started_at == pytest.approx(live["started_at"], abs=2e-6)
            last_wall = killed.started_at + killed.frame_times[-1]
            print(f"{os.path.basename(path)}: {len(killed.frame_times)} frames decode, the last {killed_at - last_wall:.2f} s before the kill")
            assert last_wall >= killed_at - 2.0, f"{path}: decodes only up to {killed_at - last_wall:.2f} s before the kill"
            assert len(killed.frame_times) == len(killed.packet_times) > 0

            recovered = await plane.recover_recording(path)
            assert recovered is not None
            track = Track(path)
            assert CUES_ID in Path(path).read_bytes() and track.duration_s is not None
            assert recovered["frames"] == len(track.frame_times) == len(killed.frame_times)
            assert recovered["duration_s"] == pytest.approx(track.duration_s, abs=0.05)
            assert recovered["started_at"] == killed.started_at
            assert recovered["file"] == os.path.basename(path) and recovered["bytes"] == os.path.getsize(path)
            if recovered["kind"] == "video":
                assert (recovered["codec"], recovered["width"], recovered["height"]) == ("vp8", 320, 240)
            else:
                assert recovered["codec"] == "opus" and track.peak > 0.05
            assert not [n for n in os.listdir(tmp_path) if "recovering" in n]
    finally:
        await plane.close()


async def test_a_file_cut_mid_cluster_is_recovered_up_to_the_cut(tmp_path: Path, vp8_frames: list[tuple[int, list[bytes]]]) -> None:
    full = tmp_path / "full.webm"
    _, stats = await record_packets(full, rtp_packets(vp8_frames))
    size = full.stat().st_size
    assert stats["frames"] == 90
    reference = reference_images(vp8_frames)
    results = []
    for share in (0.35, 0.7):
        cut = tmp_path / f"cut{int(share * 100)}.webm"
        cut.write_bytes(full.read_bytes()[: int(size * share)])
        recovered = recover_file(str(cut))
        assert recovered is not None
        track = Track(cut)
        assert 0 < recovered["frames"] == len(track.frame_times) < 90
        assert track.duration_s == pytest.approx(recovered["duration_s"], abs=0.05)
        assert CUES_ID in cut.read_bytes()
        for t, image in track.images.items():
            assert np.array_equal(image, reference[t]), f"recovered frame at {t} s differs from the source"
        results.append(recovered["frames"])
    assert results[0] < results[1]

    header_only = tmp_path / "header.webm"
    header_only.write_bytes(full.read_bytes()[:150])
    assert recover_file(str(header_only)) is None
    assert header_only.read_bytes() == full.read_bytes()[:150], "an unplayable file must be left as it is"
    reserved = tmp_path / "reserved.webm"  # killed before its first keyframe: the name was taken, nothing written
    reserved.write_bytes(b"")
    assert recover_file(str(reserved)) is None and reserved.exists()
    assert not [n for n in os.listdir(tmp_path) if "recovering" in n]
    shutil.copy(full, tmp_path / "copy.webm")
    again = recover_file(str(tmp_path / "copy.webm"))  # a complete file stays complete
    assert again is not None and again["frames"] == 90
