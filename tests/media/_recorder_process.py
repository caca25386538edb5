"""A MediaPlane that records, in a child process the test can SIGKILL.

The test process is the publisher (a real aiortc peer); this process is the
server side only, so its codec counters say what the server created and a
``kill -9`` of it is a server crash in the middle of a lesson.
"""

from __future__ import annotations

import asyncio
from multiprocessing.connection import Connection
from typing import Any

from ._plane_process import ServerProcess


class RecordingServer(ServerProcess):
    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx, target=serve)


def serve(conn: Connection) -> None:
    asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    from media.plane import MediaPlane

    loop = asyncio.get_running_loop()
    plane: Any = None
    router: Any = None
    producers: list[Any] = []
    recorders: list[Any] = []
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
            elif name == "record":  # (directory) -> recorders of every producer, stems by kind
                directory = args[0]
                for i, producer in enumerate(producers):
                    recorders.append(await router.create_recorder(producer.id, directory, f"{i + 1:02d}-{producer.kind}"))
                value = [r.path for r in recorders]
            elif name == "stats":
                value = [r.stats() for r in recorders]
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
