"""Recording of live lessons: which tracks, when recorders start and stop,
the manifest and the library index; and, on start, the recovery of lessons
a crash interrupted.

Policy (docs/operations.md, "Recordings"):
- a session records unless it was created with ``record: false`` (consent);
- recorded: the teacher's camera (its top layer only: layer 0, full
  resolution), courseware and mic; each classroom's camera and mic while it
  is on stage (staged twice: two tracks, two segments);
- tracks published later (courseware shared mid-lesson) start then;
- a recorder that fails is logged and given up on; the lesson and the other
  recorders carry on.

The media plane writes the files (``Router.create_recorder``); this module
keeps ``manifest.json`` (``server.manifest``) and the store's index row in
step: rewritten at every track start and stop, when a track's first frame
fixes its offset, every few seconds while recording, and at the end.

Everything runs on the event loop. Each lesson has one worker task that
brings the recorders in line with the lesson (``changed`` marks it dirty);
the media plane's awaits happen there, never in a signaling handler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from . import manifest as mf
from .errors import NotFound
from .models import RecordingEntry, iso_utc_ms
from .store import RecordingQuery, Store

if TYPE_CHECKING:
    from .live import LiveSession
    from .seam import MediaPlane

log = logging.getLogger(__name__)

TICK_S = 1.0  # how often open recorders' stats are read (offsets become known)
SAVE_EVERY_S = 5.0  # a recording lesson's manifest and index row are rewritten at least this often
RECORDED_SOURCES = ("camera", "mic", "courseware")


class ProducerView(NamedTuple):
    """What the selection needs to know of one producer of a live lesson."""

    producer_id: str
    owner_id: str
    role: str
    source: str
    kind: str
    layer: int
    on_stage: bool


def tracks_to_record(producers: Iterable[ProducerView]) -> list[str]:
    """The producers to record, in the order given: per source of a
    participant (its layers) the top layer (the lowest layer number: 0 is
    full resolution), for the teacher always, for a classroom while it is on
    stage; admins publish nothing."""
    best: dict[tuple[str, str, str], ProducerView] = {}
    for p in producers:
        if p.source not in RECORDED_SOURCES:
            continue
        if not (p.role == "teacher" or (p.role == "classroom" and p.on_stage)):
            continue
        key = (p.owner_id, p.source, p.kind)
        if key not in best or p.layer < best[key].layer:
            best[key] = p
    chosen = {p.producer_id for p in best.values()}
    return [p.producer_id for p in producers if p.producer_id in chosen]


def views_of(live: LiveSession) -> list[ProducerView]:
    return [
        ProducerView(
            producer_id=pid,
            owner_id=owner.id,
            role=owner.role,
            source=str(producer.app_data.get("source")),
            kind=producer.kind,
            layer=int(producer.app_data.get("layer", 0) or 0),
            on_stage=owner.on_stage,
        )
        for pid, (owner, producer) in live.producers.items()
    ]


def unix_to_iso(t: float) -> str:
    return iso_utc_ms(datetime.fromtimestamp(t, UTC))


def entry_of(manifest: Mapping[str, Any], directory: Path) -> RecordingEntry:
    """The library index row of a manifest."""
    ended = manifest.get("ended_at")
    return RecordingEntry(
        session_id=str(manifest["session_id"]),
        lecture_room_id=str(manifest.get("lecture_room_id") or ""),
        room_name=str(manifest.get("room_name") or ""),
        school_id=str(manifest.get("school_id") or ""),
        school_name=str(manifest.get("school_name") or ""),
        title=str(manifest.get("title") or ""),
        subject=str(manifest.get("subject") or ""),
        teacher_name=str(manifest.get("teacher_name") or ""),
        started_at=unix_to_iso(float(manifest["started_at"])),
        ended_at=None if ended is None else unix_to_iso(float(ended)),
        status=manifest["status"],
        duration_s=mf.duration_of(manifest),
        bytes=mf.bytes_of(manifest),
        tracks=len(manifest.get("tracks", [])),
        dir=str(directory),
    )


@dataclass
class LessonRecording:
    """The recording of one live lesson on this node."""

    session_id: str
    directory: Path
    live: LiveSession
    meta: dict[str, Any] = field(default_factory=dict)
    began_at: float = 0.0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    first_frames: list[float | None] = field(default_factory=list)
    dropped: set[int] = field(default_factory=set)  # tracks with nothing written
    active: dict[str, tuple[Any, int]] = field(default_factory=dict)  # producer id -> (recorder, track index)
    failed: set[str] = field(default_factory=set)  # producers given up on
    next_number: int = 1
    opened: bool = False
    dirty: bool = False
    ending: bool = False
    worker: asyncio.Task[None] | None = None
    last_saved: float = 0.0
    finished: bool = False  # the final manifest is written: nothing may overwrite it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Recordings:
    """Every lesson recording on this node, and the recovery at start."""

    def __init__(
        self,
        store: Store,
        media: MediaPlane | None,
        root: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.media = media
        # a media plane that cannot record (a test fake of the seam before
        # recording) records nothing
        self.enabled = media is not None and hasattr(media, "recover_recording")
        self.root = root
        self.clock = clock
        self.lessons: dict[str, LessonRecording] = {}
        self.recovering: dict[str, asyncio.Event] = {}  # session id -> set when recovered
        self._scanned = asyncio.Event()
        self._tick: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None

    def directory_of(self, session_id: str) -> Path:
        if not session_id or "/" in session_id or session_id in (".", ".."):
            raise NotFound(f"recording {session_id} not found")
        return self.root / session_id

    def in_progress(self, session_id: str) -> bool:
        """Being recorded on this node, or waiting for its recovery."""
        return session_id in self.lessons or session_id in self.recovering

    # --- lifecycle of the manager -------------------------------------------

    def start(self) -> None:
        """Start the recovery of interrupted lessons and the stats tick (in
        the background: serving does not wait for either)."""
        loop = asyncio.get_running_loop()
        self._recovery = loop.create_task(self._recover_logged(), name="recordings-recovery")
        self._tick = loop.create_task(self._ticking(), name="recordings-tick")

    async def _recover_logged(self) -> None:
        try:
            await self.recover()
        except Exception:
            log.exception("x recovering interrupted recordings failed")
        finally:
            self._scanned.set()  # never leave a lesson waiting for a scan that died
            for event in self.recovering.values():
                event.set()
            self.recovering.clear()

    async def wait_recovered(self) -> None:
        if self._recovery is not None:
            try:
                await asyncio.shield(self._recovery)
            except Exception:
                pass  # logged by the recovery

    async def close(self) -> None:
        """Shutdown (after the live sessions ended their recordings)."""
        for session_id in list(self.lessons):
            await self.end(session_id)
        for task in (self._tick, self._recovery):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    # --- following a live lesson ------------------------------------------------

    def changed(self, live: LiveSession) -> None:
        """The lesson's producers or stage changed: bring the recorders in
        line, in the lesson's worker task. Cheap; call it after any change."""
        if not self.enabled or not live.session.record or live.ended:
            return
        rec = self.lessons.get(live.session.id)
        if rec is None:
            rec = LessonRecording(
                session_id=live.session.id, directory=self.directory_of(live.session.id), live=live
            )
            self.lessons[rec.session_id] = rec
        rec.live = live
        rec.dirty = True
        if rec.worker is None or rec.worker.done():
            rec.worker = asyncio.get_running_loop().create_task(
                self._work(rec), name=f"recording-{rec.session_id}"
            )

    async def _work(self, rec: LessonRecording) -> None:
        try:
            if not rec.opened:
                await self._open(rec)
            while rec.dirty and not rec.ending:
                rec.dirty = False
                await self._reconcile(rec)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("x recording of session %s: bringing recorders in line failed", rec.session_id)

    async def _open(self, rec: LessonRecording) -> None:
        """Names of the lesson for the manifest; a lesson recorded before (the
        server restarted while it was live) goes on in the same directory."""
        await self._scanned.wait()
        pending = self.recovering.get(rec.session_id)
        if pending is not None:
            await pending.wait()
        session = rec.live.session
        rec.meta = {
            "session_id": session.id,
            "title": session.title,
            "subject": session.subject,
            "teacher_name": session.teacher_name,
            "lecture_room_id": session.lecture_room_id,
            "room_name": "",
            "school_id": "",
            "school_name": "",
        }
        try:
            room = await self.store.get_room(session.lecture_room_id)
            rec.meta["room_name"] = room.name
            rec.meta["school_id"] = room.school_id
            rec.meta["school_name"] = (await self.store.get_school(room.school_id)).name
        except NotFound:
            pass  # a deleted room: the names stay empty
        rec.began_at = self.clock()
        try:
            old = await asyncio.to_thread(mf.read, rec.directory)
        except FileNotFoundError:
            old = None
        except ValueError as e:
            log.warning("x %s; starting a new manifest", e)
            old = None
        if old is not None:
            rec.began_at = float(old["started_at"])
            rec.tracks = [dict(t) for t in old["tracks"]]
            rec.first_frames = [None] * len(rec.tracks)
            numbers = [_number_of(t.get("file")) for t in rec.tracks]
            rec.next_number = max([0, *numbers]) + 1
            log.info("- recording of session %s goes on after track %d", rec.session_id, rec.next_number - 1)
        rec.opened = True
        log.info("- recording session %s into %s", rec.session_id, rec.directory)

    async def _reconcile(self, rec: LessonRecording) -> None:
        live = rec.live
        want = [] if live.ended or rec.ending else tracks_to_record(views_of(live))
        changed = False
        for producer_id, (recorder, index) in list(rec.active.items()):
            if producer_id in want and not recorder.closed:
                continue
            del rec.active[producer_id]
            if recorder.closed and producer_id in want:
                # it stopped by itself while its producer is still recorded: a failure
                log.warning("x recorder of producer %s in session %s stopped; not restarted",
                            producer_id, rec.session_id)
                rec.failed.add(producer_id)
            await self._finish(rec, index, recorder)
            changed = True
        router = live.router
        for producer_id in want:
            if producer_id in rec.active or producer_id in rec.failed or router is None:
                continue
            entry = live.producers.get(producer_id)
            if entry is None:
                continue
            owner, producer = entry
            source = str(producer.app_data.get("source"))
            room_id = owner.room.id if owner.room is not None else None
            stem = mf.track_stem(rec.next_number, owner.role, source, room_id)
            rec.next_number += 1
            try:
                rec.directory.mkdir(parents=True, exist_ok=True)
                recorder = await router.create_recorder(producer_id, str(rec.directory), stem)
            except LookupError:
                continue  # the producer closed meanwhile
            except Exception:
                log.exception("x recorder for producer %s (%s) in session %s failed to start",
                              producer_id, stem, rec.session_id)
                rec.failed.add(producer_id)
                continue
            track = mf.new_track(
                file=os.path.basename(str(recorder.path)),
                kind=producer.kind,
                source=source,
                role=owner.role,
                participant_name=owner.name,
                room_id=room_id,
                room_name=owner.room.name if owner.room is not None else None,
            )
            rec.tracks.append(track)
            rec.first_frames.append(None)
            rec.active[producer_id] = (recorder, len(rec.tracks) - 1)
            recorder.on_close(lambda rec=rec: self._recorder_closed(rec))
            log.info("- recording %s of session %s (producer %s)", track["file"], rec.session_id, producer_id)
            changed = True
            if rec.ending or live.ended:
                rec.dirty = True  # the lesson ended while we started it: stop it again
        if changed:
            await self._save(rec)

    def _recorder_closed(self, rec: LessonRecording) -> None:
        if rec.ending or self.lessons.get(rec.session_id) is not rec:
            return
        self.changed(rec.live)

    async def _finish(self, rec: LessonRecording, index: int, recorder: Any) -> None:
        """Close one recorder and keep its final figures."""
        try:
            stats = await recorder.close()
        except Exception:
            log.exception("x recorder %s did not close cleanly", getattr(recorder, "path", "?"))
            try:
                stats = recorder.stats()
            except Exception:
                stats = {}
        self._take_stats(rec, index, stats or {})
        rec.tracks[index]["status"] = "complete"
        if not stats or not stats.get("frames") or stats.get("started_at") is None:
            rec.dropped.add(index)  # nothing was written: not a track to play
            log.info("- %s of session %s has no frames; left out of the manifest",
                     rec.tracks[index]["file"], rec.session_id)
        else:
            log.info("- recorded %s of session %s: %.1f s, %d bytes", rec.tracks[index]["file"],
                     rec.session_id, rec.tracks[index]["duration_s"], rec.tracks[index]["bytes"])

    def _take_stats(self, rec: LessonRecording, index: int, stats: Mapping[str, Any]) -> bool:
        """Fold stats into the track; True if its first frame's time is new."""
        rec.tracks[index] = mf.apply_stats(rec.tracks[index], stats)
        started = stats.get("started_at")
        # known at the first frame; may move once, when the publisher's first
        # sender report maps its clock
        if started is not None and rec.first_frames[index] != float(started):
            rec.first_frames[index] = float(started)
            return True
        return False

    def _manifest(self, rec: LessonRecording, *, ended_at: float | None, status: str) -> dict[str, Any]:
        keep = [i for i in range(len(rec.tracks)) if i not in rec.dropped]
        return mf.build(
            rec.meta,
            began_at=rec.began_at,
            ended_at=ended_at,
            status=status,
            tracks=[rec.tracks[i] for i in keep],
            first_frames=[rec.first_frames[i] for i in keep],
        )

    async def _save(self, rec: LessonRecording, *, ended_at: float | None = None,
                    status: str = "recording") -> None:
        """Rewrite the manifest, then the index row. A failure is logged."""
        async with rec.lock:
            if rec.finished:
                return  # a tick that was waiting while the lesson ended
            rec.finished = ended_at is not None
            manifest = self._manifest(rec, ended_at=ended_at, status=status)
            rec.last_saved = self.clock()
            try:
                await asyncio.to_thread(mf.write, rec.directory, manifest)
                await self.store.put_recording(entry_of(manifest, rec.directory))
            except Exception:
                log.exception("x manifest of session %s not saved", rec.session_id)

    async def end(self, session_id: str) -> None:
        """The lesson ended (or the server stops): close every recorder and
        write the final manifest (``complete``, or ``recovered`` if part of it
        was). Nothing happens for a lesson that was not recorded here."""
        rec = self.lessons.get(session_id)
        if rec is None:
            return
        rec.ending = True
        if rec.worker is not None and not rec.worker.done():
            try:
                await rec.worker
            except Exception:
                pass
        for producer_id, (recorder, index) in list(rec.active.items()):
            del rec.active[producer_id]
            await self._finish(rec, index, recorder)
        self.lessons.pop(session_id, None)
        if not rec.opened:
            return  # nothing was ever started
        kept = [t for i, t in enumerate(rec.tracks) if i not in rec.dropped]
        await self._save(rec, ended_at=self.clock(), status=mf.final_status(kept))
        log.info("- recording of session %s ended: %d tracks in %s", session_id, len(kept), rec.directory)

    async def _ticking(self) -> None:
        """Read open recorders' stats: a first frame fixes a track's offset
        (saved at once); durations and sizes are saved every few seconds."""
        while True:
            await asyncio.sleep(TICK_S)
            for rec in list(self.lessons.values()):
                if rec.ending or not rec.opened or not rec.active:
                    continue
                fixed = False
                for recorder, index in list(rec.active.values()):
                    try:
                        fixed = self._take_stats(rec, index, recorder.stats()) or fixed
                    except Exception:
                        log.debug("x stats of recorder %s failed", getattr(recorder, "path", "?"))
                if (fixed or self.clock() - rec.last_saved >= SAVE_EVERY_S) and not rec.ending:
                    await self._save(rec)

    # --- recovery at start ------------------------------------------------------------

    async def recover(self) -> None:
        """Lessons whose manifest says ``recording`` were interrupted (the
        process died): close their files properly (``recover_recording``),
        mark those tracks and the lesson ``recovered`` and set ``ended_at``
        from the files. Also indexes manifests the store does not know."""
        try:
            found = await asyncio.to_thread(_scan, self.root)
            for directory, manifest in found:
                if manifest["status"] == "recording":
                    self.recovering[str(manifest["session_id"])] = asyncio.Event()
        finally:
            self._scanned.set()
        indexed = {e.session_id: e for e in await self.store.list_recordings(RecordingQuery(limit=10**9))}
        on_disk = set()
        for directory, manifest in found:
            session_id = str(manifest["session_id"])
            on_disk.add(session_id)
            event = self.recovering.get(session_id)
            try:
                if event is not None:
                    manifest = await self._recover_lesson(directory, manifest)
                if event is not None or session_id not in indexed:
                    await self.store.put_recording(entry_of(manifest, directory))
            except Exception:
                log.exception("x recovering the recording in %s failed", directory)
            finally:
                if event is not None:
                    event.set()
                    self.recovering.pop(session_id, None)
        for session_id, entry in indexed.items():
            if entry.status == "recording" and session_id not in on_disk and session_id not in self.lessons:
                log.warning("x recording %s has no manifest in %s; marked recovered", session_id, entry.dir)
                await self.store.put_recording(_replace_status(entry, "recovered"))

    async def _recover_lesson(self, directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
        zero = float(manifest["started_at"])
        tracks = []
        for track in manifest["tracks"]:
            if track.get("status") != "recording":
                tracks.append(track)
                continue
            path = directory / str(track["file"])
            stats = None
            if self.enabled and path.is_file():
                try:
                    stats = await self.media.recover_recording(str(path))  # type: ignore[union-attr]
                except Exception:
                    log.exception("x recovering %s failed", path)
            elif not self.enabled:
                stats = {"bytes": path.stat().st_size if path.is_file() else 0,
                         "duration_s": track.get("duration_s") or 0.0}
            if stats is None:
                log.warning("x %s has nothing playable; left out of the manifest", path)
                continue
            recovered = mf.apply_stats(track, stats)
            if stats.get("started_at") is not None:
                recovered["offset_s"] = round(max(0.0, float(stats["started_at"]) - zero), 3)
            recovered["status"] = "recovered"
            tracks.append(recovered)
            log.info("- recovered %s: %.1f s, %d bytes", path, recovered["duration_s"], recovered["bytes"])
        result = {**manifest, "tracks": tracks, "status": "recovered"}
        end = mf.end_of_tracks(result)
        result["ended_at"] = round(end if end is not None else zero, 3)
        await asyncio.to_thread(mf.write, directory, result)
        log.info("- recording of session %s recovered: %d tracks", manifest["session_id"], len(tracks))
        return result

    # --- deleting ------------------------------------------------------------------

    async def delete(self, session_id: str) -> None:
        """Delete a lesson's files and its index row (the caller checked it
        is not in progress)."""
        directory = self.directory_of(session_id)
        await asyncio.to_thread(shutil.rmtree, directory, True)
        await self.store.delete_recording(session_id)


def _replace_status(entry: RecordingEntry, status: str) -> RecordingEntry:
    from dataclasses import replace

    return replace(entry, status=status)  # type: ignore[arg-type]


def _number_of(file: Any) -> int:
    try:
        return int(str(file).split("-", 1)[0])
    except ValueError:
        return 0


def _scan(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every lesson directory under ``root`` with a readable manifest."""
    found: list[tuple[Path, dict[str, Any]]] = []
    if not root.is_dir():
        return found
    for directory in sorted(root.iterdir()):
        if not directory.is_dir():
            continue
        try:
            manifest = mf.read(directory)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            log.warning("x %s", e)
            continue
        if manifest.get("session_id") != directory.name:
            log.warning("x %s names session %s; skipped", directory, manifest.get("session_id"))
            continue
        found.append((directory, manifest))
    return found


def dir_bytes(directory: Path) -> int:
    """Every file's size under ``directory`` (0 if it is gone)."""
    total = 0
    for dirpath, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
