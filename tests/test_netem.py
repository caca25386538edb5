"""synclass.netem: an emulated weak link around a network namespace.

Every test builds its own ``EmulatedLink``; traffic goes only between the
host-side address of that link and its namespace. Clients run inside the
namespace as small Python subprocesses (``link.popen``); servers run in this
process on ``link.host_addr``. Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from synclass.netem import EmulatedLink, can_emulate

_OK, _WHY = can_emulate()
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not _OK, reason=f"cannot emulate a link: {_WHY}"),
    pytest.mark.timeout(60),
]

# -- clients that run inside the namespace ------------------------------------------

UDP_PING = r"""
import json, select, socket, struct, sys, time
host, port, count, interval, linger = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
rtts = {}
t0 = time.monotonic()
end = t0 + count * interval + linger
i = 0
while True:
    now = time.monotonic()
    if i < count and now >= t0 + i * interval:
        s.sendto(struct.pack("!Id", i, now) + b"x" * 100, (host, port))
        i += 1
        continue
    if i >= count and (now >= end or len(rtts) >= count):
        break
    wake = t0 + i * interval if i < count else end
    r, _, _ = select.select([s], [], [], max(0.0, wake - now))
    while r:
        try:
            data = s.recv(2048)
        except BlockingIOError:
            break
        seq, ts = struct.unpack("!Id", data[:12])
        rtts[seq] = (time.monotonic() - ts) * 1000.0
print(json.dumps({"sent": i, "rtts_ms": list(rtts.values())}))
"""

UDP_SINK = r"""
import json, socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
samples = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    if not samples:
        s.sendto(b"hello", (host, port))  # tells the sender where to send
    try:
        data = s.recv(4096)
    except socket.timeout:
        continue
    samples.append((time.monotonic(), len(data)))
print(json.dumps(samples))
"""

UDP_BLAST = r"""
import socket, sys, time
host, port, kbps, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"u" * 1200
interval = len(payload) * 8 / (kbps * 1000)
now = time.monotonic()
end, due = now + seconds, now
while now < end:
    while due <= now:
        try:
            s.sendto(payload, (host, port))
        except OSError:
            pass  # the rate cap's queue is full
        due += interval
    time.sleep(0.002)
    now = time.monotonic()
"""

HTTP_GET = r"""
import hashlib, json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=20) as r:
    body = r.read()
print(json.dumps({"status": r.status, "len": len(body), "sha": hashlib.sha256(body).hexdigest()}))
"""

ICE_ANSWERER = r"""
import asyncio, json, sys
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

async def main():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    @pc.on("datachannel")
    def on_datachannel(channel):
        @channel.on("message")
        def on_message(message):
            channel.send(message)

    loop = asyncio.get_running_loop()
    offer = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    await pc.setRemoteDescription(RTCSessionDescription(**offer))
    await pc.setLocalDescription(await pc.createAnswer())
    print(json.dumps({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}), flush=True)
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), 30)
    await pc.close()

asyncio.run(main())
"""


def run_in_link(link: EmulatedLink, code: str, *args: object, timeout: float = 20.0) -> str:
    proc = link.popen([sys.executable, "-c", code, *map(str, args)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"client timed out; stderr: {err}")
    assert proc.returncode == 0, err
    return out


# -- servers on the host side ------------------------------------------------------


class _Thread:
    """A bounded background loop ``body(stop)`` in a daemon thread."""

    def __init__(self, body: Callable[[threading.Event], None]) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=body, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def udp_echo(host: str, max_seconds: float = 30.0) -> tuple[int, _Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)

    def body(stop: threading.Event) -> None:
        end = time.monotonic() + max_seconds
        with sock:
            while not stop.is_set() and time.monotonic() < end:
                r, _, _ = select.select([sock], [], [], 0.1)
                for _ in range(64) if r else ():
                    try:
                        data, addr = sock.recvfrom(2048)
                    except BlockingIOError:
                        break
                    sock.sendto(data, addr)

    return sock.getsockname()[1], _Thread(body)


def udp_blaster(host: str, kbps: float, max_seconds: float = 15.0) -> tuple[int, _Thread]:
    """Waits for one datagram, then sends 1200-byte datagrams back to its sender at ``kbps``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(5)

    def body(stop: threading.Event) -> None:
        with sock:
            try:
                _, peer = sock.recvfrom(2048)
            except socket.timeout:
                return
            payload = b"d" * 1200
            interval = len(payload) * 8 / (kbps * 1000)
            now = time.monotonic()
            end, due = now + max_seconds, now
            while not stop.is_set() and now < end:
                while due <= now:
                    try:
                        sock.sendto(payload, peer)
                    except OSError:
                        pass  # the rate cap's queue is full
                    due += interval
                time.sleep(0.002)
                now = time.monotonic()

    return sock.getsockname()[1], _Thread(body)


def udp_sink(host: str, samples: list[tuple[float, int]], max_seconds: float = 15.0) -> tuple[int, _Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(0.2)

    def body(stop: threading.Event) -> None:
        end = time.monotonic() + max_seconds
        with sock:
            while not stop.is_set() and time.monotonic() < end:
                try:
                    data = sock.recv(4096)
                except socket.timeout:
                    continue
                samples.append((time.monotonic(), len(data)))

    return sock.getsockname()[1], _Thread(body)


def kbps(samples: list[tuple[float, int]], t0: float, t1: float) -> float:
    """Payload rate (kbit/s) of the bytes received in [t0, t1)."""
    return sum(n for t, n in samples if t0 <= t < t1) * 8 / (t1 - t0) / 1000


@pytest.fixture
def servers() -> Iterator[list[_Thread]]:
    made: list[_Thread] = []
    yield made
    for s in made:
        s.close()


def ping(link: EmulatedLink, servers: list[_Thread], count: int, interval: float, linger: float) -> dict[str, Any]:
    port, echo = udp_echo(link.host_addr)
    servers.append(echo)
    return json.loads(run_in_link(link, UDP_PING, link.host_addr, port, count, interval, linger,
                                  timeout=count * interval + linger + 15))


# -- delay and loss -----------------------------------------------------------------


def test_a_clean_link_adds_no_loss_and_no_delay(servers: list[_Thread]) -> None:
    with EmulatedLink() as link:
        res = ping(link, servers, count=300, interval=0.002, linger=0.5)
        c = link.counters()
    assert res["sent"] == 300
    assert len(res["rtts_ms"]) == 300, "a clean link lost packets"
    assert statistics.median(res["rtts_ms"]) < 5.0, res["rtts_ms"][:20]
    assert c["down_dropped_packets"] == c["up_dropped_packets"] == 0
    assert c["up_forwarded_packets"] >= 300 and c["down_forwarded_packets"] >= 300


def test_rtt_and_jitter_are_what_was_asked(servers: list[_Thread]) -> None:
    with EmulatedLink(rtt_ms=100, jitter_ms=10, seed=1) as link:
        res = ping(link, servers, count=300, interval=0.005, linger=1.0)
    rtts = sorted(res["rtts_ms"])
    assert len(rtts) == 300
    median = statistics.median(rtts)
    assert 90 <= median <= 140, median
    # two independent uniform +-10 ms jitters: the round trip spreads over 80..120 ms
    assert rtts[0] >= 75 and rtts[-1] <= 135, (rtts[0], rtts[-1])
    assert rtts[int(0.9 * len(rtts))] - rtts[int(0.1 * len(rtts))] > 5, "no jitter seen"


def test_loss_is_random_per_packet_and_per_direction(servers: list[_Thread]) -> None:
    p, n = 0.05, 2000
    with EmulatedLink(loss=p, seed=7) as link:
        res = ping(link, servers, count=n, interval=0.001, linger=0.5)
        c = link.counters()
    lost = n - len(res["rtts_ms"])
    q = 1 - (1 - p) ** 2  # a round trip crosses the relay twice
    mean, sd = n * q, math.sqrt(n * q * (1 - q))
    assert mean - 4.5 * sd <= lost <= mean + 4.5 * sd, (lost, mean, sd)
    # the relay's own counters tell the same story, direction by direction
    assert c["up_dropped_packets"] + c["down_dropped_packets"] >= lost * 0.9
    assert abs(c["up_dropped_packets"] / max(1, c["up_dropped_packets"] + c["up_forwarded_packets"]) - p) < 0.03
    assert c["down_overflow_packets"] == c["up_overflow_packets"] == 0


# -- rate ---------------------------------------------------------------------------


def test_downlink_rate_is_capped_and_changes_at_runtime(servers: list[_Thread]) -> None:
    with EmulatedLink(rate_kbps=300) as link:
        port, blaster = udp_blaster(link.host_addr, kbps=3000)  # 10x the cap, then 1.5x
        servers.append(blaster)
        holder: dict[str, Any] = {}

        def client() -> None:
            holder["out"] = run_in_link(link, UDP_SINK, link.host_addr, port, 5.0, timeout=20)

        t = threading.Thread(target=client, daemon=True)
        start = time.monotonic()
        t.start()
        time.sleep(2.5)
        t_set = time.monotonic()
        link.set(rate_kbps=2000)
        t.join(timeout=20)
        c = link.counters()
    samples = [tuple(s) for s in json.loads(holder["out"])]
    assert samples, "nothing received"
    first = samples[0][0]
    slow = kbps(samples, first + 0.5, t_set)
    fast = kbps(samples, t_set + 0.5, start + 4.8)
    # UDP payload rate: the 28 bytes of IP+UDP headers are 2.3 % of a 1228-byte packet
    assert 240 <= slow <= 330, slow
    assert 1700 <= fast <= 2100, fast
    assert c["down_ratecap_dropped_packets"] > 0  # the cap's queue overflowed, as on a real link
    assert c["down_dropped_packets"] == 0  # and the relay itself dropped nothing


def test_uplink_rate_is_capped_separately(servers: list[_Thread]) -> None:
    samples: list[tuple[float, int]] = []
    with EmulatedLink(uplink_rate_kbps=200, rate_kbps=5000) as link:
        port, sink = udp_sink(link.host_addr, samples)
        servers.append(sink)
        run_in_link(link, UDP_BLAST, link.host_addr, port, 600, 3.0, timeout=15)
    assert samples
    first = samples[0][0]
    up = kbps(samples, first + 0.5, first + 2.9)
    assert 160 <= up <= 220, up


# -- real protocols through the link --------------------------------------------------


def test_http_over_tcp_works_through_a_lossy_delayed_link() -> None:
    from aiohttp import web

    body = os.urandom(200_000)
    loop = asyncio.new_event_loop()
    runner: Any = None

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/octet-stream")

    with EmulatedLink(rate_kbps=4000, loss=0.02, rtt_ms=60, seed=3) as link:
        async def start() -> int:
            nonlocal runner
            app = web.Application()
            app.router.add_get("/blob", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, link.host_addr, 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
            out = json.loads(run_in_link(link, HTTP_GET, f"http://{link.host_addr}:{port}/blob", timeout=30))
        finally:
            if runner is not None:
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
        c = link.counters()
    assert out == {"status": 200, "len": len(body), "sha": hashlib.sha256(body).hexdigest()}
    assert c["down_dropped_packets"] + c["up_dropped_packets"] > 0, "the link was supposed to drop packets"


async def test_webrtc_ice_connects_without_nat(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc on the host address, aiortc in the namespace: ICE sees the real addresses."""
    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    loop = asyncio.get_running_loop()
    with EmulatedLink(rtt_ms=60, rate_kbps=2000) as link:
        monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [link.host_addr])
        peer = link.popen([sys.executable, "-c", ICE_ANSWERER], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            channel = pc.createDataChannel("echo")
            opened = asyncio.Event()
            echoes: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
            channel.on("open", opened.set)
            channel.on("message", lambda m: echoes.put_nowait((m, time.monotonic())))
            await pc.setLocalDescription(await pc.createOffer())
            assert peer.stdin is not None and peer.stdout is not None
            peer.stdin.write(json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}) + "\n")
            peer.stdin.flush()
            answer = json.loads(await asyncio.wait_for(loop.run_in_executor(None, peer.stdout.readline), 20))
            assert link.client_addr in answer["sdp"]
            await pc.setRemoteDescription(RTCSessionDescription(**answer))
            await asyncio.wait_for(opened.wait(), 20)
            rtts = []
            for i in range(10):
                sent = time.monotonic()
                channel.send(f"ping {i}")
                msg, got = await asyncio.wait_for(echoes.get(), 5)
                assert msg == f"ping {i}"
                rtts.append((got - sent) * 1000)
            pair = pc.sctp.transport.transport._connection._nominated[1]  # type: ignore[union-attr]
            assert pair.local_candidate.host == link.host_addr
            assert pair.remote_addr[0] == link.client_addr  # no NAT in between
            assert 55 <= statistics.median(rtts) <= 120, rtts
        finally:
            await pc.close()
            if peer.stdin is not None:
                try:
                    peer.stdin.write("quit\n")
                    peer.stdin.flush()
                except OSError:
                    pass
            try:
                peer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                peer.kill()


# -- lifecycle -----------------------------------------------------------------------


def test_teardown_removes_everything_even_after_an_error() -> None:
    seen: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="boom"):
        with EmulatedLink(rate_kbps=500, uplink_rate_kbps=100, rtt_ms=20, loss=0.1) as link:
            seen.update(ns=link.ns, devs=(link.host_if, link.ns_if), relay=link.relay_pid,
                        addr=link.host_addr)
            sleeper = link.popen(["sleep", "30"])
            seen["sleeper"] = sleeper
            assert link.ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            raise RuntimeError("boom")
    assert seen["ns"] not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for dev in seen["devs"]:
        assert f" {dev}:" not in links
    assert seen["addr"] not in subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    with pytest.raises(ProcessLookupError):
        os.kill(seen["relay"], 0)
    assert seen["sleeper"].poll() is not None


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        EmulatedLink(loss=1.5)
    with pytest.raises(ValueError):
        EmulatedLink(rate_kbps=0)
    with pytest.raises(ValueError):
        EmulatedLink(rtt_ms=-1)
