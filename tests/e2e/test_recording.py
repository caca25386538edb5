"""Recording end to end: ``synclass demo`` records its lesson (every file
opens in PyAV and decodes at the published size, durations and offsets line
up), and a server killed with SIGKILL mid-lesson leaves files that decode up
to the last ~2 s and are listed as recovered after a restart."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import pytest

from media.aiortc_hooks import set_ice_host_addresses
from synclass.client import LessonClient
from synclass.serverproc import AdminApi, ServerProcess
from synclass.synthetic import TestPatternTrack, ToneTrack

from .recording_helpers import lesson_dirs, read_track

DEMO_SECONDS = 20.0
CAMERA, COURSEWARE, CLASSROOM = (640, 480), (1280, 720), (240, 180)


@pytest.fixture(scope="module")
def demo_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """One 20 s demo lesson with two classrooms, recorded: its directory,
    manifest and the demo's summary line."""
    data = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "synclass", "demo", "--seconds", str(DEMO_SECONDS), "--classrooms", "2",
         "--data-dir", str(data), "--check"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"recordings  {data / 'recordings'}" in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    (lesson,) = lesson_dirs(data / "recordings")
    manifest = json.loads((lesson / "manifest.json").read_text())
    return lesson, manifest, summary


def by_file(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["file"]: t for t in manifest["tracks"]}


def test_the_demo_records_teacher_courseware_and_the_classroom_on_stage(
    demo_recording: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    lesson, manifest, summary = demo_recording
    assert summary["ok"] is True
    assert manifest["status"] == "complete"
    assert manifest["title"] == "Demo lesson" and manifest["subject"] == "Mathematics"
    kinds = [(t["role"], t["source"], t["kind"]) for t in manifest["tracks"]]
    assert kinds[:3] == [("teacher", "camera", "video"), ("teacher", "mic", "audio"),
                         ("teacher", "courseware", "video")]
    assert sorted(kinds[3:]) == [("classroom", "camera", "video"), ("classroom", "mic", "audio")]
    assert [t["file"].split("-")[0] for t in manifest["tracks"]] == ["01", "02", "03", "04", "05"]
    assert all(t["status"] == "complete" for t in manifest["tracks"])
    assert sorted(p.name for p in lesson.iterdir()) == sorted(["manifest.json", *by_file(manifest)])


def test_every_recorded_file_opens_and_decodes_at_the_published_size(
    demo_recording: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    lesson, manifest, _ = demo_recording
    sizes = {"camera": CAMERA, "courseware": COURSEWARE}
    for track in manifest["tracks"]:
        found = read_track(lesson / track["file"])
        assert found.frames > 0, track
        assert found.errors == 0, (track["file"], found)
        if track["kind"] == "video":
            size = CLASSROOM if track["role"] == "classroom" else sizes[track["source"]]
            assert found.sizes == {size}, (track["file"], found.sizes)
            assert (track["width"], track["height"]) == size
        # the file's own duration and the manifest's agree
        assert abs(found.duration_s - track["duration_s"]) < 0.5, (track["file"], found, track)
        assert track["bytes"] == (lesson / track["file"]).stat().st_size


def test_durations_and_offsets_line_up_with_the_lesson(
    demo_recording: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    _, manifest, _ = demo_recording
    teacher = [t for t in manifest["tracks"] if t["role"] == "teacher"]
    classroom = [t for t in manifest["tracks"] if t["role"] == "classroom"]
    lesson_s = manifest["ended_at"] - manifest["started_at"]
    # the teacher published at once and until the end: her tracks last the lesson
    for t in teacher:
        assert t["offset_s"] < 1.0, t
        assert abs(t["offset_s"] + t["duration_s"] - lesson_s) < 1.0, (t, lesson_s)
        assert DEMO_SECONDS - 1.0 < t["duration_s"] < DEMO_SECONDS + 5.0, t
    # her camera and mic start together (sender reports map both clocks)
    assert abs(teacher[0]["offset_s"] - teacher[1]["offset_s"]) < 0.6, teacher
    # the classroom was called on stage a third into the lesson and stayed
    camera_start = teacher[0]["offset_s"]
    for t in classroom:
        assert DEMO_SECONDS / 3 - 0.5 < t["offset_s"] - camera_start < DEMO_SECONDS / 3 + 5.0, t
        assert abs(t["offset_s"] + t["duration_s"] - lesson_s) < 1.5, (t, lesson_s)


async def _start_lesson(server: ServerProcess) -> tuple[AdminApi, LessonClient, str]:
    api = AdminApi(server.url, server.admin_key)
    setup = await api.lesson_setup(1)
    token = await api.token(setup["lecture"]["id"], "teacher", "Teacher Li")
    teacher = LessonClient(server.url, token["token"], "Teacher Li", decode=False)
    await teacher.connect()
    session = await teacher.start_session(title="Crash lesson", subject="Physics")
    await teacher.join()
    await teacher.publish([(TestPatternTrack(320, 240, 15, "crash"), "camera"), (ToneTrack(), "mic")])
    return api, teacher, str(session["session"]["id"])


async def _poll(fn: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await fn()
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {timeout} s")


async def test_a_server_killed_mid_lesson_leaves_playable_files_listed_as_recovered_after_restart(
    tmp_path: Path,
) -> None:
    set_ice_host_addresses(["127.0.0.1"])
    server = ServerProcess(tmp_path / "data")
    server.start()
    teacher = None
    try:
        await server.wait_ready()
        api, teacher, session_id = await _start_lesson(server)
        lesson = tmp_path / "data" / "recordings" / session_id

        async def both_offsets_known() -> bool:
            try:
                m = json.loads((lesson / "manifest.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return False
            return len(m["tracks"]) == 2 and all(t["offset_s"] is not None for t in m["tracks"])

        await _poll(both_offsets_known, 15)
        await asyncio.sleep(6.0)
        killed_at = time.time()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    finally:
        if teacher is not None:
            await teacher.close()
    manifest = json.loads((lesson / "manifest.json").read_text())
    assert manifest["status"] == "recording"
    # before any recovery: each file decodes up to at least the kill time - 2 s
    for track in manifest["tracks"]:
        found = read_track(lesson / track["file"])
        start = manifest["started_at"] + track["offset_s"]
        assert found.frames > 0, track
        assert start + found.last_s >= killed_at - 2.0, (track["file"], found, killed_at - start)
        if track["kind"] == "video":
            assert found.sizes == {(320, 240)}

    again = ServerProcess(tmp_path / "data")
    again.start()
    try:
        await again.wait_ready()
        api = AdminApi(again.url, again.admin_key)

        async def recovered() -> list[dict[str, Any]]:
            listed = await api.call("GET", "/api/recordings?status=recovered", expect=200)
            return list(listed["recordings"])

        (entry,) = await _poll(recovered, 20)
        assert entry["id"] == session_id
        assert entry["title"] == "Crash lesson"
        detail = await api.call("GET", f"/api/recordings/{session_id}", expect=200)
        assert detail["manifest"]["status"] == "recovered"
        assert [t["status"] for t in detail["manifest"]["tracks"]] == ["recovered", "recovered"]
        lesson_s = killed_at - manifest["started_at"]
        assert entry["duration_s"] >= lesson_s - 2.0, (entry, lesson_s)
        for track in detail["manifest"]["tracks"]:
            found = read_track(lesson / track["file"])
            assert found.errors == 0, (track["file"], found)
            assert abs(found.duration_s - track["duration_s"]) < 0.5, (track, found)
            assert track["offset_s"] + track["duration_s"] >= lesson_s - 2.0, (track, lesson_s)
    finally:
        code = again.stop()
    assert code == 0, again.log_text()[-3000:]
    assert "Traceback" not in again.log_text(), again.log_text()[-3000:]


async def test_the_api_exports_the_demo_lesson_to_one_mp4(
    demo_recording: tuple[Path, dict[str, Any], dict[str, Any]], aiohttp_client: Any,
) -> None:
    from server.app import create_app
    from server.settings import load_settings

    lesson, manifest, _ = demo_recording
    key = "e2e-admin-key-0123456789"
    settings = load_settings(env={}, data_dir=lesson.parent.parent, admin_key=key)
    client = await aiohttp_client(create_app(settings))
    headers = {"Authorization": f"Bearer {key}"}
    started = await client.post(f"/api/recordings/{lesson.name}/export", headers=headers)
    assert started.status == 202, await started.text()
    job = await started.json()
    progress = []
    for _ in range(600):  # bounded: 60 s
        job = await (await client.get(f"/api/exports/{job['id']}", headers=headers)).json()
        progress.append(job["progress"])
        if job["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "done", job
    assert progress == sorted(progress) and progress[-1] == 1.0
    response = await client.get(job["file_url"], headers=headers)
    assert response.status == 200 and response.headers["Content-Type"] == "video/mp4"
    out = lesson / "export.mp4"
    assert await response.read() == out.read_bytes()
    with av.open(str(out)) as mp4:
        video = mp4.streams.video[0]
        assert video.codec_context.name == "h264"
        assert mp4.streams.audio[0].codec_context.name == "aac"
        duration = mp4.duration / 1_000_000
    lesson_s = manifest["ended_at"] - manifest["started_at"]
    assert abs(duration - lesson_s) < 1.0, (duration, lesson_s)
    detail = await (await client.get(f"/api/recordings/{lesson.name}", headers=headers)).json()
    assert detail["export"]["bytes"] == out.stat().st_size
