"""The link benchmark's analysis (``synclass.bench.link``): pure, logs in, figures out."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from synclass.bench import link as bench


def frames_at(*times: float) -> list[list[Any]]:
    return [[t, 1280, 720] for t in times]


# The constrained stretch runs from t=100 to t=160 in every row.
@pytest.mark.parametrize(
    ("frames", "changes", "expected"),
    [
        # 5 fps throughout: no gap longer than a frame interval (and the edges)
        (frames_at(*[100 + i * 0.2 for i in range(300)]), [],
         {"courseware_fps": 5.0, "courseware_longest_gap_s": 0.2, "courseware_paused_s": 0.0, "courseware_pauses": 0}),
        # a frame every 4 s (a slide refreshed by key frames only): gaps of 4 s,
        # the first one from the drop itself
        (frames_at(*[104 + 4 * i for i in range(14)]), [],
         {"courseware_fps": 0.23, "courseware_longest_gap_s": 4.0, "courseware_paused_s": 0.0, "courseware_pauses": 0}),
        # nothing after t=110 and never paused: 50 s without a refresh
        (frames_at(100.5, 110.0), [],
         {"courseware_fps": 0.03, "courseware_longest_gap_s": 50.0, "courseware_paused_s": 0.0, "courseware_pauses": 0}),
        # paused by the server from 102 to 150: the pause does not count as a gap
        # (101 -> 153 is 1 s before it and 3 s to come back after the resume: 4 s);
        # the longest is the 5 s between the last two frames
        (frames_at(101.0, 153.0, 154.0, 159.0), [(102.0, None), (150.0, 0)],
         {"courseware_fps": 0.07, "courseware_longest_gap_s": 5.0, "courseware_paused_s": 48.0,
          "courseware_pauses": 1}),
        # paused before the drop and never resumed: all paused, no gap
        ([], [(50.0, None)],
         {"courseware_fps": 0.0, "courseware_longest_gap_s": 0.0, "courseware_paused_s": 60.0, "courseware_pauses": 0}),
        # two pauses within the stretch (a repeated pause push counts once); frames before
        # and after the stretch do not count
        (frames_at(99.0, 100.1, 120.0, 140.0, 165.0), [(110.0, None), (111.0, None), (115.0, 0), (130.0, None), (135.0, 0)],
         {"courseware_fps": 0.05, "courseware_longest_gap_s": 20.0, "courseware_paused_s": 10.0,
          "courseware_pauses": 2}),
        # no courseware track at all (--no-courseware)
        (None, [],
         {"courseware_fps": None, "courseware_longest_gap_s": None, "courseware_paused_s": None,
          "courseware_pauses": None}),
    ],
)
def test_courseware_figures(frames: Optional[list[list[Any]]], changes: list[tuple[float, Optional[int]]],
                            expected: dict[str, Any]) -> None:
    assert bench.courseware_figures(frames, changes, 100.0, 160.0) == expected


def test_layer_changes_are_told_apart_by_consumer_and_old_logs_are_the_camera() -> None:
    log = {
        "consumers": {"cam123": "camera", "cw4567": "courseware", "mic890": "mic"},
        "layer_changes": [[1.0, "cam123", 2], [2.0, "cw4567", None], [3.0, "cam123", None], [4.0, "cw4567", 0]],
    }
    assert bench.layer_changes_of(log, "camera") == [(1.0, 2), (3.0, None)]
    assert bench.layer_changes_of(log, "courseware") == [(2.0, None), (4.0, 0)]
    assert bench.layer_changes_of({"layer_changes": [[1.0, None], [2.0, 1]]}, "camera") == [(1.0, None), (2.0, 1)]
    assert bench.layer_changes_of({"layer_changes": [[1.0, None]]}, "courseware") == []


def test_a_paused_courseware_does_not_count_as_a_paused_camera() -> None:
    camera = frames_at(*[100 + i / 15 for i in range(15 * 60)])  # the camera plays throughout
    log = {
        "frames": [[t, 320, 180] for t, _, _ in camera],
        "courseware": frames_at(100.5),
        "audio": [[100 + i * 0.02, i] for i in range(3000)],
        "consumers": {"cam": "camera", "cw": "courseware"},
        "layer_changes": [[101.0, "cw", None]],
    }
    figures = bench.analyze(log, 100.0, 160.0, 175.0, 300.0)
    assert figures["video_paused_s"] == 0.0
    assert figures["freezes_per_min"] == 0.0
    assert figures["courseware_paused_s"] == 59.0
    assert figures["courseware_pauses"] == 1
    assert figures["courseware_longest_gap_s"] == 0.5
    assert figures["audio_loss_pct"] == 0.0


def test_the_slide_track_answers_a_key_frame_request_with_the_current_slides_key_frame() -> None:
    chains = [[b"K0", b"d01", b"d02", b"d03"], [b"K1", b"d11", b"d12", b"d13"]]
    track = bench.SlideReplayTrack(chains, fps=1000)
    import asyncio

    async def take(n: int) -> list[bytes]:
        return [bytes(await track.recv()) for _ in range(n)]

    sent = asyncio.run(take(2))
    track.keyframe_now()
    sent += asyncio.run(take(7))
    assert sent == [b"K0", b"d01", b"K0", b"d01", b"K1", b"d11", b"d12", b"d13", b"K0"]
    assert [slide for _, slide in track.keyframes_sent] == [True, False, True, True]


def test_the_slides_are_encoded_as_one_chain_per_slide_each_starting_with_a_key_frame() -> None:
    chains, info = bench.encode_slides(320, 180, fps=5, slide_s=1.0, slides=2, bitrate=300_000)
    assert [len(chain) for chain in chains] == [5, 5]
    for chain in chains:
        key, *deltas = chain
        assert not key[0] & 0x01 and key[3:6] == b"\x9d\x01\x2a"  # a key frame (RFC 6386 9.1)
        assert int.from_bytes(key[6:8], "little") & 0x3FFF == 320
        assert all(d[0] & 0x01 for d in deltas)  # inter frames
    assert info["keyframe_bytes"] == [len(chain[0]) for chain in chains]
    assert info["loop_kbps"] > 0


class _Receiver:
    """Stands in for aiortc's receiver: records the key frame requests (pure-logic test)."""

    def __init__(self) -> None:
        self.plis: list[int] = []

    async def _send_rtcp_pli(self, media_ssrc: int) -> None:
        self.plis.append(media_ssrc)


async def test_the_classroom_asks_for_a_key_frame_after_a_second_of_unrecovered_loss_as_a_browser_does() -> None:
    import asyncio

    receiver = _Receiver()
    asker = bench.KeyframeAsker(receiver)
    t = 100.0
    for seq in (65530, 65531, 65533, 65534):  # 65532 missing
        asker.packet(t, 7, seq)
        t += 0.1
    asker.packet(t, 7, 65532)  # ... retransmitted in time: nothing to ask
    for seq in (65535, 1, 2):  # 0 missing, across the wrap
        t += 0.2
        asker.packet(t, 7, seq)
    await asyncio.sleep(0)
    assert receiver.plis == []
    t += bench.KeyframeAsker.GIVE_UP_S
    asker.packet(t, 7, 3)  # 0 is a second old: given up, a key frame asked for
    asker.packet(t + 0.1, 7, 5)  # 4 missing: not again within REPEAT_S
    await asyncio.sleep(0)
    assert receiver.plis == [7] and asker.asked == 1
    asker.packet(t + 0.1 + bench.KeyframeAsker.GIVE_UP_S, 7, 6)  # 4 given up a repeat later
    await asyncio.sleep(0)
    assert receiver.plis == [7, 7]
