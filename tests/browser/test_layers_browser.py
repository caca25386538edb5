"""The teacher's camera as three layers, in real browsers against the real server.

docs/protocol.md item 5 ("Layers") and the S→C ``consumer_layer`` push: the
teacher page sends its camera three times (full, half and quarter
resolution, each with its own bitrate cap) as layers 0, 1 and 2 of the
``camera`` source; a classroom gets ONE camera consumer and the server picks
its layer. When the server pauses a video for a weak link (``layer: null``)
the classroom says so over the picture and keeps the sound; a later
``consumer_layer`` with a number takes the notice away.

The real server (``synclass.app.build_app``) listens on the host end of the
test namespace's veth; Chromium (fake camera 640x480, fake microphone) runs
in the namespace. Its fake camera gives the 1280x720 the page asks for
(640x480 when not asked): the layers are 1280x720, 640x360 and 320x180 (a
640x480 capture would still make three: 640x480, 320x240, 160x120). The paused case is injected through the page's own protocol
dispatch (``LessonClient._dispatch``, where every socket message goes), as
the server would send it: the veth link never gets that short. Turning the
camera off must stop every layer, and a teacher whose socket drops publishes
the three layers again.
Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.browser.lesson_helpers import Api, serve_lesson, assert_video_advances, record_console, video_playing_js
from tests.netns import VethLink

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 720}
TEACHER_VIDEO = "#teacher-video"
PAUSED_TEXT = "视频已暂停以保证声音 / Video paused to keep the sound"

# Record every layer change the page's client sees (offers and consumer_layer pushes).
RECORD_LAYERS = """() => {
    window.__layerLog = [];
    window.synclass.client.addEventListener('layer', (ev) => window.__layerLog.push(
        [Math.round(performance.now()), ev.detail.consumer_id, ev.detail.layer]));
}"""

# Hand the client one server message, as its socket would, and report the paused
# notice right after (same task: no real push can come in between).
INJECT = """([consumerId, producerId, layer]) => {
    const c = window.synclass.client;
    c._dispatch({type: 'consumer_layer', consumer_id: consumerId, producer_id: producerId, layer, re: null}, c._gen);
    const n = document.getElementById('teacher-paused');
    const r = n.getBoundingClientRect();
    const v = document.querySelector('#teacher-video');
    return {hidden: n.hidden, visible: n.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}),
            area: r.width * r.height, text: n.innerText.trim(), layers: window.synclass.layers,
            paused: window.synclass.paused, videoPaused: v.paused,
            audio: v.srcObject ? v.srcObject.getAudioTracks().map((t) => t.readyState) : []};
}"""

DUMP = """async () => {
    const s = window.synclass;
    const c = s.client;
    return {state: s.state, view: s.view, tracks: s.tracks, layers: s.layers, paused: s.paused,
            cameraLayers: s.cameraLayers, log: window.__layerLog || null,
            producers: c.myProducers,
            remote: c.remoteTracks().map((e) => [e.consumer.id, e.consumer.source, e.consumer.layer, e.track.readyState]),
            stats: await c.stats()};
}"""


@pytest.fixture
def layers_server(
    netns_link: VethLink, serve_app: Callable[..., Any], tmp_path: Path,
) -> tuple[Any, Api, dict[str, str]]:
    """The real server with one lecture room and one paired classroom."""
    return serve_lesson(netns_link, serve_app, tmp_path, [("classroom", "山区小学", "山区小学 三年级")])


def transports_of(stats: dict[str, Any], participant_id: str, direction: str) -> list[dict[str, Any]]:
    """The media transports of one participant in ``GET /api/stats`` (``up`` or ``down``)."""
    out = []
    for session in stats.get("sessions") or []:
        for transport in (session.get("router") or {}).get("transports") or []:
            data = transport.get("app_data") or {}
            if data.get("participant_id") == participant_id and data.get("direction") == direction:
                out.append(transport)
    return out


def camera_producers(stats: dict[str, Any], participant_id: str) -> list[dict[str, Any]]:
    """The participant's camera producers, by layer."""
    producers = [p for t in transports_of(stats, participant_id, "up") for p in t["producers"]
                 if (p.get("app_data") or {}).get("source") == "camera"]
    return sorted(producers, key=lambda p: p["app_data"].get("layer", 0))


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def test_the_teacher_camera_goes_out_as_three_layers_and_a_paused_video_is_announced(
    layers_server: tuple[Any, Api, dict[str, str]], launch_browser: Callable[..., Any], artifacts_dir: Path,
) -> None:
    server, api, urls = layers_server
    started = time.monotonic()
    browser = launch_browser(server.origin)
    logs: list[str] = []
    teacher = browser.new_context(viewport=VIEWPORT).new_page()
    record_console(teacher, logs, "teacher")
    classroom = browser.new_context(viewport=VIEWPORT).new_page()
    record_console(classroom, logs, "classroom")
    last_stats: dict[str, Any] = {}
    try:
        # the teacher starts the lesson: her camera goes out as layers 0, 1, 2
        teacher.goto(urls["teacher"])
        teacher.wait_for_selector("body[data-state=waiting]", timeout=15_000)
        teacher.click("#start")
        teacher.wait_for_selector("body[data-state=live]", timeout=20_000)
        teacher_id = teacher.evaluate("() => window.synclass.client.participantId")
        sizes = teacher.evaluate("() => window.synclass.cameraLayers.map((l) => [l.width, l.height])")
        w, h = teacher.evaluate("""() => { const s = window.synclass.client.localTracks.camera.getSettings();
                                           return [s.width, s.height]; }""")
        assert w >= 640 and h >= 360, (w, h)
        assert sizes == [[w, h], [w // 2, h // 2], [w // 4, h // 4]]
        mine = teacher.evaluate(
            "() => window.synclass.client.myProducers.map((p) => [p.source, p.kind, p.layer]).sort()")
        assert mine == [["camera", "video", 0], ["camera", "video", 1], ["camera", "video", 2], ["mic", "audio", 0]]
        # her own preview stays one video
        assert teacher.evaluate("() => document.getElementById('preview').srcObject.getVideoTracks().length") == 1
        # each layer's sender is scaled and capped as asked
        encodings = teacher.evaluate("""() => window.synclass.client._pubTransceivers.get('camera').map(
            (e) => { const p = e.transceiver.sender.getParameters().encodings[0];
                     return [e.layer, p.scaleResolutionDownBy || 1, p.maxBitrate]; })""")
        assert encodings == [[0, 1, 1_500_000], [1, 2, 500_000], [2, 4, 100_000]]

        # the server has three camera producers of the teacher, all fed, the larger layer the richer
        # (ordered in two samples in a row: the uplink estimate climbs from 300 kbps, so give it seconds)
        ordered: list[list[int]] = []

        def layers_flowing() -> list[dict[str, Any]] | None:
            nonlocal last_stats
            last_stats = api("GET", "/api/stats")
            cams = camera_producers(last_stats, teacher_id)
            rates = [p["bitrate_bps"] for p in cams]
            good = ([p["app_data"].get("layer") for p in cams] == [0, 1, 2]
                    and all(p["packets"] > 0 for p in cams) and rates[0] > rates[1] > rates[2] > 0)
            ordered[:] = [*ordered, rates] if good else []
            return cams if len(ordered) >= 2 else None

        cams = wait_for(layers_flowing, 20, "three camera layers with bitrates layer0 > layer1 > layer2", 1.0)
        assert all(p["kind"] == "video" and p["app_data"]["source"] == "camera" for p in cams)
        print("camera layer bitrates (bps), two samples:", ordered)

        # a classroom plays the teacher, from ONE camera consumer
        classroom.goto(urls["classroom"])
        classroom.wait_for_function(video_playing_js(TEACHER_VIDEO), timeout=25_000)
        classroom.evaluate(RECORD_LAYERS)
        assert_video_advances(classroom, TEACHER_VIDEO, 1.0)
        classroom_id = classroom.evaluate("() => window.synclass.client.participantId")

        # (the server may pause it for a moment of its own while it learns the new link: wait for a layer)
        def one_camera_consumer() -> dict[str, Any] | None:
            nonlocal last_stats
            last_stats = api("GET", "/api/stats")
            down = transports_of(last_stats, classroom_id, "down")
            assert len(down) == 1, down
            cam_consumers = [c for c in down[0]["consumers"]
                             if c["kind"] == "video" and (c.get("app_data") or {}).get("source") == "camera"]
            assert len(cam_consumers) == 1, down[0]["consumers"]  # ONE consumer for the three layers
            assert sorted(cam_consumers[0]["layers"]) == [0, 1, 2], cam_consumers[0]
            layer = cam_consumers[0]["layer"]
            return cam_consumers[0] if isinstance(layer, int) and layer in (0, 1, 2) else None

        consumer = wait_for(one_camera_consumer, 15, "the classroom's camera consumer to forward a layer")
        assert consumer["producer_id"] == cams[0]["id"]  # made on the primary (layer 0)
        # the page knows the same consumer, its layer a number
        page_cam = classroom.evaluate("""() => window.synclass.client.remoteTracks()
            .filter((e) => e.consumer.source === 'camera').map((e) => e.consumer)""")
        assert [c["id"] for c in page_cam] == [consumer["id"]]
        classroom.wait_for_function(
            f"() => Number.isInteger(window.synclass.layers[{consumer['id']!r}])", timeout=15_000)
        page_layer = classroom.evaluate(f"() => window.synclass.layers[{consumer['id']!r}]")
        assert page_layer in (0, 1, 2), page_layer
        classroom.wait_for_selector("#teacher-paused", state="hidden", timeout=1_000)

        # the link cannot carry the video: the server pauses it (consumer_layer, layer null)
        paused = classroom.evaluate(INJECT, [consumer["id"], consumer["producer_id"], None])
        assert paused["hidden"] is False and paused["visible"] is True and paused["area"] > 0, paused
        assert paused["text"] == PAUSED_TEXT
        assert paused["layers"][consumer["id"]] is None
        assert paused["paused"] == ["camera"]
        # ... and the sound goes on: the element still plays, with the teacher's mic in it
        assert paused["videoPaused"] is False and paused["audio"] == ["live"], paused
        classroom.screenshot(path=str(artifacts_dir / "layers_classroom_video_paused.png"))

        # a later consumer_layer with a number: the video is back, the notice goes
        resumed = classroom.evaluate(INJECT, [consumer["id"], consumer["producer_id"], 2])
        assert resumed["hidden"] is True and resumed["visible"] is False, resumed
        assert resumed["layers"][consumer["id"]] == 2
        assert resumed["paused"] == []
        assert_video_advances(classroom, TEACHER_VIDEO, 1.0)

        # camera off stops every layer: the page disables all its camera tracks, the server pauses them all
        teacher.click("#camera-toggle")
        teacher.wait_for_selector("#camera-toggle[data-muted=true]", timeout=10_000)
        assert teacher.evaluate(
            "() => window.synclass.client._pubTransceivers.get('camera').map((e) => e.track.enabled)") == [False] * 3
        wait_for(lambda: [p["paused"] for p in camera_producers(api("GET", "/api/stats"), teacher_id)] == [True] * 3,
                 5, "the server to pause every camera layer")
        teacher.click("#camera-toggle")
        teacher.wait_for_selector("#camera-toggle[data-muted=false]", timeout=10_000)
        assert teacher.evaluate(
            "() => window.synclass.client._pubTransceivers.get('camera').map((e) => e.track.enabled)") == [True] * 3
        classroom.wait_for_function(video_playing_js(TEACHER_VIDEO), timeout=10_000)
        assert_video_advances(classroom, TEACHER_VIDEO, 1.0)
        print("classroom layer changes [ms, consumer, layer]:", classroom.evaluate("() => window.__layerLog"))

        # the teacher's socket drops: she comes back by herself and publishes the three layers again
        teacher.evaluate("""() => { const c = window.synclass.client;
            window.__oldClones = c._pubTransceivers.get('camera').filter((e) => e.clone).map((e) => e.track);
            c._ws.close(); }""")
        teacher.wait_for_function(
            f"() => window.synclass.client.participantId !== {teacher_id!r} && window.synclass.state === 'live'",
            timeout=15_000)
        assert teacher.evaluate("() => window.__oldClones.map((t) => t.readyState)") == ["ended", "ended"]
        assert teacher.evaluate(
            "() => window.synclass.client.producersFor('camera').map((p) => p.layer)") == [0, 1, 2]
        teacher_id = teacher.evaluate("() => window.synclass.client.participantId")
        wait_for(lambda: [(p["app_data"]["layer"], p["packets"] > 0)
                          for p in camera_producers(api("GET", "/api/stats"), teacher_id)]
                 == [(0, True), (1, True), (2, True)], 10, "the republished layers to flow")
        classroom.wait_for_function(
            """() => window.synclass.client.remoteTracks().some((e) => e.consumer.source === 'camera'
                       && e.consumer.participant_id === %r)""" % teacher_id, timeout=15_000)
        classroom.wait_for_function(video_playing_js(TEACHER_VIDEO), timeout=15_000)
        assert_video_advances(classroom, TEACHER_VIDEO, 1.0)
        assert classroom.evaluate(
            "() => window.synclass.client.remoteTracks().filter((e) => e.consumer.source === 'camera').length") == 1
    except Exception:
        print("\n".join(logs[-150:]))
        for name, page in (("teacher", teacher), ("classroom", classroom)):
            try:
                print(name, page.evaluate(DUMP))
            except Exception as exc:  # the page itself may be what broke
                print(name, "dump failed:", exc)
            page.screenshot(path=str(artifacts_dir / f"layers_failed_{name}.png"))
        print("stats:", last_stats)
        raise
    elapsed = time.monotonic() - started
    assert elapsed < 40, f"the layers lesson took {elapsed:.0f} s"
