"""Retention: recordings past the maximum age or over the disk budget are
deleted, oldest first, never a lesson in progress (being recorded, waiting
for its recovery, or being exported).

``select`` is the policy, pure (time is a parameter); ``run`` applies it to
the library (sizes measured on disk, export included); ``loop`` runs it at
start (after the recovery) and every hour. Both limits 0: nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from .models import parse_iso
from .recording import Recordings, dir_bytes
from .store import RecordingQuery

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0
DAY_S = 86400.0


class Candidate(NamedTuple):
    session_id: str
    started_at: float  # unix seconds
    bytes: int
    in_progress: bool


def select(
    candidates: Iterable[Candidate], *, now: float, max_age_days: int, max_bytes: int
) -> list[tuple[str, str]]:
    """``(session_id, reason)`` of the recordings to delete, oldest first.

    Age: started more than ``max_age_days`` days before ``now`` (0: no limit).
    Budget: while everything kept (lessons in progress included) takes more
    than ``max_bytes`` (0: no budget), the oldest that may go goes. A lesson
    in progress is never chosen, even when it alone is over the budget.
    """
    ordered = sorted(candidates, key=lambda c: (c.started_at, c.session_id))
    chosen: list[tuple[str, str]] = []
    gone: set[str] = set()
    if max_age_days > 0:
        cutoff = now - max_age_days * DAY_S
        for c in ordered:
            if c.started_at < cutoff and not c.in_progress:
                chosen.append((c.session_id, f"older than {max_age_days} days"))
                gone.add(c.session_id)
    if max_bytes > 0:
        total = sum(c.bytes for c in ordered if c.session_id not in gone)
        for c in ordered:
            if total <= max_bytes:
                break
            if c.session_id in gone or c.in_progress:
                continue
            chosen.append((c.session_id, f"over the {max_bytes}-byte budget"))
            gone.add(c.session_id)
            total -= c.bytes
    position = {c.session_id: i for i, c in enumerate(ordered)}
    return sorted(chosen, key=lambda item: position[item[0]])


async def run(
    recordings: Recordings,
    *,
    max_age_days: int,
    max_bytes: int,
    busy: Callable[[str], bool] = lambda _: False,
    now: float | None = None,
) -> list[str]:
    """Apply the policy once; the deleted recordings' ids."""
    if max_age_days <= 0 and max_bytes <= 0:
        return []
    entries = await recordings.store.list_recordings(RecordingQuery(limit=10**9))
    sizes = await asyncio.to_thread(
        lambda: [dir_bytes(recordings.directory_of(e.session_id)) for e in entries]
    )
    candidates = [
        Candidate(
            session_id=e.session_id,
            started_at=parse_iso(e.started_at).timestamp(),
            bytes=size,
            in_progress=e.status == "recording"
            or recordings.in_progress(e.session_id)
            or busy(e.session_id),
        )
        for e, size in zip(entries, sizes, strict=True)
    ]
    deleted = []
    for session_id, reason in select(
        candidates, now=time.time() if now is None else now,
        max_age_days=max_age_days, max_bytes=max_bytes,
    ):
        if recordings.in_progress(session_id) or busy(session_id):
            continue  # it started meanwhile
        size = next(c.bytes for c in candidates if c.session_id == session_id)
        try:
            await recordings.delete(session_id)
        except Exception:
            log.exception("x retention could not delete recording %s", session_id)
            continue
        log.info("- retention deleted recording %s (%d bytes): %s", session_id, size, reason)
        deleted.append(session_id)
    return deleted


async def loop(
    recordings: Recordings, *, max_age_days: int, max_bytes: int,
    busy: Callable[[str], bool] = lambda _: False,
) -> None:
    if max_age_days <= 0 and max_bytes <= 0:
        return
    await recordings.wait_recovered()
    while True:
        try:
            await run(recordings, max_age_days=max_age_days, max_bytes=max_bytes, busy=busy)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("x retention run failed")
        await asyncio.sleep(INTERVAL_S)
