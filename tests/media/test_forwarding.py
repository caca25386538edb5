"""The media plane forwarding real RTP between real aiortc peers on loopback.

Clients are plain aiortc peer connections in this process: a publisher that
encodes synthetic video and audio, and subscribers that decode what the
server forwards. Where a test needs to look at the wire from the client's
side (the first packet a subscriber got, its sender reports, a lossy link),
it instruments the *client's* receiver or socket, never the code under test.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtcpSrPacket

from media import aiortc_hooks as hooks
from media.consumer import Consumer
from media.plane import MediaPlane
from media.producer import Producer
from media.router import Router
from media.rtp import abs_send_time_now, vp8_is_keyframe
from media.transport import Transport
from synclass import synthetic

from . import _plane_process

pytestmark = pytest.mark.timeout(40)

LOOPBACK = ["127.0.0.1"]


# --- clients ---------------------------------------------------------------------------------
@dataclass
class Subscriber:
    pc: RTCPeerConnection
    transport: Transport
    consumers: list[Consumer]
    frames: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_video_frame_at: float | None = None
    connected_at: float | None = None
    # (payload type, sequence number, payload) of every RTP packet the video receiver got
    video_rtp: list[tuple[int, int, bytes]] = field(default_factory=list)
    # (payload type, abs-send-time in the packet, abs-send-time at arrival)
    abs_send_times: list[tuple[int, int | None, int]] = field(default_factory=list)
    # (SR ssrc, SR packet count, consumer packets when the SR arrived)
    sender_reports: list[tuple[int, int, int]] = field(default_factory=list)

    def consumer(self, kind: str) -> Consumer:
        return next(c for c in self.consumers if c.kind == kind)


class Clients:
    """Owns every client peer connection of a test and closes them at the end."""

    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []
        self.tasks: list[asyncio.Task[None]] = []

    def new_pc(self) -> RTCPeerConnection:
        # browsers bundle everything; aiortc must be told (see media/transport.py)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pcs.append(pc)
        return pc

    async def publish(self, router: Router) -> tuple[Transport, Producer, Producer]:
        pc = self.new_pc()
        pc.addTransceiver(synthetic.TestPatternTrack(), direction="sendonly")
        pc.addTransceiver(synthetic.ToneTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        tracks = {t.mid: {"source": "camera" if t.kind == "video" else "mic"} for t in pc.getTransceivers()}
        up = await router.create_transport({"peer": "teacher"})
        answer, producers = await up.publish(pc.localDescription.sdp, tracks)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        video = next(p for p in producers if p.kind == "video")
        audio = next(p for p in producers if p.kind == "audio")
        return up, video, audio

    async def subscribe(self, router: Router, producers: list[Producer], name: str = "classroom") -> Subscriber:
        down = await router.create_transport({"peer": name})
        consumers = [await down.consume(p, {"peer": name}) for p in producers]
        offer = await down.create_offer()
        pc = self.new_pc()
        sub = Subscriber(pc, down, consumers)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected" and sub.connected_at is None:
                sub.connected_at = time.monotonic()

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.tasks.append(asyncio.ensure_future(_read(track, sub)))

        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                _peek_video_receiver(transceiver.receiver, sub)
        await pc.setLocalDescription(await pc.createAnswer())
        await down.set_answer(pc.localDescription.sdp)
        return sub

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for pc in self.pcs:
            await pc.close()


async def _read(track: Any, sub: Subscriber) -> None:
    while True:
        try:
            frame = await track.recv()
        except Exception:
            return
        sub.frames[track.kind] += 1
        if track.kind == "video":
            sub.sizes.add((frame.width, frame.height))
            if sub.first_video_frame_at is None:
                sub.first_video_frame_at = time.monotonic()


def _peek_video_receiver(receiver: Any, sub: Subscriber) -> None:
    """Record what the subscriber's video receiver gets, then let aiortc handle it."""
    handle_rtp = receiver._handle_rtp_packet
    handle_rtcp = receiver._handle_rtcp_packet

    async def on_rtp(packet: Any, arrival_time_ms: int) -> None:
        sub.video_rtp.append((packet.payload_type, packet.sequence_number, bytes(packet.payload)))
        sub.abs_send_times.append((packet.payload_type, packet.extensions.abs_send_time, abs_send_time_now()))
        await handle_rtp(packet, arrival_time_ms=arrival_time_ms)

    async def on_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            consumer = sub.consumer("video")
            sub.sender_reports.append((packet.ssrc, packet.sender_info.packet_count, consumer.packets))
        await handle_rtcp(packet)

    receiver._handle_rtp_packet = on_rtp
    receiver._handle_rtcp_packet = on_rtcp


def _drop_every_20th_rtp_packet(pc: RTCPeerConnection) -> list[int]:
    """Lose every 20th RTP packet ``pc`` receives; returns the count of those lost (a one-item list)."""
    dropped = [0]
    for protocol in _udp_protocols(pc):
        received = protocol.datagram_received
        count = [0]

        def lossy(data: bytes, addr: Any, received: Any = received, count: list[int] = count) -> None:
            if _is_srtp_rtp(data):
                count[0] += 1
                if count[0] % 20 == 0:
                    dropped[0] += 1
                    return
            received(data, addr)

        protocol.datagram_received = lossy
    return dropped


def _udp_protocols(pc: RTCPeerConnection) -> list[Any]:
    dtls = pc.getTransceivers()[0].receiver.transport
    return list(dtls.transport._connection._protocols)


def _is_srtp_rtp(data: bytes) -> bool:
    # RFC 7983: 128..191 is RTP or RTCP; RTCP packet types 192..223 sit where
    # RTP has marker + payload type (RFC 5761).
    return len(data) > 1 and 127 < data[0] < 192 and not 192 <= data[1] <= 223


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    c = Clients()
    yield c
    await c.close()


@pytest.fixture
async def plane() -> AsyncIterator[MediaPlane]:
    p = MediaPlane(ice_host_addresses=LOOPBACK)
    yield p
    await p.close()


# --- (a) forwarding -------------------------------------------------------------------------------
async def test_two_subscribers_decode_640x480_video_and_audio(plane: MediaPlane, clients: Clients) -> None:
    router = await plane.create_router({"session": "a"})
    _, video, audio = await clients.publish(router)
    subs = [await clients.subscribe(router, [video, audio], f"room{i}") for i in range(2)]

    await wait_for(
        lambda: all(s.frames["video"] >= 20 and s.frames["audio"] >= 20 for s in subs),
        10,
        "both subscribers to decode 20 video and 20 audio frames",
    )

    for sub in subs:
        assert sub.sizes == {(640, 480)}
        for consumer, producer in ((sub.consumer("video"), video), (sub.consumer("audio"), audio)):
            in_packets, out_packets = producer.packets, consumer.packets
            assert in_packets > 0 and out_packets > 0
            assert out_packets <= in_packets
    counters = plane.counters()
    assert counters["producers"] == 2 and counters["consumers"] == 4
    assert counters["rtp_packets_out"] > counters["rtp_packets_in"] > 0


# --- (b) a late video consumer starts on a keyframe -------------------------------------------------
async def test_a_late_video_consumer_starts_on_a_keyframe_and_decodes_within_2_s(
    plane: MediaPlane, clients: Clients
) -> None:
    router = await plane.create_router({"session": "b"})
    _, video, _ = await clients.publish(router)
    early = await clients.subscribe(router, [video], "early")
    # Let the stream run well past its first keyframe.
    await wait_for(lambda: early.frames["video"] >= 30, 10, "the early subscriber to decode 30 frames")
    keyframes_before = video.keyframes

    late = await clients.subscribe(router, [video], "late")
    await wait_for(lambda: late.first_video_frame_at is not None, 5, "the late subscriber's first frame")

    consumer = late.consumer("video")
    assert late.connected_at is not None and late.first_video_frame_at is not None
    assert late.first_video_frame_at - late.connected_at < 2.0
    media = [(pt, payload) for pt, _, payload in late.video_rtp if pt == consumer.payload_type]
    assert media, "the late subscriber received no video packets"
    assert vp8_is_keyframe(media[0][1]), f"first forwarded packet is not a VP8 keyframe: {media[0][1][:8].hex()}"
    assert consumer.keyframes_started == 1
    assert video.keyframes > keyframes_before, "the late consumer should have got a fresh keyframe"
    assert consumer.plis == 0, "the subscriber asked for a keyframe: it did not start on one"
    assert late.sizes == {(640, 480)}


# --- (b2) a paused producer (muted mic, camera off) ----------------------------------------------
async def test_a_paused_producer_forwards_nothing_and_resumes_on_a_fresh_keyframe(
    plane: MediaPlane, clients: Clients
) -> None:
    router = await plane.create_router({"session": "b2"})
    _, video, audio = await clients.publish(router)
    sub = await clients.subscribe(router, [video, audio], "classroom")
    await wait_for(lambda: sub.frames["video"] >= 15 and sub.frames["audio"] >= 15, 10, "first frames")

    video.pause()
    audio.pause()
    assert video.paused and audio.paused
    await asyncio.sleep(0.3)  # what was in flight
    out_video, out_audio = sub.consumer("video").packets, sub.consumer("audio").packets
    frames_before = dict(sub.frames)
    in_before = video.packets
    await asyncio.sleep(1.0)
    assert video.packets > in_before, "the publisher keeps sending while paused"
    assert (sub.consumer("video").packets, sub.consumer("audio").packets) == (out_video, out_audio)
    assert sub.frames == frames_before

    keyframes_before = video.keyframes
    seqs_before = len(sub.video_rtp)
    video.resume()
    audio.resume()
    await wait_for(
        lambda: sub.frames["video"] >= frames_before["video"] + 15
        and sub.frames["audio"] >= frames_before["audio"] + 15,
        5,
        "frames again after resume",
    )
    assert video.keyframes > keyframes_before, "resume asks the publisher for a keyframe"
    consumer = sub.consumer("video")
    resumed = [(pt, seq, payload) for pt, seq, payload in sub.video_rtp[seqs_before:] if pt == consumer.payload_type]
    assert vp8_is_keyframe(resumed[0][2]), "the consumer restarted on a keyframe"
    # sequence numbers continue for the receiver: no jump over the paused stretch
    before = [seq for pt, seq, _ in sub.video_rtp[:seqs_before] if pt == consumer.payload_type]
    assert resumed[0][1] == (before[-1] + 1) & 0xFFFF
    assert sub.sizes == {(640, 480)}


# --- (b3) several tracks of one kind on one connection ------------------------------------------
async def test_audio_then_two_videos_on_one_subscriber_all_arrive(plane: MediaPlane, clients: Clients) -> None:
    """Camera and courseware to one classroom, audio first: aiortc's default
    bundle policy left the second video on a discarded transport."""
    router = await plane.create_router({"session": "b3"})
    _, camera, audio = await clients.publish(router)
    _, courseware, _ = await clients.publish(router)
    sub = await clients.subscribe(router, [audio, camera, courseware], "classroom")
    await wait_for(
        lambda: all(c.packets > 0 for c in sub.consumers) and sub.frames["video"] >= 20,
        10,
        "every consumer (audio, camera, courseware) to send",
    )
    assert [c.kind for c in sub.consumers] == ["audio", "video", "video"]
    assert all(c.stats()["started"] for c in sub.consumers)


async def test_a_publisher_offering_audio_then_two_videos_gets_three_live_producers(
    plane: MediaPlane, clients: Clients
) -> None:
    router = await plane.create_router({"session": "b4"})
    pc = clients.new_pc()
    pc.addTransceiver(synthetic.ToneTrack(), direction="sendonly")
    pc.addTransceiver(synthetic.TestPatternTrack(320, 240, 15), direction="sendonly")
    pc.addTransceiver(synthetic.TestPatternTrack(640, 360, 5), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sources = ["mic", "camera", "courseware"]
    tracks = {t.mid: {"source": sources[i]} for i, t in enumerate(pc.getTransceivers())}
    up = await router.create_transport({"peer": "teacher"})
    answer, producers = await up.publish(pc.localDescription.sdp, tracks)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await wait_for(lambda: all(p.packets > 0 for p in producers), 10, "packets on all three producers")


# --- (c) closing ------------------------------------------------------------------------------------
async def test_closing_the_producer_closes_its_consumers_once(plane: MediaPlane, clients: Clients) -> None:
    router = await plane.create_router({"session": "c"})
    up, video, audio = await clients.publish(router)
    down = await router.create_transport({"peer": "room"})
    consumers = [await down.consume(video, {}), await down.consume(video, {}), await down.consume(audio, {})]
    closed: list[str] = []
    for i, consumer in enumerate(consumers):
        consumer.on_close(lambda i=i: closed.append(f"consumer{i}"))
    video.on_close(lambda: closed.append("video"))

    await video.close()
    await video.close()
    await consumers[0].close()

    assert closed == ["consumer0", "consumer1", "video"]
    assert video.closed and consumers[0].closed and consumers[1].closed
    assert not consumers[2].closed and not audio.closed
    assert [c["id"] for c in down.stats()["consumers"]] == [consumers[2].id]
    with pytest.raises(LookupError) as info:
        router.get_producer(video.id)
    assert str(info.value) == f"no producer {video.id}"
    with pytest.raises(LookupError) as info:
        await down.consume(video, {})
    assert str(info.value) == f"producer {video.id} is closed"
    assert router.get_producer(audio.id) is audio


async def test_closing_the_router_closes_everything_and_later_calls_raise(plane: MediaPlane, clients: Clients) -> None:
    router = await plane.create_router({"session": "c2"})
    up, video, audio = await clients.publish(router)
    down = await router.create_transport({"peer": "room"})
    consumer = await down.consume(video, {})
    closed: list[str] = []
    up.on_close(lambda: closed.append("up"))
    down.on_close(lambda: closed.append("down"))
    consumer.on_close(lambda: closed.append("consumer"))
    audio.on_close(lambda: closed.append("audio"))

    await router.close()
    await router.close()
    await up.close()

    assert sorted(closed) == ["audio", "consumer", "down", "up"]
    assert router.closed and up.closed and down.closed and video.closed and audio.closed and consumer.closed
    assert plane.counters()["routers"] == 0
    with pytest.raises(RuntimeError) as info:
        await router.create_transport({})
    assert str(info.value) == f"router {router.id} is closed"
    with pytest.raises(RuntimeError) as info:
        await down.consume(audio, {})
    assert str(info.value) == f"transport {down.id} is closed"
    with pytest.raises(RuntimeError) as info:
        await down.create_offer()
    assert str(info.value) == f"transport {down.id} is closed"
    with pytest.raises(RuntimeError) as info:
        await up.publish("v=0\r\n", {})
    assert str(info.value) == f"transport {up.id} is closed"


# --- (d) a subscriber that vanishes ---------------------------------------------------------------
async def test_a_vanished_subscriber_is_closed_while_the_other_keeps_receiving(clients: Clients) -> None:
    plane = MediaPlane(ice_host_addresses=LOOPBACK, consent_interval_s=0.5, consent_failures=2)
    try:
        router = await plane.create_router({"session": "d"})
        _, video, audio = await clients.publish(router)
        stays = await clients.subscribe(router, [video, audio], "stays")
        goes = await clients.subscribe(router, [video, audio], "goes")
        await wait_for(
            lambda: stays.frames["video"] >= 10 and goes.frames["video"] >= 10, 10, "both subscribers to decode"
        )
        closed: list[str] = []
        goes.transport.on_close(lambda: closed.append("transport"))
        for consumer in goes.consumers:
            consumer.on_close(lambda kind=consumer.kind: closed.append(kind))

        # The classroom's link dies: no DTLS close, no RTCP BYE, nothing.
        for protocol in _udp_protocols(goes.pc):
            protocol.datagram_received = lambda data, addr: None
            protocol.transport.sendto = lambda data, addr=None: None
        await wait_for(lambda: goes.transport.closed, 10, "the vanished subscriber's transport to close")

        assert sorted(closed) == ["audio", "transport", "video"]
        assert all(c.closed for c in goes.consumers)
        assert not video.closed and not audio.closed
        assert not stays.transport.closed
        frames = stays.frames["video"]
        await wait_for(lambda: stays.frames["video"] >= frames + 15, 3, "the other subscriber to keep decoding")
    finally:
        await plane.close()


async def test_a_subscriber_socket_closing_under_the_forwarder_leaves_the_publisher_up(
    plane: MediaPlane, clients: Clients
) -> None:
    router = await plane.create_router({"session": "d2"})
    up, video, audio = await clients.publish(router)
    stays = await clients.subscribe(router, [video, audio], "stays")
    goes = await clients.subscribe(router, [video, audio], "goes")
    await wait_for(lambda: stays.frames["video"] >= 10 and goes.frames["video"] >= 10, 10, "both subscribers to decode")
    latest = max(
        (p for p in map(video.cache.get, range(1 << 16)) if p is not None), key=lambda p: p.timestamp
    )

    # When consent expires aioice closes the socket; the Transport hears of it
    # a few event-loop turns later. A packet forwarded in between must not
    # reach aiortc as an exception: it would close the publisher's DTLS.
    goes.transport.dtls.transport._connection._nominated[1].protocol.transport.close()
    await asyncio.sleep(0)  # asyncio finishes closing the socket
    assert not goes.transport.closed, "the window this test is about has already passed"
    video.on_rtp(latest)

    await wait_for(lambda: goes.transport.closed, 5, "the subscriber that lost its socket to close")
    frames = stays.frames["video"]
    await wait_for(lambda: stays.frames["video"] >= frames + 15, 3, "the other subscriber to keep decoding")
    assert not up.closed and not video.closed and not audio.closed


# --- (e) NACKs answered from the packet cache ------------------------------------------------------
async def test_a_lossy_subscriber_gets_retransmissions_and_still_decodes(
    plane: MediaPlane, clients: Clients
) -> None:
    router = await plane.create_router({"session": "e"})
    _, video, audio = await clients.publish(router)
    sub = await clients.subscribe(router, [video], "lossy")
    dropped = _drop_every_20th_rtp_packet(sub.pc)

    await wait_for(lambda: sub.frames["video"] >= 60, 10, "the lossy subscriber to decode 60 frames")

    consumer = sub.consumer("video")
    assert dropped[0] > 0
    assert consumer.nacks > 0
    assert consumer.retransmissions > 0
    assert consumer.nack_misses == 0
    assert sub.sizes == {(640, 480)}
    assert consumer.rtx_payload_type is not None, "the subscriber did not negotiate RTX"
    rtx = [(sent, now) for pt, sent, now in sub.abs_send_times if pt == consumer.rtx_payload_type]
    assert rtx, "no RTX packet reached the subscriber"
    # Retransmissions carry their own send time (the receiver's bandwidth
    # estimator reads it from RTX packets too): within 1 s, in 6.18 fixed point.
    assert all(sent is not None and (now - sent) % (1 << 24) < (1 << 18) for sent, now in rtx), rtx[:5]


async def test_a_packet_nacked_again_within_a_round_trip_is_not_sent_again(
    plane: MediaPlane, clients: Clients
) -> None:
    """aiortc's receiver repeats every missing number at each new gap; a browser
    waits a round trip. The consumer answers a repeat only once its last
    retransmission of that packet had time to arrive."""
    from media.consumer import RETRANSMIT_AGAIN_MIN_S

    router = await plane.create_router({"session": "e3"})
    _, video, _audio = await clients.publish(router)
    sub = await clients.subscribe(router, [video], "classroom")
    await wait_for(lambda: sub.frames["video"] >= 10, 10, "the subscriber to decode")
    consumer = sub.consumer("video")
    receiver = next(t.receiver for t in sub.pc.getTransceivers() if t.kind == "video")
    seq = [s for pt, s, _ in sub.video_rtp if pt == consumer.payload_type][-5]
    await receiver._send_rtcp_nack(consumer.ssrc, [seq])
    await wait_for(lambda: consumer.retransmissions == 1, 2, "the first retransmission")
    await receiver._send_rtcp_nack(consumer.ssrc, [seq])  # again at once: still on its way
    await wait_for(lambda: consumer.retransmissions_skipped == 1, 2, "the repeat to be skipped")
    assert consumer.retransmissions == 1
    await asyncio.sleep(max(RETRANSMIT_AGAIN_MIN_S, (consumer.rtt_s or 0.0) * 1.5) + 0.1)
    await receiver._send_rtcp_nack(consumer.ssrc, [seq])  # a round trip later: lost again, sent again
    await wait_for(lambda: consumer.retransmissions == 2, 2, "the second retransmission")
    assert consumer.retransmissions_skipped == 1


async def test_retransmissions_reach_each_of_two_video_tracks_on_one_transport(
    plane: MediaPlane, clients: Clients
) -> None:
    """A camera and the courseware share one subscriber transport, and their RTX
    payload type. aiortc routes an RTX packet by SSRC, and it registers only the
    media SSRCs: without media.aiortc_hooks registering the RTX SSRCs too, every
    retransmission to either track was dropped before its receiver."""
    from .test_layers import SIZES, publish_layers

    router = await plane.create_router({"session": "e2"})
    producers = await publish_layers(router, clients)
    sub = await clients.subscribe(router, [producers[0], producers[1]], "lossy")
    sub.transport._controller.stop()  # type: ignore[attr-defined]  # both tracks as they are
    payload_types: dict[str, list[int]] = {}
    for transceiver in sub.pc.getTransceivers():
        receiver = transceiver.receiver
        seen = payload_types.setdefault(transceiver.mid or "", [])
        handle = receiver._handle_rtp_packet

        async def on_rtp(packet: Any, arrival_time_ms: int, handle: Any = handle, seen: list[int] = seen) -> None:
            seen.append(packet.payload_type)
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = on_rtp
    dropped = _drop_every_20th_rtp_packet(sub.pc)

    videos = [c for c in sub.consumers if c.kind == "video"]
    assert len(videos) == 2
    await wait_for(lambda: all(c.retransmissions >= 5 for c in videos), 10, "retransmissions to both tracks")
    await asyncio.sleep(0.5)  # the last ones on their way
    for consumer in videos:
        assert consumer.rtx_payload_type is not None
        got = payload_types[consumer.mid]
        assert got.count(consumer.rtx_payload_type) >= 3, (consumer.mid, consumer.retransmissions, set(got))
    assert sub.sizes == {SIZES[0], SIZES[1]}


# --- (f) signaling errors ------------------------------------------------------------------------------
async def _real_offer(clients: Clients) -> tuple[str, dict[str, dict[str, Any]]]:
    pc = clients.new_pc()
    pc.addTransceiver(synthetic.TestPatternTrack(), direction="sendonly")
    pc.addTransceiver(synthetic.ToneTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp, {t.mid: {} for t in pc.getTransceivers()}


def _without_lines(sdp: str, prefix: str) -> str:
    return "".join(line + "\r\n" for line in sdp.splitlines() if not line.startswith(prefix))


@pytest.mark.parametrize(
    "make_sdp, message",
    [
        (lambda sdp: "", "offer SDP is empty"),
        (lambda sdp: "  \r\n", "offer SDP is empty"),
        (lambda sdp: "hello", "offer SDP must start with v=0"),
        (
            lambda sdp: "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96\r\n",
            "offer SDP could not be parsed: not enough values to unpack (expected 2, got 1)",
        ),
        (lambda sdp: _without_lines(sdp, "a=mid:"), "offer SDP has an m-line without a=mid"),
        (lambda sdp: _without_lines(sdp, "a=fingerprint:"), "offer SDP m-line 0 lacks ICE credentials or a DTLS fingerprint"),
        (lambda sdp: _without_lines(sdp, "a=ice-ufrag:"), "offer SDP m-line 0 lacks ICE credentials or a DTLS fingerprint"),
        (
            lambda sdp: sdp + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n",
            "offer SDP has an unsupported m-line of kind application",
        ),
    ],
    ids=["empty", "blank", "no v=0", "unparsable", "no mid", "no fingerprint", "no ice-ufrag", "data channel"],
)
async def test_publish_refuses_a_malformed_offer_with_an_exact_message(
    plane: MediaPlane, clients: Clients, make_sdp: Callable[[str], str], message: str
) -> None:
    router = await plane.create_router({"session": "f"})
    up = await router.create_transport({})
    sdp, tracks = await _real_offer(clients)
    with pytest.raises(ValueError) as info:
        await up.publish(make_sdp(sdp), tracks)
    assert str(info.value) == message
    assert router.producers == []


async def test_publish_refuses_an_offer_with_a_mid_not_in_tracks(plane: MediaPlane, clients: Clients) -> None:
    router = await plane.create_router({"session": "f2"})
    up = await router.create_transport({})
    sdp, tracks = await _real_offer(clients)
    with pytest.raises(ValueError) as info:
        await up.publish(sdp, {"0": {}})
    assert str(info.value) == "offer has an m-line with mid 1 that is not in tracks"
    assert router.producers == []
    assert up.pc.signalingState == "stable"


async def test_set_answer_without_an_offer_is_refused(plane: MediaPlane, clients: Clients) -> None:
    router = await plane.create_router({"session": "f3"})
    down = await router.create_transport({})
    sdp, _ = await _real_offer(clients)
    with pytest.raises(ValueError) as info:
        await down.set_answer(sdp)
    assert str(info.value) == "no offer is waiting for an answer"
    with pytest.raises(ValueError) as info:
        await down.set_answer("")
    assert str(info.value) == "answer SDP is empty"


async def test_an_offer_refused_for_its_audio_codec_leaves_no_producer_behind(
    plane: MediaPlane, clients: Clients
) -> None:
    router = await plane.create_router({"session": "f4"})
    up = await router.create_transport({})
    sdp, tracks = await _real_offer(clients)
    no_opus = sdp.replace("opus/48000/2", "speex/48000")
    with pytest.raises(ValueError) as info:
        await up.publish(no_opus, tracks)
    assert str(info.value) == "offer has no audio codec synclass can forward (wants one of audio/opus)"
    assert router.producers == []


# --- (g) sender reports -------------------------------------------------------------------------------
async def test_sender_reports_count_what_the_consumer_really_sent(plane: MediaPlane, clients: Clients) -> None:
    router = await plane.create_router({"session": "g"})
    _, video, _ = await clients.publish(router)
    sub = await clients.subscribe(router, [video], "room")
    consumer = sub.consumer("video")
    await wait_for(lambda: len(sub.sender_reports) >= 2, 6, "two sender reports at the subscriber")

    for ssrc, packet_count, consumer_packets in sub.sender_reports:
        assert ssrc == consumer.ssrc
        assert 0 < packet_count <= consumer_packets <= packet_count + 3
    stats = [s for s in (await sub.pc.getTransceivers()[0].receiver.getStats()).values() if s.type == "remote-outbound-rtp"]
    assert len(stats) == 1
    assert stats[0].ssrc == consumer.ssrc
    assert stats[0].packetsSent == sub.sender_reports[-1][1]


# --- (h) the server neither decodes nor encodes ---------------------------------------------------------
async def test_the_server_creates_no_decoder_and_no_encoder(clients: Clients) -> None:
    hooks.set_ice_host_addresses(LOOPBACK)  # the clients, here; the server sets its own
    before = dict(hooks.COUNTERS)
    server = _plane_process.ServerProcess(multiprocessing.get_context("spawn"))
    try:
        await server.call("start", LOOPBACK)
        pub = clients.new_pc()
        pub.addTransceiver(synthetic.TestPatternTrack(), direction="sendonly")
        pub.addTransceiver(synthetic.ToneTrack(), direction="sendonly")
        await pub.setLocalDescription(await pub.createOffer())
        tracks = {t.mid: {} for t in pub.getTransceivers()}
        answer = await server.call("publish", pub.localDescription.sdp, tracks)
        await pub.setRemoteDescription(RTCSessionDescription(answer, "answer"))

        offer = await server.call("subscribe")
        sub_pc = clients.new_pc()
        frames = {"video": 0, "audio": 0}

        async def read(track: Any) -> None:
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                frames[track.kind] += 1

        sub_pc.on("track", lambda track: clients.tasks.append(asyncio.ensure_future(read(track))))
        await sub_pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await sub_pc.setLocalDescription(await sub_pc.createAnswer())
        await server.call("answer", sub_pc.localDescription.sdp)
        await wait_for(lambda: frames["video"] >= 15 and frames["audio"] >= 15, 10, "the subscriber to decode")

        counters = await server.call("counters")
    finally:
        await server.stop()

    assert counters["rtp_packets_in"] > 0 and counters["rtp_packets_out"] > 0
    assert counters["decoders_created"] == 0
    assert counters["encoders_created"] == 0
    # The counters do count: the clients in this process made codecs.
    assert hooks.COUNTERS["encoders_created"] - before["encoders_created"] >= 2
    assert hooks.COUNTERS["decoders_created"] - before["decoders_created"] >= 2


# --- H.264 when it is what the publisher offers --------------------------------------------------
async def test_an_h264_publisher_is_forwarded_as_h264_and_decodes_at_640x480(
    plane: MediaPlane, clients: Clients
) -> None:
    from aiortc import RTCRtpSender

    router = await plane.create_router({"session": "h264"})
    pc = clients.new_pc()
    transceiver = pc.addTransceiver(synthetic.TestPatternTrack(), direction="sendonly")
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]
    transceiver.setCodecPreferences(h264)
    await pc.setLocalDescription(await pc.createOffer())
    assert "VP8" not in pc.localDescription.sdp
    up = await router.create_transport({"peer": "teacher"})
    answer, (video,) = await up.publish(pc.localDescription.sdp, {transceiver.mid: {"source": "camera"}})
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    assert "H264" in answer and "VP8" not in answer

    sub = await clients.subscribe(router, [video], "room")
    await wait_for(lambda: sub.frames["video"] >= 15, 15, "15 decoded H.264 frames")
    assert video.mime_type.lower() == "video/h264"
    assert sub.sizes == {(640, 480)}
    assert sub.consumer("video").keyframes_started == 1
