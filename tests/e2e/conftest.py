"""A real synclass server in its own process, for end-to-end tests on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from media.aiortc_hooks import set_ice_host_addresses
from synclass.client import LessonClient
from synclass.serverproc import AdminApi, ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    set_ice_host_addresses(["127.0.0.1"])  # the test's own aiortc peers stay on loopback
    proc = ServerProcess(tmp_path_factory.mktemp("server"))
    proc.start()
    try:
        asyncio.run(proc.wait_ready())
        yield proc
    finally:
        code = proc.stop()
        log = proc.log_text()
        # The server must shut down cleanly and never log a traceback.
        assert "Traceback" not in log, log[-4000:]
        assert code == 0, log[-4000:]


@pytest.fixture
def api(server: ServerProcess) -> AdminApi:
    return AdminApi(server.url, server.admin_key)


class Lesson:
    """A lecture room with paired classrooms and tokens for everyone."""

    def __init__(self, server: ServerProcess, api: AdminApi, setup: dict, tokens: dict[str, str]) -> None:
        self.server = server
        self.api = api
        self.setup = setup
        self.tokens = tokens
        self.clients: list[LessonClient] = []

    def client(self, who: str, decode: bool = True) -> LessonClient:
        c = LessonClient(self.server.url, self.tokens[who], who, decode=decode)
        self.clients.append(c)
        return c


@pytest.fixture
async def lesson(server: ServerProcess, api: AdminApi) -> AsyncIterator[Lesson]:
    setup = await api.lesson_setup(3)
    tokens = {"teacher": (await api.token(setup["lecture"]["id"], "teacher", "Teacher Li"))["token"]}
    for i, room in enumerate(setup["classrooms"]):
        tokens[f"classroom{i + 1}"] = (await api.token(room["id"], "classroom", room["name"]))["token"]
    lesson = Lesson(server, api, setup, tokens)
    try:
        yield lesson
    finally:
        for c in lesson.clients:
            try:
                await c.close()
            except Exception:
                pass


async def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())
