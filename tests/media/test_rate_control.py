"""media.bandwidth.DownlinkController's own decisions, with stand-ins for its
consumers and estimator (pure logic; the estimator has its own tables in
test_adapt.py and the closed loop is measured by ``synclass bench link``)."""

from __future__ import annotations

from typing import Any, Optional

import logging

import pytest

from media.adapt import Demand, LinkEstimator, NackMeter, allocate
from media.bandwidth import QUEUE_PERSIST_S, RESUME_HEADROOM, DownlinkController, Pacer, _steps


class _Producer:
    def __init__(self, bps: int) -> None:
        self.average_bitrate_bps = self.bitrate_bps = self.floor_bitrate_bps = bps
        self.keyframe_bytes = 0


class _Consumer:
    def __init__(self, cid: str, kind: str, bps: int, priority: int) -> None:
        self.id = cid
        self.kind = kind
        self.closed = False
        self.packets = 100
        self.octets = 100_000
        self.receiver_reports = 0
        self.rtx_octets = 0
        self.rtx_reports = 0
        self.rtx_unreported = False
        self.report_spans_pause = False
        self.fraction_lost = 0.0
        self.remb_bps: Optional[int] = None
        self.app_data = {"priority": priority, "source": "camera" if kind == "video" else "mic"}
        self.layers = {0: _Producer(bps)}
        self.target_layer: Optional[int] = 0
        self.can_pad = False
        self.nack_meter = NackMeter()
        self.last_rtt: Optional[tuple[float, float, float]] = None
        self.last_report: Optional[tuple[float, int, int]] = None
        self.unsent_seq = 0  # the next sequence number to go on the wire

    def set_layer(self, layer: Optional[int]) -> None:
        self.target_layer = layer

    def report_now(self) -> None:
        pass


class _Estimator:
    """A fixed estimate; records the queue signals it is given."""

    def __init__(self, bps: int) -> None:
        self.bps = bps
        self.can_probe = False
        self.backlogged = False
        self.floor_bps: Optional[float] = None
        self.cut_at = float("-inf")
        self.queues: list[tuple[float, float]] = []

    def estimate(self, now: float) -> int:
        return self.bps

    def state(self) -> dict[str, Any]:
        return {"reason": "test", "loss": 0.0, "sent_bps": None, "remb_bps": None}

    def on_report(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_queue_delay(self, now: float, queue_s: float, sent_bps: float) -> None:
        self.queues.append((now, queue_s))

    def set_need(self, bps: Optional[int]) -> None:
        pass

    def set_steps(self, budgets: list[int]) -> None:
        pass

    def take_probe(self, now: Optional[float] = None) -> None:
        return None

    def cancel_probe(self) -> None:
        pass


def _controller(bps: int, pacer: Optional[Pacer] = None) -> tuple[DownlinkController, _Consumer, _Estimator]:
    audio = _Consumer("audio", "audio", 43_000, 0)
    camera = _Consumer("camera", "video", 165_000, 2)
    controller = DownlinkController([audio, camera], now=0.0, pacer=pacer)
    estimator = _Estimator(bps)
    controller.estimator = estimator  # type: ignore[assignment]
    return controller, camera, estimator


def test_a_paused_video_resumes_only_with_room_to_spare_but_a_playing_one_stays_at_the_edge() -> None:
    need = 43_000 + 165_000
    controller, camera, estimator = _controller(need + 2_000)
    controller.tick(1.0)
    assert controller.allocation["camera"] == 0  # playing: it fits, it stays

    camera.target_layer = None  # paused earlier (the link was worse)
    controller.tick(4.0)
    assert controller.allocation["camera"] is None  # fits by 1 %: not enough to come back
    estimator.bps = int(need * RESUME_HEADROOM) + 1_000
    controller.tick(7.0)
    assert controller.allocation["camera"] == 0


def _rtt(controller: DownlinkController, camera: _Consumer, at: float, rtt: float) -> None:
    camera.last_rtt = (at, rtt, at - rtt)
    controller.tick(at)


def test_round_trips_that_stay_high_for_half_a_second_signal_a_queue_and_one_late_report_does_not() -> None:
    pacer = Pacer()
    pacer.set_rate(250_000)
    controller, camera, estimator = _controller(300_000, pacer)
    for i in range(10):
        _rtt(controller, camera, 1.0 + i * 0.3, 0.100)  # the path: 100 ms
    _rtt(controller, camera, 5.0, 0.400)  # one report late (a stalled loop, a burst)
    _rtt(controller, camera, 5.3, 0.101)
    assert estimator.queues == []
    _rtt(controller, camera, 6.0, 0.260)  # a queue building...
    _rtt(controller, camera, 6.3, 0.280)
    assert estimator.queues == []
    _rtt(controller, camera, 6.0 + QUEUE_PERSIST_S + 0.05, 0.300)  # ... and still there
    assert [round(q, 3) for _, q in estimator.queues] == [0.2]
    pacer.close()


def test_no_queue_signal_on_a_link_too_fast_to_be_paced() -> None:
    pacer = Pacer()  # no rate: the estimate is above PACE_ABOVE_BPS
    controller, camera, estimator = _controller(8_000_000, pacer)
    for i, rtt in enumerate([0.1, 0.1, 0.3, 0.3, 0.3, 0.3]):
        _rtt(controller, camera, 1.0 + i * 0.3, rtt)
    assert estimator.queues == []


class _Drop:
    """A camera and its audio sent 1.5 Mbps for 10 s; ``nack`` adds NACKs of 10
    sequence numbers each (from 1000 on), the last ``loss_in_10`` of them missing."""

    def __init__(self, name: str = "controller") -> None:
        self.audio = _Consumer("audio", "audio", 43_000, 0)
        self.camera = _Consumer("camera", "video", 165_000, 2)
        self.controller = DownlinkController([self.audio, self.camera], now=0.0, name=name)
        self.seq = 1000
        for i in range(20):
            self.send(0.5 * (i + 1), 1_500_000)

    def send(self, at: float, bps: float) -> None:
        self.camera.octets += int(bps / 8 * 0.5) - 30 * 60  # 0.5 s of it, in 30 packets
        self.camera.packets += 30
        self.controller.tick(at)

    def nack(self, at: float, loss_in_10: int) -> None:
        self.camera.nack_meter.add(at, list(range(self.seq + 10 - loss_in_10, self.seq + 10)))
        self.seq += 10


def test_within_the_hold_after_a_cut_only_the_nacks_of_what_was_sent_after_it_cut_again() -> None:
    """A drop read at 60 % from NACKs that still hold the rate before it: cut to 0.7 x
    what got through. NACKs of packets sent before the cut describe that old rate and
    change nothing, however late they come (behind a 600 ms queue, 0.45-0.75 s
    after it); those of packets sent after it (from the first sequence number still
    unsent at the cut) cut again within the hold, by at most half."""
    drop = _Drop()
    controller, camera, send, nack = drop.controller, drop.camera, drop.send, drop.nack
    assert controller.estimator.estimate(10.0) == 5_000_000
    for i in range(4):
        nack(9.65 + 0.1 * i, 6)
    loss = controller.nack_loss_fraction(10.0)
    assert loss is not None and 0.6 < loss < 0.7  # 24 of 37 (the oldest NACK counts its gap only)
    camera.unsent_seq = 1080  # 1040-1079 are on their way (in the link's queue)
    controller._nack_now(10.0)
    first = controller.estimator.estimate(10.0)
    assert first == pytest.approx(1_500_000 * (1 - loss) * 0.7, rel=0.01)  # FAST_FIRST_SLACK
    assert controller.estimator.cut_at == 10.0
    for i in range(4):
        nack(10.45 + 0.1 * i, 9)  # the old rate, lost at 90 %, NACKed behind a 600 ms queue
    controller._nack_now(10.8)
    assert controller.estimator.estimate(10.8) == first
    assert controller.estimator.cut_at == 10.0
    send(10.9, first)
    for i in range(4):
        nack(10.85 + 0.1 * i, 6)  # what the cut rate lost: 60 % (1080-1119)
    assert controller.fresh_nack_loss() == pytest.approx(0.6)
    controller._nack_now(11.2)
    # at most halved (184 kbps), and no lower than the floor's margin: audio and the
    # camera (its one layer) need 208 kbps, x 1.05
    assert first * 0.5 < 208_000 * 1.05
    assert controller.estimator.estimate(11.2) == pytest.approx(208_000 * 1.05, rel=0.01)
    assert controller.estimator.cut_at == 11.2


def test_nacks_fresh_of_an_older_cut_do_not_cut_again_after_a_report_cut_in_the_same_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The NACKs a round trip after a cut are fresh of it; if a receiver report cuts
    again in the same step, they describe the rate that report answered: the
    report's cut (held at the floor's margin) stands, not halved on top (a 600 ms
    queue's report cut to the margin and the same step's NACKs then to half of
    it: a camera the link carried paused for 31 s). The trace tells the step's
    NACK loss, and that it was not taken as fresh."""
    caplog.set_level(logging.DEBUG, logger="synclass.media.trace")
    drop = _Drop(name="t2")
    controller, camera, send, nack = drop.controller, drop.camera, drop.send, drop.nack
    for i in range(4):
        nack(9.65 + 0.1 * i, 6)
    camera.unsent_seq = 1040
    controller._nack_now(10.0)
    first = controller.estimator.estimate(10.0)
    assert controller.estimator.cut_at == 10.0
    send(10.5, first)
    for i in range(5):
        nack(10.45 + 0.1 * i, 6)  # fresh of the cut at 10.0: 60 % (1040-1089)
    camera.unsent_seq = 1090
    camera.packets += 30
    camera.receiver_reports += 1
    camera.fraction_lost = 0.85  # and a report of 85 %, clearly worse than the cut's 65 %
    controller._nack_now(10.85)
    assert controller.estimator.cut_at == 10.85
    assert controller.estimator.state()["reason"] == "loss>40%"  # the report's cut ...
    assert controller.estimator.estimate(10.85) == pytest.approx(208_000 * 1.05, rel=0.01)  # ... at the margin
    line = [r.getMessage() for r in caplog.records if r.name == "synclass.media.trace"][-1]
    assert line.startswith("~ t2 loss 0.85 raw ")
    assert " packets, fast 0.600 since cut 0/0, sent " in line and "estimate 218 kbps (loss>40%)" in line
    for i in range(5):
        nack(11.35 + 0.1 * i, 6)  # fresh of the report's cut (0.3 s round trip + 0.1 s after it)
    controller._nack_now(11.75)
    assert controller.estimator.cut_at == 11.75  # these do cut
    assert " fresh since cut " in [r.getMessage() for r in caplog.records if r.name == "synclass.media.trace"][-1]
    assert controller.estimator.estimate(11.75) < 208_000


def test_a_report_covering_two_packets_reads_no_loss_of_the_link() -> None:
    """A paused camera's receiver report, alone in its RTCP packet, covers its last 2
    packets, 1 of them lost: that is not 50 % loss of the link. The audio's report
    of 50 packets with 1 lost is the link's."""
    audio = _Consumer("audio", "audio", 43_000, 0)
    camera = _Consumer("camera", "video", 165_000, 2)
    controller = DownlinkController([audio, camera], now=0.0)
    controller.estimator = LinkEstimator(0.0, initial_bps=300_000)

    def report(c: _Consumer, at: float, highest: int, lost: int, fraction: float) -> None:
        c.receiver_reports += 1
        c.fraction_lost = fraction
        c.last_report = (at, highest, lost)
        controller.tick(at)

    report(camera, 1.0, 1000, 10, 0.0)
    report(audio, 1.0, 500, 5, 0.0)
    report(camera, 2.0, 1002, 11, 0.5)
    assert controller.estimator.estimate(2.0) == 300_000
    assert controller.estimator.state()["loss"] is None  # nothing read from it
    report(audio, 2.1, 550, 6, 0.02)
    assert controller.estimator.state()["loss"] == 0.02
    report(camera, 3.0, 1042, 31, 0.5)  # 40 packets, 20 lost: that one counts
    assert controller.estimator.state()["loss"] == 0.5


AUDIO = Demand("mic", "audio", 0, (43_000,))
SLIDES = Demand("slides", "video", 1, (74_000,))
CAMERA = Demand("camera", "video", 2, (1_600_000, 540_000, 112_000))


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        # all on top: nothing more to give
        (10_000_000, []),
        # the camera on layer 1: the top layer's budget
        (700_000, [43_000 + 74_000 + 1_600_000]),
        # the camera on layer 2: layer 1, then the top
        (300_000, [43_000 + 74_000 + 540_000, 43_000 + 74_000 + 1_600_000]),
        # both paused: the slides back (with RESUME_HEADROOM), the camera back, then its layers
        (50_000, [int(117_000 * RESUME_HEADROOM), int(229_000 * RESUME_HEADROOM), 657_000, 1_717_000]),
    ],
)
def test_the_steps_up_are_the_budgets_at_which_the_allocation_gives_more(budget: int, expected: list[int]) -> None:
    demands = [AUDIO, SLIDES, CAMERA]
    assert _steps(demands, allocate(budget, demands)) == expected


def test_a_report_across_a_pause_tells_no_loss_and_the_trace_logs_each_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first report of a resumed video holds the losses at the pause's tail (the
    queue that overflowed), found only when packets follow: not the link's loss now.
    The trace (synclass.media.trace, debug) logs what each report was read as."""
    caplog.set_level(logging.DEBUG, logger="synclass.media.trace")
    audio = _Consumer("audio", "audio", 43_000, 0)
    camera = _Consumer("camera", "video", 165_000, 2)
    controller = DownlinkController([audio, camera], now=0.0, name="t1")
    controller.estimator = LinkEstimator(0.0, initial_bps=300_000)

    def report(c: _Consumer, at: float, highest: int, lost: int, fraction: float, *, spans_pause: bool = False,
               packets: int = 0, nacked: int = 0) -> None:
        c.packets += packets
        c.octets += packets * 500
        if nacked:
            c.nack_meter.add(at, list(range(highest - nacked, highest)))
        c.receiver_reports += 1
        c.fraction_lost = fraction
        c.last_report = (at, highest, lost)
        c.report_spans_pause = spans_pause
        controller.tick(at)

    report(camera, 1.0, 1000, 10, 0.0, packets=20)
    report(audio, 1.0, 500, 5, 0.0)
    report(camera, 2.0, 1040, 30, 0.5, spans_pause=True, packets=40)  # 40 packets, 20 lost at the tail
    assert controller.estimator.state()["loss"] is None  # nothing read from it
    report(camera, 3.0, 1080, 30, 0.0, packets=40, nacked=2)  # 2 of 40 lost, repaired: reads 0
    assert controller.estimator.state()["loss"] == 0.0
    lines = [r.getMessage() for r in caplog.records if r.name == "synclass.media.trace"]
    assert lines and lines[-1].startswith("~ t1 loss 0.0 raw 0.025 over 40 packets")  # 2 NACKed of 80 sent


def test_a_probe_no_consumer_can_pad_for_is_called_off_without_a_verdict() -> None:
    """No video can carry padding (no RTX negotiated): the probe the estimator asked
    for tells nothing of the link; no back-off, no hold against the loss reports."""
    audio = _Consumer("audio", "audio", 43_000, 0)
    camera = _Consumer("camera", "video", 165_000, 2)
    controller = DownlinkController([audio, camera], now=0.0)
    est = LinkEstimator(0.0, initial_bps=300_000)
    est.can_probe = True
    est.set_steps([700_000])
    controller.estimator = est
    at, target = 0.5, None
    while target is None:
        assert at < 5.0
        est.on_report(at, 0.0, 250_000, raw_loss=0.0)
        target = est.take_probe(at)
        at += 0.5
    assert est.state()["probing"] is True
    cut_at, wait = est.cut_at, est.state()["climb_wait_s"]
    controller._start_probe(at, target, 250_000, [audio, camera])
    state = est.state()
    assert (state["probing"], state["failed_probes"], state["climb_wait_s"], est.cut_at) == (False, 0, wait, cut_at)
    assert controller.probes == []
