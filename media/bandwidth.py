"""Per-subscriber rate control: what the link carries, and which layer each track gets.

One ``DownlinkController`` per receive transport (one subscriber). Every
``INTERVAL_S`` it reads what its consumers learned from the subscriber's
RTCP (receiver reports: loss; REMB), and what they sent, feeds the
``LinkEstimator`` and re-divides the estimate between the subscriber's tracks
with ``allocate`` — audio first, then video by priority (courseware, teacher
camera, other classrooms), each video track as high a layer as fits, paused
when not even its lowest does. A ``LayerSelector`` per video consumer adds
the hold times so a layer does not flap; the consumer itself switches at the
target layer's keyframe. The decisions live in ``media.adapt`` (pure, unit
tested with time passed in); this module only measures and applies.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .adapt import CUT_HOLD_S, QUEUE_DELAY_S, Demand, LayerSelector, LinkEstimator, allocate
from .producer import PACKET_OVERHEAD_BYTES

if TYPE_CHECKING:
    from .consumer import Consumer

logger = logging.getLogger("synclass.media.bandwidth")
# Each subscriber's rate control, a line per receiver report (debug; see the
# debug_loggers setting): what a link's estimate was made of, after the fact.
trace = logging.getLogger("synclass.media.trace")

# Decisions follow the subscriber's feedback (a step FEEDBACK_DELAY_S after a
# receiver report or REMB arrives) and, without feedback, a tick every
# INTERVAL_S for the hold timers. Polling every 0.5 s instead cost ~10 % of a
# core at 250 subscribers; reports come about once a second anyway.
INTERVAL_S = 1.0
FEEDBACK_DELAY_S = 0.02
# What was sent is measured over this long: about one receiver-report interval,
# so a report's loss is set against the rate it describes (a 0.5 s window next
# to a 1 s report halves what "got through" right after a rate drop).
SENT_WINDOW_S = 1.0
# Without new feedback the allocation is only revisited this often (hold timers,
# layers that appeared, bitrates measured anew).
REALLOCATE_S = 2.0
# A track's delivered rate (from its receiver reports) counts this long.
DELIVERED_FRESH_S = 3.0
# Receiver reports that, together, cover fewer packets than this tell no loss.
REPORT_MIN_PACKETS = 8
INITIAL_BPS = 5_000_000
# The fast loss signal: the subscriber's NACKs of the last NACK_WINDOW_S, once
# they cover at least NACK_MIN_SPAN sequence numbers, give the loss an RTT
# after it happened (see Consumer._note_nack). A rate drop shows there ~0.5 s
# before the next receiver report would tell it.
NACK_WINDOW_S = 0.4
NACK_MIN_SPAN = 20
NACK_FRESH_MIN_SPAN = 10
# Within the hold after a cut (media.adapt.CUT_HOLD_S) the NACKs are read again
# over what went on the wire after the cut: the sequence numbers from each
# video's first one still unsent at the cut (Consumer.unsent_seq), once they
# cover NACK_FRESH_MIN_SPAN (a receiver tells a gap only when a later packet
# arrives: on a 64 kbps link the NACKs covered 18 numbers 2 s after a cut; a
# fresh cut pauses no video above 60 % of the floor, so 5 % random loss read
# over 10 packets cannot pause one). (Timing it by the round trip failed: right at a drop
# the latest reports do not hold the new queue yet, and behind a 600 ms queue
# NACKs of the rate before a cut read as 88 % loss of the cut rate and paused
# a camera the link carried for 10 s.)
# What a layer needs before its producer has been measured (bps), by layer index.
NOMINAL_VIDEO_BPS = (1_500_000, 500_000, 100_000)
NOMINAL_AUDIO_BPS = 40_000
# Padding probes (see media.adapt.PROBE_STEP): padding goes out every
# PROBE_TICK_S, topping what the media puts on the wire up to the probe's
# rate; the probe is judged by the first report of the RTX stream (where the
# padding travels) that is its own, PROBE_MIN_S after it started, or at
# PROBE_MAX_S by the other streams' reports. It failed if the padding (or
# the other streams) lost PROBE_LOSS_MARGIN more than before it, or if a
# round trip grew by PROBE_RTT_RISE_S (a queue filling up).
PROBE_TICK_S = 0.02
# Media sent above the probe's rate (a key frame) holds its padding back for at most this long.
PROBE_DEBT_S = 0.2
PROBE_MIN_S = 0.8
PROBE_MAX_S = 3.5
# ... and a receiver whose reports of the other streams (with a round trip)
# keep coming this long into a probe without one of the RTX stream is judged by those.
PROBE_SILENT_S = 1.5
PROBE_LOSS_MARGIN = 0.15  # an RR interval of ~60 padding packets on a 5 % link has read 11 and 13 %
PROBE_RTT_RISE_S = 0.08
# ... as round trips of sender reports sent this long into the probe show it
# (a probe 15 % over a 300 kbps link fills its 200 ms queue in ~1.3 s: an
# earlier report's round trip, or a report's loss, says nothing yet). No
# probe is judged carried without one, until PROBE_MAX_S.
PROBE_RTT_AFTER_S = 0.8
# ... and from then on, every consumer of the subscriber sends a sender report
# this often (instead of every 0.5-1.5 s), so the first receiver report after
# it answers one: a probe took 1.8-2.4 s to be judged, now ~1.2 s.
PROBE_SR_EVERY_S = 0.2
# The media's own loss (NACKs, or a receiver report) PROBE_LOSS_MARGIN above
# the loss before, once the probe has run this long, stops it at once (a probe
# overflowing a queue loses 20-60 %).
PROBE_NACK_AFTER_S = 0.3
# A video track "fits" only if, on top of its average rate, one of its key
# frames can cross the link within this long (the courseware target: a new
# slide shows within 5 s): a slide deck averaging 60 kbps with 37 KB key
# frames needs 60 kbps on a link with room to spare, but does not fit in the
# 24 kbps a 64 kbps link leaves beside the audio.
KEYFRAME_DELIVERY_S = 5.0
# Pacing (see Pacer): video leaves at most at the estimate minus the audio,
# times PACE_FACTOR, with bursts of up to PACE_BURST_S at that rate sent at
# once; links estimated above PACE_ABOVE_BPS are not paced (a key frame is a
# small share of what they carry, and the fan-out hot path stays as it is).
PACE_FACTOR = 1.0
# The delay signal (see media.adapt.QUEUE_DELAY_S): round trips from the
# subscriber's receiver reports, against the least of the last RTT_BASE_S; a
# queue counts once its round trips have stood that high for QUEUE_PERSIST_S
# (a stalled event loop on a loaded machine delays the reports of one
# moment, not of half a second), and only on links paced (estimated at most
# PACE_ABOVE_BPS): on faster links a slide's key frame is a small share of
# what they carry, loss alone steers them.
RTT_BASE_S = 10.0
# The estimate does not grow while more than this long of video waits in the
# pacer (media.adapt.LinkEstimator.backlogged): the pacer then sends at the
# estimate, and growing it on clean reports fed a queue on a 300 kbps link
# from 243 to 369 kbps in 2 s, until it overflowed (1-1.5 s of video waited).
# 0.1 s held a 177 kbps pacer with a 166 kbps camera layer in it (0.1-0.2 s
# wait after each of its key frames) below a link back at 5 Mbps for 12 s.
BACKLOG_S = 0.5
# A paused video resumes only when it fits with this much to spare (less than
# media.adapt.UNPAUSE_HEADROOM, where probes aim, so that a probe that carried
# brings it back even if the measured needs moved by a few percent meanwhile).
RESUME_HEADROOM = 1.08
QUEUE_PERSIST_S = 0.5
PACE_BURST_S = 0.04
PACE_ABOVE_BPS = 4_000_000
PACE_MIN_BPS = 30_000
# Video waiting longer than this in the pacer is dropped at the tail (as a
# router's queue would; the receiver NACKs, the key frame logic recovers).
# Twice as long as a key frame may take to cross a link it fits
# (KEYFRAME_DELIVERY_S): a slide is a key frame and a follow-up nearly as big
# (57 KB at 80 kbps: 5.8 s), and a tail drop leaves a gap the receiver counts
# as loss and a slide it cannot show.
PACE_MAX_DELAY_S = 2 * KEYFRAME_DELIVERY_S
PACE_TICK_S = 0.005
# Retransmissions wait ahead of the video, at most this long.
PACE_FIRST_MAX_DELAY_S = 0.5
# A track's share of the pacer is what the allocation gave it; one the pacer
# was not told of (just added) weighs this much, and no share weighs less than
# the minimum (a tag of size / weight must stay finite).
PACE_DEFAULT_WEIGHT_BPS = 150_000
PACE_MIN_WEIGHT_BPS = 10_000
# Priorities (lower first): the control plane sets ``priority`` in a consumer's app_data.
DEFAULT_PRIORITY = 3


class DownlinkController:
    def __init__(self, consumers: list["Consumer"], now: Optional[float] = None,
                 pacer: Optional[Pacer] = None, name: str = "") -> None:
        self.name = name  # the subscriber's transport, for the log
        self._consumers = consumers  # the transport's live list
        self.pacer = pacer
        self._pacer_dropped = 0
        self._pacer_held = 0  # pacer bytes waiting or dropped at the last tick
        self._cut_noted = -math.inf  # the estimator's cut_at when last looked at
        self._cut_seqs: dict[str, int] = {}  # each video's first sequence number sent after that cut
        start = time.monotonic() if now is None else now
        # Until the subscriber's reports say otherwise its link is taken to be
        # good: a single-layer track is forwarded as it is from the start, and
        # layered ones climb from their lowest layer (LayerSelector's hold times).
        self.estimator = LinkEstimator(start, initial_bps=INITIAL_BPS)
        self._selectors: dict[str, tuple[int, LayerSelector]] = {}  # consumer id -> (layers, selector)
        self._seen: dict[str, tuple[int, int, int, int]] = {}  # consumer id -> (packets, octets, reports, rtx octets)
        self._nacked: dict[str, tuple[int, int]] = {}  # video consumer id -> (NACKed, packets) at the last report
        self._last_tick = start
        self._delivered: dict[str, tuple[float, float]] = {}  # consumer id -> (at, bps) from its RRs
        self._reports: dict[str, tuple[float, int, int]] = {}  # consumer id -> its previous RR
        self._sent_log: list[tuple[float, int]] = [(start, 0)]  # (time, bits sent in total)
        self._sent_total = 0
        self._last_remb: Optional[int] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._soon: Optional[asyncio.TimerHandle] = None
        self.allocation: dict[str, Optional[int]] = {}
        self._allocated_at = -1e9
        self._nack_soon: Optional[asyncio.TimerHandle] = None
        self._probe: Optional[_Probe] = None
        self._rtts: deque[tuple[float, float, float]] = deque()  # Consumer.last_rtt of every RR
        self._rtt_seen: dict[str, float] = {}  # consumer id -> arrival of its last sample taken
        self._queue_since: Optional[float] = None
        self.probes: list[dict[str, Any]] = []  # the last few probes and their verdicts (for stats)
        # a probe just carried: the layers it proved go up without the selectors' hold
        self._proven_up = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="downlink-rate")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._nack_soon is not None:
            self._nack_soon.cancel()
            self._nack_soon = None
        if self._probe is not None and self._probe.timer is not None:
            self._probe.timer.cancel()
        self._probe = None

    def feedback(self) -> None:
        """A consumer got a receiver report or REMB: decide soon (the reports of
        one RTCP compound packet arrive together and are taken in one step)."""
        if self._soon is None and self._task is not None:
            self._soon = asyncio.get_running_loop().call_later(FEEDBACK_DELAY_S, self._tick_now)

    def nack_loss(self) -> None:
        """A consumer heard of new losses in a NACK: look at the loss soon."""
        if self._nack_soon is None and self._task is not None:
            self._nack_soon = asyncio.get_running_loop().call_later(FEEDBACK_DELAY_S, self._nack_now)

    def _nack_now(self, now: Optional[float] = None) -> None:
        self._nack_soon = None
        try:
            now = time.monotonic() if now is None else now
            loss = self.nack_loss_fraction(now)
            probe = self._probe
            if (probe is not None and loss is not None and now - probe.started >= PROBE_NACK_AFTER_S
                    and loss > probe.loss_before + PROBE_LOSS_MARGIN):
                # the probe's padding is overflowing the queue: stop it now, not at its verdict
                self._finish_probe(now, False, f"nack loss {loss:.3f}")
                return
            if now - self.estimator.cut_at < CUT_HOLD_S:
                # within the hold after a cut, only the loss of what was sent after it counts
                loss = self.fresh_nack_loss()
                if loss is not None and loss > self.estimator.fresh_loss_threshold:
                    self.tick(now, fast_loss=loss, fresh=True)
            elif loss is not None and loss > self.estimator.fast_loss_threshold:
                self.tick(now, fast_loss=loss)
        except Exception:
            logger.exception("x rate control failed")

    def fresh_nack_loss(self) -> Optional[float]:
        """Loss over the sequence numbers that went on the wire after the last
        cut, as the NACKs tell it so far (all video consumers), or None if they
        cover fewer than NACK_FRESH_MIN_SPAN."""
        lost, span = self._fresh_nacks()
        if span < NACK_FRESH_MIN_SPAN:
            return None
        return lost / span

    def _fresh_nacks(self) -> tuple[int, int]:
        lost = span = 0
        for c in self._consumers:
            first = self._cut_seqs.get(c.id)
            if c.kind == "video" and not c.closed and first is not None:
                c_lost, c_span = c.nack_meter.since(first)
                lost += c_lost
                span += c_span
        return lost, span

    def _note_cut(self) -> None:
        """After the estimator may have cut: at a new cut, where each video's
        packets sent after it begin."""
        cut_at = self.estimator.cut_at
        if cut_at != self._cut_noted:
            self._cut_noted = cut_at
            self._cut_seqs = {c.id: c.unsent_seq for c in self._consumers if c.kind == "video" and not c.closed}

    def nack_loss_fraction(self, now: float, seconds: float = NACK_WINDOW_S) -> Optional[float]:
        """Loss over the sequence numbers the NACKs of the last ``seconds``
        covered (all video consumers, see NackMeter.window), or None if they
        cover fewer than NACK_MIN_SPAN."""
        lost = span = 0
        for c in self._consumers:
            if c.kind == "video" and not c.closed:
                c_lost, c_span = c.nack_meter.window(now, seconds)
                lost += c_lost
                span += c_span
        if span < NACK_MIN_SPAN:
            return None
        return lost / span

    def _tick_now(self) -> None:
        self._soon = None
        try:
            self.tick(time.monotonic())
        except Exception:
            logger.exception("x rate control failed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            try:
                self.tick(time.monotonic())
            except Exception:  # a bug here must not stop the media
                logger.exception("x rate control failed")

    # -- one step ------------------------------------------------------------------
    def tick(self, now: float, fast_loss: Optional[float] = None, fresh: bool = False) -> None:
        consumers = [c for c in self._consumers if not c.closed]
        cut_before = self.estimator.cut_at  # (before a probe's verdict or a report moves it)
        dt = max(1e-3, now - self._last_tick)
        self._last_tick = now
        sent_bits = 0
        lost_weighted = 0.0
        reported_packets = 0
        remb: Optional[int] = None
        for c in consumers:
            packets, octets, reports, rtx = self._seen.get(
                c.id, (c.packets, c.octets, c.receiver_reports, c.rtx_octets))
            d_packets = c.packets - packets
            # (retransmissions, c.rtx_octets, are left out: the loss read from NACKs at the
            # onset of a drop is measured against the media alone)
            sent_bits += ((c.octets - octets) + d_packets * PACKET_OVERHEAD_BYTES) * 8
            if c.receiver_reports != reports:
                # weighed by the packets its interval covers: a paused camera's report
                # (its last 2 packets, 1 lost in the overflow that paused it) came alone
                # and read as 50 % loss of the link, which paused the courseware too
                span = self._report_span(c)
                weight = max(1, d_packets) if span is None else span
                if c.report_spans_pause:
                    # the losses at the pause's tail, not of now: a deck resumed on a
                    # link back at 5 Mbps read 50 % of 12 packets and was paused again
                    weight = 0
                lost_weighted += c.fraction_lost * weight
                reported_packets += weight
                self._note_delivered(c)
            self._seen[c.id] = (c.packets, c.octets, c.receiver_reports, c.rtx_octets)
            if c.remb_bps is not None:
                remb = c.remb_bps if remb is None else min(remb, c.remb_bps)
        for gone in set(self._seen) - {c.id for c in consumers}:
            del self._seen[gone]
            self._selectors.pop(gone, None)
            self._delivered.pop(gone, None)
            self._reports.pop(gone, None)
        if self.pacer is not None:
            # what the consumers handed the pacer is not on the wire yet (a slide's key
            # frame waits there for seconds on a slow link): count what left it
            held = self.pacer.video_bytes + self.pacer.dropped_bytes + self.pacer.discarded_bytes
            sent_bits = max(0, sent_bits - (held - self._pacer_held) * 8)
            self._pacer_held = held
        self._sent_total += sent_bits
        self._sent_log.append((now, self._sent_total))
        while len(self._sent_log) > 2 and self._sent_log[1][0] <= now - SENT_WINDOW_S:
            self._sent_log.pop(0)
        then, bits_then = self._sent_log[0]
        sent_bps = (self._sent_total - bits_then) / max(1e-3, now - then) if now > then else sent_bits / dt
        # A running probe is judged first: its verdict explains the report that came
        # with it (a failed probe ends the clean run that report would climb on).
        if reported_packets < REPORT_MIN_PACKETS:
            reported_packets = 0  # too few packets to read a loss from
        probe_judged = self._probe is not None and self._probe_verdict(
            now, consumers, loss_now=lost_weighted / reported_packets if reported_packets else None)
        if self.estimator.floor_bps is None:
            self.estimator.floor_bps = sum(_demand(c).layer_bps[-1] for c in consumers)
        if self.pacer is not None:
            rate = self.pacer.rate_bps
            self.estimator.backlogged = bool(rate and self.pacer.video_bytes * 8 > rate * BACKLOG_S)
        raw_loss = self._raw_loss(consumers, reported=bool(reported_packets))
        if reported_packets:
            delivered = [bps for at, bps in self._delivered.values() if now - at <= DELIVERED_FRESH_S]
            self.estimator.on_report(
                now, lost_weighted / reported_packets, sent_bps, delivered_bps=sum(delivered) if delivered else None,
                raw_loss=raw_loss,
            )
        news = bool(reported_packets)
        queue_s = self._queue_delay(now, consumers)
        if queue_s is not None:
            self.estimator.on_queue_delay(now, queue_s, sent_bps)
        if fast_loss is not None:
            # "fresh" was of the NACKs after the cut before this tick: if a report
            # cut again just now, they are of the rate that cut answered (a
            # 600 ms queue's report cut 365 kbps to the floor's 241 and the same
            # tick's NACKs halved that to 120: the camera paused for 31 s)
            fresh = fresh and self.estimator.cut_at == cut_before
            if fresh:
                # what left since the cut: the pacer drains at the estimate (the
                # last second's average still holds the rate before the cut)
                sent_bps = min(sent_bps, float(self.estimator.estimate(now)))
            self.estimator.on_fast_loss(now, fast_loss, sent_bps, floor_bps=self.estimator.floor_bps, fresh=fresh)
            news = True
        if remb is not None and remb != self._last_remb:
            self._last_remb = remb
            self.estimator.on_remb(now, remb)
            news = True
        if probe_judged:
            news = True
        self._note_cut()
        if trace.isEnabledFor(logging.DEBUG):
            # one line per step: a receiver report, a NACK's loss or the timer
            # ("fast" when the NACKs' loss was acted on), after all it changed
            state = self.estimator.state()
            # within a cut's hold, the NACKs of what was sent since it: "since cut 12/40"
            since_cut = (" since cut %d/%d" % self._fresh_nacks()) if now - self.estimator.cut_at < CUT_HOLD_S else ""
            trace.debug("~ %s loss %s raw %s over %d packets%s%s, sent %d kbps: estimate %d kbps (%s), climb wait %.0f s",
                        self.name, None if not reported_packets else round(lost_weighted / reported_packets, 3),
                        None if raw_loss is None else round(raw_loss, 3), reported_packets,
                        "" if fast_loss is None else f", fast {fast_loss:.3f}{' fresh' if fresh else ''}", since_cut,
                        sent_bps // 1000, state["estimate_bps"] // 1000, state["reason"], state["climb_wait_s"])
        if not news and now - self._allocated_at < REALLOCATE_S and len(self._selectors) >= sum(
            1 for c in consumers if c.kind == "video"
        ):
            return  # nothing new: the last decision stands (a tick costs ~0.1 ms)
        self._allocated_at = now
        budget = self.estimator.estimate(now)
        demands = [_demand(c) for c in consumers]
        self.estimator.floor_bps = sum(d.layer_bps[-1] for d in demands)  # every track on its lowest layer
        allocation = allocate(budget, demands)
        # Hysteresis: a paused video comes back only if it fits with RESUME_HEADROOM to
        # spare. Right at the edge (a 300 kbps link carrying audio, a slide deck and the
        # camera's lowest layer within 10 %), the courseware's need moving with its slides
        # paused and resumed the camera every few seconds, each time with a key frame.
        paused = {c.id for c in consumers if c.kind == "video" and c.packets and c.target_layer is None}
        if any(allocation.get(key) is not None for key in paused):
            strict = allocate(int(budget / RESUME_HEADROOM), demands)
            for key in paused:
                if strict.get(key) is None:
                    allocation[key] = None
        if allocation != self.allocation:
            state = self.estimator.state()
            logger.info(
                "- rate %d kbps (%s, loss %.3f, sent %s kbps, remb %s): %s",
                budget // 1000, state.get("reason"), state.get("loss") or 0.0,
                None if state.get("sent_bps") is None else int(state["sent_bps"]) // 1000,
                None if state.get("remb_bps") is None else int(state["remb_bps"]) // 1000,
                " ".join(f"{d.key[:6]}={allocation[d.key]}({'/'.join(str(b // 1000) for b in d.layer_bps)})"
                         for d in demands),
            )
        self.allocation = allocation
        if self.pacer is not None:
            if self.pacer.dropped_packets != self._pacer_dropped:
                logger.info("- pacer dropped %d video packets (%d bytes waiting, %s kbps)",
                            self.pacer.dropped_packets - self._pacer_dropped, self.pacer.queued_bytes,
                            None if self.pacer.rate_bps is None else int(self.pacer.rate_bps) // 1000)
                self._pacer_dropped = self.pacer.dropped_packets
            audio = sum(d.layer_bps[0] for d in demands if d.kind == "audio")
            weights = {d.key: d.layer_bps[allocation[d.key]] for d in demands
                       if d.kind == "video" and allocation.get(d.key) is not None}
            self.pacer.set_rate(None if budget > PACE_ABOVE_BPS else max(PACE_MIN_BPS, (budget - audio) * PACE_FACTOR),
                                weights)
        need = _unpause_need(demands, self.allocation)
        # what a paused video needs to come back, with the resume hysteresis above
        # (without it an estimate between the two held a camera paused for 15 s: no
        # probe, since the need was met; no resume, since the headroom was not)
        self.estimator.set_need(None if need is None else int(need * RESUME_HEADROOM))
        self.estimator.set_steps(_steps(demands, self.allocation))
        self.estimator.can_probe = self._task is not None and any(c.kind == "video" and c.can_pad for c in consumers)
        target = self.estimator.take_probe(now)
        if target is not None:
            self._start_probe(now, target, sent_bps, consumers)
        for c in consumers:
            if c.kind != "video":
                continue
            present = sorted(c.layers)  # layer numbers; adapt works on their positions
            entry = self._selectors.get(c.id)
            if entry is None or entry[0] != len(present):  # new, or a layer came or went
                current = c.target_layer
                start = present.index(current) if current in present else None
                if c.packets == 0 and len(present) > 1:
                    start = None  # not started yet: begin on the lowest layer and climb
                entry = self._selectors[c.id] = (len(present), LayerSelector(now, len(present), start_layer=start))
            selector = entry[1]
            chosen = selector.update(now, self.allocation.get(c.id), proven=self._proven_up)
            layer = None if chosen is None else present[chosen]
            if layer != c.target_layer:
                c.set_layer(layer)
        self._proven_up = False

    # -- probes --------------------------------------------------------------------
    def _start_probe(self, now: float, target_bps: float, sent_bps: float, consumers: list["Consumer"]) -> None:
        # the padding goes out on a paused video's RTX stream if there is one (it
        # carries nothing else), on a flowing one's otherwise
        paused = sorted((c for c in consumers if c.kind == "video" and c.can_pad),
                        key=lambda c: self.allocation.get(c.id) is not None)
        if not paused:
            self.estimator.cancel_probe()
            return
        rtts = [c.last_rtt[1] for c in consumers if c.last_rtt is not None and now - c.last_rtt[0] <= 10.0]
        self._probe = _Probe(
            consumer=paused[0], target_bps=target_bps, started=now,
            loss_before=self.estimator.state().get("loss") or 0.0,
            rtt_before=min(rtts) if rtts else None, rtx_reports=paused[0].rtx_reports,
            rtx_unreported=paused[0].rtx_unreported, media_bytes=self._media_wire_bytes(),
        )
        logger.info("- probe to %d kbps (sent %d kbps)", target_bps // 1000, sent_bps // 1000)
        self._probe.last_pad = now
        self._probe.timer = asyncio.get_running_loop().call_later(PROBE_TICK_S, self._pad)

    def _media_wire_bytes(self) -> int:
        """What the consumers have put on the wire so far (what waits in the
        pacer left out), headers included: bytes."""
        total = 0
        for c in self._consumers:
            if not c.closed:
                total += c.octets + c.rtx_octets + c.packets * PACKET_OVERHEAD_BYTES
        if self.pacer is not None:
            total -= self.pacer.video_bytes + self.pacer.dropped_bytes + self.pacer.discarded_bytes
        return total

    def _pad(self) -> None:
        probe = self._probe
        if probe is None:
            return
        now = time.monotonic()
        probe.timer = None
        try:
            if now - probe.started >= PROBE_MAX_S:
                self._probe_verdict(now, [c for c in self._consumers if not c.closed], final=True)
                return
            if probe.consumer.closed:
                self._finish_probe(now, None, "consumer closed")
                return
            # padding tops what the media sends now up to the target: the last
            # second's average, taken at the start, held a camera that had just
            # paused (a probe "to 352 kbps" sent 228 and carried)
            if now - probe.started >= PROBE_RTT_AFTER_S and now - probe.reported_at >= PROBE_SR_EVERY_S:
                probe.reported_at = now
                for c in self._consumers:
                    c.report_now()
            media = self._media_wire_bytes()
            owed = probe.target_bps * (now - probe.last_pad) / 8 - max(0, media - probe.media_bytes) + probe.debt
            owed = max(owed, -probe.target_bps * PROBE_DEBT_S / 8)
            probe.media_bytes = media
            probe.last_pad = now
            if owed >= 300:
                sent = probe.consumer.send_padding(int(owed))
                probe.padding_bytes += sent
                owed -= sent
            probe.debt = owed
        except Exception:
            logger.exception("x probe failed")
            self._probe = None
            self.estimator.on_probe_result(now, probe.target_bps, False)
            return
        probe.timer = asyncio.get_running_loop().call_later(PROBE_TICK_S, self._pad)

    def _probe_verdict(self, now: float, consumers: list["Consumer"], final: bool = False,
                       loss_now: Optional[float] = None) -> bool:
        """Judge the running probe if its evidence is in; True if it was judged."""
        probe = self._probe
        assert probe is not None
        c = probe.consumer
        # round trips of sender reports sent once the probe had run PROBE_RTT_AFTER_S:
        # earlier ones crossed the link before a queue could build
        rises = [x.last_rtt[1] for x in consumers
                 if x.last_rtt is not None and x.last_rtt[2] >= probe.started + PROBE_RTT_AFTER_S]
        if probe.rtt_before is not None and rises and max(rises) > probe.rtt_before + PROBE_RTT_RISE_S:
            self._finish_probe(now, False, f"rtt {probe.rtt_before * 1000:.0f} -> {max(rises) * 1000:.0f} ms")
            return True
        limit = max(probe.loss_before, 0.0) + PROBE_LOSS_MARGIN
        if (loss_now is not None and loss_now > probe.loss_before + PROBE_LOSS_MARGIN
                and now - probe.started >= PROBE_NACK_AFTER_S):
            self._finish_probe(now, False, f"loss {loss_now:.3f}")
            return True
        # The first report of the RTX stream after the probe started counts, as
        # lost, the retransmissions sent after its previous report that never
        # arrived (its sequence numbers jump over them when the padding starts;
        # 5 s after a drop that read 66 % and failed a probe the link carried):
        # then the second one is the probe's own.
        # A first report that tells no more loss than the limit, old retransmissions
        # included, tells the padding's well enough (a probe chained to one that
        # carried always has padding unreported: it waited a second report, ~1 s).
        reports = 2 if probe.rtx_unreported and c.rtx_fraction_lost > limit else 1
        if (c.rtx_reports - probe.rtx_reports >= reports and now - probe.started >= PROBE_MIN_S
                and (rises or probe.rtt_before is None)):
            carried = c.rtx_fraction_lost <= limit
            self._finish_probe(now, carried, f"padding loss {c.rtx_fraction_lost:.3f}")
            return True
        silent = (c.rtx_reports == probe.rtx_reports and loss_now is not None and bool(rises)
                  and now - probe.started >= PROBE_SILENT_S)
        if final or silent or now - probe.started >= PROBE_MAX_S:
            # no verdict from the RTX stream (a receiver that does not report it):
            # the other streams' loss and the round trip tell
            loss = loss_now if loss_now is not None else self.estimator.state().get("loss")
            carried = loss is not None and loss <= limit and bool(rises or probe.rtt_before is None)
            self._finish_probe(now, carried, f"no padding report; loss {loss}")
            return True
        return False

    def _finish_probe(self, now: float, carried: Optional[bool], why: str) -> None:
        """The probe's verdict; ``carried`` None: called off, it told nothing of the link."""
        probe = self._probe
        if probe is None:
            return
        self._probe = None
        if probe.timer is not None:
            probe.timer.cancel()
        if carried is None:
            self.estimator.cancel_probe()
        else:
            self.estimator.on_probe_result(now, probe.target_bps, carried)
            self._note_cut()
        self._proven_up = bool(carried)
        logger.info("- probe to %d kbps %s in %.1f s (%s; %d kbps of padding)", probe.target_bps // 1000,
                    {True: "carried", False: "failed", None: "called off"}[carried], now - probe.started, why,
                    probe.padding_bytes * 8 / max(now - probe.started, 1e-3) // 1000)
        self.probes = [*self.probes[-4:], {"target_bps": int(probe.target_bps), "carried": carried, "why": why,
                                           "seconds": round(now - probe.started, 2)}]
        self._allocated_at = -1e9  # decide again: the estimate may have changed
        self.feedback()

    def _queue_delay(self, now: float, consumers: list["Consumer"]) -> Optional[float]:
        """How far the round trip stands above the link's least of the last
        RTT_BASE_S, once it has stood over QUEUE_DELAY_S for QUEUE_PERSIST_S
        (None otherwise, or when the link is not paced)."""
        rtts = self._rtts
        newest: Optional[tuple[float, float, float]] = None
        for c in consumers:
            sample = c.last_rtt
            if sample is None or sample[0] <= self._rtt_seen.get(c.id, -1.0):
                continue
            self._rtt_seen[c.id] = sample[0]
            rtts.append(sample)
            if newest is None or sample[0] > newest[0]:
                newest = sample
        for gone in set(self._rtt_seen) - {c.id for c in consumers}:
            del self._rtt_seen[gone]
        while rtts and rtts[0][0] < now - RTT_BASE_S:
            rtts.popleft()
        if newest is None:
            return None  # nothing new: the last verdict stands
        base = min(sample[1] for sample in rtts)
        if newest[1] - base < QUEUE_DELAY_S or self.pacer is None or self.pacer.rate_bps is None:
            self._queue_since = None
            return None
        if self._queue_since is None:
            self._queue_since = newest[0]
        if newest[0] - self._queue_since < QUEUE_PERSIST_S:
            return None
        return newest[1] - base

    def _raw_loss(self, consumers: list["Consumer"], reported: bool) -> Optional[float]:
        """At a tick with receiver reports (``reported``): the video's loss before
        repair since the last such tick, the sequence numbers newly NACKed over the
        packets sent (None if fewer than REPORT_MIN_PACKETS were sent). At other
        ticks: None (a new video consumer is counted from now)."""
        nacked = packets = 0
        seen: dict[str, tuple[int, int]] = {}
        for c in consumers:
            if c.kind != "video":
                continue
            now_counts = (c.nack_meter.nacked, c.packets)
            before = self._nacked.get(c.id, now_counts)
            nacked += max(0, now_counts[0] - before[0])
            packets += max(0, now_counts[1] - before[1])
            seen[c.id] = now_counts if reported else before
        self._nacked = seen
        if not reported:
            return None
        return nacked / packets if packets >= REPORT_MIN_PACKETS else None

    def _report_span(self, c: "Consumer") -> Optional[int]:
        """How many packets the consumer's newest receiver report covers (its
        highest sequence number since the one before), if known."""
        report, previous = c.last_report, self._reports.get(c.id)
        if report is None or previous is None or report[0] <= previous[0]:
            return None
        span = report[1] - previous[1]
        return span if 0 <= span < 1 << 15 else None

    def _note_delivered(self, c: "Consumer") -> None:
        """What reached the subscriber of ``c`` between its last two receiver
        reports: received packets (highest seq delta minus new losses) times the
        consumer's average packet size on the wire."""
        report = c.last_report
        if report is None:
            return
        previous = self._reports.get(c.id)
        self._reports[c.id] = report
        if previous is None or report[0] <= previous[0] or not c.packets:
            return
        received = (report[1] - previous[1]) - (report[2] - previous[2])
        if received < 0 or report[1] - previous[1] > 1 << 15:
            return  # a reset or a wrap we cannot read
        bits_per_packet = (c.octets / c.packets + PACKET_OVERHEAD_BYTES) * 8
        self._delivered[c.id] = (report[0], received * bits_per_packet / (report[0] - previous[0]))

    def stats(self) -> dict[str, Any]:
        return {"estimate": self.estimator.state(), "allocation": dict(self.allocation), "probes": list(self.probes),
                "pacer": None if self.pacer is None else self.pacer.stats()}


class Pacer:
    """Spreads one subscriber's video over time at the rate its link is
    estimated to carry: a key frame (a courseware slide is 30-60 KB) forwarded
    at once would overflow the queue of a 300 kbps link (7.5 KB at 200 ms)
    and take the audio with it. Audio, retransmissions and probe padding do
    not wait here.

    A token bucket for the whole subscriber, and behind it one queue per
    video track shared by weight (weighted fair queueing: each packet is
    tagged with its track's virtual finish time, size / weight after the
    track's previous packet, and the smallest tag goes first). The weights
    are the rates the allocation gave the tracks, so a slide's key frame
    takes the courseware's share plus whatever the others leave unused, and
    the camera's packets keep flowing beside it at their own rate instead of
    waiting seconds behind it. A packet goes at once if the bucket holds its
    size and nothing waits. ``rate_bps`` None: no pacing."""

    def __init__(self) -> None:
        self.rate_bps: Optional[float] = None
        self._tokens = 0.0
        self._at = time.monotonic()
        # key -> deque of (finish tag, send, data, wire size)
        self._queues: dict[Any, deque[tuple[float, Any, bytes, int]]] = {}
        self._last_tag: dict[Any, float] = {}  # key -> finish tag of its newest queued packet
        self._weights: dict[Any, float] = {}
        self._vtime = 0.0  # the tag of the packet that went last
        self._queued: dict[Any, int] = {}  # key -> bytes waiting
        self._first: deque[tuple[Any, bytes, int]] = deque()  # retransmissions: (send, data, wire size)
        self._first_bytes = 0
        self.dropped_retransmissions = 0
        self.discarded_bytes = 0  # what discard() took out
        self.queued_bytes = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        self.paced_packets = 0
        self.dropped_packets = 0
        self.dropped_bytes = 0

    def set_rate(self, rate_bps: Optional[float], weights: Optional[dict[Any, float]] = None) -> None:
        """The rate for all the subscriber's video (None: no pacing), and each
        track's share of it by key (bps; a track not named weighs
        PACE_DEFAULT_WEIGHT_BPS)."""
        if weights is not None:
            self._weights = {k: max(float(w), PACE_MIN_WEIGHT_BPS) for k, w in weights.items()}
        if rate_bps is None:
            self.rate_bps = None
            self._flush()
            return
        self._refill(time.monotonic())
        self.rate_bps = float(rate_bps)

    def send_first(self, send: Any, data: bytes) -> bool:
        """A retransmission: ahead of all waiting video, but within the rate
        (unpaced, a lossy link's retransmissions of a key frame came on top of
        the estimate and overflowed the link's queue). Dropped past
        PACE_FIRST_MAX_DELAY_S (False): by then the receiver has given up on it."""
        size = self._at_once(send, data)
        if size is None:
            return True
        rate: float = self.rate_bps  # type: ignore[assignment]  # not None: _at_once sent it otherwise
        if (self._first_bytes + size) * 8 > rate * PACE_FIRST_MAX_DELAY_S:
            self.dropped_retransmissions += 1
            return False
        self._first.append((send, data, size))
        self._first_bytes += size
        self._queue_grew(size)
        return True

    def _at_once(self, send: Any, data: bytes) -> Optional[int]:
        """Send ``data`` now if pacing is off, or if nothing waits and the bucket
        holds it (None); otherwise its size on the wire, for the caller to queue."""
        if self.rate_bps is None:
            send(data)
            return None
        size = len(data) + PACKET_OVERHEAD_BYTES - 12
        if not self.queued_bytes:
            self._refill(time.monotonic())
            if self._tokens >= size:
                self._tokens -= size
                send(data)
                return None
        return size

    def _queue_grew(self, size: int) -> None:
        self.queued_bytes += size
        self.paced_packets += 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(PACE_TICK_S, self._drain)

    def discard(self, key: Any) -> int:
        """Forget what waits of one track (it was paused: stale video is worth
        nothing, and on a slow link it would hold the pacer for seconds).
        Returns how many packets: the newest sequence numbers that track gave."""
        queue = self._queues.pop(key, None)
        if not queue:
            return 0
        size = sum(item[3] for item in queue)
        self._last_tag.pop(key, None)
        self._queued.pop(key, None)
        self.queued_bytes -= size
        self.discarded_bytes += size
        return len(queue)

    @property
    def video_bytes(self) -> int:
        """Bytes of video waiting (retransmissions left out)."""
        return self.queued_bytes - self._first_bytes

    def waiting_packets(self, key: Any) -> int:
        """Packets of this track waiting to go out."""
        return len(self._queues.get(key, ()))

    def queued_for(self, key: Any) -> int:
        """Bytes of this track waiting to go out."""
        return self._queued.get(key, 0)

    def send(self, send: Any, data: bytes, key: Any = None) -> None:
        size = self._at_once(send, data)
        if size is None:
            return
        rate: float = self.rate_bps  # type: ignore[assignment]  # not None: _at_once sent it otherwise
        weight = self._weights.get(key, PACE_DEFAULT_WEIGHT_BPS)
        waiting = self._queued.get(key, 0)
        # Tail drop past PACE_MAX_DELAY_S: of the whole rate for the subscriber,
        # and of the track's share (at least) for the track, so that one track's
        # backlog cannot crowd the others out of the pacer.
        if (self.queued_bytes + size) * 8 > rate * PACE_MAX_DELAY_S or (waiting + size) * 8 > max(
            weight, rate / max(1, len(self._weights))) * PACE_MAX_DELAY_S:
            self.dropped_packets += 1
            self.dropped_bytes += size
            return
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        start = max(self._vtime, self._last_tag.get(key, 0.0)) if queue else self._vtime
        tag = start + size * 8 / weight
        self._last_tag[key] = tag
        queue.append((tag, send, data, size))
        self._queued[key] = waiting + size
        self._queue_grew(size)

    def _refill(self, now: float) -> None:
        rate = self.rate_bps
        if rate is not None:
            burst = max(rate * PACE_BURST_S / 8, 1500.0)
            self._tokens = min(burst, self._tokens + (now - self._at) * rate / 8)
        self._at = now

    def _pop(self) -> Optional[tuple[float, Any, bytes, int]]:
        """The waiting packet with the smallest finish tag, if the bucket holds its size."""
        best_key = None
        best: Optional[tuple[float, Any, bytes, int]] = None
        for key, queue in self._queues.items():
            if queue and (best is None or queue[0][0] < best[0]):
                best_key, best = key, queue[0]
        if best is None or self._tokens < best[3]:
            return None
        self._queues[best_key].popleft()
        if not self._queues[best_key]:
            del self._queues[best_key]
            self._last_tag.pop(best_key, None)
            self._queued.pop(best_key, None)
        else:
            self._queued[best_key] -= best[3]
        return best

    def _drain(self) -> None:
        self._timer = None
        if self.rate_bps is None:
            self._flush()
            return
        self._refill(time.monotonic())
        first = self._first
        while first and self._tokens >= first[0][2]:
            send, data, size = first.popleft()
            self._first_bytes -= size
            self._went(send, data, size)
        while not first:
            item = self._pop()
            if item is None:
                break
            tag, send, data, size = item
            self._vtime = max(self._vtime, tag)
            self._went(send, data, size)
        if self.queued_bytes:
            self._timer = asyncio.get_running_loop().call_later(PACE_TICK_S, self._drain)
        else:
            self._vtime = 0.0  # idle: tags start afresh

    def _went(self, send: Any, data: bytes, size: int) -> None:
        """A packet that waited leaves (the bucket pays for it)."""
        self.queued_bytes -= size
        self._tokens -= size
        _send_quietly(send, data)

    def _flush(self) -> None:
        items = [(0.0, send, data, size) for send, data, size in self._first]
        items += sorted((item for queue in self._queues.values() for item in queue), key=lambda item: item[0])
        self._clear()
        for _, send, data, _size in items:
            _send_quietly(send, data)

    def _clear(self) -> None:
        self._first.clear()
        self._first_bytes = 0
        self._queues.clear()
        self._last_tag.clear()
        self._queued.clear()
        self.queued_bytes = 0
        self._vtime = 0.0

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._clear()

    def stats(self) -> dict[str, Any]:
        return {"rate_bps": None if self.rate_bps is None else int(self.rate_bps),
                "queued_bytes": self.queued_bytes, "paced_packets": self.paced_packets,
                "dropped_packets": self.dropped_packets, "dropped_retransmissions": self.dropped_retransmissions}


def _send_quietly(send: Any, data: bytes) -> None:
    try:
        send(data)
    except Exception:  # a closing transport: the packet is lost, as on the wire
        logger.debug("x paced send failed", exc_info=True)


@dataclass
class _Probe:
    consumer: "Consumer"
    target_bps: float
    started: float
    loss_before: float
    rtt_before: Optional[float]
    rtx_reports: int
    rtx_unreported: bool = False
    media_bytes: int = 0  # what the media had put on the wire at the last padding tick
    padding_bytes: int = 0
    last_pad: float = 0.0
    debt: float = 0.0
    timer: Optional[asyncio.TimerHandle] = None
    reported_at: float = -1e9  # when the probe last had sender reports sent


def _demand(consumer: "Consumer") -> Demand:
    """What the consumer's layers need, top first (only layers that exist)."""
    priority = int(consumer.app_data.get("priority", DEFAULT_PRIORITY))
    slides = consumer.app_data.get("source") == "courseware"
    layers = consumer.layers
    if consumer.kind == "audio":
        measured = layers[min(layers)].bitrate_bps
        return Demand(consumer.id, "audio", 0, (measured or NOMINAL_AUDIO_BPS,))
    needs = []
    for layer in sorted(layers):
        nominal = NOMINAL_VIDEO_BPS[min(layer, len(NOMINAL_VIDEO_BPS) - 1)]
        producer = layers[layer]
        average = producer.average_bitrate_bps or producer.bitrate_bps
        keyframe = int(producer.keyframe_bytes * 8 / KEYFRAME_DELIVERY_S)
        if slides and keyframe and producer.average_bitrate_bps:
            # Still content: a key frame per slide over KEYFRAME_DELIVERY_S, on top of
            # what it takes between slides. Its 10 s average swings with when the
            # slides changed and with the key frames a lossy link asks for (measured:
            # 52-196 kbps for a deck that averages 60), and pausing it on such a swing
            # (or the camera beside it) is what a weak link can least afford. The
            # largest of its last few key frames: the newest alone (24-37 KB) moved
            # the need by 20 kbps with each slide, and a camera that fitted beside one
            # slide and not the next was paused and resumed 6 times in 6 s.
            largest = int(producer.largest_keyframe_bytes * 8 / KEYFRAME_DELIVERY_S)
            needs.append(largest + producer.floor_bitrate_bps)
            continue
        needs.append(max(average, keyframe) or nominal)  # not measured yet: nominal
    # a lower layer never needs more than a higher one (a measurement can say so briefly)
    for i in range(len(needs) - 2, -1, -1):
        needs[i] = max(needs[i], needs[i + 1])
    return Demand(consumer.id, "video", priority, tuple(needs))


# At most this many steps up are listed (three tracks of three layers have six).
STEPS_MAX = 12


def _steps(demands: list[Demand], allocation: dict[str, Optional[int]]) -> list[int]:
    """The budgets at which allocate() gives more video than ``allocation``,
    each the least that gives more than the one before (a track one layer up,
    or a paused one back, with RESUME_HEADROOM), up to every track on its top
    layer (see media.adapt.LinkEstimator.set_steps)."""
    videos = [d for d in demands if d.kind == "video"]

    def rank(alloc: dict[str, Optional[int]]) -> list[int]:
        return [len(d.layer_bps) if alloc.get(d.key) is None else alloc[d.key] for d in videos]  # type: ignore[misc]

    steps: list[int] = []
    current = dict(allocation)
    while len(steps) < STEPS_MAX:
        used = sum(d.layer_bps[layer] for d in demands if (layer := current.get(d.key)) is not None)
        now_rank = rank(current)
        found: Optional[tuple[int, dict[str, Optional[int]]]] = None
        candidates = sorted({used + d.layer_bps[i] - (0 if current.get(d.key) is None else d.layer_bps[current[d.key]])
                             for d in videos
                             for i in range(len(d.layer_bps) if current.get(d.key) is None else current[d.key])})
        for budget in candidates:
            alloc = allocate(budget, demands)
            better = rank(alloc)
            if all(b <= n for b, n in zip(better, now_rank)) and better != now_rank:
                if any(current.get(d.key) is None and alloc.get(d.key) is not None for d in videos):
                    budget = int(budget * RESUME_HEADROOM)
                found = (budget, alloc)
                break
        if found is None:
            break
        steps.append(found[0])
        current = found[1]
    return steps


def _unpause_need(demands: list[Demand], allocation: dict[str, Optional[int]]) -> Optional[int]:
    """The budget that would bring back the most important paused video (at
    its lowest layer) on top of what is allocated now; None if none is paused."""
    paused = [d for d in demands if d.kind == "video" and allocation.get(d.key) is None]
    if not paused:
        return None
    first = min(paused, key=lambda d: (d.priority, d.key))
    used = sum(d.layer_bps[layer] for d in demands if (layer := allocation.get(d.key)) is not None)
    return used + first.layer_bps[-1]
