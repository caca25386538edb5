"""The seam: what the control plane needs from the media plane.

The control plane (``server``) never imports aiortc or av; it talks to the
media plane only through the structural interfaces below. ``media.MediaPlane``
implements them; ``synclass.app.build_app`` plugs one into ``create_app``.

Object model (borrowed from mediasoup): parents create children,
``close()`` is safe twice and closes the children, a closed object's methods
raise ``InvalidStateError``-like ``RuntimeError``. Media objects never know
users: everything the control plane wants to remember rides in ``app_data``.

Errors raised across the seam:
- ``ValueError`` — the client's input is bad (malformed SDP, unknown mid,
  unsupported codec). The message is safe to show to the client.
- ``LookupError`` — an id that does not exist (closed producer, ...).
- ``RuntimeError`` — the object is closed.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Protocol

Kind = Literal["audio", "video"]


class Producer(Protocol):
    """One incoming track (an up track) of a publisher."""

    id: str
    kind: Kind
    app_data: dict[str, Any]

    @property
    def closed(self) -> bool: ...

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the producer closes (any reason)."""

    @property
    def paused(self) -> bool: ...

    def pause(self) -> None:
        """Forward nothing to any consumer (a muted source) until ``resume``."""

    def resume(self) -> None:
        """Forward again; video consumers restart at the next keyframe (asked for)."""

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (rate-limited inside)."""

    def stats(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class Consumer(Protocol):
    """One outgoing track (a down track) to one subscriber."""

    id: str
    kind: Kind
    producer_id: str
    mid: str | None  # the m-line of the subscriber's offer, known after create_offer()
    app_data: dict[str, Any]

    @property
    def closed(self) -> bool: ...

    @property
    def paused(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def layer(self) -> int | None:
        """The layer forwarded now; None while the link carries none (video paused)."""

    def set_layers(self, producers: list[Producer]) -> None:
        """Every producer that is a layer of this consumer's source (the media
        plane picks one per subscriber link and switches at keyframes)."""

    def on_layer(self, callback: Callable[[int | None], None]) -> None:
        """Call ``callback(layer)`` whenever the forwarded layer changes."""

    def on_close(self, callback: Callable[[], None]) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    """One RTCPeerConnection with one participant.

    A participant has two: one it publishes on (the client offers, the server
    answers: ``publish``) and one it receives on (the server offers:
    ``consume`` then ``create_offer``/``set_answer``).
    """

    id: str
    app_data: dict[str, Any]

    @property
    def closed(self) -> bool: ...

    @property
    def state(self) -> str:
        """The peer connection's connectionState (new, connecting, connected, failed, closed)."""

    def on_close(self, callback: Callable[[], None]) -> None:
        """Called once when the transport closes: by ``close()`` or because the
        peer vanished (ICE/DTLS failure or consent lost)."""

    async def publish(
        self, offer_sdp: str, tracks: dict[str, dict[str, Any]]
    ) -> tuple[str, list[Producer]]:
        """Apply the client's offer and return ``(answer_sdp, new_producers)``.

        ``tracks`` maps each offered m-line's mid to the ``app_data`` of the
        producer to create for it (e.g. ``{"source": "camera"}``). Every mid
        that carries media must be listed; a mid not listed raises
        ``ValueError("offer has an m-line with mid X that is not in tracks")``.
        Re-offers (renegotiation adding tracks) create producers only for the
        new mids.
        """

    async def consume(self, producer: Producer, app_data: dict[str, Any]) -> Consumer:
        """Create a consumer of ``producer`` on this transport (a new sendonly
        m-line). Video consumers wait for a keyframe before sending anything.
        The caller then renegotiates: ``create_offer`` → client → ``set_answer``."""

    async def create_offer(self) -> str:
        """A fresh offer covering every consumer so far (closed ones inactive)."""

    async def set_answer(self, answer_sdp: str) -> None:
        """Apply the client's answer to our last offer. ``ValueError`` if bad."""

    def stats(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class Recorder(Protocol):
    """One producer written to a file as it arrives (a consumer whose
    subscriber is the disk). Depacketized and remuxed, never decoded.

    The file (``path``) is created empty at once and written from the first
    keyframe on; before that ``stats()["frames"]`` is 0 (a recorder closed
    then removes its empty file). Frames with a lost packet are never written; after a video
    loss the recorder waits for the next keyframe (and asks for it). While
    the producer is paused nothing is written and the gap stays in the
    timeline. Crash-safe: after a SIGKILL the file decodes up to the last
    ~1-2 s (``MediaPlane.recover_recording`` then closes it properly).
    """

    id: str
    producer_id: str
    path: str  # absolute path of the file being written

    @property
    def closed(self) -> bool: ...

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, after the file is finalized (any reason:
        ``close()``, the producer closed, the router closed); ``stats()``
        then returns the final figures."""

    def stats(self) -> dict[str, Any]:
        """``{"file": basename, "kind": "audio"|"video", "codec": "vp8"|"h264"|"opus",
        "container": "webm"|"mkv", "started_at": unix time of the first written
        frame or None, "duration_s", "frames", "bytes" (file size),
        "width"/"height" (video, from the first keyframe; None for audio)}``.
        ``started_at`` comes from the publisher's sender reports, so the audio
        and video of one publisher line up; until the first report it is the
        first frame's arrival time. It changes at most once (the file's tag,
        which ``recover_recording`` reads, follows within milliseconds)."""

    async def close(self) -> dict[str, Any]:
        """Finalize the file (cues, duration) and return the final stats. Safe twice."""


class Router(Protocol):
    """All media of one live class session on this node."""

    id: str
    app_data: dict[str, Any]

    @property
    def closed(self) -> bool: ...

    async def create_transport(self, app_data: dict[str, Any]) -> Transport: ...

    def get_producer(self, producer_id: str) -> Producer:
        """``LookupError`` if there is no such open producer."""

    async def create_recorder(self, producer_id: str, directory: str, stem: str) -> Recorder:
        """Record a producer into ``directory/stem`` + ``.webm`` (VP8, Opus) or
        ``.mkv`` (H.264); ``directory`` is created if missing. Asks the
        publisher for a keyframe and writes nothing before it. The recorder
        finalizes and closes itself when the producer closes; closing the
        router closes its recorders.

        ``LookupError`` if there is no such open producer, ``ValueError`` for a
        codec that cannot be recorded, ``FileExistsError`` if the file exists
        (a recording is never overwritten)."""

    def stats(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class MediaPlane(Protocol):
    """The media plane of this process (one per node process)."""

    async def create_router(self, app_data: dict[str, Any]) -> Router: ...

    def counters(self) -> dict[str, int]:
        """Process-wide counters. At least ``decoders_created`` and
        ``encoders_created`` (both must stay 0: the SFU never transcodes),
        ``routers``, ``transports``, ``producers``, ``consumers``,
        ``rtp_packets_in``, ``rtp_packets_out``, ``recorders`` (open ones)."""

    async def recover_recording(self, path: str) -> dict[str, Any] | None:
        """An interrupted recording (the process was killed): rewrite its
        playable prefix as a properly closed file (duration, cues) in place
        (a temporary file, then ``os.replace``), off the event loop. Returns
        the stats dict of ``Recorder.stats()`` (``started_at`` from the file's
        tags), or None if nothing in it is playable (the file is left as is).
        Also works on a file cut mid-cluster. ``ValueError`` if the name does
        not end in .webm or .mkv."""

    async def close(self) -> None: ...
