"""Network namespaces and veth pairs that tests create for themselves.

Tests may only send traffic to loopback or to namespaces they made. A browser
or a synthetic client gathers ICE candidates on every interface it sees, so it
runs inside a namespace whose only link is one veth pair to the host:

    host  scv<tag>h 10.231.<n>.1/30  <-- veth -->  scv<tag>n 10.231.<n>.2/30  netns sc<tag>

The namespace has no default route, so nothing inside it can reach eth0's
network. The server under test listens on the host side address only.

Later issues reuse this for link emulation: ``VethLink.shape(...)`` puts a
kernel ``tbf`` rate limit on either end (``netem`` is not in this kernel;
delay and loss need a userspace relay).

Everything here shells out to ``ip``/``tc`` and needs root.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Iterator, Sequence

SUBNET_BASE = ipaddress.IPv4Network("10.231.0.0/16")
"""Every /30 handed out here lives in this /16 (third octet = link number)."""


def can_create_namespaces() -> tuple[bool, str]:
    """(True, "") when this process may create namespaces, else (False, why)."""
    if os.geteuid() != 0:
        return False, "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return False, "iproute2 (`ip`) is not installed"
    return True, ""


def _run(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30)


def _used_link_numbers() -> set[int]:
    """Third octets of 10.231.x.y addresses already configured on the host."""
    out = _run(["ip", "-4", "-o", "addr", "show"]).stdout
    used: set[int] = set()
    for line in out.splitlines():
        for word in line.split():
            if "/" not in word:
                continue
            try:
                iface = ipaddress.IPv4Interface(word)
            except ValueError:
                continue
            if iface.ip in SUBNET_BASE:
                used.add(int(str(iface.ip).split(".")[2]))
    return used


def pick_link_number(preferred: int | None = None) -> int:
    """A free third octet in 1..250 (starting from ``preferred`` or pid-derived)."""
    used = _used_link_numbers()
    start = preferred if preferred is not None else (os.getpid() % 250) + 1
    for i in range(250):
        n = (start - 1 + i) % 250 + 1
        if n not in used:
            return n
    raise RuntimeError("no free 10.231.<n>.0/30 link left")


@dataclass
class VethLink:
    """A namespace joined to the host by one veth pair (see module doc)."""

    tag: str
    n: int
    ns: str = field(init=False)
    host_if: str = field(init=False)
    ns_if: str = field(init=False)
    host_addr: str = field(init=False)
    ns_addr: str = field(init=False)
    created: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        # interface names are at most 15 bytes: "scv" + tag + "h"
        if len(self.tag) > 11:
            raise ValueError(f"tag too long for an interface name: {self.tag!r}")
        self.ns = f"sc{self.tag}"
        self.host_if = f"scv{self.tag}h"
        self.ns_if = f"scv{self.tag}n"
        self.host_addr = f"10.231.{self.n}.1"
        self.ns_addr = f"10.231.{self.n}.2"

    # -- lifecycle ---------------------------------------------------------

    def create(self) -> "VethLink":
        """Make the namespace and the veth pair; undo everything on failure."""
        try:
            _run(["ip", "netns", "add", self.ns])
            self.created = True
            _run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
            _run(["ip", "link", "set", self.ns_if, "netns", self.ns])
            # IPv6 off in the namespace first, so no link-local address appears
            self.exec_run(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
            self.exec_run(["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"])
            # and on the host end of the pair (the host's other links are untouched)
            _run(["sysctl", "-q", "-w", f"net.ipv6.conf.{self.host_if}.disable_ipv6=1"], check=False)
            _run(["ip", "addr", "add", f"{self.host_addr}/30", "dev", self.host_if])
            self.exec_run(["ip", "addr", "add", f"{self.ns_addr}/30", "dev", self.ns_if])
            _run(["ip", "link", "set", self.host_if, "up"])
            self.exec_run(["ip", "link", "set", self.ns_if, "up"])
            self.exec_run(["ip", "link", "set", "lo", "up"])
        except Exception:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        """Delete the namespace (which deletes the veth pair). Safe twice."""
        if self.created:
            _run(["ip", "netns", "delete", self.ns], check=False)
            self.created = False
        # the host end goes with its peer; make sure even after a half-made setup
        if _run(["ip", "link", "show", self.host_if], check=False).returncode == 0:
            _run(["ip", "link", "delete", self.host_if], check=False)

    def __enter__(self) -> "VethLink":
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def set_host_link(self, up: bool) -> None:
        """Bring the host end up or down: a cable pulled and plugged back."""
        _run(["ip", "link", "set", self.host_if, "up" if up else "down"])

    # -- running things inside --------------------------------------------

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.ns]

    def exec_run(self, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([*self.exec_prefix(), *args], check=check)

    def write_wrapper(self, path: str, program: str) -> str:
        """Write an executable script that runs ``program`` with its args in the namespace.

        Used as Playwright's ``executable_path``: Playwright talks to the
        browser over inherited pipe fds, which ``exec`` keeps.
        """
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\nexec ip netns exec {self.ns} {program} "$@"\n')
        os.chmod(path, 0o755)
        return path

    # -- link emulation ----------------------------------------------------

    def shape(self, rate_kbit: int, *, side: str = "host", burst_bytes: int = 32_000,
              latency_ms: int = 50) -> None:
        """Rate-limit egress of one end with ``tbf`` (host side = towards the namespace)."""
        if side not in ("host", "ns"):
            raise ValueError(f"side must be 'host' or 'ns', not {side!r}")
        args = ["tc", "qdisc", "replace", "dev", self.host_if if side == "host" else self.ns_if,
                "root", "tbf", "rate", f"{rate_kbit}kbit", "burst", str(burst_bytes),
                "latency", f"{latency_ms}ms"]
        if side == "host":
            _run(args)
        else:
            self.exec_run(args)

    def unshape(self, *, side: str = "host") -> None:
        args = ["tc", "qdisc", "del", "dev", self.host_if if side == "host" else self.ns_if, "root"]
        if side == "host":
            _run(args, check=False)
        else:
            self.exec_run(args, check=False)


@contextlib.contextmanager
def veth_namespace(tag: str | None = None, n: int | None = None) -> Iterator[VethLink]:
    """A fresh namespace + veth pair, deleted on exit even on failure.

    ``tag`` defaults to this process's pid (so ``sc<pid>``, ``scv<pid>h``).
    """
    link = VethLink(tag=tag if tag is not None else str(os.getpid()), n=n if n is not None else pick_link_number())
    with link:
        yield link
