"""A lesson end to end through a real server process: aiortc teacher + 3 classrooms."""

from __future__ import annotations

import asyncio
import time

from synclass.client import LessonClient
from synclass.synthetic import TestPatternTrack, ToneTrack

from .conftest import Lesson, wait_until

WIDTH, HEIGHT = 640, 480


async def start_teacher(lesson: Lesson) -> LessonClient:
    teacher = lesson.client("teacher", decode=False)
    await teacher.connect()
    await teacher.start_session(title="Fractions", subject="Mathematics")
    await teacher.join()
    await teacher.publish([(TestPatternTrack(WIDTH, HEIGHT, 30), "camera"), (ToneTrack(), "mic")])
    return teacher


async def join_classroom(lesson: Lesson, who: str) -> LessonClient:
    c = lesson.client(who)
    welcome = await c.connect()
    assert welcome["session"] is not None, f"{who} sees no live session"
    await c.join()
    return c


def frames(c: LessonClient, kind: str) -> int:
    return sum(t.frames for t in c.tracks(kind))


async def test_three_classrooms_decode_the_teacher_at_the_published_size_and_the_server_never_transcodes(
    lesson: Lesson,
) -> None:
    await start_teacher(lesson)
    classrooms = [await join_classroom(lesson, f"classroom{i}") for i in (1, 2, 3)]
    ok = await wait_until(lambda: all(frames(c, "video") >= 30 and frames(c, "audio") >= 50 for c in classrooms), 20)
    assert ok, [(c.name, frames(c, "video"), frames(c, "audio")) for c in classrooms]
    for c in classrooms:
        (video,) = c.tracks("video")
        (audio,) = c.tracks("audio")
        assert video.sizes == {(WIDTH, HEIGHT)}
        assert video.source == "camera" and audio.source == "mic"
    stats = await lesson.api.stats()
    counters = stats["media"]
    assert counters["decoders_created"] == 0
    assert counters["encoders_created"] == 0
    assert counters["rtp_packets_out"] > 3 * 30


async def test_a_classroom_that_vanishes_does_not_disturb_the_others(lesson: Lesson) -> None:
    teacher = await start_teacher(lesson)
    classrooms = [await join_classroom(lesson, f"classroom{i}") for i in (1, 2, 3)]
    assert await wait_until(lambda: all(frames(c, "video") >= 10 for c in classrooms), 20)
    gone, stay = classrooms[0], classrooms[1:]
    mark = len(teacher.events)
    await gone.vanish()
    before = [(frames(c, "video"), frames(c, "audio")) for c in stay]
    await asyncio.sleep(3)
    after = [(frames(c, "video"), frames(c, "audio")) for c in stay]
    for (v0, a0), (v1, a1) in zip(before, after):
        assert v1 - v0 >= 30, "video stalled for a remaining classroom"
        assert a1 - a0 >= 50, "audio stalled for a remaining classroom"
    left = await teacher.wait_for("participant_left", timeout=30, since=mark)
    assert left["participant_id"] == gone.welcome["participant_id"]
    # the teacher is still live and the others still receive
    assert teacher.session is not None


async def test_a_late_classroom_gets_a_keyframe_and_decodes_within_two_seconds(lesson: Lesson) -> None:
    await start_teacher(lesson)
    first = await join_classroom(lesson, "classroom1")
    assert await wait_until(lambda: frames(first, "video") >= 10, 20)
    # aiortc's VP8 encoder sends keyframes only on request: a late joiner
    # decodes only if the server asked the teacher for one.
    await asyncio.sleep(3)
    late = lesson.client("classroom2")
    await late.connect()
    joined_at = time.monotonic()
    await late.join()
    assert await wait_until(lambda: frames(late, "video") >= 1, 5)
    (video,) = late.tracks("video")
    assert video.first_frame_at is not None
    assert video.first_frame_at - joined_at < 2.0
    assert video.sizes == {(WIDTH, HEIGHT)}


async def test_malformed_sdp_gets_a_clear_error_and_the_lesson_carries_on(lesson: Lesson) -> None:
    await start_teacher(lesson)
    watcher = await join_classroom(lesson, "classroom1")
    assert await wait_until(lambda: frames(watcher, "video") >= 10, 20)
    rogue = lesson.client("classroom2")
    await rogue.connect()
    await rogue.join()
    before = frames(watcher, "video")
    for sdp in ("not an sdp", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"):
        try:
            await rogue.request("publish", sdp=sdp, tracks={"0": {"source": "camera"}})
        except Exception as exc:  # SignalingError
            assert getattr(exc, "code", None) == "bad_sdp", exc
        else:
            raise AssertionError("a malformed offer was accepted")
    # the socket is still usable and the lesson still flows to the others
    assert (await rogue.request("ping"))["type"] == "pong"
    await asyncio.sleep(2)
    assert frames(watcher, "video") - before >= 30


async def test_a_classroom_that_negotiates_no_remb_sends_none_and_still_decodes(lesson: Lesson) -> None:
    """synclass's Python classroom with remb=False (the demo's): its answer has no
    goog-remb and no abs-send-time, so aiortc estimates nothing and sends no REMB;
    the server adapts its link by loss alone. One with REMB beside it sends some."""
    teacher = await start_teacher(lesson)
    plain = await join_classroom(lesson, "classroom1")
    quiet = lesson.client("classroom2")
    quiet.remb = False
    await quiet.connect()
    await quiet.join()
    assert await wait_until(lambda: frames(plain, "video") >= 30 and frames(quiet, "video") >= 30, 20)
    assert quiet.pc_receive is not None
    answer = quiet.pc_receive.localDescription.sdp
    assert "goog-remb" not in answer and "abs-send-time" not in answer
    assert "abs-send-time" in plain.pc_receive.localDescription.sdp  # type: ignore[union-attr]
    session_id = teacher.session["id"]  # type: ignore[index]

    async def video_remb() -> dict[str, object]:
        data = await lesson.api.call("GET", f"/api/sessions/{session_id}/links")
        return {link["participant"]["id"]: next(c["remb_bps"] for c in link["consumers"] if c["kind"] == "video")
                for link in data["links"] if link["consumers"]}

    plain_id, quiet_id = plain.welcome["participant_id"], quiet.welcome["participant_id"]
    deadline = time.monotonic() + 10
    rembs = await video_remb()
    while rembs.get(plain_id) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        rembs = await video_remb()
    assert rembs[plain_id] is not None and rembs[plain_id] > 0  # type: ignore[operator]
    assert rembs[quiet_id] is None
    assert frames(quiet, "video") >= 30 and quiet.tracks("video")[0].sizes == {(WIDTH, HEIGHT)}
