"""Helpers the real-server browser tests share: the REST API client, console capture, video checks."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


class Api:
    """The REST API with the admin key (from the test process on the host)."""

    def __init__(self, origin: str, key: str) -> None:
        self.origin = origin
        self.key = key

    def __call__(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.origin + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as res:
            text = res.read()
        return json.loads(text) if text else None


def record_console(page: Any, lines: list[str], tag: str) -> None:
    page.on("console", lambda m: lines.append(f"{tag} {m.type}: {m.text}"))
    page.on("pageerror", lambda e: lines.append(f"{tag} pageerror: {e}"))


def video_playing_js(selector: str) -> str:
    """A predicate for ``wait_for_function``: the element shows decoded frames."""
    return f"""() => {{
        const v = document.querySelector({json.dumps(selector)});
        return !!v && !v.hidden && v.videoWidth > 0 && v.readyState >= 2 && v.currentTime > 0;
    }}"""


def video_state(page: Any, selector: str) -> dict[str, Any]:
    return page.evaluate(
        """(sel) => { const v = document.querySelector(sel);
            return v ? {w: v.videoWidth, h: v.videoHeight, t: v.currentTime, rs: v.readyState, muted: v.muted}
                     : null; }""",
        selector,
    )


def assert_video_advances(page: Any, selector: str, seconds: float = 1.5) -> dict[str, Any]:
    """The element's video has a size and its clock moves (frames keep coming)."""
    before = video_state(page, selector)
    page.wait_for_timeout(seconds * 1000)
    after = video_state(page, selector)
    assert before is not None and after is not None, selector
    assert after["w"] > 0, (selector, after)
    assert after["t"] - before["t"] > seconds * 0.5, (selector, before, after)
    return after


def serve_lesson(
    link: Any, serve_app: Any, tmp_path: Any, classrooms: list[tuple[str, str, str]]
) -> tuple[Any, Api, dict[str, str]]:
    """The real server (control + media plane) on the host end of the test's veth,
    with a city lecture room paired with ``classrooms`` — ``(url key, school
    name, room name)`` — and a page URL for everyone: ``teacher``, ``admin``
    and each key. Returns ``(server, api, urls)``."""
    import secrets

    from server.settings import Settings
    from synclass.app import build_app

    admin_key = secrets.token_urlsafe(24)
    (tmp_path / "data").mkdir()
    settings = Settings(
        host=link.host_addr,
        port=0,
        data_dir=tmp_path / "data",
        admin_key=admin_key,
        token_secret=secrets.token_urlsafe(48),
        ice_host_addresses=(link.host_addr,),
    )
    server = serve_app(lambda: build_app(settings))
    api = Api(server.origin, admin_key)
    urban = api("POST", "/api/schools", {"name": "城关第一小学", "region": "county town"})
    lecture = api("POST", f"/api/schools/{urban['id']}/rooms", {"name": "城关一小 主讲教室", "kind": "lecture"})
    minted = api("POST", "/api/tokens", {"room_id": lecture["id"], "role": "teacher"})
    urls = {
        "teacher": server.origin + f"/web/teacher.html?token={minted['token']}",
        "admin": server.origin + f"/web/admin.html?key={admin_key}",
    }
    schools: dict[str, Any] = {}
    for key, school_name, room_name in classrooms:
        if school_name not in schools:
            schools[school_name] = api("POST", "/api/schools", {"name": school_name, "region": "village"})
        room = api("POST", f"/api/schools/{schools[school_name]['id']}/rooms", {"name": room_name, "kind": "classroom"})
        api("POST", "/api/pairings", {"lecture_room_id": lecture["id"], "classroom_room_id": room["id"]})
        minted = api("POST", "/api/tokens", {"room_id": room["id"], "role": "classroom"})
        urls[key] = server.origin + f"/web/classroom.html?token={minted['token']}"
    return server, api, urls
