"""The replay page in Chromium plays a lesson the real recorder wrote, and seeks.

A real server process records a short lesson of an aiortc teacher (camera,
mic, courseware); a second server (control plane only) serves that data
directory on the namespace's link; Chromium opens the admin page's Library
and the replay page, presses play, and seeks on the one timeline."""

from __future__ import annotations

import asyncio
import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from media.aiortc_hooks import set_ice_host_addresses
from server.app import create_app
from server.settings import Settings
from synclass.client import LessonClient
from synclass.serverproc import AdminApi, ServerProcess
from synclass.synthetic import TestPatternTrack, ToneTrack
from tests.browser.lesson_helpers import record_console

LESSON_S = 6.0


async def record_lesson(data_dir: Path) -> str:
    """A real lesson recorded by a real server; its session id."""
    set_ice_host_addresses(["127.0.0.1"])
    server = ServerProcess(data_dir)
    server.start()
    teacher = None
    try:
        await server.wait_ready()
        api = AdminApi(server.url, server.admin_key)
        setup = await api.lesson_setup(1)
        token = await api.token(setup["lecture"]["id"], "teacher", "王老师")
        teacher = LessonClient(server.url, token["token"], "王老师", decode=False)
        await teacher.connect()
        session = (await teacher.start_session(title="分数的认识", subject="数学"))["session"]
        await teacher.join()
        await teacher.publish([
            (TestPatternTrack(320, 240, 15, "replay"), "camera"),
            (ToneTrack(), "mic"),
            (TestPatternTrack(640, 360, 5, "courseware"), "courseware"),
        ])
        await asyncio.sleep(LESSON_S)
        await teacher.request("end_session")
        return str(session["id"])
    finally:
        if teacher is not None:
            await teacher.close()
        assert server.stop() == 0, server.log_text()[-3000:]


def test_the_replay_page_plays_a_recorded_lesson_and_seeks(
    tmp_path: Path, serve_app: Callable[..., Any], launch_browser: Callable[..., Any], netns_link: Any,
    artifacts_dir: Path,
) -> None:
    data = tmp_path / "data"
    # Playwright's sync API holds this thread's event loop: record on another thread
    with ThreadPoolExecutor(1) as pool:
        session_id = pool.submit(asyncio.run, record_lesson(data)).result(timeout=90)
    manifest = json.loads((data / "recordings" / session_id / "manifest.json").read_text())
    assert [t["source"] for t in manifest["tracks"]] == ["camera", "mic", "courseware"]

    key = secrets.token_urlsafe(24)
    settings = Settings(host=netns_link.host_addr, port=0, data_dir=data, admin_key=key,
                        token_secret=(data / "token_secret").read_text().strip())
    server = serve_app(lambda: create_app(settings))
    browser = launch_browser(server.origin)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    console: list[str] = []
    record_console(page, console, "replay")
    statuses: list[tuple[int, str]] = []
    page.on("response", lambda r: statuses.append((r.status, r.url)) if "/files/" in r.url else None)

    # the admin page's Library lists the lesson with a replay link
    page.goto(f"{server.origin}/web/admin.html?key={key}")
    row = page.locator(f"tr[data-recording='{session_id}']")
    row.wait_for(timeout=10_000)
    assert "分数的认识" in row.inner_text()
    page.locator("#library").screenshot(path=str(artifacts_dir / "admin_library.png"))
    href = row.locator("a.replay").get_attribute("href")
    assert href == f"replay.html?id={session_id}&key={key}"

    page.goto(f"{server.origin}/web/{href}")
    page.wait_for_function("() => window.synclass.state === 'ready'", timeout=10_000)
    duration = page.evaluate("() => window.synclass.duration")
    assert abs(duration - (manifest["ended_at"] - manifest["started_at"])) < 0.01
    page.click("#play")
    page.wait_for_function(
        """() => { const v = document.querySelector('#teacher-video');
                   return v.videoWidth === 320 && v.currentTime > 1.0 && !v.paused; }""",
        timeout=15_000,
    )
    courseware = page.evaluate("() => document.querySelector('#courseware-video').videoWidth")
    assert courseware == 640, console
    page.screenshot(path=str(artifacts_dir / "replay.png"))
    audio = page.evaluate("() => [...document.querySelectorAll('#audio audio')].map(a => a.currentTime)")
    assert len(audio) == 1 and audio[0] > 0.5, (audio, console)

    # seek back to 4.5 s of the lesson: every track follows the one clock
    camera = manifest["tracks"][0]
    target = 4.5
    page.evaluate(f"() => window.synclass.seek({target})")
    page.wait_for_function(
        f"""() => {{ const v = document.querySelector('#teacher-video');
                    return Math.abs(v.currentTime - ({target} - {camera['offset_s']})) < 0.5 && v.readyState >= 3; }}""",
        timeout=10_000,
    )
    before = page.evaluate("() => document.querySelector('#teacher-video').currentTime")
    frames_before = page.evaluate(
        "() => document.querySelector('#teacher-video').getVideoPlaybackQuality().totalVideoFrames")
    page.wait_for_timeout(1000)
    after = page.evaluate("() => document.querySelector('#teacher-video').currentTime")
    frames_after = page.evaluate(
        "() => document.querySelector('#teacher-video').getVideoPlaybackQuality().totalVideoFrames")
    assert after - before > 0.5, (before, after, console)
    assert frames_after > frames_before, (frames_before, frames_after)
    clock = page.evaluate("() => window.synclass.time()")
    assert abs((after + camera["offset_s"]) - clock) < 0.35, (after, clock)
    # the timeline's own slider seeks too
    page.evaluate("""() => { const r = document.querySelector('#timeline'); r.value = '1';
                             r.dispatchEvent(new Event('input')); }""")
    page.wait_for_function("() => window.synclass.time() < 2.5", timeout=5_000)
    # the files came with range requests
    assert any(status == 206 for status, _ in statuses), statuses[:10]
    assert not [line for line in console if "pageerror" in line], console


def test_the_teacher_and_classroom_pages_show_that_the_lesson_records(
    netns_link: Any, serve_app: Callable[..., Any], launch_browser: Callable[..., Any],
) -> None:
    from tests.browser.stub_server import StubServer

    stub = StubServer(netns_link.host_addr)
    server = serve_app(stub.app)
    browser = launch_browser(server.origin)
    teacher = browser.new_context().new_page()
    teacher.goto(f"{server.origin}/web/teacher.html?token=teacher")
    teacher.wait_for_selector("body[data-state=waiting]", timeout=10_000)
    assert teacher.locator("#record").is_checked()  # consent is the default; the teacher may untick it
    assert teacher.locator("#rec-indicator").is_hidden()
    teacher.click("#start")
    teacher.wait_for_selector("body[data-state=live]", timeout=15_000)
    teacher.wait_for_selector("#rec-indicator", state="visible", timeout=5_000)
    assert "录制中" in teacher.locator("#rec-indicator").inner_text()
    classroom = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    classroom.goto(f"{server.origin}/web/classroom.html?token=classroom")
    classroom.wait_for_selector("body[data-state=live]", timeout=15_000)
    classroom.wait_for_selector("#rec-indicator", state="visible", timeout=5_000)
    assert "Recording" in classroom.locator("#rec-indicator").inner_text()
    # a lesson that is not recorded shows nothing
    classroom.evaluate("() => { window.synclass.client.session.record = false; "
                       "window.synclass.client.dispatchEvent(new CustomEvent('session', {detail: {}})); }")
    classroom.wait_for_selector("#rec-indicator", state="hidden", timeout=5_000)
