"""``synclass bench link``: a lesson where one classroom sits behind a weak link.

A real server process, a synthetic teacher publishing her camera as three
layers (1280x720 ~1.5 Mbps, 640x360 ~500 kbps, 320x180 ~100 kbps, pre-encoded
VP8 with a keyframe every second, 15 fps) and a tone, and two classrooms that
decode what they receive, each in its own process: one behind an emulated
link (``synclass.netem``: a network namespace, a kernel ``tbf`` rate cap and a
userspace relay for loss and delay), one not. The link is good (no rate cap,
no loss, but ``--rtt`` already: a route's delay stays when its capacity
drops) for ``--warm`` seconds, then ``--rate``/``--loss`` for ``--seconds``,
then back to 5 Mbps for ``--recover`` seconds. With ``--courseware`` (the
default) the teacher also shares courseware, as the teacher page does: a
1280x720 slide deck at 5 fps (pre-encoded VP8 with screen-content settings, a
new slide every 10 s, a key frame at each slide and on request, nearly empty
frames in between: ~25-40 KB key frames, ~60 kbps on average).

Prints one JSON line per classroom: ``classroom``, ``constrained``,
``layers`` (``[seconds since the drop, layer]`` at each change, from the
decoded frame sizes; ``null`` while the server paused the video),
``video_fps`` (after settling), ``freezes_per_min`` (gaps > 1 s between
frames while the video was not paused), ``audio_loss_pct``,
``longest_audio_gap_ms`` (and ``longest_audio_gap_after_settle_ms``: the
drop itself delays audio by the bottleneck's queue, a floor no server can
go under), ``settle_s`` (drop -> first frame of a layer that
fits, or the pause when none does), ``recover_s`` (recovery -> first frame of
the top layer), ``top_layer_pct`` and the server's estimate for the link —
all over the constrained stretch unless said otherwise. The courseware's
figures: ``courseware_fps``, ``courseware_longest_gap_s`` (the longest time
without a complete, decodable courseware frame, less the time the server had
it paused), ``courseware_paused_s`` and ``courseware_pauses`` (the server's
``consumer_layer`` pushes pausing it); ``courseware_encoded`` on the first
line (key frame sizes, average rate, key frames the teacher sent).

    ./run.sh bench link --rate 300 --loss 0.05 --rtt 100 --seconds 30

Needs root (namespaces, TUN, tc), like the netns tests.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from aiortc import MediaStreamTrack

from media.rtp import vp8_frame_info

LAYERS = ((1280, 720, 1_500_000), (640, 360, 500_000), (320, 180, 100_000))
FPS = 15
AUDIO_FRAMES_PER_S = 50  # 20 ms Opus frames
VOICE_BPS = 32_000  # what a browser sends for a voice
RECOVERED_KBPS = 5000
FREEZE_S = 1.0
END_WINDOW_S = 5.0  # "where it ended up": the last seconds of the bad stretch
# The courseware: as the teacher page shares it (maxFramerate 5, maxBitrate 1 Mbps).
COURSEWARE = (1280, 720)
COURSEWARE_FPS = 5
COURSEWARE_BPS = 1_000_000
SLIDE_S = 10.0  # a new slide this often
SLIDES = 3  # slides in the pre-encoded loop


def say(text: str) -> None:
    print(f"[link {time.monotonic() - START:6.1f}s] {text}", file=sys.stderr, flush=True)


START = time.monotonic()


# --- the classroom: a child process that joins and logs what arrives -------------------
# A browser decodes what is complete and asks for a keyframe after a loss; aiortc's
# own receiver does not (its jitter buffer waits hundreds of packets for a lost
# one), so the classroom judges the stream at the RTP level, where the SFU's work
# shows: every media packet (after RTX unwrapping) is logged as it reaches the
# receiver's jitter buffer, and frames are rebuilt from the log (``video_frames``).
async def classroom_main(url: str, token: str, seconds: float, ice_address: str, remb: bool = False) -> dict[str, Any]:
    from media.aiortc_hooks import set_ice_host_addresses

    from synclass.bench.clientkit import check_private_api
    from synclass.client import LessonClient

    check_private_api()
    set_ice_host_addresses([ice_address])
    # aiortc's receive-side estimator reads a 300 kbps link with 5 % random loss as
    # ~130 kbps (a browser's does not); without --remb the classroom negotiates no
    # REMB and the server goes by loss (Galene's way) alone
    client = LessonClient(url, token, remb=remb)
    logs: dict[int, tuple[str, list[tuple[float, int, int, bool, bytes]]]] = {}
    # consumer id -> source, for the consumer_layer pushes (the offers' ConsumerInfo)
    sources: dict[str, str] = {}
    try:
        await client.connect()
        await client.join()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            _tap_receivers(client, logs)
            for info in client._consumers_by_mid.values():  # noqa: SLF001 (our own client)
                sources[str(info.get("id"))] = str(info.get("source"))
            await asyncio.sleep(0.2)
        video = audio = courseware = None
        courseware_packets: list[list[Any]] = []
        for source_kind, packets in logs.values():
            if source_kind == "video:camera":
                video = video_frames(packets)
            elif source_kind == "video:courseware":
                courseware = video_frames(packets)
                courseware_packets = [[round(t, 4), seq, ts, int(marker)] for t, seq, ts, marker, _ in packets]
            elif source_kind.startswith("audio:"):
                audio = unwrap_first_arrivals([(t, seq) for t, seq, _, _, _ in packets])
        return {
            "participant_id": client.welcome.get("participant_id"),
            "frames": video or [],
            "courseware": courseware,  # None: no courseware track was received
            "courseware_packets": courseware_packets,  # [arrival, seq, timestamp, marker] (for --dump)
            "audio": audio or [],
            "consumers": sources,
            "layer_changes": [[t, consumer, layer] for t, consumer, layer in client.layer_changes],
        }
    finally:
        await client.close()


def _tap_receivers(client: Any, logs: dict[int, Any]) -> None:
    pc = client.pc_receive
    if pc is None:
        return
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if id(receiver) in logs or transceiver.mid is None:
            continue
        info = client._consumers_by_mid.get(transceiver.mid, {})  # noqa: SLF001 (our own client)
        packets: list[tuple[float, int, int, bool, bytes]] = []
        logs[id(receiver)] = (f"{transceiver.kind}:{info.get('source')}", packets)
        jitter = receiver._RTCRtpReceiver__jitter_buffer  # noqa: SLF001 (bench instrumentation)
        add = jitter.add
        asker = KeyframeAsker(receiver) if transceiver.kind == "video" else None

        def logged(packet: Any, add: Any = add, packets: list[Any] = packets, asker: Any = asker) -> Any:
            head = bytes(packet.payload[:24])
            now = time.monotonic()
            packets.append((now, packet.sequence_number, packet.timestamp, packet.marker, head))
            if asker is not None:
                asker.packet(now, packet.ssrc, packet.sequence_number)
            return add(packet)

        jitter.add = logged


class KeyframeAsker:
    """What a browser does and aiortc's receiver does not: give up on a packet
    that retransmission has not brought within ``GIVE_UP_S`` and ask for a key
    frame (RTCP PLI), at most every ``REPEAT_S`` (Chrome asks when its NACK list
    holds packets too old, or no frame has been decodable for a while). aiortc
    NACKs a packet again only when a new gap shows, which on a 5 fps slide deck
    of one-packet frames can take many seconds, and asks for a key frame only
    when its jitter buffer overflows (128 packets: 25 s of slides)."""

    GIVE_UP_S = 1.0
    REPEAT_S = 1.0

    def __init__(self, receiver: Any) -> None:
        self._receiver = receiver
        self._highest: Optional[int] = None
        self._missing: dict[int, float] = {}  # seq -> when it was missed
        self._asked_at = -1e9
        self.asked = 0

    def packet(self, now: float, ssrc: int, seq: int) -> None:
        high = self._highest
        if high is None:
            self._highest = seq
            return
        ahead = (seq - high) & 0xFFFF
        if 0 < ahead < 0x8000:
            for gap in range(1, min(ahead, 512)):
                self._missing[(high + gap) & 0xFFFF] = now
            self._highest = seq
        else:
            self._missing.pop(seq, None)
        if self._missing and now - min(self._missing.values()) >= self.GIVE_UP_S:
            self._missing = {s: t for s, t in self._missing.items() if now - t < self.GIVE_UP_S}
            if now - self._asked_at >= self.REPEAT_S:
                from media.aiortc_hooks import send_pli

                self._asked_at = now
                self.asked += 1
                asyncio.ensure_future(send_pli(self._receiver, ssrc))


def unwrap_first_arrivals(packets: list[tuple[float, int]]) -> list[list[Any]]:
    """``[arrival time, extended seq]`` for each sequence number's first arrival."""
    first: dict[int, float] = {}
    last = None
    base = 0
    for t, seq in packets:
        if last is not None and seq < last and last - seq > 0x8000:
            base += 0x10000
        elif last is not None and seq > last and seq - last > 0x8000:
            continue
        last = seq
        first.setdefault(base + seq, t)
    return sorted([[t, seq] for seq, t in first.items()])


def video_frames(packets: list[tuple[float, int, int, bool, bytes]]) -> list[list[Any]]:
    """Frames a decoder could show: ``[time complete, width, height]`` for each frame
    that arrived whole and whose reference chain is intact (back to a keyframe)."""
    by_seq: dict[int, tuple[float, int, bool, bytes]] = {}
    last = None
    base = 0
    for t, seq, ts, marker, head in packets:  # unwrap 16-bit sequence numbers
        if last is not None and seq < last and last - seq > 0x8000:
            base += 0x10000
        elif last is not None and seq > last and seq - last > 0x8000:
            continue  # a very late packet from before a wrap
        last = seq
        by_seq.setdefault(base + seq, (t, ts, marker, head))
    shown: list[list[Any]] = []
    size: Optional[tuple[int, int]] = None
    chain_ok = False
    prev_end: Optional[int] = None
    frame: list[int] = []
    for seq in sorted(by_seq):
        if frame and (by_seq[seq][1] != by_seq[frame[0]][1] or seq != frame[-1] + 1):
            chain_ok, size, prev_end = _close_frame(frame, by_seq, chain_ok, size, prev_end, shown)
            frame = []
        frame.append(seq)
    if frame:
        _close_frame(frame, by_seq, chain_ok, size, prev_end, shown)
    return shown


def _close_frame(frame: list[int], by_seq: dict[int, Any], chain_ok: bool, size: Any, prev_end: Any,
                 shown: list[list[Any]]) -> tuple[bool, Any, int]:
    first, last = frame[0], frame[-1]
    start, key, key_size = vp8_frame_info(by_seq[first][3])
    whole = start and by_seq[last][2] and last - first + 1 == len(frame)
    contiguous = prev_end is not None and first == prev_end + 1
    if whole and key:
        chain_ok, size = True, key_size or size
    elif whole and chain_ok and contiguous:
        pass
    else:
        chain_ok = False
    if chain_ok and size is not None:
        shown.append([max(by_seq[s][0] for s in frame), size[0], size[1]])
    return chain_ok, size, last


# --- analysis (pure: logs in, figures out) ------------------------------------------------
def layer_of_size(width: int, height: int) -> int:
    for index, (w, h, _) in enumerate(LAYERS):
        if (width, height) == (w, h):
            return index
    return min(range(len(LAYERS)), key=lambda i: abs(LAYERS[i][0] - width))


def fitting_layers(rate_kbps: Optional[float]) -> set[int]:
    """Layers whose video plus the audio fit the rate (with 15 % for headers)."""
    if rate_kbps is None:
        return set(range(len(LAYERS)))
    return {i for i, (_, _, bps) in enumerate(LAYERS) if (bps + 40_000) * 1.15 <= rate_kbps * 1000}


def layer_changes_of(log: dict[str, Any], source: str) -> list[tuple[float, Optional[int]]]:
    """``(time, layer)`` of the ``consumer_layer`` pushes for ``source``'s consumer.
    Logs from before the courseware (``[time, layer]`` entries) are the camera's."""
    sources = log.get("consumers", {})
    out = []
    for change in log.get("layer_changes", []):
        if len(change) == 2:
            if source == "camera":
                out.append((change[0], change[1]))
        elif sources.get(change[1], "camera" if not sources else None) == source:
            out.append((change[0], change[2]))
    return out


def analyze(log: dict[str, Any], t_drop: float, t_recover: float, t_end: float, rate_kbps: Optional[float]) -> dict[str, Any]:
    video = sorted((t, layer_of_size(w, h)) for t, w, h in log["frames"])
    audio = sorted(t for t, _ in log["audio"])
    paused_at = layer_changes_of(log, "camera")
    in_drop = [(t, layer) for t, layer in video if t_drop <= t < t_recover]
    duration = t_recover - t_drop
    changes: list[list[Any]] = []
    last: Any = "start"
    events = sorted([(t, layer, "frame") for t, layer in video if t >= t_drop]
                    + [(t, None, "pause") for t, layer in paused_at if layer is None and t >= t_drop])
    for t, layer, _ in events:
        if layer != last:
            changes.append([round(t - t_drop, 2), layer])
            last = layer
    fits = fitting_layers(rate_kbps)
    first_fit = next((t for t, layer in in_drop if layer in fits), None)
    first_pause = next((t for t, layer in paused_at if layer is None and t >= t_drop), None)
    settle_at = first_fit if first_fit is not None else first_pause
    settle_s = None if settle_at is None else round(settle_at - t_drop, 2)
    after = [(t, layer) for t, layer in in_drop if settle_at is None or t >= settle_at]
    span = (t_recover - settle_at) if settle_at is not None else duration
    video_fps = round(len(after) / span, 1) if span > 0 else None
    pauses = _paused_spans(paused_at, t_drop, t_recover)
    freezes = 0
    times = [t for t, _ in in_drop]
    for a, b in zip([t_drop, *times], [*times, t_recover]):
        if b - a > FREEZE_S and not any(s <= a + 0.5 and b - 0.5 <= e for s, e in pauses):
            freezes += 1
    audio_drop = [t for t in audio if t_drop <= t < t_recover]
    seqs = sorted(seq for t, seq in log["audio"] if t_drop <= t < t_recover)
    expected = (seqs[-1] - seqs[0] + 1) if len(seqs) > 1 and seqs[-1] > seqs[0] else AUDIO_FRAMES_PER_S * duration
    gaps = [b - a for a, b in zip([t_drop, *audio_drop], [*audio_drop, t_recover])]
    # The drop itself delays the audio by the bottleneck's queue (a 200 ms queue
    # fills in ~30 ms at 5x overload): that step is the floor of any gap across it,
    # whatever the server does. After the classroom settled, gaps are the server's.
    settled = [t for t in audio_drop if settle_at is not None and t >= settle_at]
    gaps_settled = [b - a for a, b in zip(settled, settled[1:])]
    top = [t for t, layer in video if t >= t_recover and layer == 0]
    top_in_drop = sum(1 for _, layer in in_drop if layer == 0)
    tail = [layer for t, layer in in_drop if t >= t_recover - END_WINDOW_S]
    return {
        "layers": changes,
        "end_layer": tail[-1] if tail else None,
        "end_fps": round(len(tail) / END_WINDOW_S, 1),
        "video_fps": video_fps,
        "freezes_per_min": round(freezes * 60 / duration, 2),
        "audio_loss_pct": round(max(0.0, 100 * (1 - len(audio_drop) / expected)), 2),
        "longest_audio_gap_ms": round(max(gaps) * 1000) if gaps else None,
        "longest_audio_gap_after_settle_ms": round(max(gaps_settled) * 1000) if gaps_settled else None,
        "settle_s": settle_s,
        "recover_s": round(top[0] - t_recover, 2) if top else None,
        "top_layer_pct": round(100 * top_in_drop / len(in_drop), 1) if in_drop else 0.0,
        "video_paused_s": round(sum(e - s for s, e in pauses), 1),
        "recovery_window_s": round(t_end - t_recover, 1),
        **courseware_figures(log.get("courseware"), layer_changes_of(log, "courseware"), t_drop, t_recover),
    }


def courseware_figures(frames: Optional[list[list[Any]]], changes: list[tuple[float, Optional[int]]],
                       t_drop: float, t_recover: float) -> dict[str, Any]:
    """The courseware over the constrained stretch: ``courseware_fps`` (complete,
    decodable frames per second of the stretch), ``courseware_longest_gap_s``
    (the longest time without one, from the drop to the recovery, less the time
    the server had the courseware paused within it), ``courseware_paused_s``
    and ``courseware_pauses`` (pushes that paused it). All None without a
    courseware track (``frames`` None)."""
    if frames is None:
        return {"courseware_fps": None, "courseware_longest_gap_s": None, "courseware_paused_s": None,
                "courseware_pauses": None}
    changes = sorted(changes, key=lambda change: change[0])
    duration = t_recover - t_drop
    times = sorted(t for t, _, _ in frames if t_drop <= t < t_recover)
    pauses = _paused_spans(changes, t_drop, t_recover)
    longest = 0.0
    for a, b in zip([t_drop, *times], [*times, t_recover]):
        paused = sum(max(0.0, min(b, e) - max(a, s)) for s, e in pauses)
        longest = max(longest, b - a - paused)
    return {
        "courseware_fps": round(len(times) / duration, 2) if duration > 0 else None,
        "courseware_longest_gap_s": round(longest, 2),
        "courseware_paused_s": round(sum(e - s for s, e in pauses), 1),
        "courseware_pauses": sum(1 for (t, layer), previous in zip(changes, [(None, 0), *changes])
                                 if layer is None and previous[1] is not None and t_drop <= t < t_recover),
    }


def _paused_spans(changes: list[tuple[float, Any]], start: float, end: float) -> list[tuple[float, float]]:
    spans = []
    since: Optional[float] = None
    for t, layer in sorted(changes):
        if layer is None and since is None:
            since = t
        elif layer is not None and since is not None:
            spans.append((max(since, start), min(t, end)))
            since = None
    if since is not None:
        spans.append((max(since, start), end))
    return [(s, e) for s, e in spans if e > s]


# --- the courseware: a pre-encoded slide deck ----------------------------------------------
def encode_slides(width: int = COURSEWARE[0], height: int = COURSEWARE[1], fps: int = COURSEWARE_FPS,
                  slide_s: float = SLIDE_S, slides: int = SLIDES,
                  bitrate: int = COURSEWARE_BPS) -> tuple[list[list[bytes]], dict[str, Any]]:
    """Encode ``slides`` slides of ``slide_s`` seconds each to VP8 once: per
    slide a chain that starts with a key frame of the slide, then its delta
    frames (the pointer moves for the first 4 s, then the slide is still).

    libvpx realtime CBR at ``bitrate`` like aiortc's encoder, with the settings
    a browser uses for screen content (screen-content mode, no denoiser, a
    high static threshold): a still slide costs the VP8 floor for 1280x720
    (~240 bytes a frame, ~10 kbps), a slide change a key frame and a large
    refining frame after it. The deck is encoded twice and the second pass
    kept, so the key frames are those of a settled rate control."""
    import av

    from synclass.synthetic import slide_image

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.gop_size = 3000  # key frames only where asked for
    codec.qmin, codec.qmax = 2, 56
    codec.framerate = fractions.Fraction(fps, 1)
    codec.time_base = fractions.Fraction(1, 90000)
    codec.options = {
        "bufsize": str(bitrate), "minrate": str(bitrate), "maxrate": str(bitrate),  # CBR, 1 s buffer
        "cpu-used": "-6", "deadline": "realtime", "lag-in-frames": "0", "partitions": "0",
        "overshoot-pct": "15", "undershoot-pct": "100",
        "screen-content-mode": "1", "noise-sensitivity": "0", "static-thresh": "1000",
    }
    per_slide = max(1, round(slide_s * fps))
    started = time.perf_counter()
    chains: list[list[bytes]] = []
    n = 0
    for rep in range(2):
        chains = []
        for index in range(slides):
            chain = []
            for k in range(per_slide):
                image = slide_image(width, height, index, min(1.0, k / (4.0 * fps)))
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
                frame.pts, frame.time_base = n * 90000 // fps, fractions.Fraction(1, 90000)
                n += 1
                if k == 0:
                    frame.pict_type = av.video.frame.PictureType.I
                data = b"".join(bytes(packet) for packet in codec.encode(frame))
                if not data:
                    raise RuntimeError("VP8 encoder returned no data for a slide frame")
                chain.append(data)
            chains.append(chain)
    total = sum(len(d) for chain in chains for d in chain)
    info = {
        "size": f"{width}x{height}",
        "fps": fps,
        "slide_s": slide_s,
        "keyframe_bytes": [len(chain[0]) for chain in chains],
        "second_frame_bytes": [len(chain[1]) for chain in chains if len(chain) > 1],
        "still_frame_bytes": sorted(len(chain[-1]) for chain in chains)[len(chains) // 2],
        "loop_kbps": round(total * 8 / (slides * slide_s) / 1000),
        "loop_kbps_with_rtp": round((total + sum(-(-len(d) // 1200) for c in chains for d in c) * 60) * 8
                                    / (slides * slide_s) / 1000),
        "encode_ms_per_frame": round((time.perf_counter() - started) * 1000 / (2 * slides * per_slide), 2),
    }
    return chains, info


class SlideReplayTrack(MediaStreamTrack):
    """Plays pre-encoded slide chains (``encode_slides``) at ``fps`` as ``av.Packet``s:
    a new slide every ``len(chain)`` frames, in a loop. A key frame request is
    answered like a live encoder would: the next frame is the current slide's
    key frame, followed by that slide's chain from its start (the slide is
    still, so the picture stays right; only the pointer restarts)."""

    kind = "video"

    def __init__(self, chains: list[list[bytes]], fps: int = COURSEWARE_FPS) -> None:
        super().__init__()
        self.chains = chains
        self.fps = fps
        self.n = 0
        self.pos = 0  # position in the current slide's chain
        self.keyframes_sent: list[tuple[float, bool]] = []  # (monotonic time, at a slide change) per key frame
        self._start: Optional[float] = None

    def keyframe_now(self) -> None:
        self.pos = 0

    def answer_keyframe_requests(self, sender: Any) -> None:
        """Make ``sender`` (sending this track) send a key frame on PLI/FIR."""
        original = sender._send_keyframe  # noqa: SLF001 (as ReplayVideoTrack does)

        def send_keyframe() -> None:
            self.keyframe_now()
            original()

        sender._send_keyframe = send_keyframe  # noqa: SLF001

    async def recv(self) -> Any:
        import av

        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.n / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        per_slide = len(self.chains[0])
        new_slide = self.n % per_slide == 0
        if new_slide:
            self.pos = 0
        chain = self.chains[(self.n // per_slide) % len(self.chains)]
        if self.pos == 0:
            self.keyframes_sent.append((time.monotonic(), new_slide))
        packet = av.Packet(chain[min(self.pos, len(chain) - 1)])
        packet.pts = self.n * 90000 // self.fps
        packet.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        self.pos += 1
        return packet


# --- the run ----------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from media.aiortc_hooks import set_ice_host_addresses
    from synclass.bench.clientkit import ReplayVideoTrack, encode_loop, set_opus_bitrate
    from synclass.client import LessonClient
    from synclass.netem import EmulatedLink
    from synclass.serverproc import AdminApi, ServerProcess
    from synclass.synthetic import ToneTrack

    set_ice_host_addresses(["127.0.0.1"])
    set_opus_bitrate(VOICE_BPS)
    loops = []
    for w, h, bps in LAYERS:
        frames, info = await encode_loop(w, h, FPS, frames=FPS * 4, keyframe_every=FPS, bitrate=bps,
                                         warmup_frames=FPS * 2)
        loops.append(frames)
        say(f"layer {w}x{h}: {info['loop_kbps']} kbps, {info['encode_ms_per_frame']} ms/frame to pre-encode")
    slides: Optional[list[list[bytes]]] = None
    courseware_info: dict[str, Any] = {}
    if args.courseware:
        slides, courseware_info = encode_slides()
        say(f"courseware {courseware_info['size']}: key frames {courseware_info['keyframe_bytes']} bytes, "
            f"{courseware_info['loop_kbps']} kbps, {courseware_info['encode_ms_per_frame']} ms/frame to pre-encode")
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="synclass-link-"))
    total = args.warm + args.seconds + args.recover
    procs: list[Any] = []
    with EmulatedLink(rate_kbps=None, rtt_ms=args.rtt, loss=0.0, seed=args.seed, queue_ms=args.queue_ms) as link:
        server = ServerProcess(data_dir, host=link.host_addr, ice_host_addresses=(link.host_addr,),
                               env={"SYNCLASS_DEBUG_LOGGERS": "synclass.media.trace"} if args.trace else None)
        server.start()
        teacher: Optional[LessonClient] = None
        slide_track: Optional[SlideReplayTrack] = None
        try:
            await server.wait_ready()
            api = AdminApi(server.url, server.admin_key)
            setup = await api.lesson_setup(2)
            teacher_token = (await api.token(setup["lecture"]["id"], "teacher", "Teacher"))["token"]
            tokens = [(await api.token(r["id"], "classroom", r["name"]))["token"] for r in setup["classrooms"]]
            teacher = LessonClient(server.url, teacher_token, "Teacher", decode=False)
            await teacher.connect()
            await teacher.start_session(title="Link bench")
            await teacher.join()
            layer_tracks = [ReplayVideoTrack(frames, FPS, keyframe_every=FPS) for frames in loops]
            slide_track = SlideReplayTrack(slides, COURSEWARE_FPS) if slides is not None else None
            await teacher.publish([
                *[(track, "camera", i) for i, track in enumerate(layer_tracks)],
                (ToneTrack(), "mic"),
                *([(slide_track, "courseware")] if slide_track is not None else []),
            ])
            assert teacher.pc_publish is not None
            for transceiver in teacher.pc_publish.getTransceivers():
                if isinstance(transceiver.sender.track, (ReplayVideoTrack, SlideReplayTrack)):
                    transceiver.sender.track.answer_keyframe_requests(transceiver.sender)
            say(f"teacher publishes 3 layers + audio{' + courseware' if slide_track else ''}; server {server.url}")
            child = [sys.executable, "-m", "synclass.bench.link", "classroom", "--url", server.url,
                     "--seconds", str(total + 2), *(["--remb"] if args.remb else [])]
            constrained = link.popen([*child, "--token", tokens[0], "--ice-address", link.client_addr],
                                     stdout=subprocess.PIPE)
            free = await asyncio.create_subprocess_exec(*child, "--token", tokens[1], "--ice-address", "127.0.0.1",
                                                        stdout=subprocess.PIPE)
            procs = [constrained, free]
            await asyncio.sleep(args.warm)
            t_drop = time.monotonic()
            link.set(rate_kbps=args.rate, loss=args.loss, rtt_ms=args.rtt, jitter_ms=args.jitter)
            say(f"link now {args.rate} kbps, {args.loss * 100:g} % loss, {args.rtt:g} ms RTT")
            await asyncio.sleep(args.seconds - 1.0)
            estimates = await _estimates(api, teacher.session["id"] if teacher.session else "")
            await asyncio.sleep(1.0)
            t_recover = time.monotonic()
            link.set(rate_kbps=RECOVERED_KBPS, loss=0.0, rtt_ms=args.rtt, jitter_ms=0.0)
            say(f"link back to {RECOVERED_KBPS} kbps")
            await asyncio.sleep(args.recover)
            t_end = time.monotonic()
            counters = link.counters()
            out_constrained = await asyncio.get_running_loop().run_in_executor(None, constrained.communicate)
            out_free = await free.communicate()
        finally:
            if teacher is not None:
                await teacher.close()
            for p in procs:
                if getattr(p, "returncode", None) is None:
                    try:
                        p.kill()
                    except ProcessLookupError:
                        pass
            server.stop()
    results = []
    for name, raw, is_constrained in (("classroom 1", out_constrained[0], True), ("classroom 2", out_free[0], False)):
        log = json.loads(raw.decode().strip().splitlines()[-1])
        if args.dump:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            marks = {"t_drop": t_drop, "t_recover": t_recover, "t_end": t_end}
            (Path(args.dump) / f"{name.replace(' ', '_')}.json").write_text(json.dumps({**log, **marks}))
        figures = analyze(log, t_drop, t_recover, t_end, args.rate if is_constrained else None)
        results.append({
            "classroom": name,
            "constrained": is_constrained,
            "rate_kbps": args.rate if is_constrained else None,
            "loss": args.loss if is_constrained else 0.0,
            "rtt_ms": args.rtt if is_constrained else 0.0,
            **figures,
            "server_estimate_kbps": estimates.get(log["participant_id"]),
            # the consumers' id prefixes, as the server log's "rate" lines name them
            "consumer_ids": {source: cid[:6] for cid, source in sorted(log.get("consumers", {}).items())},
        })
    results[0]["link_counters"] = counters
    if slide_track is not None:
        sent = [(t, slide) for t, slide in slide_track.keyframes_sent if t_drop <= t < t_recover]
        results[0]["courseware_encoded"] = {
            **courseware_info,
            # key frames the teacher sent during the bad stretch: at slide changes, and
            # in answer to key frame requests (either classroom's, through the server)
            "slide_changes_in_drop": sum(1 for _, slide in sent if slide),
            "requested_keyframes_in_drop": sum(1 for _, slide in sent if not slide),
        }
    return results


async def _estimates(api: Any, session_id: str) -> dict[str, Optional[int]]:
    """participant id -> the server's estimate of its downlink (kbps), from the links API."""
    data = await api.call("GET", f"/api/sessions/{session_id}/links")
    return {
        link["participant"]["id"]: None if link["estimate_bps"] is None else round(link["estimate_bps"] / 1000)
        for link in data["links"]
    }


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="synclass bench link", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0, help="kbps towards the constrained classroom (default 300)")
    parser.add_argument("--loss", type=float, default=0.05, help="packet loss each way, 0..1 (default 0.05)")
    parser.add_argument("--rtt", type=float, default=100.0, help="round-trip time in ms (default 100)")
    parser.add_argument("--jitter", type=float, default=0.0, help="+- ms each way (default 0)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the link stays bad (default 30)")
    parser.add_argument("--warm", type=float, default=12.0, help="good link before the drop (default 12)")
    parser.add_argument("--recover", type=float, default=15.0, help="good link after (default 15)")
    parser.add_argument("--queue-ms", type=float, default=200.0, help="the rate cap's queue (default 200 ms)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--remb", action="store_true",
                        help="classrooms send aiortc's REMB (it under-reads lossy links; browsers' does not)")
    parser.add_argument("--courseware", action=argparse.BooleanOptionalAction, default=True,
                        help="the teacher also shares a 1280x720 slide deck at 5 fps (default on)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--dump", default=None, help="write each classroom's raw frame log here")
    parser.add_argument("--trace", action="store_true",
                        help="the server log (in --data-dir) gets a line per step of each classroom's "
                             "rate control (synclass.media.trace)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "classroom":
        p = argparse.ArgumentParser()
        p.add_argument("--url", required=True)
        p.add_argument("--token", required=True)
        p.add_argument("--seconds", type=float, required=True)
        p.add_argument("--ice-address", required=True)
        p.add_argument("--remb", action="store_true")
        a = p.parse_args(argv[1:])
        print(json.dumps(asyncio.run(classroom_main(a.url, a.token, a.seconds, a.ice_address, a.remb))), flush=True)
        return 0
    from synclass.netem import can_emulate

    ok, why = can_emulate()
    if not ok:
        print(f"synclass bench link: {why}", file=sys.stderr)
        return 2
    args = parse_args(argv)
    for line in asyncio.run(run(args)):
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
