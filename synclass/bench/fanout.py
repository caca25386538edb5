"""``synclass bench fanout``: how many subscribers one SFU core carries.

One publisher (640x480 VP8 at ~1 Mbps, pre-encoded once, plus live Opus)
sends to ``media.plane.MediaPlane`` running in its own process pinned to
CPU 0; this process (pinned to CPU 1) hosts the publisher and every
subscriber:

1. latency: 3 full (decoding) subscribers through the SFU; the send time of
   each RTP payload at the publisher against its receive time at the
   subscribers, later the same on a direct publisher→subscriber connection;
2. fan-out: one decoding subscriber (proves the stream is valid) and N light
   subscribers (real ICE/DTLS/SRTP/RTCP, but they only read the clear RTP
   header of each packet to count packets and sequence gaps); after a
   warm-up, an S-second window: SFU CPU, packets out, gaps;
3. baseline: aiortc's ``MediaRelay`` (decode once, encode per subscriber) in
   a fresh process pinned to CPU 0, with K normal subscribers, S seconds.

Progress goes to stderr; the result is ONE JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

SERVER_CPU = 0
CLIENT_CPU = 1
BATCH = 25
CONNECT_TIMEOUT_S = 30.0
LATENCY_SUBSCRIBERS = 3

REPO_ROOT = Path(__file__).resolve().parents[2]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quiet = args.json_only
        self.t0 = time.monotonic()

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[fanout {time.monotonic() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- the server process -------------------------------------------------------------------
class ServerProc:
    """``python -m synclass.bench.server MODE`` with a JSON-lines control channel."""

    def __init__(self, mode: str, quiet: bool) -> None:
        self.mode = mode
        self.quiet = quiet
        self.proc: Optional[asyncio.subprocess.Process] = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._reader: Optional[asyncio.Task[None]] = None

    async def start(self) -> dict[str, Any]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "synclass.bench.server", self.mode, "--cpu", str(SERVER_CPU),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL if self.quiet else None,
            cwd=str(REPO_ROOT),
            env=env,
            limit=1 << 22,
        )
        self._reader = asyncio.ensure_future(self._read())
        return await self.call("hello", timeout=30.0)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                message = json.loads(line)
            except ValueError:
                continue
            future = self._pending.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"{self.mode} server exited"))
        self._pending.clear()

    async def call(self, op: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self._next += 1
        rid = self._next
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self.proc.stdin.write((json.dumps({"id": rid, "op": op, **params}) + "\n").encode())
        await self.proc.stdin.drain()
        reply = await asyncio.wait_for(future, timeout)
        if not reply.get("ok"):
            raise RuntimeError(f"{self.mode} server: {op} failed: {reply.get('error')}")
        return reply

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            try:
                await self.call("quit", timeout=10.0)
            except Exception:
                pass
            try:
                await asyncio.wait_for(proc.wait(), 30.0)
            except asyncio.TimeoutError:
                proc.kill()  # our own child, by its pid
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
        self.proc = None


# --- peers -----------------------------------------------------------------------------------
def _new_pc() -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection

    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def make_publisher(frames: list[bytes]) -> Any:
    from synclass.synthetic import ToneTrack

    from .clientkit import ReplayVideoTrack

    pc = _new_pc()
    pc.addTransceiver(ReplayVideoTrack(frames), direction="sendonly")
    pc.addTransceiver(ToneTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


async def publish(server: ServerProc, pc: Any) -> None:
    from aiortc import RTCSessionDescription

    from .clientkit import wait_connected

    tracks = {t.mid: t.kind for t in pc.getTransceivers()}
    reply = await server.call("publish", sdp=pc.localDescription.sdp, tracks=tracks)
    await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
    await wait_connected(pc, CONNECT_TIMEOUT_S)


async def subscribe(server: ServerProc, light: bool, probe: Any = None, frames: Any = None) -> tuple[Any, Any]:
    """One subscriber: offer from the server, answer from a new peer connection here."""
    from aiortc import RTCSessionDescription

    from .clientkit import LightSubscriber, stop_decoders, wait_connected

    reply = await server.call("subscribe", timeout=60.0)
    pc = _new_pc()
    if frames is not None:
        frames.attach(pc)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        counter = LightSubscriber(pc) if light else None
        if probe is not None:
            probe.hook_subscriber(pc)
        await server.call("answer", sub=reply["sub"], sdp=pc.localDescription.sdp, timeout=60.0)
        await wait_connected(pc, CONNECT_TIMEOUT_S)
        if light:
            stop_decoders(pc)
    except BaseException:
        await _close_all([pc])
        raise
    return pc, counter


async def _close_all(pcs: list[Any], batch: int = 50) -> None:
    for i in range(0, len(pcs), batch):
        chunk = pcs[i : i + batch]
        try:
            await asyncio.wait_for(asyncio.gather(*(pc.close() for pc in chunk), return_exceptions=True), 20.0)
        except asyncio.TimeoutError:
            pass


def _udp_rcvbuf_errors() -> Optional[int]:
    """System-wide UDP receive-buffer drops (all of this bench is on loopback)."""
    try:
        lines = Path("/proc/net/snmp").read_text().splitlines()
    except OSError:
        return None
    rows = [line.split() for line in lines if line.startswith("Udp:")]
    if len(rows) < 2:
        return None
    header, values = rows[0], rows[1]
    try:
        return int(values[header.index("RcvbufErrors")])
    except (ValueError, IndexError):
        return None


def _delta(before: Optional[int], after: Optional[int]) -> Optional[int]:
    return None if before is None or after is None else after - before


async def _packets_lost(pc: Any) -> Optional[int]:
    """Packets the decoding subscriber's aiortc counted as lost (whole run)."""
    try:
        report = await pc.getStats()
    except Exception:
        return None
    return sum(int(getattr(s, "packetsLost", 0) or 0) for s in report.values() if s.type == "inbound-rtp")


def _r(value: Optional[float], digits: int = 2) -> Optional[float]:
    return None if value is None else round(value, digits)


# --- phases ------------------------------------------------------------------------------------
async def latency_phase(bench: Bench, server: Optional[ServerProc], frames: list[bytes], seconds: float) -> dict[str, list[float]]:
    """Payload send→receive times: through the SFU with 3 full subscribers, or direct."""
    from aiortc import RTCSessionDescription

    from .clientkit import FrameCounter, LatencyProbe, kinds_by_payload_type, wait_connected

    probe = LatencyProbe()
    pcs: list[Any] = []
    try:
        pub = await make_publisher(frames)
        pcs.append(pub)
        probe.hook_publisher(pub, kinds_by_payload_type(pub.localDescription.sdp))
        if server is not None:
            await publish(server, pub)
            for _ in range(LATENCY_SUBSCRIBERS):
                pc, _ = await subscribe(server, light=False, probe=probe, frames=FrameCounter())
                pcs.append(pc)
        else:
            sub = _new_pc()
            pcs.append(sub)
            FrameCounter().attach(sub)
            await sub.setRemoteDescription(RTCSessionDescription(pub.localDescription.sdp, "offer"))
            await sub.setLocalDescription(await sub.createAnswer())
            probe.hook_subscriber(sub)
            await pub.setRemoteDescription(RTCSessionDescription(sub.localDescription.sdp, "answer"))
            await wait_connected(pub, CONNECT_TIMEOUT_S)
            await wait_connected(sub, CONNECT_TIMEOUT_S)
        await asyncio.sleep(bench.args.warmup)
        probe.active = True
        await asyncio.sleep(seconds)
        probe.active = False
        await asyncio.sleep(0.3)  # let the last packets arrive
    finally:
        await _close_all(pcs)
        if server is not None:
            await server.call("close_subs", timeout=60.0)
    return probe.samples


async def fanout_phase(bench: Bench, server: ServerProc, frames: list[bytes]) -> dict[str, Any]:
    from .clientkit import FrameCounter
    from .procstat import busy_pct, cpu_split, cpu_times, udp_drops

    args = bench.args
    n = args.subscribers
    pub = await make_publisher(frames)
    pcs: list[Any] = [pub]
    lights: list[Any] = []
    decoded = FrameCounter()
    failed = 0
    try:
        await publish(server, pub)
        bench.log("publisher connected to the SFU")
        decoder_pc, _ = await subscribe(server, light=False, frames=decoded)
        pcs.append(decoder_pc)
        setup_started = time.monotonic()
        for first in range(0, n, BATCH):
            count = min(BATCH, n - first)
            results = await asyncio.gather(
                *(subscribe(server, light=True) for _ in range(count)), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    failed += 1
                    bench.log(f"subscriber failed: {type(result).__name__}: {result}")
                else:
                    pcs.append(result[0])
                    lights.append(result[1])
            bench.log(f"{len(lights)}/{n} light subscribers connected")
        setup_s = time.monotonic() - setup_started
        await asyncio.sleep(args.warmup)

        def client_totals() -> dict[str, Any]:
            per_sub = [light.totals() for light in lights]
            return {
                "per_sub": per_sub,
                "video_gaps": sum(t["video"]["gaps"] for t in per_sub),
                "audio_gaps": sum(t["audio"]["gaps"] for t in per_sub),
                "late": sum(t["video"]["late"] + t["audio"]["late"] for t in per_sub),
            }

        s0 = await server.call("stats")
        c0 = client_totals()
        frames0 = decoded.frames["video"]
        cpu0, wall0, udp0, drops0 = time.process_time(), time.monotonic(), _udp_rcvbuf_errors(), udp_drops()
        core0 = (cpu_times(SERVER_CPU), cpu_times(CLIENT_CPU))
        bench.log(f"measuring for {args.seconds} s")
        await asyncio.sleep(args.seconds)
        s1 = await server.call("stats")
        c1 = client_totals()
        frames1 = decoded.frames["video"]
        cpu1, wall1, udp1, drops1 = time.process_time(), time.monotonic(), _udp_rcvbuf_errors(), udp_drops()
        core1 = (cpu_times(SERVER_CPU), cpu_times(CLIENT_CPU))
        decoder_lost = await _packets_lost(decoder_pc)
    finally:
        bench.log("closing subscribers")
        await _close_all(pcs)
        await server.call("close_subs", timeout=60.0)

    wall = s1["wall_s"] - s0["wall_s"]
    cpu = s1["cpu_s"] - s0["cpu_s"]
    out_packets = s1["counters"]["rtp_packets_out"] - s0["counters"]["rtp_packets_out"]
    in_packets = s1["counters"]["rtp_packets_in"] - s0["counters"]["rtp_packets_in"]
    octets = {p["kind"]: 0 for p in s1["producers"]}
    for before, after in zip(s0["producers"], s1["producers"]):
        octets[after["kind"]] += after["octets"] - before["octets"]
    video_pkts = [a["video"]["packets"] - b["video"]["packets"] for a, b in zip(c1["per_sub"], c0["per_sub"])]
    audio_pkts = [a["audio"]["packets"] - b["audio"]["packets"] for a, b in zip(c1["per_sub"], c0["per_sub"])]
    sfu_cpu_pct = 100.0 * cpu / wall if wall > 0 else None
    return {
        "subscribers": len(lights),
        "subscribers_failed": failed,
        "setup_s": round(setup_s, 1),
        "seconds": round(wall, 2),
        "publish_kbps": round(sum(octets.values()) * 8 / wall / 1000, 1),
        "publish_video_kbps": round(octets.get("video", 0) * 8 / wall / 1000, 1),
        "in_pps": round(in_packets / wall, 1),
        "out_pps": round(out_packets / wall, 1),
        "sfu_cpu_pct": _r(sfu_cpu_pct, 1),
        "us_per_packet": _r(cpu / out_packets * 1e6 if out_packets else None, 2),
        "frame_gaps": c1["video_gaps"] - c0["video_gaps"],
        "audio_gaps": c1["audio_gaps"] - c0["audio_gaps"],
        "late_packets": c1["late"] - c0["late"],
        "subscriber_video_packets_min": min(video_pkts) if video_pkts else 0,
        "subscriber_video_packets_max": max(video_pkts) if video_pkts else 0,
        "subscriber_audio_packets_min": min(audio_pkts) if audio_pkts else 0,
        "subscribers_receiving": sum(1 for v, a in zip(video_pkts, audio_pkts) if v > 0 and a > 0),
        "decoded_frames": frames1 - frames0,
        "decoded_fps": round((frames1 - frames0) / (wall1 - wall0), 1),
        "decoded_frames_total": frames1,
        "decoded_size": decoded.size,
        "sfu_core_busy_pct": busy_pct(core0[0], core1[0]),
        "client_core_busy_pct": busy_pct(core0[1], core1[1]),
        "sfu_core_split": cpu_split(core0[0], core1[0]),
        "client_cpu_pct": round(100.0 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "udp_rcvbuf_errors": None if udp0 is None or udp1 is None else udp1 - udp0,
        "sfu_udp_drops": _delta(s0.get("udp_drops"), s1.get("udp_drops")),
        "client_udp_drops": _delta(drops0, drops1),
        "decoder_packets_lost": decoder_lost,
        "sfu_consumers_started": s1["consumers_started"],
        "sfu_nacks": s1["nacks"] - s0["nacks"],
        "sfu_retransmissions": s1["retransmissions"] - s0["retransmissions"],
        "sfu_plis": s1["plis"] - s0["plis"],
        "sfu_decoders_created": s1["counters"]["decoders_created"],
        "sfu_encoders_created": s1["counters"]["encoders_created"],
        "subscribers_per_core": _r(len(lights) / (sfu_cpu_pct / 100.0) if sfu_cpu_pct else None, 1),
        # the same on the whole core: adds loopback softirq and anything else that ran on it
        "subscribers_per_core_busy": _r(len(lights) / (busy / 100.0) if (busy := busy_pct(core0[0], core1[0])) else None, 1),
    }


async def relay_phase(bench: Bench, frames: list[bytes]) -> dict[str, Any]:
    from .clientkit import FrameCounter

    args = bench.args
    k = args.relay_subscribers
    server = ServerProc("relay", bench.quiet)
    await server.start()
    pcs: list[Any] = []
    counters: list[Any] = []
    try:
        pub = await make_publisher(frames)
        pcs.append(pub)
        await publish(server, pub)
        for _ in range(k):
            counter = FrameCounter()
            pc, _ = await subscribe(server, light=False, frames=counter)
            pcs.append(pc)
            counters.append(counter)
        bench.log(f"relay: {k} subscribers connected")
        await asyncio.sleep(args.warmup)
        s0 = await server.call("stats")
        f0 = [c.frames["video"] for c in counters]
        a0 = [c.frames["audio"] for c in counters]
        await asyncio.sleep(args.seconds)
        s1 = await server.call("stats")
        f1 = [c.frames["video"] for c in counters]
        a1 = [c.frames["audio"] for c in counters]
    finally:
        await _close_all(pcs)
        await server.stop()
    wall = s1["wall_s"] - s0["wall_s"]
    cpu_pct = 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / wall
    fps = [(b - a) / wall for a, b in zip(f0, f1)]
    return {
        "relay_subscribers": k,
        "relay_cpu_pct": round(cpu_pct, 1),
        "relay_subscribers_per_core": round(k / (cpu_pct / 100.0), 2) if cpu_pct > 0 else None,
        "relay_fps_mean": round(statistics.mean(fps), 1) if fps else None,
        "relay_fps_min": round(min(fps), 1) if fps else None,
        "relay_audio_frames_per_s": round(statistics.mean((b - a) / wall for a, b in zip(a0, a1)), 1) if a0 else None,
        "relay_kept_frame_rate": bool(fps) and min(fps) >= 27.0,
        "relay_decoders_created": s1["counters"]["decoders_created"],
        "relay_encoders_created": s1["counters"]["encoders_created"],
    }


async def run(bench: Bench) -> dict[str, Any]:
    from .clientkit import check_private_api, encode_loop, percentile

    args = bench.args
    check_private_api()
    frames, loop_info = await encode_loop(bitrate=args.bitrate)
    bench.log(f"pre-encoded {loop_info}")
    result: dict[str, Any] = {"subscribers": args.subscribers, "seconds": args.seconds}

    sfu = ServerProc("sfu", bench.quiet)
    hello = await sfu.start()
    bench.log(f"SFU process pid {hello['pid']} on CPU {hello['cpus']}")
    try:
        latency_s = min(float(args.seconds), 5.0)
        sfu_samples = await latency_phase(bench, sfu, frames, latency_s)
        bench.log(f"latency via SFU: {len(sfu_samples['video'])} video, {len(sfu_samples['audio'])} audio samples")
        result.update(await fanout_phase(bench, sfu, frames))
    finally:
        await sfu.stop()
    bench.log(
        f"SFU: {result['subscribers']} subs, {result['sfu_cpu_pct']} % CPU, {result['us_per_packet']} us/packet, "
        f"gaps video {result['frame_gaps']} audio {result['audio_gaps']}"
    )

    direct_samples = await latency_phase(bench, None, frames, latency_s)
    both = sfu_samples["video"] + sfu_samples["audio"]
    direct = direct_samples["video"] + direct_samples["audio"]
    p50, p95, d50, d95 = percentile(both, 50), percentile(both, 95), percentile(direct, 50), percentile(direct, 95)
    result.update(
        {
            "latency_ms_p50": _r(p50, 3),
            "latency_ms_p95": _r(p95, 3),
            "latency_video_ms_p50": _r(percentile(sfu_samples["video"], 50), 3),
            "latency_audio_ms_p50": _r(percentile(sfu_samples["audio"], 50), 3),
            "latency_samples": len(both),
            "direct_latency_ms_p50": _r(d50, 3),
            "direct_latency_ms_p95": _r(d95, 3),
            "direct_latency_samples": len(direct),
            "added_latency_ms_p50": _r(p50 - d50 if p50 is not None and d50 is not None else None, 3),
            "added_latency_ms_p95": _r(p95 - d95 if p95 is not None and d95 is not None else None, 3),
        }
    )
    bench.log(f"latency p50 {result['latency_ms_p50']} ms (direct {result['direct_latency_ms_p50']} ms)")

    if args.relay_subscribers > 0:
        result.update(await relay_phase(bench, frames))
        ours, theirs = result.get("subscribers_per_core"), result.get("relay_subscribers_per_core")
        result["ratio_vs_relay"] = round(ours / theirs, 1) if ours and theirs else None
    else:
        result.update({"relay_subscribers": 0, "relay_cpu_pct": None, "relay_subscribers_per_core": None, "ratio_vs_relay": None})
    result.update(loop_info)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="synclass bench fanout", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=250, help="light subscribers on the SFU (default 250)")
    parser.add_argument("--seconds", type=float, default=20, help="measurement window per phase (default 20)")
    parser.add_argument("--relay-subscribers", type=int, default=4, help="subscribers of the MediaRelay baseline (default 4; 0 skips it)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after setup before measuring (default 3)")
    parser.add_argument("--bitrate", type=int, default=1_000_000, help="publisher video bitrate, bit/s (default 1000000)")
    parser.add_argument("--json-only", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.subscribers < 1 or args.seconds <= 0 or args.relay_subscribers < 0:
        parser.error("--subscribers must be >= 1, --seconds > 0, --relay-subscribers >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    from .clientkit import run_clients

    result = run_clients(run(bench), CLIENT_CPU)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
