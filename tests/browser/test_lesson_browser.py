"""A real lesson in real browsers: the teacher page publishes, the classroom page plays.

Runs the real server (``synclass.app.build_app``: control plane + media plane)
on the host end of the test namespace's veth; two separate browser contexts
in the namespace play the lecture room's PC and a rural classroom's screen.
Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from tests.browser.lesson_helpers import Api, serve_lesson, record_console
from tests.netns import VethLink

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 720}
VIDEO_PLAYING = """() => {
    const v = document.getElementById('teacher-video');
    return !!v && !v.hidden && v.videoWidth > 0 && v.readyState >= 2 && v.currentTime > 0;
}"""
CLASSROOM_DUMP = """async () => {
    const v = document.getElementById('teacher-video');
    const s = window.synclass;
    return {state: s.state, view: s.view, tracks: s.tracks, w: v.videoWidth, t: v.currentTime,
            stats: await s.client.stats()};
}"""


@pytest.fixture
def lesson_server(
    netns_link: VethLink, serve_app: Callable[..., Any], tmp_path: Path,
) -> tuple[Any, Api, dict[str, str]]:
    """The real server with one paired lecture room and classroom; returns (server, api, page urls)."""
    return serve_lesson(netns_link, serve_app, tmp_path, [("classroom", "山区小学", "山区小学 三年级")])


def assert_video_advances(page: Any, seconds: float = 2.0) -> None:
    before = page.evaluate("() => document.getElementById('teacher-video').currentTime")
    page.wait_for_timeout(seconds * 1000)
    after = page.evaluate("() => document.getElementById('teacher-video').currentTime")
    width = page.evaluate("() => document.getElementById('teacher-video').videoWidth")
    assert width > 0
    assert after - before > seconds * 0.5, (before, after)


def start_lesson(teacher: Any, url: str, screenshot: Path | None = None) -> None:
    teacher.goto(url)
    teacher.wait_for_selector("body[data-state=waiting]", timeout=15_000)
    assert teacher.locator("#start").is_enabled()
    if screenshot is not None:
        teacher.screenshot(path=str(screenshot))
    teacher.click("#start")
    teacher.wait_for_selector("body[data-state=live]", timeout=20_000)


def test_a_classroom_plays_the_teacher_the_lesson_she_started(
    lesson_server: tuple[Any, Api, dict[str, str]], launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    server, api, urls = lesson_server
    browser = launch_browser(server.origin)
    logs: list[str] = []
    teacher = browser.new_context(viewport=VIEWPORT).new_page()
    record_console(teacher, logs, "teacher")
    classroom = browser.new_context(viewport=VIEWPORT).new_page()
    record_console(classroom, logs, "classroom")
    try:
        start_lesson(teacher, urls["teacher"], artifacts_dir / "lesson_teacher_before_start.png")
        assert teacher.locator("#room-name").inner_text() == "城关一小 主讲教室"
        classroom.goto(urls["classroom"])
        classroom.wait_for_function(VIDEO_PLAYING, timeout=30_000)
        assert_video_advances(classroom)
        teacher.wait_for_selector("#classrooms li", timeout=10_000)
        assert "山区小学 三年级" in teacher.locator("#classrooms").inner_text()
    except Exception:
        print("\n".join(logs))
        print(classroom.evaluate(CLASSROOM_DUMP))
        raise
    finally:
        teacher.screenshot(path=str(artifacts_dir / "lesson_teacher.png"))
        classroom.screenshot(path=str(artifacts_dir / "lesson_classroom.png"))
    live = api("GET", "/api/sessions?status=live")["sessions"]
    assert len(live) == 1


def test_a_waiting_classroom_plays_as_soon_as_the_teacher_starts(
    lesson_server: tuple[Any, Api, dict[str, str]], launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    server, api, urls = lesson_server
    browser = launch_browser(server.origin)
    logs: list[str] = []
    classroom = browser.new_context(viewport=VIEWPORT).new_page()
    record_console(classroom, logs, "classroom")
    teacher = browser.new_context(viewport=VIEWPORT).new_page()
    record_console(teacher, logs, "teacher")
    try:
        classroom.goto(urls["classroom"])
        classroom.wait_for_selector("body[data-state=waiting]", timeout=15_000)
        assert classroom.locator("#waiting-screen").is_visible()
        assert "No lesson is live" in classroom.locator("#waiting-screen").inner_text()
        assert "山区小学 三年级" in classroom.locator("#room-name").inner_text()
        classroom.screenshot(path=str(artifacts_dir / "lesson_classroom_waiting.png"))

        start_lesson(teacher, urls["teacher"])
        classroom.wait_for_function(VIDEO_PLAYING, timeout=30_000)
        assert_video_advances(classroom)
        classroom.screenshot(path=str(artifacts_dir / "lesson_classroom_joined_by_itself.png"))

        # the teacher ends the lesson: the classroom goes back to waiting
        teacher.on("dialog", lambda d: d.accept())
        teacher.click("#end")
        classroom.wait_for_selector("body[data-state=waiting]", timeout=15_000)
        assert classroom.locator("#waiting-screen").is_visible()
        assert classroom.locator("#teacher-video").is_hidden()
        teacher.wait_for_selector("body[data-state=waiting]", timeout=15_000)
    except Exception:
        print("\n".join(logs))
        print(classroom.evaluate(CLASSROOM_DUMP))
        raise
    assert api("GET", "/api/sessions?status=live")["sessions"] == []


def test_the_admin_page_lists_rooms_and_mints_page_links(
    lesson_server: tuple[Any, Api, dict[str, str]], launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    server, api, urls = lesson_server
    page = launch_browser(server.origin).new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(urls["admin"])
    page.wait_for_selector("body[data-state=ready]", timeout=15_000)
    assert page.locator("#rooms tr[data-room]").count() == 2
    page.locator("#rooms tr[data-room] button").first.click()
    link = page.locator("#rooms input").first
    link.wait_for(timeout=10_000)
    assert "/web/teacher.html?token=" in link.input_value()
    assert page.locator("#stats .stat").count() > 0
    page.screenshot(path=str(artifacts_dir / "admin.png"), full_page=True)


def test_the_classroom_shows_reconnecting_and_comes_back_by_itself_after_a_link_cut(
    netns_link: VethLink, lesson_server: tuple[Any, Api, dict[str, str]],
    launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    server, api, urls = lesson_server
    browser = launch_browser(server.origin)
    logs: list[str] = []
    teacher = browser.new_context(viewport=VIEWPORT).new_page()
    record_console(teacher, logs, "teacher")
    classroom = browser.new_context(viewport=VIEWPORT).new_page()
    record_console(classroom, logs, "classroom")
    try:
        start_lesson(teacher, urls["teacher"])
        classroom.goto(urls["classroom"])
        classroom.wait_for_function(VIDEO_PLAYING, timeout=30_000)
        # a touch turns the sound on (autoplay policy may have started it muted)
        classroom.mouse.click(640, 360)
        classroom.wait_for_function("() => !document.getElementById('teacher-video').muted", timeout=5_000)
        assert classroom.locator("#sound-overlay").is_hidden()

        netns_link.set_host_link(up=False)  # the village's line goes down
        try:
            classroom.wait_for_selector("body[data-state=reconnecting]", timeout=20_000)
            assert classroom.locator("#reconnecting-banner").is_visible()
            classroom.screenshot(path=str(artifacts_dir / "lesson_classroom_reconnecting.png"))
        finally:
            netns_link.set_host_link(up=True)
        classroom.wait_for_function(VIDEO_PLAYING, timeout=40_000)
        assert_video_advances(classroom)
        assert classroom.locator("#reconnecting-banner").is_hidden()
        teacher.wait_for_selector("body[data-state=live]", timeout=20_000)
    except Exception:
        print("\n".join(logs))
        print(classroom.evaluate(CLASSROOM_DUMP))
        raise
