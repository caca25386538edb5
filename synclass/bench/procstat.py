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


def cpu_times(cpu: int) -> Optional[tuple[float, float]]:
    """(busy, total) jiffies of one CPU from /proc/stat; busy includes irq, softirq and steal."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    values = [int(v) for v in line.split()[1:]]
                    idle = values[3] + (values[4] if len(values) > 4 else 0)
                    total = sum(values[:8])
                    return float(total - idle), float(total)
    except OSError:
        pass
    return None


def busy_pct(before: Optional[tuple[float, float]], after: Optional[tuple[float, float]]) -> Optional[float]:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100.0 * (after[0] - before[0]) / (after[1] - before[1]), 1)
