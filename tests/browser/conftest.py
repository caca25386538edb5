"""Browser test harness: Debian Chromium, driven by Playwright, inside a namespace.

Chromium gathers ICE candidates on every interface it can see, and tests may
only send traffic to loopback or to namespaces they created. So Chromium runs
inside a network namespace (``tests.netns``) whose only link is a veth pair to
the host; servers under test listen on the host end (``link.host_addr``) and
their media plane gathers candidates on that address only.

Playwright launches ``executable_path`` = a generated wrapper script
``exec ip netns exec <ns> /usr/bin/chromium "$@"``; it controls the browser
over inherited pipes (``--remote-debugging-pipe``), so control needs no network.
Playwright gives every launched browser a fresh temporary profile
(``--user-data-dir``); it refuses that flag in ``args``.

Fixtures:
- ``netns_link``  — one namespace + veth per test module, deleted at the end.
- ``serve_app``   — runs an aiohttp app on the host end in a thread with its own loop.
- ``launch_browser`` — ``launch_browser(origin)`` -> a Playwright ``Browser`` in the
  namespace, with ``origin`` treated as secure (getUserMedia needs it).
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from tests.browser.netns import ARTIFACTS, CHROMIUM, chromium_args, stop_pid, write_chromium_wrapper
from tests.netns import VethLink, can_create_namespaces, veth_namespace


def _skip_reason() -> str | None:
    ok, why = can_create_namespaces()
    if not ok:
        return why
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"browser tests: {reason}"))


@pytest.fixture(scope="module")
def netns_link() -> Iterator[VethLink]:
    with veth_namespace() as link:
        yield link


class AppServer:
    """An aiohttp app served on ``host`` from a background thread and its own loop.

    The test's thread (Playwright's sync API) stays free; the server's loop is
    not disturbed by the test. ``call(coro_fn)`` runs a coroutine on the server loop.
    """

    def __init__(self, make_app: Callable[[], Any], host: str, port: int = 0) -> None:
        self._make_app = make_app
        self.host = host
        self.port = port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="app-server", daemon=True)
        self._runner: Any = None
        self.app: Any = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def call(self, fn: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    async def _start(self) -> None:
        from aiohttp import web

        app = self._make_app()
        if asyncio.iscoroutine(app):
            app = await app
        self.app = app
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> "AppServer":
        self._thread.start()
        self.call(self._start)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            try:
                self.call(self._runner.cleanup, timeout=20)
            finally:
                self._runner = None
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


@pytest.fixture
def serve_app(netns_link: VethLink) -> Iterator[Callable[..., AppServer]]:
    """``serve_app(make_app)`` -> a started ``AppServer`` on the host end of the veth."""
    servers: list[AppServer] = []

    def start(make_app: Callable[[], Any], port: int = 0) -> AppServer:
        server = AppServer(make_app, netns_link.host_addr, port)
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture(scope="module")
def _playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def launch_browser(netns_link: VethLink, _playwright: Any, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``launch_browser(*origins, extra_args=())`` -> a Chromium in the namespace.

    Each call starts a separate browser (own profile). The wrapper writes the
    browser's pid (``exec`` keeps it) so teardown can stop exactly that
    process if ``close()`` did not.
    """
    launched: list[tuple[Any, Path]] = []

    def launch(*origins: str, extra_args: tuple[str, ...] = ()) -> Any:
        i = len(launched)
        pidfile = tmp_path / f"chromium{i}.pid"
        wrapper = write_chromium_wrapper(netns_link, tmp_path / f"chromium{i}.sh", pidfile)
        # headless=False: Playwright would add its own --headless; ours is in the args.
        browser = _playwright.chromium.launch(
            executable_path=str(wrapper), headless=False,
            args=[*chromium_args(*origins), *extra_args], timeout=60_000,
        )
        launched.append((browser, pidfile))
        return browser

    yield launch
    for browser, pidfile in reversed(launched):
        try:
            browser.close()
        except Exception:
            pass
        if pidfile.exists():
            text = pidfile.read_text().strip()
            if text.isdigit():
                stop_pid(int(text))


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
