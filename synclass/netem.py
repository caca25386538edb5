"""An emulated weak link (rate cap, delay, jitter, loss) around a network namespace.

What: ``EmulatedLink`` puts a process (an aiortc client subprocess, Chromium)
inside a network namespace whose only path to the host goes through a kernel
``tbf`` rate cap and a userspace relay that drops, delays and jitters packets.
Benchmarks (``synclass bench link``) and tests use it to see how the SFU and
its clients behave on the lossy, slow links of rural classrooms.

Why no netem: this kernel has ``tbf`` but not ``sch_netem``, so delay, jitter
and loss are done in userspace, by a relay process that moves raw IP packets
between two TUN devices. Packets are never rewritten (no NAT, no proxying):
the client sees the server's real address and the server the client's, so
WebRTC ICE, DTLS and TCP work unchanged. The server binds its HTTP and its
ICE/UDP sockets on ``link.host_addr`` (e.g. ``ice_host_addresses``); the client
in the namespace can reach nothing but that address (no default route).

The packet path (``n`` = a free link number, 10.232.<n>.0/30)::

    root namespace (server)                          namespace scem<n> (client)
    10.232.<n>.1  scem<n>h (TUN)                     scem<n>c (TUN)  10.232.<n>.2
        |  egress: tbf rate_kbps   (downlink)            |  egress: tbf uplink_rate_kbps
        v                                                v
      [ fd ] ---> relay: loss p, delay rtt/2 +-jitter ---> [ fd ]   (down: to the client)
      [ fd ] <--- relay: loss p, delay rtt/2 +-jitter <--- [ fd ]   (up: from the client)

Both TUN devices are created in the root namespace (``TUNSETIFF``,
``IFF_TUN | IFF_NO_PI``); the client's is then moved into the namespace; the
file descriptors keep working. The relay is its own process
(``python -m synclass.netem relay``, so it takes neither the caller's event
loop nor its GIL); it holds the only descriptors of both devices, so when it
exits the devices (and their qdiscs) disappear with it. It is controlled by
JSON lines on its stdin (``set``, ``counters``, ``quit``) and exits on EOF, on
``quit`` or after ``max_seconds``.

Each direction drops a packet with probability ``loss`` (independently, so
round-trip loss is ``1 - (1 - loss)**2``), then delays it by ``rtt_ms / 2``
plus a uniform ``+-jitter_ms`` (clamped at 0; packets may reorder, like
netem). Random decisions come from one seeded generator per direction. The
relay's queue is bounded (``MAX_QUEUE_PACKETS`` per direction; beyond that
packets are dropped and counted as overflow). Timers have ~1 ms resolution
(a delayed packet leaves within +-0.5 ms of its due time, plus scheduling).

Use::

    from synclass.netem import EmulatedLink, can_emulate

    with EmulatedLink(rate_kbps=300, loss=0.05, rtt_ms=100, jitter_ms=10) as link:
        server = start_server(host=link.host_addr)          # listens on the host side
        client = link.popen([sys.executable, "client.py", f"http://{link.host_addr}:8080"])
        ...
        link.set(rate_kbps=100)                             # the link gets worse
        link.set(rate_kbps=300, loss=0.0)                   # and recovers
        print(link.counters())

For Chromium, point Playwright's ``executable_path`` at a wrapper script that
runs ``exec ip netns exec <link.ns> /usr/bin/chromium "$@"`` (see
``link.exec_prefix()``). On exit the link stops every process it started with
``popen`` and any other process still inside its namespace, the relay, and
deletes the namespace and devices. Needs root, ``ip``, ``tc`` and
``/dev/net/tun`` (``can_emulate()``).
"""

from __future__ import annotations

import errno
import fcntl
import heapq
import ipaddress
import itertools
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Sequence

SUBNET_BASE = ipaddress.IPv4Network("10.232.0.0/16")
"""Every /30 handed out here lives in this /16 (third octet = link number)."""

NAME_PREFIX = "scem"
"""Namespace ``scem<n>``, host TUN ``scem<n>h``, client TUN ``scem<n>c``."""

MAX_QUEUE_PACKETS = 20_000
"""Packets the relay holds per direction (delayed, not yet delivered)."""

DEFAULT_MAX_SECONDS = 6 * 3600.0
"""The relay exits by itself after this long, whatever happens to its parent."""

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_CMD_TIMEOUT_S = 30.0
_EARLY_S = 0.0005
"""epoll waits in whole milliseconds (rounded up): waking for packets due up to
0.5 ms ahead centres the timer error on zero (+-0.5 ms) instead of +0..1 ms."""
_link_counter = itertools.count()


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
"""Sentinel for ``EmulatedLink.set``: leave this parameter as it is."""


# --------------------------------------------------------------------------------
# small helpers


def can_emulate() -> tuple[bool, str]:
    """(True, "") when this process can build an ``EmulatedLink``, else (False, why)."""
    if os.geteuid() != 0:
        return False, "needs root to create network namespaces and TUN devices"
    for tool, package in (("ip", "iproute2 (`ip`)"), ("tc", "iproute2 (`tc`)")):
        if shutil.which(tool) is None:
            return False, f"{package} is not installed"
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as e:
        return False, f"cannot open /dev/net/tun: {e}"
    os.close(fd)
    return True, ""


def _run(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S)


def _tun_open(name: str) -> int:
    """A new TUN device ``name`` in this namespace; returns its (non-blocking) fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def _link_exists(name: str) -> bool:
    return _run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def _used_link_numbers() -> set[int]:
    """Third octets of 10.232.x.y addresses already configured in this namespace."""
    used: set[int] = set()
    for word in _run(["ip", "-4", "-o", "addr", "show"]).stdout.split():
        if "/" not in word:
            continue
        try:
            iface = ipaddress.IPv4Interface(word)
        except ValueError:
            continue
        if iface.ip in SUBNET_BASE:
            used.add(int(str(iface.ip).split(".")[2]))
    return used


def _namespaces() -> set[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _reclaim_stale_namespaces(namespaces: set[str]) -> set[str]:
    """Delete ``scem<n>`` namespaces left by a parent that died without closing its link.

    Its relay exits on stdin EOF, taking both TUN devices along; a namespace
    whose host device is gone and that holds no process is of no use to
    anybody (a live link keeps its host device until its relay is stopped, and
    stops the namespace's processes before that). Returns the namespaces left.
    """
    left = set(namespaces)
    for ns in namespaces:
        m = re.fullmatch(rf"{NAME_PREFIX}(\d+)", ns)
        if not m or _link_exists(f"{ns}h"):
            continue
        if _run(["ip", "netns", "pids", ns], check=False).stdout.split():
            continue
        _run(["ip", "netns", "delete", ns], check=False)
        left.discard(ns)
    return left


def _tbf_args(rate_kbps: float, queue_ms: float) -> list[str]:
    """``tbf`` parameters for ``rate_kbps``: a small burst (accurate rate), ``queue_ms`` of queue."""
    rate_bps = max(int(rate_kbps * 1000), 8000)
    burst = max(3200, rate_bps // 8 // 200)  # >= 2 MTU, ~5 ms of tokens at high rates
    return ["tbf", "rate", f"{rate_bps}bit", "burst", str(burst), "latency", f"{max(queue_ms, 1.0):g}ms"]


def _stop_pid(pid: int, term_wait: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, one process by pid (reaping it if it is our child)."""
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)


# --------------------------------------------------------------------------------
# the link


class EmulatedLink:
    """A namespace whose only path to the host is a rate-capped, lossy, delayed link.

    A context manager (see the module doc). ``rate_kbps`` caps the downlink
    (server -> client), ``uplink_rate_kbps`` the uplink; ``None`` = no cap.
    ``loss`` applies to each direction independently; ``rtt_ms`` is split
    evenly between the two directions; ``jitter_ms`` is uniform +- per packet
    and direction. ``queue_ms`` is the ``tbf`` queue (at the capped rate);
    ``max_seconds`` bounds the relay's life.
    """

    def __init__(
        self,
        *,
        rate_kbps: float | None = None,
        loss: float = 0.0,
        rtt_ms: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int = 0,
        uplink_rate_kbps: float | None = None,
        queue_ms: float = 200.0,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        self.rate_kbps = _check_rate(rate_kbps)
        self.uplink_rate_kbps = _check_rate(uplink_rate_kbps)
        self.loss = _check_loss(loss)
        self.rtt_ms = _check_nonneg("rtt_ms", rtt_ms)
        self.jitter_ms = _check_nonneg("jitter_ms", jitter_ms)
        self.seed = int(seed)
        self.queue_ms = _check_nonneg("queue_ms", queue_ms)
        self.max_seconds = float(max_seconds)
        self.n: int | None = None
        self.ns = ""
        self.host_if = ""
        self.ns_if = ""
        self.host_addr = ""
        self.client_addr = ""
        self._ns_created = False
        self._fds: list[int] = []
        self._relay: subprocess.Popen[bytes] | None = None
        self._relay_buf = b""
        self._relay_lock = threading.Lock()
        self._procs: list[subprocess.Popen[Any]] = []
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------

    @property
    def relay_pid(self) -> int | None:
        return self._relay.pid if self._relay is not None else None

    def start(self) -> "EmulatedLink":
        if self.ns or self._closed:
            raise RuntimeError("an EmulatedLink starts once; make a new one")
        ok, why = can_emulate()
        if not ok:
            raise RuntimeError(f"cannot emulate a link: {why}")
        try:
            host_fd, ns_fd = self._claim_link_number()
            self._ns_setup()
            self._start_relay(host_fd, ns_fd)
            self._apply_rate("down", self.rate_kbps)
            self._apply_rate("up", self.uplink_rate_kbps)
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> "EmulatedLink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _claim_link_number(self) -> tuple[int, int]:
        """Pick a free n and create both TUN devices (the host device is the lock)."""
        used = _used_link_numbers()
        namespaces = _reclaim_stale_namespaces(_namespaces())
        start = (os.getpid() * 7 + next(_link_counter)) % 250 + 1
        for i in range(250):
            n = (start - 1 + i) % 250 + 1
            ns, host_if, ns_if = f"{NAME_PREFIX}{n}", f"{NAME_PREFIX}{n}h", f"{NAME_PREFIX}{n}c"
            if n in used or ns in namespaces or _link_exists(host_if) or _link_exists(ns_if):
                continue
            try:
                host_fd = _tun_open(host_if)
            except OSError:
                continue  # somebody else took it just now
            self._fds.append(host_fd)
            try:
                ns_fd = _tun_open(ns_if)
            except OSError:
                self._fds.remove(host_fd)
                os.close(host_fd)
                continue
            self._fds.append(ns_fd)
            self.n, self.ns, self.host_if, self.ns_if = n, ns, host_if, ns_if
            self.host_addr = str(SUBNET_BASE.network_address + (n << 8) + 1)
            self.client_addr = str(SUBNET_BASE.network_address + (n << 8) + 2)
            return host_fd, ns_fd
        raise RuntimeError(f"no free {SUBNET_BASE} /30 link left")

    def _ns_setup(self) -> None:
        _run(["ip", "netns", "add", self.ns])
        self._ns_created = True
        _run(["ip", "link", "set", "dev", self.ns_if, "netns", self.ns])
        # no IPv6 anywhere on the link, so no link-local address becomes an ICE candidate
        self.exec_run(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        self.exec_run(["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"])
        _run(["sysctl", "-q", "-w", f"net.ipv6.conf.{self.host_if}.disable_ipv6=1"], check=False)
        _run(["ip", "addr", "add", f"{self.host_addr}/30", "dev", self.host_if])
        self.exec_run(["ip", "addr", "add", f"{self.client_addr}/30", "dev", self.ns_if])
        _run(["ip", "link", "set", "dev", self.host_if, "up"])
        self.exec_run(["ip", "link", "set", "dev", self.ns_if, "up"])
        self.exec_run(["ip", "link", "set", "dev", "lo", "up"])

    def _start_relay(self, host_fd: int, ns_fd: int) -> None:
        argv = [
            sys.executable, "-m", "synclass.netem", "relay",
            "--down-in", str(host_fd), "--down-out", str(ns_fd),
            "--seed", str(self.seed), "--max-seconds", str(self.max_seconds),
            "--params", json.dumps(self._relay_params()),
        ]
        env = dict(os.environ)
        # the relay must import this very module, wherever the caller runs from
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._relay = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(host_fd, ns_fd),
            env=env, close_fds=True,
        )
        # the relay now holds the only descriptors that matter
        for fd in (host_fd, ns_fd):
            self._fds.remove(fd)
            os.close(fd)
        reply = self._read_reply(timeout=15.0)
        if not reply.get("ready"):
            raise RuntimeError(f"relay did not start: {reply}")

    def close(self) -> None:
        """Tear everything down; safe to call twice and after a half-made setup."""
        if self._closed:
            return
        self._closed = True
        for proc in self._procs:
            if proc.poll() is None:
                _stop_pid(proc.pid)
            try:
                proc.wait(timeout=1.0)
            except Exception:
                pass
        if self._ns_created:
            # anything else still in our namespace (e.g. a browser started via a wrapper)
            out = _run(["ip", "netns", "pids", self.ns], check=False).stdout
            for word in out.split():
                if word.isdigit() and int(word) != os.getpid():
                    _stop_pid(int(word), term_wait=2.0)
        if self._relay is not None:
            relay = self._relay
            try:
                if relay.poll() is None and relay.stdin is not None:
                    relay.stdin.write(b'{"op": "quit"}\n')
                    relay.stdin.flush()
                    relay.wait(timeout=3.0)
            except Exception:
                pass
            if relay.poll() is None:
                _stop_pid(relay.pid)
            try:
                relay.wait(timeout=2.0)
            except Exception:
                pass
            for f in (relay.stdin, relay.stdout):
                try:
                    if f is not None:
                        f.close()
                except Exception:
                    pass
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        if self._ns_created:
            _run(["ip", "netns", "delete", self.ns], check=False)
            self._ns_created = False
        # the TUN devices go when their last descriptor closes; make sure
        for name in (self.host_if, self.ns_if):
            if not name:
                continue
            deadline = time.monotonic() + 3.0
            while _link_exists(name) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _link_exists(name):
                _run(["ip", "link", "delete", "dev", name], check=False)

    # -- running things inside ------------------------------------------------------

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.ns]

    def exec_run(self, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([*self.exec_prefix(), *args], check=check)

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace; it is stopped (by pid) when the link closes."""
        if not self.ns or self._closed:
            raise RuntimeError("the link is not running")
        proc = subprocess.Popen([*self.exec_prefix(), *argv], **kwargs)
        self._procs.append(proc)
        return proc

    # -- parameters -----------------------------------------------------------------

    def set(
        self,
        *,
        rate_kbps: Any = UNCHANGED,
        loss: Any = UNCHANGED,
        rtt_ms: Any = UNCHANGED,
        jitter_ms: Any = UNCHANGED,
        uplink_rate_kbps: Any = UNCHANGED,
    ) -> None:
        """Change any parameter while running (``UNCHANGED``: leave it)."""
        relay_changed = False
        if loss is not UNCHANGED:
            self.loss = _check_loss(loss)
            relay_changed = True
        if rtt_ms is not UNCHANGED:
            self.rtt_ms = _check_nonneg("rtt_ms", rtt_ms)
            relay_changed = True
        if jitter_ms is not UNCHANGED:
            self.jitter_ms = _check_nonneg("jitter_ms", jitter_ms)
            relay_changed = True
        if rate_kbps is not UNCHANGED:
            self.rate_kbps = _check_rate(rate_kbps)
            self._apply_rate("down", self.rate_kbps)
        if uplink_rate_kbps is not UNCHANGED:
            self.uplink_rate_kbps = _check_rate(uplink_rate_kbps)
            self._apply_rate("up", self.uplink_rate_kbps)
        if relay_changed:
            reply = self._request({"op": "set", **self._relay_params()})
            if not reply.get("ok"):
                raise RuntimeError(f"relay refused set: {reply}")

    def _relay_params(self) -> dict[str, dict[str, float]]:
        one_way = {"loss": self.loss, "delay_ms": self.rtt_ms / 2.0, "jitter_ms": self.jitter_ms}
        return {"down": dict(one_way), "up": dict(one_way)}

    def _apply_rate(self, direction: str, rate_kbps: float | None) -> None:
        """``tbf`` on the egress of the TUN device that feeds ``direction`` into the relay."""
        prefix: list[str] = [] if direction == "down" else self.exec_prefix()
        dev = self.host_if if direction == "down" else self.ns_if
        if rate_kbps is None:
            _run([*prefix, "tc", "qdisc", "del", "dev", dev, "root"], check=False)
        else:
            _run([*prefix, "tc", "qdisc", "replace", "dev", dev, "root", *_tbf_args(rate_kbps, self.queue_ms)])

    # -- counters -------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Relay counters per direction (``down_*`` = towards the client, ``up_*`` = from it):
        ``forwarded_packets/bytes``, ``dropped_packets/bytes`` (random loss + overflow),
        ``overflow_packets`` (relay queue full), ``queued_packets`` (delayed, in flight),
        plus ``ratecap_dropped_packets`` (dropped by the ``tbf`` queue)."""
        reply = self._request({"op": "counters"})
        out = {k: int(v) for k, v in reply.get("counters", {}).items()}
        out["down_ratecap_dropped_packets"] = self._tbf_drops([], self.host_if)
        out["up_ratecap_dropped_packets"] = self._tbf_drops(self.exec_prefix(), self.ns_if)
        return out

    @staticmethod
    def _tbf_drops(prefix: list[str], dev: str) -> int:
        out = _run([*prefix, "tc", "-s", "qdisc", "show", "dev", dev], check=False).stdout
        total = 0
        for block in out.split("qdisc ")[1:]:
            if block.startswith("tbf"):
                m = re.search(r"dropped (\d+)", block)
                total += int(m.group(1)) if m else 0
        return total

    # -- relay control channel ------------------------------------------------------

    def _request(self, msg: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        relay = self._relay
        if relay is None or relay.poll() is not None or relay.stdin is None:
            raise RuntimeError("the relay is not running")
        with self._relay_lock:
            relay.stdin.write(json.dumps(msg).encode() + b"\n")
            relay.stdin.flush()
            return self._read_reply(timeout)

    def _read_reply(self, timeout: float) -> dict[str, Any]:
        relay = self._relay
        assert relay is not None and relay.stdout is not None
        fd = relay.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._relay_buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the relay")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the relay exited (code {relay.poll()})")
                self._relay_buf += chunk
        line, self._relay_buf = self._relay_buf.split(b"\n", 1)
        return json.loads(line)


def _check_rate(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    if not v > 0:
        raise ValueError(f"a rate must be > 0 kbps or None, not {v}")
    return v


def _check_loss(v: float) -> float:
    v = float(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"loss must be in [0, 1], not {v}")
    return v


def _check_nonneg(name: str, v: float) -> float:
    v = float(v)
    if not v >= 0:
        raise ValueError(f"{name} must be >= 0, not {v}")
    return v


# --------------------------------------------------------------------------------
# the relay process


class _Direction:
    """One direction of the relay: reads ``fd_in``, writes ``fd_out``."""

    def __init__(self, name: str, fd_in: int, fd_out: int, seed: int) -> None:
        self.name = name
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.rng = random.Random(f"{seed}-{name}")
        self.loss = 0.0
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self.queued = 0
        self.c = {k: 0 for k in (
            "forwarded_packets", "forwarded_bytes", "dropped_packets", "dropped_bytes", "overflow_packets")}

    def configure(self, p: dict[str, Any]) -> None:
        self.loss = float(p.get("loss", self.loss))
        self.delay_s = float(p.get("delay_ms", self.delay_s * 1000.0)) / 1000.0
        self.jitter_s = float(p.get("jitter_ms", self.jitter_s * 1000.0)) / 1000.0

    def drop(self, size: int) -> None:
        self.c["dropped_packets"] += 1
        self.c["dropped_bytes"] += size

    def deliver(self, pkt: bytes) -> None:
        try:
            os.write(self.fd_out, pkt)
        except OSError:
            self.drop(len(pkt))  # device down, or the kernel refused the packet
            return
        self.c["forwarded_packets"] += 1
        self.c["forwarded_bytes"] += len(pkt)


def relay_main(argv: list[str]) -> int:
    """``python -m synclass.netem relay --down-in FD --down-out FD ...`` (see module doc)."""
    import argparse

    ap = argparse.ArgumentParser(prog="synclass.netem relay")
    ap.add_argument("--down-in", type=int, required=True, help="fd of the host-side TUN")
    ap.add_argument("--down-out", type=int, required=True, help="fd of the client-side TUN")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    ap.add_argument("--max-queue", type=int, default=MAX_QUEUE_PACKETS)
    ap.add_argument("--params", default="{}", help='JSON {"down": {...}, "up": {...}}')
    args = ap.parse_args(argv)

    down = _Direction("down", args.down_in, args.down_out, args.seed)
    up = _Direction("up", args.down_out, args.down_in, args.seed)
    params = json.loads(args.params)
    down.configure(params.get("down", {}))
    up.configure(params.get("up", {}))
    by_fd = {down.fd_in: down, up.fd_in: up}
    for fd in by_fd:
        os.set_blocking(fd, False)
    stdin_fd = sys.stdin.fileno()
    out = sys.stdout.buffer

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj).encode() + b"\n")
        out.flush()

    ep = select.epoll()
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    ep.register(stdin_fd, select.EPOLLIN)
    heap: list[tuple[float, int, _Direction, bytes]] = []
    seq = itertools.count()
    deadline = time.monotonic() + args.max_seconds
    ctl_buf = b""
    reply({"ok": True, "ready": True, "pid": os.getpid()})

    while True:
        now = time.monotonic()
        if now >= deadline:
            print("netem relay: max run time reached, exiting", file=sys.stderr)
            return 0
        timeout = min(deadline - now, 1.0)
        if heap:
            timeout = max(0.0, min(timeout, heap[0][0] - _EARLY_S - now))
        try:
            events = ep.poll(timeout)
        except InterruptedError:
            continue
        for fd, _ev in events:
            if fd == stdin_fd:
                chunk = os.read(stdin_fd, 65536)
                if not chunk:
                    return 0  # our parent is gone
                ctl_buf += chunk
                while b"\n" in ctl_buf:
                    line, ctl_buf = ctl_buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    try:
                        msg = json.loads(line)
                        op = msg.get("op")
                        if op == "set":
                            down.configure(msg.get("down", {}))
                            up.configure(msg.get("up", {}))
                            reply({"ok": True})
                        elif op == "counters":
                            c = {f"{d.name}_{k}": v for d in (down, up) for k, v in d.c.items()}
                            c.update({f"{d.name}_queued_packets": d.queued for d in (down, up)})
                            reply({"ok": True, "counters": c})
                        elif op == "quit":
                            reply({"ok": True})
                            return 0
                        else:
                            reply({"ok": False, "error": f"unknown op {op!r}"})
                    except Exception as e:  # a bad line must not kill the link
                        reply({"ok": False, "error": repr(e)})
                continue
            d = by_fd[fd]
            now = time.monotonic()
            for _ in range(256):  # bounded batch, then look at timers again
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno in (errno.EAGAIN, errno.EINTR):
                        break
                    raise
                if not pkt:
                    break
                if d.loss and d.rng.random() < d.loss:
                    d.drop(len(pkt))
                    continue
                delay = d.delay_s
                if d.jitter_s:
                    delay += d.rng.uniform(-d.jitter_s, d.jitter_s)
                if delay <= 0.0:
                    d.deliver(pkt)
                elif d.queued >= args.max_queue:
                    d.c["overflow_packets"] += 1
                    d.drop(len(pkt))
                else:
                    d.queued += 1
                    heapq.heappush(heap, (now + delay, next(seq), d, pkt))
        if heap:
            now = time.monotonic()
            while heap and heap[0][0] - _EARLY_S <= now:
                _, _, d, pkt = heapq.heappop(heap)
                d.queued -= 1
                d.deliver(pkt)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "relay":
        print("usage: python -m synclass.netem relay --down-in FD --down-out FD [...]", file=sys.stderr)
        return 2
    return relay_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
