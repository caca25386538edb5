"""The server side of ``synclass bench fanout``: one process, one core.

Run as ``python -m synclass.bench.server sfu|relay --cpu 0``. It pins itself to
the given CPU before anything starts a thread, then answers JSON requests,
one per line on stdin, with one JSON line each on stdout (``{"id": ..,
"ok": true, ...}``); logs go to stderr. Requests are served concurrently, so
the client may have many subscriber handshakes in flight.

Modes:
- ``sfu``: ``media.plane.MediaPlane`` with one router, the thing under test.
- ``relay``: the baseline, plain aiortc with ``aiortc.contrib.media.MediaRelay``:
  the publisher's tracks are decoded once and every subscriber gets its own
  encoder.

Operations: ``hello``, ``publish`` (offer SDP + mids → answer SDP),
``subscribe`` (→ subscriber id + offer SDP), ``answer`` (subscriber id +
answer SDP), ``stats`` (counters and this process's CPU time), ``close_subs``,
``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from .procstat import udp_drops

logger = logging.getLogger("synclass.bench.server")


def _pin(cpu: int) -> list[int]:
    if cpu >= 0 and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as exc:  # fewer CPUs than asked for: run unpinned
            logger.warning("could not pin to CPU %d: %s", cpu, exc)
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


class SfuBackend:
    """The media plane under test."""

    def __init__(self) -> None:
        from media.plane import MediaPlane

        self.plane = MediaPlane(ice_host_addresses=["127.0.0.1"])
        self.router: Any = None
        self.producers: list[Any] = []
        self.subs: dict[str, Any] = {}
        self._next = 0

    async def start(self) -> None:
        self.router = await self.plane.create_router({"session": "bench"})

    async def publish(self, sdp: str, tracks: dict[str, str]) -> str:
        transport = await self.router.create_transport({"role": "publisher"})
        answer, producers = await transport.publish(
            sdp, {mid: {"source": "camera" if kind == "video" else "mic"} for mid, kind in tracks.items()}
        )
        self.producers = list(producers)  # the latest publisher is the one subscribers get
        return str(answer)

    async def subscribe(self) -> tuple[str, str]:
        self._next += 1
        sub_id = f"s{self._next}"
        transport = await self.router.create_transport({"role": "subscriber", "sub": sub_id})
        for producer in self.producers:
            await transport.consume(producer, {})
        self.subs[sub_id] = transport
        return sub_id, await transport.create_offer()

    async def answer(self, sub_id: str, sdp: str) -> None:
        await self.subs[sub_id].set_answer(sdp)

    def stats(self) -> dict[str, Any]:
        counters = self.plane.counters()
        consumers = [c for t in self.subs.values() for c in t._consumers]
        return {
            "counters": counters,
            "producers": [
                {"kind": p.kind, "packets": p.packets, "octets": p.octets, "keyframes": p.keyframes,
                 "keyframe_requests": p.keyframe_requests}
                for p in self.producers
            ],
            "consumers_started": sum(1 for c in consumers if not c._waiting),
            "retransmissions": sum(c.retransmissions for c in consumers),
            "nacks": sum(c.nacks for c in consumers),
            "plis": sum(c.plis for c in consumers),
            "connected": sum(1 for t in self.subs.values() if t.state == "connected"),
        }

    async def close_subs(self) -> None:
        subs = list(self.subs.values())
        self.subs.clear()
        await _bounded_gather([t.close() for t in subs], 20.0)

    async def close(self) -> None:
        await asyncio.wait_for(self.plane.close(), 20.0)


class RelayBackend:
    """aiortc's MediaRelay: decode once, encode once per subscriber."""

    def __init__(self) -> None:
        import aiortc.codecs.vpx as vpx
        from aiortc.contrib.media import MediaRelay

        from media import aiortc_hooks  # loopback ICE + codec counters only

        aiortc_hooks.set_ice_host_addresses(["127.0.0.1"])
        self.counters = aiortc_hooks.COUNTERS
        # the same ~1 Mbps target the publisher uses, so the comparison is fair
        vpx.DEFAULT_BITRATE = vpx.MIN_BITRATE = vpx.MAX_BITRATE = 1_000_000
        self.relay = MediaRelay()
        self.tracks: list[Any] = []
        self.pub: Any = None
        self.subs: dict[str, Any] = {}
        self._next = 0

    async def start(self) -> None:
        pass

    async def publish(self, sdp: str, tracks: dict[str, str]) -> str:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pub = pc
        pc.on("track", lambda track: self.tracks.append(track))
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def subscribe(self) -> tuple[str, str]:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self._next += 1
        sub_id = f"r{self._next}"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for track in sorted(self.tracks, key=lambda t: t.kind != "video"):
            pc.addTransceiver(self.relay.subscribe(track, buffered=False), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        self.subs[sub_id] = pc
        return sub_id, str(pc.localDescription.sdp)

    async def answer(self, sub_id: str, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.subs[sub_id].setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    def stats(self) -> dict[str, Any]:
        return {
            "counters": dict(self.counters),
            "connected": sum(1 for pc in self.subs.values() if pc.connectionState == "connected"),
            "threads": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None,
        }

    async def close_subs(self) -> None:
        subs = list(self.subs.values())
        self.subs.clear()
        await _bounded_gather([pc.close() for pc in subs], 20.0)

    async def close(self) -> None:
        await self.close_subs()
        if self.pub is not None:
            await asyncio.wait_for(self.pub.close(), 10.0)


async def _bounded_gather(coros: list[Any], timeout: float) -> None:
    if not coros:
        return
    try:
        await asyncio.wait_for(asyncio.gather(*coros, return_exceptions=True), timeout)
    except asyncio.TimeoutError:
        logger.warning("closing took longer than %.0f s", timeout)


async def serve(mode: str, cpus: list[int]) -> None:
    backend: Any = SfuBackend() if mode == "sfu" else RelayBackend()
    await backend.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def reply(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    async def handle(request: dict[str, Any]) -> None:
        rid = request.get("id")
        op = request.get("op")
        try:
            result: dict[str, Any]
            if op == "hello":
                result = {"pid": os.getpid(), "cpus": cpus, "mode": mode}
            elif op == "publish":
                result = {"sdp": await backend.publish(request["sdp"], request["tracks"])}
            elif op == "subscribe":
                sub_id, sdp = await backend.subscribe()
                result = {"sub": sub_id, "sdp": sdp}
            elif op == "answer":
                await backend.answer(request["sub"], request["sdp"])
                result = {}
            elif op == "stats":
                result = backend.stats()
                result["cpu_s"] = time.process_time()
                result["udp_drops"] = udp_drops()
                result["wall_s"] = time.monotonic()
            elif op == "close_subs":
                await backend.close_subs()
                result = {}
            elif op == "quit":
                done.set()
                result = {}
            else:
                raise ValueError(f"unknown op {op!r}")
            reply({"id": rid, "ok": True, **result})
        except Exception as exc:  # report, keep serving
            logger.exception("request %s failed", op)
            reply({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    async def read_requests() -> None:
        while True:
            line = await reader.readline()
            if not line:
                done.set()  # the client went away
                return
            task = asyncio.ensure_future(handle(json.loads(line)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    read_task = asyncio.ensure_future(read_requests())
    await done.wait()
    read_task.cancel()
    try:
        await backend.close()
    except Exception:
        logger.exception("close failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synclass.bench.server")
    parser.add_argument("mode", choices=("sfu", "relay"))
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not pin)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="[server %(levelname)s] %(name)s: %(message)s")
    cpus = _pin(args.cpu)
    asyncio.run(serve(args.mode, cpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
