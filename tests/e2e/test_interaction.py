"""The interactive lesson end to end: aiortc teacher + 3 classrooms through a real server.

Every classroom publishes its own camera (a test pattern of a size of its
own, so a decoded frame's size says whose it is) and microphone. The
teacher receives them all; classroom A raises a hand, goes on stage and B
and C then decode A; off stage they stop; muted, A's sound stops reaching
the teacher.
"""

from __future__ import annotations

import asyncio

from synclass.client import LessonClient
from synclass.synthetic import TestPatternTrack, ToneTrack

from .conftest import Lesson, wait_until

TEACHER_SIZE = (320, 240)
SIZES = {"classroom1": (240, 160), "classroom2": (256, 144), "classroom3": (192, 112)}
FPS = 15


def frames(c: LessonClient, kind: str, participant_id: str) -> int:
    return sum(t.frames for t in c.tracks(kind, participant_id=participant_id))


def sizes(c: LessonClient, participant_id: str) -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    for t in c.tracks("video", participant_id=participant_id):
        found |= t.sizes
    return found


async def still(count: object, seconds: float = 1.5) -> tuple[int, int]:
    """The value of ``count()`` now and ``seconds`` later."""
    before = count()  # type: ignore[operator]
    await asyncio.sleep(seconds)
    return before, count()  # type: ignore[operator]


async def test_hand_stage_unstage_and_mute(lesson: Lesson) -> None:
    teacher = lesson.client("teacher")
    await teacher.connect()
    await teacher.start_session(title="Plants", subject="Science")
    await teacher.join()
    await teacher.publish([(TestPatternTrack(*TEACHER_SIZE, FPS), "camera"), (ToneTrack(), "mic")])

    rooms: dict[str, LessonClient] = {}
    for who, size in SIZES.items():
        c = rooms[who] = lesson.client(who)
        await c.connect()
        await c.join()
        await c.publish([(TestPatternTrack(*size, FPS), "camera"), (ToneTrack(330.0), "mic")])
    ids = {who: c.welcome["participant_id"] for who, c in rooms.items()}
    a, b, c_ = rooms["classroom1"], rooms["classroom2"], rooms["classroom3"]

    # The teacher's grid: every classroom, video at its own size, and its sound.
    assert await wait_until(
        lambda: all(
            frames(teacher, "video", ids[w]) >= 10 and frames(teacher, "audio", ids[w]) >= 20
            for w in rooms
        ),
        20,
    ), {w: (frames(teacher, "video", i), frames(teacher, "audio", i)) for w, i in ids.items()}
    for who, participant_id in ids.items():
        assert sizes(teacher, participant_id) == {SIZES[who]}
    # ... and by default no classroom receives another one.
    teacher_id = teacher.welcome["participant_id"]
    assert await wait_until(lambda: all(frames(c, "video", teacher_id) >= 10 for c in rooms.values()), 10)
    for c in rooms.values():
        assert {t.info.get("participant_id") for t in c.received} == {teacher.welcome["participant_id"]}
        assert sizes(c, teacher.welcome["participant_id"]) == {TEACHER_SIZE}

    # A raises its hand: the teacher sees it first in line.
    await a.raise_hand()
    assert await wait_until(lambda: teacher.hands() == [ids["classroom1"]], 5)

    # The teacher calls A on stage: B and C now decode A's camera and hear A.
    await teacher.stage(ids["classroom1"])
    assert await wait_until(lambda: a.me.get("on_stage") is True and a.me.get("hand") is None, 5)
    assert await wait_until(
        lambda: all(
            frames(c, "video", ids["classroom1"]) >= 10 and frames(c, "audio", ids["classroom1"]) >= 20
            for c in (b, c_)
        ),
        15,
    ), [(frames(c, "video", ids["classroom1"]), frames(c, "audio", ids["classroom1"])) for c in (b, c_)]
    for c in (b, c_):
        assert sizes(c, ids["classroom1"]) == {SIZES["classroom1"]}
        assert sizes(c, ids["classroom3" if c is b else "classroom2"]) == set()  # only the staged one
    assert teacher.hands() == []

    # Off stage: B and C stop receiving A (their frame counts stop).
    await teacher.unstage(ids["classroom1"])
    assert await wait_until(lambda: a.me.get("on_stage") is False, 5)
    await asyncio.sleep(1.0)  # what was in flight
    for c in (b, c_):
        before, after = await still(lambda c=c: frames(c, "video", ids["classroom1"]) + frames(c, "audio", ids["classroom1"]))
        assert before == after, f"{c.name} still receives the classroom taken off stage"
        # the teacher's stream is untouched
        t0, t1 = await still(lambda c=c: frames(c, "video", teacher.welcome["participant_id"]), 1.0)
        assert t1 > t0, f"{c.name} lost the teacher when the stage ended"

    # Mute: A's sound stops reaching the teacher; its camera and the others carry on.
    await teacher.mute("mic", True, participant_id=ids["classroom1"])
    assert await wait_until(lambda: a.me.get("muted", {}).get("mic") == "teacher", 5)
    await asyncio.sleep(0.5)
    audio_a = await still(lambda: frames(teacher, "audio", ids["classroom1"]))
    video_a = await still(lambda: frames(teacher, "video", ids["classroom1"]))
    audio_b = await still(lambda: frames(teacher, "audio", ids["classroom2"]))
    assert audio_a[0] == audio_a[1], "muted audio still reaches the teacher"
    assert video_a[1] > video_a[0], "muting the mic stopped the camera"
    assert audio_b[1] > audio_b[0], "muting A silenced B"

    # A cannot lift the teacher's mute; the teacher can, and the sound comes back.
    refused = None
    try:
        await a.mute("mic", False)
    except Exception as e:  # SignalingError
        refused = str(e)
    assert refused == "forbidden: your mic was turned off by the teacher; only the teacher can turn it back on"
    await teacher.mute("mic", False, participant_id=ids["classroom1"])
    before = frames(teacher, "audio", ids["classroom1"])
    assert await wait_until(lambda: frames(teacher, "audio", ids["classroom1"]) >= before + 20, 10)

    stats = await lesson.api.stats()
    assert stats["media"]["decoders_created"] == 0
    assert stats["media"]["encoders_created"] == 0
