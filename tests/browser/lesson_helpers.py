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
