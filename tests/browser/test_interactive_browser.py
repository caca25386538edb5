"""An interactive lesson in real browsers: a teacher and two classrooms that talk back.

The real server (``synclass.app.build_app``) on the host end of the test
namespace's veth; one Chromium in the namespace with fake camera, microphone
and screen, and three browser contexts: the lecture room's PC (teacher) and
two rural classrooms (A and B) paired with it.

Courseware is shared with the page's real ``getDisplayMedia`` (clicking
"Share courseware"): Debian's headless Chromium with
``--use-fake-ui-for-media-stream`` (already in the harness flags) picks its
fake 1280x720 "screen" without a picker, so no canvas stand-in is needed
(``window.synclass.shareCourseware(stream)`` exists for browsers where it
would be).

Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.browser.lesson_helpers import Api, serve_lesson, assert_video_advances, record_console, video_playing_js, video_state
from tests.netns import VethLink

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 720}
TEACHER_VIDEO = "#teacher-video"
COURSEWARE_VIDEO = "#courseware-video"
FAKE_SCREEN = (1280, 720)  # the size of Chromium's fake display capture

PAGE_DUMP = """async () => {
    const s = window.synclass;
    const c = s.client;
    return {state: s.state, view: s.view, tracks: s.tracks, stage: s.stage, hand: s.hand,
            onStage: s.onStage, muted: s.muted, self: c.self, producers: c.myProducers,
            remote: c.remoteTracks().map((e) => [e.consumer.participant_id, e.consumer.source, e.track.readyState]),
            participants: [...c.participants.values()], stats: await c.stats()};
}"""


@pytest.fixture
def interactive_server(
    netns_link: VethLink, serve_app: Callable[..., Any], tmp_path: Path,
) -> tuple[Any, Api, dict[str, str]]:
    """The real server with a lecture room and two paired classrooms of two schools."""
    return serve_lesson(netns_link, serve_app, tmp_path, [("a", "山区小学", "山区小学 三年级"), ("b", "河西小学", "河西小学 四年级")])


def tile(pid: str) -> str:
    return f"#classrooms .tile[data-participant='{pid}']"


def wait_tile_video_advances(teacher: Any, pid: str) -> None:
    selector = f"{tile(pid)} video"
    teacher.wait_for_function(video_playing_js(selector), timeout=20_000)
    assert_video_advances(teacher, selector, 1.0)


def test_teacher_and_two_classrooms_share_courseware_raise_hands_go_on_stage_and_mute(
    interactive_server: tuple[Any, Api, dict[str, str]], launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    server, api, urls = interactive_server
    started = time.monotonic()
    browser = launch_browser(server.origin)
    logs: list[str] = []
    pages: dict[str, Any] = {}
    for name in ("teacher", "a", "b"):
        pages[name] = browser.new_context(viewport=VIEWPORT).new_page()
        record_console(pages[name], logs, name)
    teacher, a, b = pages["teacher"], pages["a"], pages["b"]
    try:
        # the teacher starts the lesson; both classroom screens join by themselves and publish back
        teacher.goto(urls["teacher"])
        teacher.wait_for_selector("body[data-state=waiting]", timeout=15_000)
        teacher.click("#start")
        teacher.wait_for_selector("body[data-state=live]", timeout=20_000)
        for page in (a, b):
            page.goto(urls[page is a and "a" or "b"])
        for page in (a, b):
            page.wait_for_function(video_playing_js(TEACHER_VIDEO), timeout=25_000)
            page.wait_for_function("() => window.synclass.client.myProducers.length === 2", timeout=15_000)
            sources = page.evaluate("() => window.synclass.client.myProducers.map((p) => p.source).sort()")
            assert sources == ["camera", "mic"]
            assert page.locator("#self-view").evaluate("(v) => v.videoWidth") > 0
        pid_a = a.evaluate("() => window.synclass.client.participantId")
        pid_b = b.evaluate("() => window.synclass.client.participantId")

        # the teacher's grid: one tile per classroom, each playing its camera, named with its school
        teacher.wait_for_function("() => document.querySelectorAll('#classrooms .tile').length === 2", timeout=15_000)
        for pid in (pid_a, pid_b):
            wait_tile_video_advances(teacher, pid)
        assert teacher.locator(f"{tile(pid_a)} .tile-name").inner_text() == "山区小学 三年级"
        assert teacher.locator(f"{tile(pid_a)} .tile-school").inner_text() == "山区小学"
        assert teacher.locator(f"{tile(pid_b)} .tile-name").inner_text() == "河西小学 四年级"
        assert teacher.locator(f"{tile(pid_b)} .tile-school").inner_text() == "河西小学"
        # B speaks (the fake microphone beeps): its tile lights up from the received audio level
        teacher.wait_for_selector(f"{tile(pid_b)}[data-speaking=true]", timeout=20_000)  # cold start in CI
        # the link state comes from that tile's inbound stats
        teacher.wait_for_function(
            f"() => document.querySelector(\"{tile(pid_a)}\").dataset.link === 'good'", timeout=10_000)
        assert "fps" in teacher.locator(f"{tile(pid_a)} .link").inner_text()
        # a classroom does not receive another classroom that is not on stage
        assert a.evaluate("() => window.synclass.stage") == []
        assert b.evaluate("() => window.synclass.stage") == []

        # courseware: the real getDisplayMedia (fake screen); both classrooms play it at its size
        teacher.click("#share")
        teacher.wait_for_function(
            "() => window.synclass.client.producerFor('courseware') !== null", timeout=15_000)
        assert teacher.locator("#courseware-box").is_visible()
        for page in (a, b):
            page.wait_for_function(video_playing_js(COURSEWARE_VIDEO), timeout=20_000)
            page.wait_for_function(
                f"() => document.querySelector('{COURSEWARE_VIDEO}').videoWidth === {FAKE_SCREEN[0]}",
                timeout=15_000)
            state = assert_video_advances(page, COURSEWARE_VIDEO, 1.0)
            assert (state["w"], state["h"]) == FAKE_SCREEN
            assert page.locator("body").get_attribute("data-courseware") == "on"
            assert page.locator(TEACHER_VIDEO).is_visible()  # the teacher stays on screen beside it
        # a touch switches B to courseware large with the teacher inset, and back
        b.click("#layout-button")
        b.wait_for_selector("body[data-layout=inset]", timeout=5_000)
        box = b.locator("#teacher-pane").bounding_box()
        assert box is not None and box["width"] < VIEWPORT["width"] * 0.3, box
        b.click("#layout-button")
        b.wait_for_selector("body[data-layout=side]", timeout=5_000)

        # classroom A raises its hand: the teacher's hands panel lists it
        a.click("#hand-button")
        a.wait_for_selector("body[data-hand=raised]", timeout=10_000)
        assert "#1 in line" in a.locator("#hand-button").inner_text()
        teacher.wait_for_selector(f"#hands li[data-participant='{pid_a}']", timeout=10_000)
        assert "山区小学 三年级" in teacher.locator("#hands").inner_text()
        assert teacher.locator("#hands li").count() == 1
        assert "举手 #1" in teacher.locator(f"{tile(pid_a)} .badges").inner_text()

        # the teacher calls A on stage from the hands panel
        teacher.click(f"#hands li[data-participant='{pid_a}'] button[data-action=stage]")
        a.wait_for_selector("#on-stage-banner", state="visible", timeout=10_000)
        assert "You are on stage" in a.locator("#on-stage-banner").inner_text()
        assert a.locator("#hand-button").is_hidden()
        teacher.wait_for_selector(f"#hands li[data-participant='{pid_a}']", state="detached", timeout=10_000)
        assert teacher.locator(f"{tile(pid_a)}[data-on-stage=true]").count() == 1
        # ... and classroom B now plays A (picture and sound)
        stage_video = f".stage-tile[data-participant='{pid_a}'] video"
        b.wait_for_function(video_playing_js(stage_video), timeout=20_000)
        assert_video_advances(b, stage_video, 1.0)
        assert "山区小学 三年级" in b.locator(f".stage-tile[data-participant='{pid_a}']").inner_text()
        assert b.evaluate(f"""() => document.querySelector("{stage_video}").srcObject.getAudioTracks().length""") == 1
        assert b.locator("#on-stage-banner").is_hidden()
        assert a.evaluate("() => window.synclass.stage") == []  # A does not receive itself
        # a touch on B's screen turns its sound on: the teacher and A are heard in B's room
        b.mouse.click(300, 300)
        b.wait_for_function(
            f"""() => !document.querySelector("{stage_video}").muted
                      && !document.querySelector("{TEACHER_VIDEO}").muted""", timeout=5_000)
        assert b.locator("#sound-overlay").is_hidden()
        b.screenshot(path=str(artifacts_dir / "interactive_classroom_b_stage_courseware.png"))

        # the stage holds one classroom: calling B too is refused, and the teacher sees why
        teacher.click(f"{tile(pid_b)} button[data-action=stage]")
        teacher.wait_for_selector(".toast", timeout=10_000)
        assert "at most 1 classroom" in teacher.locator(".toast").first.inner_text()
        assert b.locator("#on-stage-banner").is_hidden()

        # the teacher mutes A's mic: A sees it and stops capturing its mic
        teacher.click(f"{tile(pid_a)} button[data-action=mic]")
        a.wait_for_selector("#muted-mic-notice", state="visible", timeout=10_000)
        assert "The teacher muted your microphone" in a.locator("#muted-mic-notice").inner_text()
        assert a.evaluate("() => window.synclass.client.localTracks.mic.enabled") is False
        assert a.evaluate("() => window.synclass.client.localTracks.camera.enabled") is True
        teacher.wait_for_selector(f"{tile(pid_a)}[data-mic=teacher]", timeout=10_000)
        teacher.wait_for_selector(f"{tile(pid_a)}[data-speaking=false]", timeout=5_000)  # nothing to hear
        teacher.screenshot(path=str(artifacts_dir / "interactive_teacher_grid.png"))

        # ... and unmutes it again
        teacher.click(f"{tile(pid_a)} button[data-action=mic]")
        a.wait_for_selector("#muted-mic-notice", state="hidden", timeout=10_000)
        assert a.evaluate("() => window.synclass.client.localTracks.mic.enabled") is True

        # the teacher ends A's turn on stage: B stops showing A
        teacher.click(f"{tile(pid_a)} button[data-action=stage]")
        b.wait_for_selector(f".stage-tile[data-participant='{pid_a}']", state="detached", timeout=10_000)
        assert b.evaluate("() => window.synclass.stage") == []
        a.wait_for_selector("#on-stage-banner", state="hidden", timeout=10_000)
        assert a.locator("#hand-button").is_visible()
        # B still has the teacher and the courseware
        assert_video_advances(b, TEACHER_VIDEO, 1.0)
        assert video_state(b, COURSEWARE_VIDEO)["w"] == FAKE_SCREEN[0]

        # the teacher mutes herself and unmutes (her own mic stops capturing meanwhile)
        teacher.click("#mic-toggle")
        teacher.wait_for_selector("#mic-toggle[data-muted=true]", timeout=10_000)
        assert teacher.evaluate("() => window.synclass.client.localTracks.mic.enabled") is False
        teacher.click("#mic-toggle")
        teacher.wait_for_selector("#mic-toggle[data-muted=false]", timeout=10_000)
        assert teacher.evaluate("() => window.synclass.client.localTracks.mic.enabled") is True

        # stop sharing: the classrooms' courseware goes, the teacher fills the screen again
        teacher.click("#share")
        b.wait_for_selector("body[data-courseware=off]", timeout=10_000)
        assert b.locator("#courseware-pane").is_hidden()
        assert teacher.evaluate("() => window.synclass.client.producerFor('courseware')") is None
        # and sharing again renegotiates a fresh m-line: a new producer the classrooms play
        first = teacher.evaluate("() => window.synclass.client.myProducers.map((p) => p.id)")
        teacher.click("#share")
        teacher.wait_for_function(
            "() => window.synclass.client.producerFor('courseware') !== null", timeout=15_000)
        assert teacher.evaluate("() => window.synclass.client.producerFor('courseware').id") not in first
        b.wait_for_function(video_playing_js(COURSEWARE_VIDEO), timeout=20_000)
        assert_video_advances(b, COURSEWARE_VIDEO, 1.0)
    except Exception:
        print("\n".join(logs[-200:]))
        for name, page in pages.items():
            try:
                print(name, page.evaluate(PAGE_DUMP))
            except Exception as exc:  # the page itself may be what broke
                print(name, "dump failed:", exc)
        for name, page in pages.items():
            page.screenshot(path=str(artifacts_dir / f"interactive_failed_{name}.png"))
        raise
    elapsed = time.monotonic() - started
    assert elapsed < 90, f"the interactive lesson took {elapsed:.0f} s"
