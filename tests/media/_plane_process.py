"""A MediaPlane in a child process, driven over a pipe.

The codec counters in media.aiortc_hooks are per process; running the server
alone in its own process lets a test read what the server side created,
apart from the clients that encode and decode in the test process.
"""

from __future__ import annotations

import asyncio
from multiprocessing.connection import Connection
from typing import Any


class ServerProcess:
    """The test's end of the pipe: ``call(name, *args)`` runs one request in
    the child (``target``, default this module's ``serve``) and returns its answer."""

    def __init__(self, ctx: Any, target: Any = None) -> None:
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target or serve, args=(child,), daemon=True)
        self.process.start()
        child.close()

    async def call(self, name: str, *args: Any, timeout: float = 20) -> Any:
        self._conn.send((name, args))
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self._conn.poll, timeout):
            raise TimeoutError(f"server process did not answer {name!r} in {timeout} s")
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"server process failed on {name!r}: {value}")
        return value

    def kill(self) -> None:
        """SIGKILL, no goodbye (a server crash)."""
        self.process.kill()
        self.process.join(10)

    async def stop(self) -> None:
        if self.process.is_alive():
            try:
                await self.call("stop", timeout=10)
            except Exception:
                pass
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.process.join, 10)
        if self.process.is_alive():
            self.process.kill()
        self._conn.close()


def serve(conn: Connection) -> None:
    asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    from media.plane import MediaPlane

    loop = asyncio.get_running_loop()
    plane: Any = None
    router: Any = None
    producers: list[Any] = []
    down: Any = None
    while True:
        name, args = await loop.run_in_executor(None, conn.recv)
        try:
            value: Any = None
            if name == "start":
                plane = MediaPlane(ice_host_addresses=args[0])
                router = await plane.create_router({})
            elif name == "publish":
                up = await router.create_transport({})
                value, producers = await up.publish(args[0], args[1])
            elif name == "subscribe":
                down = await router.create_transport({})
                for producer in producers:
                    await down.consume(producer, {})
                value = await down.create_offer()
            elif name == "answer":
                await down.set_answer(args[0])
            elif name == "counters":
                value = plane.counters()
            elif name == "stop":
                if plane is not None:
                    await plane.close()
                conn.send((True, None))
                return
            else:
                raise ValueError(f"unknown call {name}")
            conn.send((True, value))
        except Exception as exc:  # report to the test instead of dying silently
            conn.send((False, repr(exc)))
