"""The pages against a stand-in signaling server on the real media plane (``stub_server``).

These check the browser side of docs/protocol.md on its own; the real server
is exercised by ``test_lesson_browser.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from tests.browser.stub_server import StubServer
from tests.netns import VethLink

pytestmark = pytest.mark.browser

VIDEO_PLAYING = """() => {
    const v = document.getElementById('teacher-video');
    return !!v && !v.hidden && v.videoWidth > 0 && v.readyState >= 2 && v.currentTime > 0;
}"""


def video_progress(page: Any, seconds: float = 2.0) -> tuple[int, float, float]:
    """(videoWidth, currentTime before, currentTime after ``seconds``)."""
    before = page.evaluate("() => document.getElementById('teacher-video').currentTime")
    page.wait_for_timeout(seconds * 1000)
    after = page.evaluate("() => document.getElementById('teacher-video').currentTime")
    width = page.evaluate("() => document.getElementById('teacher-video').videoWidth")
    return width, before, after


@pytest.fixture
def stub(netns_link: VethLink, serve_app: Callable[..., Any]) -> tuple[StubServer, Any]:
    stub = StubServer(netns_link.host_addr)
    server = serve_app(stub.app)
    return stub, server


DUMP = """async () => {
    const v = document.getElementById('teacher-video');
    const s = window.synclass;
    return {state: s.state, view: s.view, tracks: s.tracks, hidden: v.hidden, w: v.videoWidth,
            rs: v.readyState, t: v.currentTime, paused: v.paused,
            src: v.srcObject ? v.srcObject.getTracks().map(t => t.kind + ':' + t.readyState + ':' + t.muted) : null,
            stats: await s.client.stats()};
}"""


def console_to(page: Any, lines: list[str]) -> None:
    page.on("console", lambda m: lines.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: lines.append(f"pageerror: {e}"))


def test_classroom_waits_then_plays_the_teacher_once_the_lesson_starts(
    stub: tuple[StubServer, Any], launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    stub_server, server = stub
    browser = launch_browser(server.origin)
    logs: list[str] = []
    classroom = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    console_to(classroom, logs)
    classroom.goto(f"{server.origin}/web/classroom.html?token=classroom")
    classroom.wait_for_selector("body[data-state=waiting]", timeout=10_000)
    assert classroom.locator("#waiting-screen").is_visible()
    assert "No lesson is live" in classroom.locator("#waiting-screen").inner_text()
    classroom.screenshot(path=str(artifacts_dir / "stub_classroom_waiting.png"))

    teacher = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    console_to(teacher, logs)
    teacher.goto(f"{server.origin}/web/teacher.html?token=teacher")
    teacher.wait_for_selector("body[data-state=waiting]", timeout=10_000)
    teacher.click("#start")
    teacher.wait_for_selector("body[data-state=live]", timeout=15_000)

    try:
        classroom.wait_for_function(VIDEO_PLAYING, timeout=20_000)
    except Exception:
        print("\n".join(logs))
        print(classroom.evaluate(DUMP))
        print(teacher.evaluate("async () => [window.synclass.state, await window.synclass.client.stats()]"))
        print(stub_server.plane.counters())
        print([(p.role, p.joined, p.consumed, [(c.producer_id, c.mid, c.closed) for c in (p.recv._consumers if p.recv else [])]) for p in stub_server.peers.values()], list(stub_server.producers))
        raise
    width, before, after = video_progress(classroom)
    assert width > 0
    assert after - before > 1.0, (before, after)
    teacher.wait_for_selector("#classrooms li", timeout=5_000)
    assert "山区小学" in teacher.locator("#classrooms").inner_text()
    assert teacher.evaluate("() => document.getElementById('preview').videoWidth") > 0
    # the classroom publishes its camera + mic back; the teacher's tile plays it
    classroom.wait_for_function("() => window.synclass.client.myProducers.length === 2", timeout=10_000)
    teacher.wait_for_function(
        """() => { const v = document.querySelector('#classrooms .tile video');
                   return !!v && v.videoWidth > 0 && v.currentTime > 0; }""", timeout=15_000)
    assert classroom.evaluate("() => window.synclass.stage") == []  # its own tracks do not come back
    teacher.screenshot(path=str(artifacts_dir / "stub_teacher_live.png"))
    classroom.screenshot(path=str(artifacts_dir / "stub_classroom_live.png"))

    # ending the lesson sends the classroom back to waiting
    teacher.on("dialog", lambda d: d.accept())
    teacher.click("#end")
    classroom.wait_for_selector("body[data-state=waiting]", timeout=10_000)
    assert classroom.locator("#waiting-screen").is_visible()
    assert classroom.locator("#teacher-video").is_hidden()
    teacher.wait_for_selector("body[data-state=waiting]", timeout=10_000)


def test_classroom_reconnects_by_itself_after_the_link_drops(
    stub: tuple[StubServer, Any], launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    stub_server, server = stub
    browser = launch_browser(server.origin)
    logs: list[str] = []
    teacher = browser.new_context().new_page()
    console_to(teacher, logs)
    teacher.goto(f"{server.origin}/web/teacher.html?token=teacher")
    teacher.wait_for_selector("body[data-state=waiting]", timeout=10_000)
    teacher.click("#start")
    teacher.wait_for_selector("body[data-state=live]", timeout=15_000)
    classroom = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    console_to(classroom, logs)
    classroom.goto(f"{server.origin}/web/classroom.html?token=classroom")
    classroom.wait_for_function(VIDEO_PLAYING, timeout=20_000)

    classroom.evaluate("() => { window.__states = []; window.synclass.client.addEventListener('state', e => window.__states.push(e.detail.state)); }")
    server.call(stub_server.drop_sockets)
    classroom.wait_for_selector("body[data-state=reconnecting]", timeout=5_000)
    assert classroom.locator("#reconnecting-banner").is_visible()
    classroom.screenshot(path=str(artifacts_dir / "stub_classroom_reconnecting.png"))
    try:
        classroom.wait_for_function(VIDEO_PLAYING, timeout=30_000)
        teacher.wait_for_selector("body[data-state=live]", timeout=15_000)
    except Exception:
        print("\n".join(logs))
        print(classroom.evaluate(DUMP))
        print(teacher.evaluate("async () => [window.synclass.state, await window.synclass.client.stats()]"))
        print(stub_server.plane.counters())
        print([(p.role, p.joined, p.consumed, [(c.producer_id, c.mid, c.closed) for c in (p.recv._consumers if p.recv else [])]) for p in stub_server.peers.values()], list(stub_server.producers))
        raise
    width, before, after = video_progress(classroom)
    assert width > 0 and after - before > 1.0
    assert classroom.locator("#reconnecting-banner").is_hidden()
    states = classroom.evaluate("() => window.__states")
    assert states[0] == "reconnecting" and states[-1] == "live", states


NO_DEVICES = """
navigator.mediaDevices.getUserMedia = async () => {
    throw new DOMException('Requested device not found', 'NotFoundError');
};
"""


def test_a_classroom_without_camera_or_microphone_still_joins_and_plays(
    stub: tuple[StubServer, Any], launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    stub_server, server = stub
    browser = launch_browser(server.origin)
    logs: list[str] = []
    teacher = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    console_to(teacher, logs)
    teacher.goto(f"{server.origin}/web/teacher.html?token=teacher")
    teacher.wait_for_selector("body[data-state=waiting]", timeout=10_000)
    teacher.click("#start")
    teacher.wait_for_selector("body[data-state=live]", timeout=15_000)

    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(NO_DEVICES)
    classroom = context.new_page()
    console_to(classroom, logs)
    classroom.goto(f"{server.origin}/web/classroom.html?token=classroom")
    try:
        classroom.wait_for_function(VIDEO_PLAYING, timeout=20_000)
        classroom.wait_for_selector("#device-notice", state="visible", timeout=10_000)
    except Exception:
        print("\n".join(logs))
        print(classroom.evaluate(DUMP))
        raise
    assert "No camera or microphone" in classroom.locator("#device-notice").inner_text()
    assert classroom.evaluate("() => window.synclass.client.myProducers.length") == 0
    assert not any(m.get("type") == "publish" and m.get("tracks") == {} for m in stub_server.log)
    width, before, after = video_progress(classroom)
    assert width > 0 and after - before > 1.0
    classroom.screenshot(path=str(artifacts_dir / "stub_classroom_no_devices.png"))


FAKE_WAKE_LOCK = """(() => {
    const requests = [];
    const sentinels = [];
    Object.defineProperty(navigator, 'wakeLock', {configurable: true, value: {
        async request(type) {
            requests.push(type);
            const listeners = [];
            const sentinel = {released: false, type,
                addEventListener(name, fn) { if (name === 'release') listeners.push(fn); },
                release() { sentinel.released = true; listeners.forEach(fn => fn()); }};
            sentinels.push(sentinel);
            return sentinel;
        }}});
    window.__wake = {requests, sentinels};
})()"""


def test_the_classroom_keeps_the_screen_awake_and_asks_again_after_losing_it(
    stub: tuple[StubServer, Any], launch_browser: Callable[..., Any]
) -> None:
    _, server = stub
    browser = launch_browser(server.origin)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(FAKE_WAKE_LOCK)
    classroom = context.new_page()
    classroom.goto(f"{server.origin}/web/classroom.html?token=classroom")
    classroom.wait_for_selector("body[data-state=waiting]", timeout=10_000)
    classroom.wait_for_function("() => window.__wake.requests.length >= 1", timeout=10_000)
    assert classroom.evaluate("() => window.__wake.requests") == ["screen"]
    assert classroom.evaluate("() => window.synclass.wakeLock") is True
    # the system takes the lock away (the tab was hidden); back in view, the page asks again
    classroom.evaluate("() => window.__wake.sentinels[0].release()")
    assert classroom.evaluate("() => window.synclass.wakeLock") is False
    classroom.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    classroom.wait_for_function("() => window.__wake.requests.length === 2", timeout=5_000)
    assert classroom.evaluate("() => window.synclass.wakeLock") is True
    context.close()
