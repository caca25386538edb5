"""Per-process facts from /proc for the benchmark (Linux only; None elsewhere)."""

from __future__ import annotations

import os
from typing import Optional


def _socket_inodes(pid: int | str = "self") -> set[str]:
    inodes: set[str] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def udp_drops(pid: int | str = "self") -> Optional[int]:
    """Datagrams the kernel dropped on this process's UDP sockets (receive buffer full)."""
    inodes = _socket_inodes(pid)
    total = 0
    seen = False
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] in inodes:
                        total += int(fields[12])
                        seen = True
        except OSError:
            continue
    return total if seen or inodes else None


_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_times(cpu: int) -> Optional[list[int]]:
    """One CPU's jiffies from /proc/stat, in ``_FIELDS`` order."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    values = [int(v) for v in line.split()[1:9]]
                    return values + [0] * (8 - len(values))
    except OSError:
        pass
    return None


def busy_pct(before: Optional[list[int]], after: Optional[list[int]]) -> Optional[float]:
    """Share of the CPU not idle (user, system, irq, softirq, steal) between two reads."""
    split = cpu_split(before, after)
    return None if split is None else round(100.0 - split["idle"] - split["iowait"], 1)


def cpu_split(before: Optional[list[int]], after: Optional[list[int]]) -> Optional[dict[str, float]]:
    if before is None or after is None:
        return None
    deltas = [b - a for a, b in zip(before, after)]
    total = sum(deltas)
    if total <= 0:
        return None
    return {name: round(100.0 * d / total, 1) for name, d in zip(_FIELDS, deltas)}
