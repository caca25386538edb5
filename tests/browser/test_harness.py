"""The browser harness on its own: Chromium in a namespace reaches only the host end."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from aiohttp import web

from tests.netns import VethLink

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><title>harness</title></head>
<body data-state="loaded" style="background:#1d6f42;color:#fff;font:40px sans-serif">
<h1>harness page</h1><video id="v" autoplay muted playsinline width="320" height="240"></video>
</body></html>"""


def _tiny_app() -> web.Application:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    return app


def test_chromium_in_the_namespace_loads_a_page_from_the_host_end(
    netns_link: VethLink, serve_app: Callable[..., Any], launch_browser: Callable[..., Any],
    artifacts_dir: Path,
) -> None:
    server = serve_app(_tiny_app)
    assert server.host == netns_link.host_addr
    browser = launch_browser(server.origin)
    page = browser.new_page()
    page.goto(server.origin + "/")
    assert page.title() == "harness"
    assert page.locator("body").get_attribute("data-state") == "loaded"
    shot = artifacts_dir / "harness.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 1000


def test_the_namespace_sees_only_its_veth_and_loopback(netns_link: VethLink) -> None:
    out = netns_link.exec_run(["ip", "-o", "addr", "show"]).stdout
    assert netns_link.ns_addr in out
    assert "192.0.2." not in out
    assert "inet6" not in out
    routes = netns_link.exec_run(["ip", "route", "show"]).stdout
    assert "default" not in routes


def test_get_user_media_with_the_fake_device_gives_video_frames(
    serve_app: Callable[..., Any], launch_browser: Callable[..., Any],
) -> None:
    server = serve_app(_tiny_app)
    page = launch_browser(server.origin).new_page()
    page.goto(server.origin + "/")
    assert page.evaluate("window.isSecureContext") is True
    width = page.evaluate(
        """async () => {
            const stream = await navigator.mediaDevices.getUserMedia({
                video: {width: 640, height: 480}, audio: true});
            const v = document.getElementById('v');
            v.srcObject = stream;
            await new Promise((ok) => { v.onloadedmetadata = ok; });
            await v.play();
            return [v.videoWidth, stream.getAudioTracks().length];
        }"""
    )
    assert width[0] > 0
    assert width[1] == 1


def test_ice_candidates_in_the_namespace_use_only_the_veth_address(
    netns_link: VethLink, serve_app: Callable[..., Any], launch_browser: Callable[..., Any],
) -> None:
    server = serve_app(_tiny_app)
    page = launch_browser(server.origin).new_page()
    page.goto(server.origin + "/")
    candidates = page.evaluate(
        """async () => {
            const pc = new RTCPeerConnection({iceServers: []});
            pc.addTransceiver('audio', {direction: 'sendonly'});
            const found = [];
            pc.onicecandidate = (e) => { if (e.candidate) found.push(e.candidate.candidate); };
            await pc.setLocalDescription(await pc.createOffer());
            await new Promise((ok) => {
                if (pc.iceGatheringState === 'complete') ok();
                pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') ok(); };
            });
            pc.close();
            return found;
        }"""
    )
    assert candidates
    assert all(netns_link.ns_addr in c for c in candidates), candidates
