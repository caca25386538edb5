"""The subscriber's video pacer (media.bandwidth.Pacer): a token bucket that
spreads key frames at the estimated rate instead of bursting them into a
slow link's small queue. Time here is the real loop's (a few hundred ms)."""

from __future__ import annotations

import asyncio
import time
from typing import Optional

import pytest

from media.bandwidth import PACE_BURST_S, PACE_MAX_DELAY_S, Pacer, _demand
from media.producer import PACKET_OVERHEAD_BYTES

WIRE = 1200 + PACKET_OVERHEAD_BYTES - 12  # what the pacer counts for a 1200-byte RTP packet


def packets(n: int) -> list[bytes]:
    return [bytes([i % 256]) * 1200 for i in range(n)]


async def test_without_a_rate_packets_go_at_once() -> None:
    pacer = Pacer()
    sent: list[bytes] = []
    for p in packets(50):
        pacer.send(sent.append, p)
    assert len(sent) == 50 and pacer.paced_packets == 0


async def test_a_burst_leaves_at_the_rate_in_order() -> None:
    pacer = Pacer()
    rate = 400_000
    pacer.set_rate(rate)
    sent: list[tuple[float, bytes]] = []
    start = time.monotonic()
    burst = packets(40)  # ~50 KB: a slide's key frame, 1 s at 400 kbps
    for p in burst:
        pacer.send(lambda data: sent.append((time.monotonic(), data)), p)
    at_once = max(1, int(rate * PACE_BURST_S / 8 // WIRE))
    assert len(sent) <= at_once + 1  # only the bucket's burst went out at once
    deadline = start + 3.0
    while len(sent) < len(burst) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert [d for _, d in sent] == burst  # all of it, in order
    took = sent[-1][0] - start
    expected = (len(burst) * WIRE * 8 - rate * PACE_BURST_S) / rate
    assert expected * 0.8 <= took <= expected + 0.25
    assert pacer.queued_bytes == 0 and pacer.dropped_packets == 0


async def test_more_than_the_queue_holds_is_dropped_at_the_tail() -> None:
    pacer = Pacer()
    pacer.set_rate(50_000)  # 10 s hold ~62 KB
    sent: list[bytes] = []
    for p in packets(80):  # 100 KB
        pacer.send(sent.append, p)
    assert pacer.dropped_packets > 0
    assert pacer.queued_bytes * 8 <= 50_000 * PACE_MAX_DELAY_S
    pacer.set_rate(None)  # pacing off: what waits goes at once
    assert len(sent) == 80 - pacer.dropped_packets and pacer.queued_bytes == 0
    pacer.close()


async def test_a_tracks_backlog_does_not_hold_back_another_tracks_packets() -> None:
    """A slide's key frame (50 KB) waits in the courseware's queue; the camera's
    packets, within its share, go out beside it instead of seconds behind it."""
    pacer = Pacer()
    rate = 400_000
    pacer.set_rate(rate, {"courseware": 100_000, "camera": 250_000})
    sent: list[tuple[float, str]] = []
    start = time.monotonic()
    for p in packets(40):  # 1 s of the whole rate
        pacer.send(lambda data: sent.append((time.monotonic(), "courseware")), p, "courseware")
    camera_at: list[float] = []
    for _ in range(10):  # a 120 kbps camera: one 1200-byte packet every 80 ms
        camera_at.append(time.monotonic())
        pacer.send(lambda data: sent.append((time.monotonic(), "camera")), packets(1)[0], "camera")
        await asyncio.sleep(0.08)
    deadline = time.monotonic() + 3.0
    while len(sent) < 50 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    camera_sent = [t for t, who in sent if who == "camera"]
    assert len(camera_sent) == 10 and pacer.dropped_packets == 0
    # each camera packet left within ~2 ticks of the bucket, not after the 1 s backlog
    assert max(t - at for t, at in zip(camera_sent, camera_at)) < 0.1
    courseware_sent = [t for t, who in sent if who == "courseware"]
    assert len(courseware_sent) == 40
    # the courseware took what the camera left: the whole burst within ~1.3 s
    assert courseware_sent[-1] - start < 1.6
    pacer.close()


async def test_retransmissions_go_ahead_of_the_waiting_video_within_the_rate() -> None:
    pacer = Pacer()
    rate = 200_000
    pacer.set_rate(rate, {"courseware": 100_000})
    sent: list[str] = []
    for p in packets(20):  # ~1.2 s of video waits
        pacer.send(lambda data: sent.append("video"), p, "courseware")
    waiting = pacer.video_bytes
    assert waiting > 0
    pacer.send_first(lambda data: sent.append("rtx"), packets(1)[0])
    assert pacer.video_bytes == waiting  # a retransmission is not counted as video waiting
    await asyncio.sleep(0.15)
    assert "rtx" in sent
    assert sent.index("rtx") <= 3  # after at most what the bucket held, before the backlog
    # ... but never past PACE_FIRST_MAX_DELAY_S of them: the receiver has given up by then
    taken = [pacer.send_first(lambda data: sent.append("rtx"), p) for p in packets(30)]
    assert pacer.dropped_retransmissions == taken.count(False) > 0  # the caller learns which
    assert taken.index(False) > 0 and all(not t for t in taken[taken.index(False):])
    pacer.close()


class _Layer:
    def __init__(self, average: int, current: int, keyframe_bytes: int, floor: int = 0,
                 largest_keyframe_bytes: Optional[int] = None) -> None:
        self.average_bitrate_bps = average
        self.bitrate_bps = current
        self.keyframe_bytes = keyframe_bytes
        self.largest_keyframe_bytes = keyframe_bytes if largest_keyframe_bytes is None else largest_keyframe_bytes
        self.floor_bitrate_bps = floor


class _Consumer:
    def __init__(self, layers: dict[int, _Layer], source: str = "camera") -> None:
        self.id = "c1"
        self.kind = "video"
        self.app_data = {"priority": 1, "source": source}
        self.layers = layers


@pytest.mark.parametrize(
    ("average", "current", "keyframe_bytes", "need"),
    [
        (60_000, 12_000, 37_000, 60_000),  # a slide deck between slides: its average, not the last second
        (10_000, 10_000, 37_000, 59_200),  # a still slide: its key frame must cross within 5 s
        (150_000, 160_000, 6_000, 150_000),  # a camera layer: its average
        (0, 140_000, 0, 140_000),  # just started: the last window
    ],
)
def test_a_video_demand_is_its_average_or_what_a_key_frame_needs_within_5_s(
    average: int, current: int, keyframe_bytes: int, need: int
) -> None:
    demand = _demand(_Consumer({0: _Layer(average, current, keyframe_bytes)}))  # type: ignore[arg-type]
    assert demand.layer_bps == (need,)


@pytest.mark.parametrize(
    ("average", "keyframe_bytes", "floor", "need"),
    [
        (196_000, 37_000, 12_000, 71_200),  # right after slides and requested key frames: not its 10 s average
        (52_000, 37_000, 12_000, 71_200),  # between slides: the same need
        (400_000, 20_000, 300_000, 332_000),  # a video played in the courseware: its rate shows in the floor
    ],
)
def test_the_courseware_needs_a_key_frame_per_5_s_on_top_of_its_rate_between_slides(
    average: int, keyframe_bytes: int, floor: int, need: int
) -> None:
    layer = _Layer(average, average, keyframe_bytes, floor)
    demand = _demand(_Consumer({0: layer}, source="courseware"))  # type: ignore[arg-type]
    assert demand.layer_bps == (need,)
    assert _demand(_Consumer({0: layer}, source="camera")).layer_bps == (max(average, keyframe_bytes * 8 // 5),)  # type: ignore[arg-type]


def test_the_courseware_needs_its_largest_recent_key_frame_not_just_the_newest() -> None:
    # the newest slide is small (24 KB), one before it was 37 KB: the need stays where
    # the larger one put it, so the camera beside it is not paused and resumed per slide
    layer = _Layer(52_000, 52_000, 24_000, 12_000, largest_keyframe_bytes=37_000)
    assert _demand(_Consumer({0: layer}, source="courseware")).layer_bps == (71_200,)  # type: ignore[arg-type]
    assert _demand(_Consumer({0: layer}, source="camera")).layer_bps == (52_000,)  # type: ignore[arg-type]
