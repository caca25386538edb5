"""``synclass bench record``: what recording costs the SFU, per 1 Mbps video track.

The fan-out benchmark's method: ``media.plane.MediaPlane`` runs in its own
process pinned to CPU 0 and its CPU time is read there (all its threads,
``time.process_time``); this process, pinned to CPU 1, hosts the publishers.
N publishers each send one 640x480 VP8 track at ~1 Mbps (encoded once
beforehand, so publishing costs almost nothing; a keyframe request is
answered with the loop's next keyframe, like a live encoder).

Phases, each S seconds, the publishers sending all along:
1. baseline: the SFU receives the N tracks, nobody records;
2. recording: one recorder per track writes a WebM file (to ``--dir``);
3. baseline again, after the recorders closed.

Recording costs (phase 2 - mean of phases 1 and 3) / N per track, reported as
% of one core, and divided by the track's measured bitrate per 1 Mbps. The
event loop's own share (``time.thread_time`` on the loop thread) is reported
apart from the writer thread's. The files are then opened with PyAV.

Progress goes to stderr; the result is ONE JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Optional

from .fanout import CLIENT_CPU, CONNECT_TIMEOUT_S, REPO_ROOT, SERVER_CPU, ServerProc

logger = logging.getLogger("synclass.bench.record")


# --- the server process -------------------------------------------------------------------
class RecordServer(ServerProc):
    """``python -m synclass.bench.record serve --cpu 0``: JSON lines on stdin/stdout."""

    def __init__(self, quiet: bool) -> None:
        super().__init__("record", quiet)

    async def start(self) -> dict[str, Any]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "synclass.bench.record", "serve", "--cpu", str(SERVER_CPU),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL if self.quiet else None,
            cwd=str(REPO_ROOT),
            env=env,
            limit=1 << 22,
        )
        self._reader = asyncio.ensure_future(self._read())
        return await self.call("hello", timeout=30.0)


class RecordBackend:
    def __init__(self) -> None:
        from media.plane import MediaPlane

        self.plane = MediaPlane(ice_host_addresses=["127.0.0.1"])
        self.router: Any = None
        self.producers: list[Any] = []
        self.recorders: list[Any] = []

    async def start(self) -> None:
        self.router = await self.plane.create_router({"session": "bench-record"})

    async def publish(self, sdp: str, tracks: dict[str, str]) -> str:
        transport = await self.router.create_transport({"role": "publisher"})
        answer, producers = await transport.publish(sdp, {mid: {"source": kind} for mid, kind in tracks.items()})
        self.producers += producers
        return str(answer)

    async def record(self, directory: str) -> list[str]:
        for i, producer in enumerate(p for p in self.producers if p.kind == "video"):
            self.recorders.append(await self.router.create_recorder(producer.id, directory, f"{i + 1:02d}-camera"))
        return [r.path for r in self.recorders]

    async def unrecord(self) -> list[dict[str, Any]]:
        recorders, self.recorders = self.recorders, []
        return [await r.close() for r in recorders]

    def stats(self) -> dict[str, Any]:
        return {
            "counters": self.plane.counters(),
            "producers": [{"kind": p.kind, "packets": p.packets, "octets": p.octets} for p in self.producers],
            "recorders": [r.stats() for r in self.recorders],
            "recorded_frames": sum(r.stats()["frames"] for r in self.recorders),
        }

    async def close(self) -> None:
        await asyncio.wait_for(self.plane.close(), 20.0)


async def serve(cpus: list[int]) -> None:
    backend = RecordBackend()
    await backend.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    async def handle(request: dict[str, Any]) -> None:
        rid, op = request.get("id"), request.get("op")
        try:
            result: dict[str, Any]
            if op == "hello":
                result = {"pid": os.getpid(), "cpus": cpus}
            elif op == "publish":
                result = {"sdp": await backend.publish(request["sdp"], request["tracks"])}
            elif op == "record":
                result = {"paths": await backend.record(request["dir"])}
            elif op == "unrecord":
                result = {"stats": await backend.unrecord()}
            elif op == "stats":
                result = backend.stats()
                result["cpu_s"] = time.process_time()  # every thread of the process
                result["loop_cpu_s"] = time.thread_time()  # this one: the event loop's
                result["wall_s"] = time.monotonic()
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
                done.set()
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


def serve_main(argv: list[str]) -> int:
    from .server import _pin

    parser = argparse.ArgumentParser(prog="synclass.bench.record serve")
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not pin)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="[record server %(levelname)s] %(name)s: %(message)s")
    asyncio.run(serve(_pin(args.cpu)))
    return 0


# --- the client side ------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()

    def log(self, message: str) -> None:
        if not self.args.json_only:
            print(f"[record {time.monotonic() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


async def _publisher(server: RecordServer, frames: list[bytes], keyframe_every: int) -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from .clientkit import ReplayVideoTrack, wait_connected

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = ReplayVideoTrack(frames, keyframe_every=keyframe_every)
    transceiver = pc.addTransceiver(track, direction="sendonly")
    track.answer_keyframe_requests(transceiver.sender)
    await pc.setLocalDescription(await pc.createOffer())
    try:
        tracks = {t.mid: t.kind for t in pc.getTransceivers()}
        reply = await server.call("publish", sdp=pc.localDescription.sdp, tracks=tracks)
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        await wait_connected(pc, CONNECT_TIMEOUT_S)
    except BaseException:
        await pc.close()
        raise
    return pc


async def _window(bench: Bench, server: RecordServer, label: str) -> dict[str, Any]:
    s0 = await server.call("stats")
    await asyncio.sleep(bench.args.seconds)
    s1 = await server.call("stats")
    wall = s1["wall_s"] - s0["wall_s"]
    octets = sum(b["octets"] - a["octets"] for a, b in zip(s0["producers"], s1["producers"]) if b["kind"] == "video")
    packets = sum(b["packets"] - a["packets"] for a, b in zip(s0["producers"], s1["producers"]) if b["kind"] == "video")
    result = {
        "wall_s": wall,
        "cpu_pct": 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / wall,
        "loop_cpu_pct": 100.0 * (s1["loop_cpu_s"] - s0["loop_cpu_s"]) / wall,
        "video_kbps": octets * 8 / wall / 1000,
        "video_pps": packets / wall,
        "recorded_fps": (s1["recorded_frames"] - s0["recorded_frames"]) / wall,
        "counters": s1["counters"],
    }
    bench.log(
        f"{label}: SFU {result['cpu_pct']:.1f} % of a core (loop {result['loop_cpu_pct']:.1f} %), "
        f"{result['video_kbps']:.0f} kbps video in, {result['recorded_fps']:.1f} frames/s recorded"
    )
    return result


def _check_files(paths: list[str]) -> dict[str, Any]:
    """Open every recording with PyAV (here, in the client): packets, duration, the first frame's size."""
    import av

    frames, durations, sizes, failures = [], [], set(), 0
    for path in paths:
        try:
            with av.open(path) as container:
                stream = container.streams.video[0]
                count = sum(1 for p in container.demux(stream) if p.pts is not None)
                durations.append(container.duration / 1e6 if container.duration else 0.0)
            with av.open(path) as container:
                first = next(container.decode(video=0))
                sizes.add(f"{first.width}x{first.height}")
            frames.append(count)
        except Exception:
            failures += 1
    return {
        "files": len(paths),
        "files_unreadable": failures,
        "file_frames_min": min(frames) if frames else 0,
        "file_duration_s_min": round(min(durations), 2) if durations else 0.0,
        "file_duration_s_max": round(max(durations), 2) if durations else 0.0,
        "file_sizes": sorted(sizes),
        "file_bytes": sum(os.path.getsize(p) for p in paths if os.path.exists(p)),
    }


async def run(bench: Bench) -> dict[str, Any]:
    from .clientkit import check_private_api, encode_loop

    args = bench.args
    check_private_api()
    frames, loop_info = await encode_loop(bitrate=args.bitrate)
    keyframe_every = 60
    bench.log(f"pre-encoded {loop_info}")
    directory = args.dir or tempfile.mkdtemp(prefix="synclass-bench-record-")
    os.makedirs(directory, exist_ok=True)
    server = RecordServer(args.json_only)
    hello = await server.start()
    bench.log(f"SFU process pid {hello['pid']} on CPU {hello['cpus']}, recording to {directory}")
    pcs: list[Any] = []
    try:
        for _ in range(args.tracks):
            pcs.append(await _publisher(server, frames, keyframe_every))
        bench.log(f"{len(pcs)} publishers connected")
        await asyncio.sleep(args.warmup)
        before = await _window(bench, server, "baseline")
        paths = (await server.call("record", dir=directory))["paths"]
        await asyncio.sleep(args.warmup)  # the recorders start at a keyframe
        recording = await _window(bench, server, "recording")
        closed = (await server.call("unrecord", timeout=60.0))["stats"]
        await asyncio.sleep(args.warmup)
        after = await _window(bench, server, "baseline again")
    finally:
        for pc in pcs:
            await pc.close()
        await server.stop()
    files = await asyncio.get_running_loop().run_in_executor(None, _check_files, paths)
    if not args.dir and not args.keep:
        shutil.rmtree(directory, ignore_errors=True)

    n = args.tracks
    base_cpu = (before["cpu_pct"] + after["cpu_pct"]) / 2
    base_loop = (before["loop_cpu_pct"] + after["loop_cpu_pct"]) / 2
    per_track = (recording["cpu_pct"] - base_cpu) / n
    per_track_loop = (recording["loop_cpu_pct"] - base_loop) / n
    mbps = recording["video_kbps"] / n / 1000
    pps = recording["video_pps"] / n
    return {
        "tracks": n,
        "seconds": args.seconds,
        "video_kbps_per_track": round(recording["video_kbps"] / n, 1),
        "video_pps_per_track": round(pps, 1),
        "sfu_cpu_pct_baseline": round(before["cpu_pct"], 2),
        "sfu_cpu_pct_recording": round(recording["cpu_pct"], 2),
        "sfu_cpu_pct_baseline_after": round(after["cpu_pct"], 2),
        "loop_cpu_pct_baseline": round(base_loop, 2),
        "loop_cpu_pct_recording": round(recording["loop_cpu_pct"], 2),
        "record_cpu_pct_per_track": round(per_track, 3),
        "record_cpu_pct_per_mbps": round(per_track / mbps, 3) if mbps > 0 else None,
        "record_loop_cpu_pct_per_mbps": round(per_track_loop / mbps, 3) if mbps > 0 else None,
        "record_us_per_packet": round(per_track / 100 / pps * 1e6, 2) if pps > 0 else None,
        "target_pct_per_mbps": 5.0,
        "meets_target": mbps > 0 and per_track / mbps <= 5.0,
        "recorded_fps_per_track": round(recording["recorded_fps"] / n, 1),
        "recorded_frames": sum(s["frames"] for s in closed),
        "sfu_decoders_created": recording["counters"]["decoders_created"],
        "sfu_encoders_created": recording["counters"]["encoders_created"],
        **files,
        **loop_info,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="synclass bench record", description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=4, help="video tracks published and recorded (default 4)")
    parser.add_argument("--seconds", type=float, default=10, help="measurement window per phase (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each window (default 3)")
    parser.add_argument("--bitrate", type=int, default=1_000_000, help="publisher video bitrate, bit/s (default 1000000)")
    parser.add_argument("--dir", default=None, help="write the recordings here and keep them (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory's recordings")
    parser.add_argument("--json-only", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.tracks < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--tracks must be >= 1, --seconds > 0, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        return serve_main(argv[1:])
    args = parse_args(argv)
    bench = Bench(args)
    from .clientkit import run_clients

    result = run_clients(run(bench), CLIENT_CPU)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
