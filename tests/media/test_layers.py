"""Layers between real aiortc peers: one consumer, three layer producers, switches at keyframes.

A publisher sends one source three times (640x360 layer 0, 320x180 layer 1,
160x90 layer 2, like the teacher page's camera); a subscriber gets ONE
consumer and must decode each layer at its size after a switch, with its
RTP sequence numbers continuous across switches and nothing sent while
starved.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from media.plane import MediaPlane
from media.rtp import vp8_is_keyframe
from synclass import synthetic

from .test_forwarding import Clients, wait_for

SIZES = {0: (640, 360), 1: (320, 180), 2: (160, 90)}


from .test_forwarding import clients, plane  # noqa: E402,F401  (fixtures)


async def publish_layers(router: Any, clients: Clients) -> list[Any]:
    pc = clients.new_pc()
    for layer in (0, 1, 2):
        pc.addTransceiver(synthetic.TestPatternTrack(*SIZES[layer], 15), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    tracks = {t.mid: {"source": "camera", "layer": i} for i, t in enumerate(pc.getTransceivers())}
    up = await router.create_transport({"peer": "teacher"})
    answer, producers = await up.publish(pc.localDescription.sdp, tracks)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return sorted(producers, key=lambda p: p.app_data["layer"])


async def test_one_consumer_switches_layers_at_keyframes_with_continuous_sequence_numbers(
    plane: MediaPlane, clients: Clients
) -> None:
    router = await plane.create_router({"session": "layers"})
    producers = await publish_layers(router, clients)
    sub = await clients.subscribe(router, [producers[0]], "classroom")
    down = sub.transport
    down._controller.stop()  # type: ignore[attr-defined]  # this test picks the layers itself
    consumer = sub.consumer("video")
    consumer.set_layers(producers)
    changes: list[Any] = []
    consumer.on_layer(changes.append)
    await wait_for(lambda: sub.frames["video"] >= 10, 10, "layer 0 frames")
    assert sub.sizes == {SIZES[0]}

    for layer in (2, 1, 0):
        sub.sizes.clear()
        before = sub.frames["video"]
        started = time.monotonic()
        consumer.set_layer(layer)
        await wait_for(lambda: SIZES[layer] in sub.sizes and sub.frames["video"] >= before + 10, 5,
                       f"frames of layer {layer}")
        assert time.monotonic() - started < 3.0
        assert consumer.layer == layer
    assert changes == [2, 1, 0]
    assert consumer.layer_switches == 3

    media = [(seq, payload) for pt, seq, payload in sub.video_rtp if pt == consumer.payload_type]
    seqs = [seq for seq, _ in media]
    jumps = [(b - a) & 0xFFFF for a, b in zip(seqs, seqs[1:])]
    assert all(j == 1 for j in jumps), f"sequence numbers jump: {sorted(set(jumps))}"

    # starved: nothing is sent; fed again: back on the next keyframe of the layer
    consumer.set_layer(None)
    assert changes[-1] is None
    await asyncio.sleep(0.3)
    sent = consumer.packets
    await asyncio.sleep(1.0)
    assert consumer.packets == sent
    frames_before = sub.frames["video"]
    sub.sizes.clear()
    consumer.set_layer(1)
    await wait_for(lambda: consumer.packets > sent + 10, 5, "packets again after the starved stretch")
    await wait_for(lambda: sub.frames["video"] >= frames_before + 10 and SIZES[1] in sub.sizes, 5,
                   "layer 1 frames decoded after the starved stretch")
    resumed = [payload for pt, seq, payload in sub.video_rtp[len(media):] if pt == consumer.payload_type]
    assert vp8_is_keyframe(resumed[0])
    assert consumer.stats()["layer"] == 1


async def test_a_closed_layer_falls_back_and_the_primary_takes_the_consumer(
    plane: MediaPlane, clients: Clients
) -> None:
    router = await plane.create_router({"session": "layers-close"})
    producers = await publish_layers(router, clients)
    sub = await clients.subscribe(router, [producers[0]], "classroom")
    sub.transport._controller.stop()  # type: ignore[attr-defined]
    consumer = sub.consumer("video")
    consumer.set_layers(producers)
    consumer.set_layer(2)
    await wait_for(lambda: consumer.layer == 2 and SIZES[2] in sub.sizes, 5, "layer 2")
    await producers[2].close()
    assert not consumer.closed
    assert consumer.layer == 0 and sorted(consumer.layers) == [0, 1]
    sub.sizes.clear()
    await wait_for(lambda: SIZES[0] in sub.sizes, 5, "back on layer 0")
    await producers[0].close()
    assert consumer.closed


async def test_padding_probes_reach_the_subscriber_and_come_back_in_its_rtx_stream_reports(
    plane: MediaPlane, clients: Clients
) -> None:
    """A bandwidth probe while the video is paused: padding-only RTX packets that the
    aiortc subscriber counts (its receiver report gets a block for the RTX stream, with
    no loss on loopback) and drops, so the video resumes cleanly afterwards."""
    router = await plane.create_router({"session": "layers-padding"})
    producers = await publish_layers(router, clients)
    sub = await clients.subscribe(router, [producers[0]], "classroom")
    sub.transport._controller.stop()  # type: ignore[attr-defined]  # this test drives the consumer itself
    consumer = sub.consumer("video")
    consumer.set_layers(producers)
    await wait_for(lambda: sub.frames["video"] >= 10, 10, "first frames")
    assert consumer.can_pad and consumer.rtx_reports == 0
    assert not consumer.rtx_unreported  # nothing went out on the RTX stream yet
    consumer.set_layer(None)  # starved: nothing but padding goes out now
    await asyncio.sleep(0.3)
    packets_before, frames_before = consumer.packets, sub.frames["video"]
    deadline = time.monotonic() + 1.5
    wire = 0
    while time.monotonic() < deadline:  # 1.5 s of ~200 kbps
        wire += consumer.send_padding(500)
        await asyncio.sleep(0.02)
    assert 100 <= consumer.padding_packets <= 200 and wire >= 75 * 500
    assert consumer.packets == packets_before  # padding is not media
    assert consumer.rtx_unreported  # the last padding packet cannot be in a report yet
    await wait_for(lambda: consumer.rtx_reports > 0, 5, "a receiver report block for the RTX stream")
    assert consumer.rtx_fraction_lost == 0.0
    await wait_for(lambda: not consumer.rtx_unreported, 5, "a report of the RTX stream up to its last packet")
    assert sub.frames["video"] - frames_before <= 1  # nothing decoded from padding
    consumer.set_layer(2)
    sub.sizes.clear()
    # the first receiver report that reaches the resumed video spans the pause (losses at
    # its tail would show only there): it is flagged, and the next one is not
    await wait_for(lambda: consumer.report_spans_pause, 5, "a report across the pause")
    await wait_for(lambda: not consumer.report_spans_pause, 5, "the report after it")
    await wait_for(lambda: SIZES[2] in sub.sizes and sub.frames["video"] >= frames_before + 10, 10,
                   "the video back after the probe")


async def test_a_sender_report_on_demand_gets_a_round_trip_from_that_moment(plane: MediaPlane, clients: Clients) -> None:
    """A probe wants a round trip measured from after it started: report_now() sends a
    sender report at once, and the subscriber's next receiver report answers it (not
    one sent up to 1.5 s earlier)."""
    router = await plane.create_router({"session": "layers-report-now"})
    producers = await publish_layers(router, clients)
    sub = await clients.subscribe(router, [producers[0]], "classroom")
    sub.transport._controller.stop()  # type: ignore[attr-defined]
    consumer = sub.consumer("video")
    await wait_for(lambda: sub.frames["video"] >= 10 and consumer.last_rtt is not None, 10, "a first round trip")
    # asked every 50 ms, the sender report the receiver's next report answers is at most
    # ~50 ms old when that report comes (every 0.5-1.5 s it would be 0.5 s old on average):
    # three reports in a row
    ages: list[float] = []
    seen = consumer.last_rtt[0]
    deadline = time.monotonic() + 8
    while len(ages) < 3 and time.monotonic() < deadline:
        consumer.report_now()
        await asyncio.sleep(0.05)
        sample = consumer.last_rtt
        if sample[0] != seen:
            seen = sample[0]
            ages.append(sample[0] - sample[2])
            assert 0.0 <= sample[1] < 0.5  # loopback
    assert len(ages) == 3 and max(ages) < 0.12, ages


async def _top_layer_with_its_pacer(plane: MediaPlane, clients: Clients, session: str) -> tuple[Any, Any, Any, Any]:
    """A subscriber of the top layer, playing, whose pacer the test drives (rate control stopped)."""
    router = await plane.create_router({"session": session})
    producers = await publish_layers(router, clients)
    sub = await clients.subscribe(router, [producers[0]], "classroom")
    down = sub.transport
    down._controller.stop()  # type: ignore[attr-defined]  # the test sets the pacer itself
    consumer = sub.consumer("video")
    await wait_for(lambda: sub.frames["video"] >= 10, 10, "first frames")
    return producers, sub, down, consumer


async def test_a_pli_is_held_while_the_subscribers_video_waits_in_the_pacer(
    plane: MediaPlane, clients: Clients
) -> None:
    """A subscriber that asks for a key frame while the last one still waits to
    cross its slow link would only queue another behind it (a slide's key frame
    is 30-60 KB): the PLI is held until the pacer has sent what it holds."""
    from media import aiortc_hooks as hooks

    producers, sub, down, consumer = await _top_layer_with_its_pacer(plane, clients, "layers-pli")
    pli = hooks.RTCP_CLASSES["psfb"](fmt=hooks.PSFB_PLI, ssrc=1, media_ssrc=consumer.ssrc)

    down.pacer.set_rate(30_000)  # far below the 640x360 layer: video queues up
    await wait_for(lambda: down.pacer.queued_bytes > 0, 5, "video waiting in the pacer")
    await asyncio.sleep(1.1)  # past the producer's one-request-a-second limit
    asked = producers[0].keyframe_requests
    consumer.on_rtcp(pli)
    assert consumer.plis_held == 1 and producers[0].keyframe_requests == asked

    down.pacer.set_rate(None)  # the queue goes out: the next PLI is passed on
    assert down.pacer.queued_bytes == 0
    consumer.on_rtcp(pli)
    assert consumer.plis_held == 1 and producers[0].keyframe_requests == asked + 1


async def test_pausing_drops_the_stale_video_waiting_in_the_pacer_without_a_gap_in_the_sequence(
    plane: MediaPlane, clients: Clients
) -> None:
    """A paused track's video still waiting to cross a slow link is stale: it is
    dropped from the pacer (which otherwise stayed busy for ~40 s at 50 kbps and
    held every probe back), and the stream resumes right after the last packet
    that went out, so the receiver sees no loss."""
    producers, sub, down, consumer = await _top_layer_with_its_pacer(plane, clients, "layers-discard")

    down.pacer.set_rate(30_000)  # far below the 640x360 layer: video queues up
    await wait_for(lambda: down.pacer.queued_for(consumer.id) > 5_000, 5, "video waiting in the pacer")
    consumer.set_layer(None)
    assert consumer.discarded_packets > 0
    assert down.pacer.queued_for(consumer.id) == 0 and down.pacer.video_bytes == 0
    await asyncio.sleep(0.3)
    received_before = len(sub.video_rtp)
    down.pacer.set_rate(None)
    consumer.set_layer(0)
    await wait_for(lambda: len(sub.video_rtp) >= received_before + 30, 5, "video again")
    media = [seq for pt, seq, _ in sub.video_rtp if pt == consumer.payload_type]
    gaps = [(a, b) for a, b in zip(media, media[1:]) if (b - a) & 0xFFFF != 1]
    assert gaps == []  # one stream, every number once, in order: nothing lost across the pause
    assert consumer.nacks == 0
