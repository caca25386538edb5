"""The recording lifecycle through the real signaling, against the fake
media plane with recorders: which tracks are recorded, the manifest and
index row kept in step, consent, failures, and recovery at start."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import manifest as mf
from server.app import create_app
from server.keys import RECORDINGS

from .conftest import ADMIN, get, make_campus, post, settings_for, token_for
from .fakerecorder import RecordingMediaPlane
from .wsutil import call, connect

CAMERA_LAYERS_AND_MIC = {
    "0": {"source": "camera", "layer": 0},
    "1": {"source": "camera", "layer": 1},
    "2": {"source": "camera", "layer": 2},
    "3": {"source": "mic"},
}


@pytest.fixture
def media() -> RecordingMediaPlane:
    return RecordingMediaPlane()


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, media: RecordingMediaPlane) -> TestClient:
    return await aiohttp_client(create_app(settings_for(tmp_path), media=media))


def lesson_dir(tmp_path: Path, session_id: str) -> Path:
    return tmp_path / "data" / "recordings" / session_id


async def until(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    """Wait (bounded) for the background recording worker."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return mf.read(directory)
    except FileNotFoundError:
        return None


class Lesson:
    def __init__(self, client: TestClient, tmp_path: Path) -> None:
        self.client = client
        self.tmp_path = tmp_path

    async def open(self, **start: Any) -> Lesson:
        self.campus = await make_campus(self.client)
        self.teacher, self.teacher_welcome = await connect(
            self.client, await token_for(self.client, self.campus.lecture["id"], "teacher", name="Ms Li")
        )
        self.classroom, self.classroom_welcome = await connect(
            self.client, await token_for(self.client, self.campus.classroom["id"], "classroom")
        )
        self.session = (await call(self.teacher, {"type": "start_session", "title": "Fractions",
                                                   "subject": "Maths", **start}))["session"]
        await call(self.teacher, {"type": "join"})
        await call(self.classroom, {"type": "join"})
        return self

    @property
    def dir(self) -> Path:
        return lesson_dir(self.tmp_path, self.session["id"])

    def manifest(self) -> dict[str, Any] | None:
        return read_manifest(self.dir)

    async def tracks(self, count: int) -> list[dict[str, Any]]:
        """The manifest once it lists ``count`` tracks with known offsets."""
        def ready() -> list[dict[str, Any]] | None:
            m = self.manifest()
            if m is None or len(m["tracks"]) != count:
                return None
            return m["tracks"]

        tracks: list[dict[str, Any]] = await until(ready)
        return tracks


@pytest.fixture
async def lesson(client: TestClient, tmp_path: Path) -> Lesson:
    return await Lesson(client, tmp_path).open()


async def test_the_teachers_top_camera_layer_mic_and_later_courseware_are_recorded(
    lesson: Lesson, media: RecordingMediaPlane
) -> None:
    published = await call(lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_LAYERS_AND_MIC})
    top_layer = published["producers"][0]["id"]
    tracks = await lesson.tracks(2)
    assert [(t["file"], t["kind"], t["source"], t["role"], t["status"]) for t in tracks] == [
        ("01-teacher-camera.webm", "video", "camera", "teacher", "recording"),
        ("02-teacher-mic.webm", "audio", "mic", "teacher", "recording"),
    ]
    assert [r.producer_id for r in media.open_recorders()][0] == top_layer
    assert len(media.open_recorders()) == 2  # layers 1 and 2 are not recorded
    assert tracks[0]["participant_name"] == "Ms Li"
    assert tracks[0]["room_id"] == lesson.campus.lecture["id"]
    assert tracks[0]["room_name"] == "Room 101"
    # courseware shared mid-lesson starts recording then
    await call(lesson.teacher, {"type": "publish", "sdp": "o2",
                                "tracks": {**CAMERA_LAYERS_AND_MIC, "4": {"source": "courseware"}}})
    tracks = await lesson.tracks(3)
    assert tracks[2]["file"] == "03-teacher-courseware.webm"
    manifest = lesson.manifest()
    assert manifest is not None
    assert {k: manifest[k] for k in mf.META_FIELDS} == {
        "session_id": lesson.session["id"],
        "title": "Fractions",
        "subject": "Maths",
        "teacher_name": "Ms Li",
        "school_id": lesson.campus.school["id"],
        "school_name": "Urban No. 1",
        "lecture_room_id": lesson.campus.lecture["id"],
        "room_name": "Room 101",
    }
    assert (manifest["status"], manifest["ended_at"]) == ("recording", None)
    listed = await get(lesson.client, "/api/recordings")
    assert [(r["id"], r["status"], r["tracks"]) for r in listed["recordings"]] == [
        (lesson.session["id"], "recording", 3)
    ]


async def test_a_classroom_on_stage_is_recorded_in_segments(lesson: Lesson, media: RecordingMediaPlane) -> None:
    await call(lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": {"0": {"source": "camera"}}})
    await call(lesson.classroom, {"type": "publish", "sdp": "c1",
                                  "tracks": {"0": {"source": "camera"}, "1": {"source": "mic"}}})
    await lesson.tracks(1)  # not on stage: not recorded
    classroom_id = lesson.classroom_welcome["participant_id"]
    room_id = lesson.campus.classroom["id"]
    for _ in range(2):
        await call(lesson.teacher, {"type": "stage", "participant_id": classroom_id})
        await until(lambda: len(media.open_recorders()) == 3)
        await call(lesson.teacher, {"type": "unstage", "participant_id": classroom_id})
        await until(lambda: len(media.open_recorders()) == 1)
    tracks = await lesson.tracks(5)
    assert [(t["file"], t["status"]) for t in tracks] == [
        ("01-teacher-camera.webm", "recording"),
        (f"02-classroom-{room_id}-camera.webm", "complete"),
        (f"03-classroom-{room_id}-mic.webm", "complete"),
        (f"04-classroom-{room_id}-camera.webm", "complete"),
        (f"05-classroom-{room_id}-mic.webm", "complete"),
    ]
    assert tracks[1]["room_name"] == "Grade 3"
    assert tracks[1]["offset_s"] < tracks[3]["offset_s"]  # the second segment came later


async def test_the_end_closes_every_recorder_and_completes_the_manifest(
    lesson: Lesson, media: RecordingMediaPlane
) -> None:
    await call(lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_LAYERS_AND_MIC})
    await lesson.tracks(2)
    await asyncio.sleep(0.3)  # past the first frame (the fake's at +0.25 s)
    await call(lesson.teacher, {"type": "end_session"})
    assert media.open_recorders() == []
    manifest = lesson.manifest()
    assert manifest is not None
    assert manifest["status"] == "complete"
    assert manifest["ended_at"] >= manifest["started_at"]
    assert [t["status"] for t in manifest["tracks"]] == ["complete", "complete"]
    for track in manifest["tracks"]:
        assert track["offset_s"] == pytest.approx(0.25, abs=0.1)
        assert track["bytes"] == (lesson.dir / track["file"]).stat().st_size
        assert track["duration_s"] > 0
    assert manifest["tracks"][0]["codec"] == "vp8"
    assert (manifest["tracks"][0]["width"], manifest["tracks"][0]["height"]) == (640, 480)
    detail = await get(lesson.client, f"/api/recordings/{lesson.session['id']}")
    assert detail["recording"]["status"] == "complete"
    assert detail["in_progress"] is False
    assert detail["manifest"] == manifest
    assert detail["recording"]["bytes"] == sum(t["bytes"] for t in manifest["tracks"])


async def test_a_lesson_created_without_consent_is_not_recorded(
    client: TestClient, tmp_path: Path, media: RecordingMediaPlane
) -> None:
    lesson = await Lesson(client, tmp_path).open(record=False)
    assert lesson.session["record"] is False
    await call(lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_LAYERS_AND_MIC})
    await asyncio.sleep(0.2)
    assert media.recorders == []
    assert not lesson.dir.exists()
    assert (await get(client, "/api/recordings"))["recordings"] == []


async def test_a_scheduled_session_keeps_its_consent(client: TestClient) -> None:
    campus = await make_campus(client)
    body = {"lecture_room_id": campus.lecture["id"], "title": "T", "subject": "S", "teacher_name": "Li"}
    assert (await post(client, "/api/sessions", body))["record"] is True
    refused = await post(client, "/api/sessions", {**body, "record": False})
    assert (await get(client, f"/api/sessions/{refused['id']}"))["record"] is False
    bad = await client.post("/api/sessions", json={**body, "record": "no"}, headers=ADMIN)
    assert bad.status == 422
    assert (await bad.json())["error"] == {
        "code": "invalid", "message": "field 'record' must be a boolean", "field": "record"
    }


async def test_a_recorder_that_fails_is_logged_and_the_rest_carry_on(
    lesson: Lesson, media: RecordingMediaPlane, caplog: pytest.LogCaptureFixture
) -> None:
    media.fail_sources.add("camera")
    with caplog.at_level(logging.ERROR, logger="server.recording"):
        published = await call(lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_LAYERS_AND_MIC})
        assert published["type"] == "published"
        tracks = await lesson.tracks(1)
    assert [t["source"] for t in tracks] == ["mic"]
    assert "failed to start" in caplog.text
    # the lesson goes on: the classroom still receives the teacher
    offer = await call(lesson.classroom, {"type": "ping"})
    assert offer["type"] == "pong"


async def test_a_recording_goes_on_in_the_same_directory_after_a_restart(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    first_media = RecordingMediaPlane()
    first = await aiohttp_client(create_app(settings, media=first_media))
    lesson = await Lesson(first, tmp_path).open()
    await call(lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_LAYERS_AND_MIC})
    await lesson.tracks(2)
    await first.close()  # a clean shutdown: the files are closed, the lesson stays live
    manifest = lesson.manifest()
    assert manifest is not None and manifest["status"] == "complete"

    second = await aiohttp_client(create_app(settings, media=RecordingMediaPlane()))
    teacher, _ = await connect(second, await token_for(second, lesson.campus.lecture["id"], "teacher"))
    await call(teacher, {"type": "join"})
    await call(teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_LAYERS_AND_MIC})
    tracks = await lesson.tracks(4)
    assert [t["file"] for t in tracks] == [
        "01-teacher-camera.webm", "02-teacher-mic.webm", "03-teacher-camera.webm", "04-teacher-mic.webm"
    ]
    assert lesson.manifest()["started_at"] == manifest["started_at"]  # type: ignore[index]


async def test_an_interrupted_recording_is_recovered_at_start(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    directory = lesson_dir(tmp_path, "crashed1")
    directory.mkdir(parents=True)
    zero = 1_763_860_000.0
    tracks = [
        {**mf.new_track(file="01-teacher-camera.webm", kind="video", source="camera", role="teacher",
                        participant_name="Ms Li", room_id="r1", room_name="Room 101"), "offset_s": 0.5},
        {**mf.new_track(file="02-teacher-mic.webm", kind="audio", source="mic", role="teacher",
                        participant_name="Ms Li", room_id="r1", room_name="Room 101"), "offset_s": 0.4},
        {**mf.new_track(file="03-teacher-courseware.webm", kind="video", source="courseware",
                        role="teacher", participant_name="Ms Li", room_id="r1", room_name="Room 101"),
         "status": "complete", "offset_s": 2.0, "duration_s": 5.0, "bytes": 10},
        mf.new_track(file="04-teacher-camera.webm", kind="video", source="camera", role="teacher",
                     participant_name="Ms Li", room_id="r1", room_name="Room 101"),
    ]
    meta = {"session_id": "crashed1", "title": "Poems", "subject": "Chinese", "teacher_name": "Ms Li",
            "school_id": "s1", "school_name": "Urban No. 1", "lecture_room_id": "r1", "room_name": "Room 101"}
    mf.write(directory, mf.build(meta, began_at=zero, ended_at=None, status="recording", tracks=tracks,
                                 first_frames=[None] * 4))
    for t in tracks:
        (directory / t["file"]).write_bytes(b"x" * 100)
    media = RecordingMediaPlane()
    media.recoverable = {
        "01-teacher-camera.webm": {"file": "01-teacher-camera.webm", "kind": "video", "codec": "vp8",
                                   "container": "webm", "started_at": zero + 0.5, "duration_s": 41.5,
                                   "frames": 1245, "bytes": 99, "width": 1280, "height": 720},
        "02-teacher-mic.webm": {"file": "02-teacher-mic.webm", "kind": "audio", "codec": "opus",
                                "container": "webm", "started_at": None, "duration_s": 40.0,
                                "frames": 2000, "bytes": 98, "width": None, "height": None},
        "04-teacher-camera.webm": None,  # nothing playable
    }
    client = await aiohttp_client(create_app(settings, media=media))
    await client.app[RECORDINGS].wait_recovered()
    recovered = mf.read(directory)
    assert recovered["status"] == "recovered"
    assert [(t["file"], t["status"]) for t in recovered["tracks"]] == [
        ("01-teacher-camera.webm", "recovered"),
        ("02-teacher-mic.webm", "recovered"),
        ("03-teacher-courseware.webm", "complete"),
    ]
    camera, mic, _ = recovered["tracks"]
    assert (camera["duration_s"], camera["bytes"], camera["width"], camera["offset_s"]) == (41.5, 99, 1280, 0.5)
    assert (mic["duration_s"], mic["offset_s"]) == (40.0, 0.4)  # offset kept when the file does not say
    assert recovered["ended_at"] == pytest.approx(zero + 42.0)
    assert sorted(Path(p).name for p in media.recovered) == [
        "01-teacher-camera.webm", "02-teacher-mic.webm", "04-teacher-camera.webm"
    ]
    listed = await get(client, "/api/recordings?status=recovered")
    (entry,) = listed["recordings"]
    assert (entry["id"], entry["status"], entry["duration_s"], entry["title"]) == ("crashed1", "recovered", 42.0, "Poems")
    assert entry["started_at"] == "2025-11-23T01:06:40.000Z"
    assert entry["ended_at"] == "2025-11-23T01:07:22.000Z"
    deleted = await client.delete("/api/recordings/crashed1", headers=ADMIN)
    assert deleted.status == 204
    assert not directory.exists()


async def test_a_recording_in_progress_cannot_be_deleted_or_exported(lesson: Lesson) -> None:
    await call(lesson.teacher, {"type": "publish", "sdp": "o1", "tracks": CAMERA_LAYERS_AND_MIC})
    await lesson.tracks(2)
    session_id = lesson.session["id"]
    for method, path, verb in (("DELETE", "", "delete"), ("POST", "/export", "export")):
        response = await lesson.client.request(method, f"/api/recordings/{session_id}{path}", headers=ADMIN)
        assert response.status == 409
        assert (await response.json())["error"] == {
            "code": "conflict",
            "message": f"recording {session_id} is in progress; {verb} it after the lesson ends",
        }
    await call(lesson.teacher, {"type": "end_session"})
    response = await lesson.client.delete(f"/api/recordings/{session_id}", headers=ADMIN)
    assert response.status == 204
    assert not lesson.dir.exists()
    missing = await lesson.client.get(f"/api/recordings/{session_id}", headers=ADMIN)
    assert missing.status == 404
    assert (await missing.json())["error"]["message"] == f"recording {session_id} not found"


def test_manifest_json_on_disk_is_what_the_contract_shows(tmp_path: Path) -> None:
    track = mf.new_track(file="01-teacher-camera.webm", kind="video", source="camera", role="teacher",
                         participant_name="Li", room_id="r", room_name="R")
    manifest = mf.build({"session_id": "s"}, began_at=10.0, ended_at=None, status="recording",
                        tracks=[track], first_frames=[10.42])
    mf.write(tmp_path, manifest)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert list(data) == ["version", *mf.META_FIELDS, "started_at", "ended_at", "status", "tracks"]
    assert list(data["tracks"][0]) == list(mf.TRACK_FIELDS)
    assert data["tracks"][0]["offset_s"] == 0.42
    assert not (tmp_path / ".manifest.json.tmp").exists()
