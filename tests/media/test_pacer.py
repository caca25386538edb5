"""The subscriber's video pacer (media.bandwidth.Pacer): a token bucket that
spreads key frames at the estimated rate instead of bursting them into a
slow link's small queue. Time here is the real loop's (a few hundred ms)."""

from __future__ import annotations

import asyncio
import time

import pytest

from media.bandwidth import KEYFRAME_DELIVERY_S, PACE_BURST_S, Pacer, _demand
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
    pacer.set_rate(50_000)  # 5 s hold ~31 KB
    sent: list[bytes] = []
    for p in packets(60):  # 75 KB
        pacer.send(sent.append, p)
    assert pacer.dropped_packets > 0
    assert pacer.queued_bytes * 8 <= 50_000 * KEYFRAME_DELIVERY_S
    pacer.set_rate(None)  # pacing off: what waits goes at once
    assert len(sent) == 60 - pacer.dropped_packets and pacer.queued_bytes == 0
    pacer.close()


class _Layer:
    def __init__(self, average: int, current: int, keyframe_bytes: int) -> None:
        self.average_bitrate_bps = average
        self.bitrate_bps = current
        self.keyframe_bytes = keyframe_bytes


class _Consumer:
    def __init__(self, layers: dict[int, _Layer]) -> None:
        self.id = "c1"
        self.kind = "video"
        self.app_data = {"priority": 1}
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
