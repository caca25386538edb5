"""Per-link adaptation: which layer of each video source a subscriber gets.

Pure control logic: no I/O, no asyncio, no aiortc. Every method takes the
current time (seconds, any monotonic clock) as an argument, so the whole loop
can be played in simulated time (tests/media/test_adapt.py does).

The loop, per subscriber (one classroom's downlink):

    estimator = LinkEstimator(now)                  # what the link carries
    on each receiver report (all of the subscriber's streams together):
        estimator.on_report(now, fraction_lost, sent_bps, rtt_s)
        allowed = allocate(estimator.estimate(now), demands)
        for each video consumer:
            layer = selectors[key].update(now, allowed[key])   # None: pause
    on each REMB:
        estimator.on_remb(now, bps)   (then allocate/update again, or wait
                                       for the next report)

``fraction_lost`` is the loss over all the subscriber's streams during the
interval (per-consumer RR fractions weighted by the packets each sent), and
``sent_bps`` is everything sent to the subscriber meanwhile (RTP including
retransmissions). The consumer switches to the selected layer at that
layer's next keyframe; until then it keeps forwarding the old one.

The estimator is closed-loop: what it sees (``sent_bps``, loss) depends on
the layers its own estimate selected. A link is only discovered to be better
by sending more, and with discrete layers "more" means a whole layer step
(~3x). So the estimate may rise above what is being sent only in discrete
"climbs" after a run of clean reports; a climb that is followed by heavy
loss is withdrawn and doubles the clean stretch needed before the next one
(2 s, 4 s, 8 s), so a clean link whose next layer does not fit is probed
about every 12 s (8 s + the selector's 2 s hold + detection), and a link
that got better is found within ~8 s. When the subscriber can take padding
(an RTX stream) and the controller tells the budgets at which the allocation
gives more video (``set_steps``), a climb is a padding probe instead: to the
highest of those budgets within PROBE_LAYER_RATIO x what is sent or proven,
or, while a video is paused, in
steps (PROBE_STEP, PROBE_CHAIN_STEP) so a 64 kbps link never gets a layer it
cannot carry. The estimate rises only once the link carried the probe, and
the layer then switches at once (LayerSelector ``proven``); otherwise the
LayerSelector adds hold times so the forwarded layer steps up one layer at a
time and does not flap.

Besides receiver reports, ``on_fast_loss`` takes the loss the subscriber's
NACKs tell (``NackMeter``) an RTT after it happens: a rate drop is acted on
~0.5 s before the next receiver report would show it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["Demand", "allocate", "LinkEstimator", "LayerSelector", "NackMeter"]

# -- loss bands (Galène) -------------------------------------------------------
# Below LOSS_LOW the link is taken as uncongested and the estimate grows;
# above LOSS_HIGH it is congested and the estimate shrinks; in between it
# holds. The wide hold band is the main hysteresis: a rural link with a few
# percent of random (non-congestion) loss keeps its rate instead of sawing.
LOSS_LOW = 0.02
LOSS_HIGH = 0.10
# Loss above this is unambiguous congestion (a layer step into a link that
# cannot carry it loses 45-80 %, a 5 Mbps -> 300 kbps drop 80 %); it is acted
# on from a single report. Loss between LOSS_HIGH and this must show in two
# consecutive reports: an RR over a few dozen packets (0.5 s of 150 kbps +
# audio) at a true 5 % random loss reads over 10 % one report in ten, and
# has read 27 %.
LOSS_SEVERE = 0.40
# ... but the loss of what was sent after a cut, within its hold (see
# LinkEstimator.on_fast_loss ``fresh``), acts from this: the cut did not go far
# enough (a drop first cut to 683 kbps left the 300 kbps link losing 35-50 %
# of a camera layer that does not fit, read over 0.4 only 2.2 s later), and 5 %
# of random loss reads over 25 % in a few dozen packets about once in a
# thousand.
LOSS_FRESH = 0.25

# Galène's increase factor per report below LOSS_LOW (its decrease factor is
# (1 - loss/2), applied in LinkEstimator.on_report).
GROWTH = 1.05
# ...but the estimate grows smoothly only up to this multiple of what is
# being sent (the largest sent rate of the last SENT_WINDOW_S): clean
# reports prove nothing about rates never sent. 1.2 leaves room for encoder
# overshoot (keyframes, VBR) above a layer's nominal rate.
GROWTH_HEADROOM = 1.2
# "What is being sent" is the largest sent rate reported over this window
# (a report straddling a layer switch or keyframe wait under-reads it), among
# reports since the last congestion: a rate that met heavy loss was not carried.
SENT_WINDOW_S = 3.0
# After confirmed heavy loss, the estimate is never above what got through
# (sent x (1 - loss)) times this slack. This is what makes a 5 Mbps -> 300 kbps
# drop land on the right layer from the first report (multiplying by
# (1 - loss/2) alone would take 4-8 reports). The slack covers the noise of
# that measurement (at 80 % loss over ~200 packets, 1 - loss is known to
# +-15 %) and random loss on top of congestion (a 350 kbps link at 5 % loss
# lets 332 kbps through; x1.25 = 415 kbps still carries audio + courseware,
# 340 kbps). It stays below the ~2.85x between layers: 300 kbps -> 356 kbps
# is layer 2, not layer 1; 64 kbps -> 76 kbps is audio only; and a confirmed
# 20 % loss (two reports) on layer 2 + audio still leaves 190 kbps.
DELIVERED_SLACK = 1.25
# After a cut, a heavy-loss report within this long changes nothing unless
# its loss is CUT_WORSE above the one acted on: it mostly describes the rate
# before the cut took effect (a consumer keeps the old layer until the new
# one's keyframe, and the RR interval straddles the switch, so what got
# through also under-measures the link). Cutting again would take a 300 kbps
# link from layer 2 straight to audio only. Clearly worse loss is acted on:
# a drop in the middle of an RR interval first shows as half its loss.
# The loss NACKs tell at the onset of a drop reads low (their window still
# holds the ramp-up: 0.57-0.74 where the reports then say 0.82), so a cut by
# it takes what got through as it is, without DELIVERED_SLACK on top, and the
# first one (not ``fresh``) takes FAST_FIRST_SLACK of it: what truly got
# through was 0.42-0.69 of what was read, and a cut to 650 kbps at 1.6 Mbps
# read at 0.6 sent a 300 kbps link's classroom layer 1 first (settled in 2 s,
# not 1). Cutting a little too far costs little now that the way back up is a
# padding probe (a clean run and ~1 s).
FAST_SLACK = 1.0
FAST_FIRST_SLACK = 0.7
FAST_FLOOR_SHARE = 0.6
FAST_FLOOR_MARGIN = 1.05
FLOOR_HOLD_S = 10.0
CUT_HOLD_S = 3.0  # 2 s was measured too short behind a 600 ms queue with 100 ms RTT
# ... and a clearly worse one within the hold cuts to no less than this share
# of the estimate it finds: measured behind a 600 ms queue, the second report
# after a 1.5 Mbps -> 300 kbps drop reads 88 % loss on a rate that already fell,
# and 1.25 x "what got through" came out at 200 kbps: video paused for 6 s.
REPEAT_CUT_FLOOR = 0.5
CUT_WORSE = 0.10
# The delay signal: a round trip QUEUE_DELAY_S above the least of the last
# few seconds (see DownlinkController) means a queue is building on the link:
# more is sent than it carries. Loss alone learns that only when the queue
# overflows; on a link with a few percent of random loss the loss-based
# estimate can sit 10-20 % above the link (a heavy-loss cut keeps
# DELIVERED_SLACK over what got through) and every slide's key frame, paced
# at the estimate, then fills the queue until it drops a burst. Measured at
# 300 kbps behind a 200 ms queue: RTT 100 ms empty, 300-340 ms while the
# estimate stood at 337 kbps. The estimate goes to QUEUE_CUT x what is sent
# (not below REPEAT_CUT_FLOOR of itself: an RTT can grow for other reasons)
# and counts as a cut, so the loss reports of the next CUT_HOLD_S, which
# describe the queue's overflow, do not cut again unless over QUEUE_CUT_LOSS.
QUEUE_DELAY_S = 0.10
QUEUE_CUT = 0.85
QUEUE_CUT_LOSS = 0.30
# Only while what is sent comes near the estimate (or video waits in the pacer).
QUEUE_SENT_SHARE = 0.7

# After a cut, what is sent is read from reports this long after it.
VERIFY_SENT_AFTER_S = 1.0

# -- climbing (probing upward) -------------------------------------------------
# A climb multiplies the estimate (or the sent rate, if higher) by this. From
# the growth ceiling (1.2 x sent) one climb covers a layer step (~2.85x with
# the audio): 1.2 x 2.5 = 3.
CLIMB_FACTOR = 2.5
# ...but the estimate never climbs above max(sent x PROBE_MAX_RATIO,
# sent + PROBE_MIN_BPS): a ratio above the ~2.85x between simulcast layers
# (with audio) even when the RR interval straddles the step up (half the
# interval at the new rate reads ~1.9x the old rate; 1.9 x 2.85 = 5.4 is
# covered a report later), and an absolute floor so that from audio only
# (40 kbps) the estimate can still reach the lowest video layer or the
# courseware. Keeps a link that only ever carried 1.5 Mbps from being
# "estimated" at 20 Mbps.
PROBE_MAX_RATIO = 5.0
PROBE_MIN_BPS = 500_000
# A climb needs an unbroken run of clean reports (each loss < CLIMB_LOSS, no
# REMB decrease) this long. Stricter than LOSS_LOW: at 5 % random loss over
# ~65 packets (layer 2 + audio, 1 s), one lost packet reads 1.5 % and two
# such reports in a row come every ~40 s; a report with none lost comes one
# time in thirty. The run starts at CLIMB_WAIT_S, doubles after each failed
# climb, capped at CLIMB_WAIT_MAX_S. The cap of 8 s bounds the time to find
# a link that got better; a clean link whose next layer does not fit is then
# probed about every 8 s + up hold (2 s) + detection (~1.5 s), i.e. ~5 times
# a minute.
CLIMB_LOSS = 0.01
CLIMB_WAIT_S = 2.0
CLIMB_WAIT_MAX_S = 8.0
# A link with steady random loss in the hold band (2-10 %) never has a clean
# run, so without this it could never correct an estimate that came out low
# (one noisy measurement can pause the camera on a 300 kbps link for good)
# nor find that it got better. It may climb too, but only after this long
# without congestion (and without another hold-band climb); doubled by each
# failed climb up to HOLD_CLIMB_WAIT_MAX_S, back to the start only after a
# climb that held. A 300 kbps / 5 % link on layer 2 thus tries layer 1 after
# 60 (HOLD_CLIMB_AFTER_CUT_S, below), 120, 240 s, then every 4 minutes.
HOLD_CLIMB_WAIT_S = 20.0
HOLD_CLIMB_WAIT_MAX_S = 240.0
# ... but after a cut for congestion (the link just could not carry more) the
# first hold-band climb waits at least this long. On a link that stays
# lossy, a try of the next layer costs a freeze of over a second whatever
# happens next (on a 300 kbps link the 640x360 key frame alone takes ~1 s),
# so trying once a minute keeps such freezes to one a minute. Clean links
# (a link that got better) climb by the clean-run climbs, unaffected.
HOLD_CLIMB_AFTER_CUT_S = 60.0
# ... except while a video is paused for want of budget (``set_need``): pupils
# without any picture are worse off than a short probe, so a hold-band link
# tries to reach the budget that unpauses it after UNPAUSE_WAIT_S (scaled by
# the same doubling as the hold wait: 2, 4, 8 ... s on a link where it never
# fits), and that climb goes no higher than UNPAUSE_HEADROOM x that budget
# (enough for the lowest layer, not a jump to the next one).
UNPAUSE_WAIT_S = 2.0
UNPAUSE_HEADROOM = 1.15
# While a video is paused and its subscriber can take padding (an RTX stream),
# a climb is a padding probe instead of a switch to the lowest layer: a layer
# that does not fit loses its key frame and, on a 64 kbps link, holds the
# audio behind it for over half a second, where padding that does not fit
# only fills the queue a little. A probe adds padding up to PROBE_STEP x what
# is sent or was last proven (within PROBE_KEEP_S), no higher than the
# unpause budget; the controller sends it and reports whether the link
# carried it (on_probe_result). A lossy link is thus proven in steps of 2x
# (80, 160, 230 kbps from audio only; PROBE_CHAIN_STEP once it has been clean
# a whole climb wait) and the video comes back when the proven rate reaches
# its budget.
PROBE_STEP = 2.0
PROBE_KEEP_S = 10.0
# A failed padding probe costs little (a queue filled for a moment, no lost
# key frame), so the clean-run wait it doubles stops at this, not at
# CLIMB_WAIT_MAX_S: a paused link that got better is found sooner.
PROBE_WAIT_MAX_S = 3.0
# After a probe that carried, the next one (from where it got) comes this soon:
# probing costs no freeze, and a paused camera should not wait 10 s a step.
PROBE_CHAIN_S = 1.0
# ... and goes up to this multiple of what it proved: the link has just shown
# it is better than it was, and from the audio alone (43 kbps) steps of 2x took
# five probes, 7 s, to a camera's lowest layer and the courseware (265 kbps);
# at 4x the camera's 287 kbps was just out of reach of a 68 kbps base, and one
# probe more (~1.4 s) took a 64 kbps link back at 5 Mbps 11 s to the top layer;
# at 5x the camera's 286 kbps was out of reach of a 56 kbps base (0.75 of an
# estimate of 74), and the detour through the courseware alone took 10.4 s.
PROBE_CHAIN_STEP = 6.0
# While no video is paused, a climb is a padding probe too when the controller
# tells the budgets at which the allocation gives more video (``set_steps``):
# to the highest such step within this multiple of what is sent, proven or
# estimated (from a 300 kbps link's lowest layer, the next layer's 760 kbps;
# from there, the top layer's 2 Mbps), and the estimate rises only once the
# link carried it. A climb by estimate switched the layer first and judged it
# after: each step up took the up hold (1.5 s), a key frame and the climb's
# confirmation (2 s), and back at 5 Mbps a 300 kbps link's classroom got its
# top layer only 8.8-11.6 s later. A failed layer probe costs the link a
# moment of a full queue, not a key frame lost and a freeze.
PROBE_LAYER_RATIO = 5.0
# A probe starts from at least this share of the estimate (an estimate cut by
# heavy loss keeps DELIVERED_SLACK over what got through).
PROBE_FROM_ESTIMATE = 0.75
# For this long after a probe failed, probes go at most halfway from what is
# proven to where it failed (a 150 kbps link failed a probe to 244 kbps, and
# the next one, 30 s later, went to 244 again and overfilled its queue again).
PROBE_FAIL_MEMORY_S = 60.0
# ... unless a probe carries this share of the rate that failed.
PROBE_FAIL_FORGET = 0.9
# ... and once halfway is within 5 % of the base, the probe goes this much over the
# rate that failed (or the base).
PROBE_RETRY_ABOVE = 1.1
# ... and "clean since well after the failure" means from this long after it;
# from the failure on (the reports of its aftermath read lossy, and the clean
# run starts after them) if the link lost packets of its own (not to the probe
# that failed, nor in the aftermath of one) within PROBE_FAIL_LOSSY_S before
# that probe: then a clean run is the link changing, not a slow but clean link
# carrying what fits. A 64 kbps link with 5 % loss back at 5 Mbps was clean
# from 2.2 s after a failed probe, and the halfway probes (89, 109, 119 kbps)
# took 12 s to the top layer. (A clean link's run starts as its failed probe's
# aftermath ends, ~1.5 s after it: it never reads as changed, and goes on
# probing halfway.)
PROBE_FAIL_SETTLE_S = CUT_HOLD_S
PROBE_FAIL_LOSSY_S = 10.0
# Within one run of clean reports, successive climbs are at least this far
# apart (one RR interval): from 300 kbps to 1.5 Mbps takes 3-4 climbs.
CLIMB_STEP_S = 1.0
# A climb is "used" when the sent rate rises above PROBE_USED_RATIO x the rate
# before the first climb of the series. If not used within CLIMB_VERDICT_S of
# the last climb (up hold 2 s + keyframe ~1 s + one RR + margin), the climb
# is forgotten (neither success nor failure).
PROBE_USED_RATIO = 1.2
CLIMB_VERDICT_S = 5.0
# A used climb that ran this long without heavy loss succeeded: the waits
# go back to their start (so the next layer step up comes quickly).
CLIMB_CONFIRM_S = 2.0
# A used climb that failed takes the estimate back to where the climb run
# started, or to what its heavy-loss report measured if that is higher:
# 1.25 x what got through, but below PROBE_BACK_RATIO x what was sent (so
# below the failed allocation). E.g. courseware + camera (490 kbps) tried
# on a 350 kbps link -> ~415 kbps: courseware on, camera off.
PROBE_BACK_RATIO = 0.9
# "Reset after a stretch without loss": this long without congestion (loss
# > LOSS_HIGH or a falling REMB) resets the wait even without a successful
# climb, so a link with a few % random loss (whose clean runs are short)
# does not keep a long wait from one old failure. Longer than
# CLIMB_WAIT_MAX_S plus a failed climb's duration (~3.5 s), so a link whose
# next layer keeps failing keeps the long wait.
BACKOFF_RESET_S = 20.0

# -- REMB ----------------------------------------------------------------------
# REMB is taken as a congestion signal only: a REMB below REMB_BELOW_SENT x
# the last report's sent rate that is the first one or a decrease of more
# than REMB_DECREASE (libwebrtc sends a fresh REMB at once when its estimate
# drops by >= 3 %). It is NOT a cap otherwise: a receiver-side estimate is
# clamped to ~1.5x what it receives, so capping by it would forbid a layer
# step (2.8x); and after a step up it lags for seconds while rising.
REMB_BELOW_SENT = 0.75  # 0.9 let aiortc's cautious REMB pause layer 2 on a 300 kbps / 5 % link
REMB_DECREASE = 0.03
# libwebrtc's receiver answers overuse with 0.85 x the throughput it
# measured; dividing by this takes the estimate to that throughput, not
# 15 % below it (which would e.g. drop the courseware on a 350 kbps link).
REMB_OVERUSE_BETA = 0.85
# A REMB that cuts the estimate by more than this much counts as the cut for
# the overload it reports (see on_remb).
REMB_EXPLAINS_CUT = 0.3

# -- layer selection -----------------------------------------------------------
# Up one layer only after the allocation said "higher" for this long (and
# this long after the last down-switch): more than one RR interval, so one
# lucky report does not switch, and every layer step up is a probe the
# estimator can judge before the next one. (The estimate itself rises only
# by a climb after a clean run of reports, or a probe that carried: 2 s here,
# twice from a 300 kbps link's layer to the top, took the top layer back
# 10-11.6 s after the link recovered in 6 of 18 runs.)
UP_HOLD_S = 1.5
# Down at once, but at most once per this: a switch costs a keyframe, and
# a second lower step right after the first usually reflects the same event.
# Pausing (video must go so audio can flow) ignores it.
DOWN_HOLD_S = 0.5

# Float time comparisons: times built from sums of 0.1 s steps.
_EPS = 1e-9


# -- allocation ----------------------------------------------------------------
@dataclass(frozen=True)
class Demand:
    """One consumer of one subscriber, as the allocator sees it."""

    key: str  # consumer id
    kind: str  # "audio" | "video"
    priority: int  # 0 = most important (audio 0, courseware 1, teacher camera 2, other classrooms 3)
    layer_bps: tuple[int, ...]  # bitrate each layer needs, index 0 = top layer; audio: one entry

    def __post_init__(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ValueError(f"Demand {self.key!r}: kind must be 'audio' or 'video', not {self.kind!r}")
        layers = tuple(int(b) for b in self.layer_bps)
        if not layers:
            raise ValueError(f"Demand {self.key!r}: layer_bps is empty")
        if any(b < 0 for b in layers):
            raise ValueError(f"Demand {self.key!r}: negative bitrate in {layers}")
        if any(layers[i] < layers[i + 1] for i in range(len(layers) - 1)):
            raise ValueError(f"Demand {self.key!r}: layer_bps must not increase (index 0 = top layer): {layers}")
        object.__setattr__(self, "layer_bps", layers)


def allocate(budget_bps: int, demands: list[Demand]) -> dict[str, Optional[int]]:
    """Which layer each consumer should get within ``budget_bps``.

    Audio always gets its layer 0 (never None), whatever the budget. Video,
    ordered by (priority, key): first pass, each track gets its lowest layer
    if that fits in what is left (so a low-priority track is paused before a
    higher one loses its lowest layer; a track whose lowest layer does not
    fit is paused and the next one is still tried); second pass, in the same
    order, each track is upgraded as high as the remaining budget allows.
    None = pause. Deterministic: ties broken by key. The answer lists the
    demands in the order given.
    """
    seen: set[str] = set()
    for d in demands:
        if d.key in seen:
            raise ValueError(f"duplicate demand key {d.key!r}")
        seen.add(d.key)

    result: dict[str, Optional[int]] = {}
    remaining = float(budget_bps)
    for d in demands:
        if d.kind == "audio":
            result[d.key] = 0
            remaining -= d.layer_bps[0]
    remaining = max(remaining, 0.0)

    videos = sorted((d for d in demands if d.kind == "video"), key=lambda d: (d.priority, d.key))
    for d in videos:
        lowest = len(d.layer_bps) - 1
        if d.layer_bps[lowest] <= remaining:
            result[d.key] = lowest
            remaining -= d.layer_bps[lowest]
        else:
            result[d.key] = None
    for d in videos:
        current = result[d.key]
        if not current:  # paused, or already the top layer
            continue
        for i in range(current):  # top layer first
            extra = d.layer_bps[i] - d.layer_bps[current]
            if extra <= remaining:
                result[d.key] = i
                remaining -= extra
                break
    return {d.key: result[d.key] for d in demands}


# -- link estimate -------------------------------------------------------------
@dataclass
class _Climb:
    """The climbs of one run, until judged."""

    base_bps: float  # what was being sent before the first climb
    from_bps: float  # the estimate before the first climb
    last_at: float  # time of the latest climb
    used_since: Optional[float] = None  # start of the first interval sent above base


class LinkEstimator:
    """Per-subscriber estimate of what its downlink carries (bps).

    Loss-based like Galène: per report, x1.05 below 2 % loss, x(1 - loss/2)
    above 10 %, hold in between, clamped to [min_bps, max_bps]. Additions for
    the closed loop (see the module docstring and the constants):

    * the x1.05 growth stops at 1.2 x what is being sent; above that the
      estimate rises only by climbs (x2.5, at most to 5 x sent or sent +
      500 kbps), after an unbroken run of reports below 1 % lasting the
      current wait (2 s; doubled by each climb followed by heavy loss, cap
      8 s; back to 2 s after a climb that held for 2 s of use, or after
      20 s without congestion), or, on a link that is never that clean,
      after 20 s without congestion (doubled by failures up to 240 s); a
      failed climb is withdrawn (back to what was carried before it, or to
      what the failure measured); a subscriber that takes padding climbs by
      padding probe instead, to the budget of the next layer or unpaused
      track (``set_steps``, ``take_probe``, ``on_probe_result``), and the
      estimate rises only once the link carried it;
    * after heavy loss the estimate is at most 1.25 x what got through;
    * 10-40 % loss must show in two consecutive reports; > 40 % acts at once;
    * a REMB below the sent rate that is the first or a decrease lowers the
      estimate to the throughput it implies and counts as congestion.

    Known limits (inherent in loss-based control): a link with steady random
    loss of 2-10 % only climbs by the slow hold-band climbs (a 5 Mbps link
    with 5 % random loss reaches the top layer in tens of seconds, not
    seconds); with steady random loss above 10 % the estimate sinks to what
    audio needs.
    """

    def __init__(
        self,
        now: float,
        *,
        initial_bps: int = 1_000_000,
        min_bps: int = 30_000,
        max_bps: int = 20_000_000,
    ) -> None:
        if min_bps <= 0 or max_bps < min_bps:
            raise ValueError(f"need 0 < min_bps <= max_bps, got {min_bps}, {max_bps}")
        self._min = float(min_bps)
        self._max = float(max_bps)
        self._est = self._clamp(float(initial_bps))
        self._created = now
        self._last_report_at: Optional[float] = None
        self._loss: Optional[float] = None
        self._sent: Optional[float] = None
        self._sent_hist: deque[tuple[float, float]] = deque()
        self._rtt: Optional[float] = None
        self._remb: Optional[int] = None
        self._clean_since: Optional[float] = None
        self._congested_at = -math.inf
        self._cut_at = -math.inf
        self._cut_loss = 0.0
        self._unverified_at: Optional[float] = None  # a loss cut not yet held against what was sent since
        self._wait = CLIMB_WAIT_S
        self._hold_wait = HOLD_CLIMB_WAIT_S
        self._hold_series_at = -math.inf
        self._last_climb_at = -math.inf
        self._climb: Optional[_Climb] = None
        self._reason = "initial"
        self._changed_at = now
        self._climbs = 0
        self._failed_climbs = 0
        self._need: Optional[float] = None
        self._steps: tuple[float, ...] = ()  # budgets at which more video is allocated (set_steps)
        self._delivered: Optional[float] = None
        # padding probes (see PROBE_STEP)
        self.can_probe = False  # set by the controller: a video of the subscriber can carry padding now
        # set by the controller: video waits in the pacer (see BACKLOG_HOLDS)
        self.backlogged = False
        self._probe_wanted: Optional[float] = None
        self._probing = False
        self._probe_layer = False  # the probe asked for is a layer step (not to unpause a video)
        self._chain = False  # a probe just carried: the next may follow at once (take_probe)
        self._proven = (0.0, -math.inf)  # (bps, at) of the last probe the link carried
        self._failed_probe = (0.0, -math.inf)  # (bps, at) of the last probe it did not
        self._failed_lossy = False  # the link lost packets (not to a probe) before that failure
        self._lossy_at = -math.inf  # the last report over LOSS_LOW, outside a failed probe's aftermath
        self._lossy_before_probe = -math.inf  # _lossy_at when the running probe started
        self._floor_held_at = -math.inf  # the last moderate cut held at the floor
        self._probes = 0
        self._failed_probes = 0

    # -- inputs ----------------------------------------------------------------
    def on_report(
        self,
        now: float,
        fraction_lost: float,
        sent_bps: float,
        rtt_s: Optional[float] = None,
        delivered_bps: Optional[float] = None,
        raw_loss: Optional[float] = None,
    ) -> None:
        """One receiver-report interval: the loss the subscriber saw, and what we sent it meanwhile (bps).

        ``delivered_bps``: what reached the subscriber over the reports' own
        intervals (from their sequence numbers and cumulative loss), when known;
        a heavy-loss cut then goes by it instead of sent x (1 - loss), which
        mixes two intervals right after a rate drop.

        ``raw_loss``: the video's loss before retransmissions repaired it (its
        NACKs over what was sent meanwhile), when known. A receiver counts a
        retransmitted packet as received, so on a link with 5 % random loss the
        video's reports read ~0 and only the audio's told the loss: a clean run
        (see CLIMB_LOSS) needs both clean."""
        loss = min(max(float(fraction_lost), 0.0), 1.0)
        sent = max(float(sent_bps), 0.0)
        self._delivered = None if delivered_bps is None else max(float(delivered_bps), 0.0)
        prev_at = self._created if self._last_report_at is None else self._last_report_at
        prev_loss = self._loss
        self._last_report_at = now
        self._loss = loss
        self._sent = sent
        if rtt_s is not None:
            self._rtt = rtt_s
        if loss >= LOSS_LOW and now - self._failed_probe[1] > PROBE_FAIL_SETTLE_S:
            self._lossy_at = now  # the link's own loss (see PROBE_FAIL_LOSSY_S)
        if loss > LOSS_HIGH:
            self._clean_since = None
            self._sent_hist.clear()
            if loss <= LOSS_SEVERE and (prev_loss is None or prev_loss <= LOSS_HIGH):
                return  # one report of 10-40 %: noise until the next one says so too
            cut = loss if loss > LOSS_SEVERE or prev_loss is None else min(loss, prev_loss)
            before = self._est
            self._heavy_loss(now, cut, loss, sent)
            if cut <= LOSS_SEVERE:
                self._hold_at_floor(now, before)
            return

        self._sent_hist.append((now, sent))
        while self._sent_hist[0][0] < now - SENT_WINDOW_S - _EPS:
            self._sent_hist.popleft()
        sent_ref = max(s for _, s in self._sent_hist)
        if self._unverified_at is not None and now - self._unverified_at >= CUT_HOLD_S - _EPS:
            # what was sent since the cut: reports from a second after it (the
            # caller's sent rate is over the last second, see media.bandwidth)
            since = [s for t, s in self._sent_hist if t >= self._unverified_at + VERIFY_SENT_AFTER_S - _EPS]
            self._verify_cut(now, max(since, default=sent))

        if now - max(self._congested_at, self._created) >= BACKOFF_RESET_S - _EPS:
            self._wait = CLIMB_WAIT_S
        self._judge_climb(now, prev_at, sent)
        if loss < CLIMB_LOSS and (raw_loss is None or raw_loss < CLIMB_LOSS):
            if self._clean_since is None:
                self._clean_since = max(prev_at, self._congested_at)
        else:
            self._clean_since = None
        if self.backlogged:
            # What is sent is the pacer draining at the estimate: a clean report
            # of it proves nothing yet (its queue on the link shows a report
            # later), and growth would raise the very rate that fills the queue.
            # A padding probe is judged on its own evidence (the round trip and
            # the padding's loss), and the video waiting is what it is for: two
            # key frames waited 4.5 s at 243 kbps on a link back at 5 Mbps, and
            # the next probe with them.
            if loss < LOSS_LOW and self.can_probe and self._steps and (
                    self._unpausing() and self._hold_climb_due(now)
                    or self._clean_since is not None and now - self._clean_since >= self._wait - _EPS
                    and now - self._last_climb_at >= CLIMB_STEP_S - _EPS):
                self._ask_probe(now, sent_ref, hold_band=False)
            return
        if loss >= LOSS_LOW:  # hold band: no growth; a climb only after a long calm
            if self._hold_climb_due(now):
                self._climb_step(now, sent_ref, hold_band=True)
            return
        if self._unpausing() and self._hold_climb_due(now):
            if self._climb_step(now, sent_ref, hold_band=True):
                return
        grown = max(min(self._est * GROWTH, sent_ref * GROWTH_HEADROOM), self._est)
        if self._clean_since is not None:
            if now - self._clean_since >= self._wait - _EPS and now - self._last_climb_at >= CLIMB_STEP_S - _EPS:
                if self._climb_step(now, sent_ref, hold_band=False, above=grown):
                    return
        elif self._hold_climb_due(now) and self._climb_step(now, sent_ref, hold_band=True, above=grown):
            return
        self._set(now, grown, "loss<2%")

    def set_need(self, bps: Optional[int]) -> None:
        """The budget that would unpause a paused video (what its lowest layer
        needs on top of what is sent), or None when no video is paused."""
        self._need = None if bps is None else float(bps)

    def set_steps(self, budgets: tuple[int, ...] | list[int]) -> None:
        """The budgets (bps, ascending) at which the allocation gives more
        video than now, one more layer (or an unpaused track) each, up to every
        track on its top layer; empty when all is on top. With ``can_probe`` a
        climb is then a padding probe to one of them (see PROBE_LAYER_RATIO)."""
        self._steps = tuple(sorted(float(b) for b in budgets))

    fast_loss_threshold = LOSS_SEVERE
    fresh_loss_threshold = LOSS_FRESH

    @property
    def cut_at(self) -> float:
        """When the estimate was last cut (-inf if never)."""
        return self._cut_at

    def on_fast_loss(self, now: float, loss: float, sent_bps: float, floor_bps: Optional[float] = None,
                     fresh: bool = False) -> None:
        """Loss measured from the subscriber's NACKs over its last few dozen
        packets (an RTT after the fact, where a receiver report may take
        another second). Only unambiguous congestion (> LOSS_SEVERE) acts, and
        only outside the hold after a cut: NACKs keep describing the old rate
        for a queue's delay after a cut, while what is sent already fell.
        The receiver reports that follow are judged as after any cut.

        ``floor_bps`` (what every track needs on its lowest layer): this
        measure is noisy (0.57-0.7 at a 200 ms queue where reports then say
        0.8, and 0.945 once; 0.9 behind a 600 ms queue, where retransmissions
        compete), so a first cut from above the floor stops at the floor
        (with FAST_FLOOR_MARGIN): pausing video is left to what comes next,
        and a fresh cut pauses only below FAST_FLOOR_SHARE of the floor (a
        300 kbps link read at 0.945 from 1.6 Mbps was cut to 90 kbps, where
        the camera's lowest layer and the audio needed 154: paused 27 s). A
        cut of what was sent at or below the floor's margin goes through: that
        loss is not of a higher rate before a drop, the floor itself did not
        fit (a 64 kbps link cut to the margin from a failed climb lost 89 % of
        176 kbps 3.6 s later, was held at the margin again, and its camera
        went on filling the link for 8.8 s after the drop).

        ``fresh``: the loss is of packets sent after the last cut (the caller
        measured it over NACKs that came a round trip after it), at
        ``sent_bps``: it acts within the hold too. A 5 Mbps -> 300 kbps drop
        is first read at 0.57 (the NACK window still holds packets from before
        it) and cut to 667 kbps (467 since FAST_FIRST_SLACK); the receiver reports of what that rate lost,
        held, cut again only 3.3 s later. Within the hold a cut still halves
        the estimate at most (REPEAT_CUT_FLOOR): right at a drop the round
        trips known do not hold the new queue yet, and NACKs of the rate
        before the cut read as fresh cut 679 kbps to 91."""
        loss = min(max(float(loss), 0.0), 1.0)
        if loss <= (LOSS_FRESH if fresh else LOSS_SEVERE) or sent_bps <= 0 or (
                now - self._cut_at < CUT_HOLD_S - _EPS and not fresh):
            return
        self._clean_since = None
        self._sent_hist.clear()
        self._delivered = None
        before = self._est
        self._heavy_loss(now, loss, loss, float(sent_bps), fast=True, fresh=fresh)
        floor = floor_bps or 0.0
        margin = floor * FAST_FLOOR_MARGIN
        if before >= margin - 1.0 and self._est < margin and (
                self._est >= floor * FAST_FLOOR_SHARE if fresh else sent_bps > margin):
            # at the floor with a margin: the needs are measured, and 1 kbps more
            # than the estimate pauses the camera the cut meant to keep
            self._set(now, margin, self._reason)

    # set by the controller: what every track needs on its lowest layer (bps), or None
    floor_bps: Optional[float] = None

    def _verify_cut(self, now: float, sent_ref: float) -> None:
        """The hold after a loss cut is over and no loss cut again since: what
        was sent since (``sent_ref``: the most of the reports from a second after
        the cut on) has been carried, the rest of the estimate is a guess. Like growth on clean reports, the estimate
        goes no higher than GROWTH_HEADROOM x what was sent (nor below the
        floor's margin). The loss a drop is first read at is low (NACKs: 0.74
        where 0.83 was due; a report straddling it: 0.81 of 1.3 Mbps): a 300
        kbps link was left at 411-431 kbps where the camera's lowest layer, the
        courseware and the audio sent ~230; the next slide's key frame, paced
        at the estimate, lost 46 % and the camera was paused for 10 s."""
        self._unverified_at = None
        floor = (self.floor_bps or 0.0) * FAST_FLOOR_MARGIN
        ceiling = max(sent_ref * GROWTH_HEADROOM, floor)
        if ceiling < self._est:
            self._set(now, ceiling, "cut verified")

    def _hold_at_floor(self, now: float, before: float) -> None:
        """A moderate cut (10-40 % loss, two reports, or a queue) that takes an estimate from
        above the floor to below it stops at the floor (with FAST_FLOOR_MARGIN), once
        per FLOOR_HOLD_S: on a link with 5 % random loss two reports over 10 % come
        now and then, and a 7 % cut from just above the floor paused a camera the
        link carried (for 10 s of a 20 s stretch, behind a 600 ms queue). A second
        such cut within FLOOR_HOLD_S is the link's: it goes through. A "cut" that
        changed nothing (within the hold of an earlier one) holds nothing and uses
        up no hold: one had taken the hold 8 s before the cut that then paused the
        camera."""
        floor = self.floor_bps
        if not floor or before < floor or self._est >= min(floor * FAST_FLOOR_MARGIN, before):
            return
        if now - self._floor_held_at < FLOOR_HOLD_S - _EPS:
            return
        self._floor_held_at = now
        self._set(now, min(before, floor * FAST_FLOOR_MARGIN), self._reason)

    def on_queue_delay(self, now: float, queue_s: float, sent_bps: float) -> None:
        """The round trip stands ``queue_s`` above the link's least of late
        (the caller checked it held for a while, not one late report)."""
        if queue_s < QUEUE_DELAY_S - _EPS or sent_bps <= 0 or now - self._cut_at < CUT_HOLD_S - _EPS:
            return
        if not self.backlogged and sent_bps < self._est * QUEUE_SENT_SHARE:
            return  # far below the estimate: not our rate's queue (another's, or the path's own delay)
        failed = self._congestion(now)
        target = max(float(sent_bps) * QUEUE_CUT, self._est * REPEAT_CUT_FLOOR)
        if failed is not None:
            target = min(target, self._withdraw(failed, float(sent_bps), self._loss or 0.0)[0])
        self._congested_at = now
        self._hold_wait = max(self._hold_wait, HOLD_CLIMB_AFTER_CUT_S)
        if target < self._est:
            before = self._est
            self._cut_at, self._cut_loss = now, QUEUE_CUT_LOSS
            self._set(now, target, "queue")
            # like a moderate loss cut: from above the floor, once per FLOOR_HOLD_S it
            # stops at the floor (a queue under a slide's key frame cut a 300 kbps
            # link's estimate from 276 to 209 kbps and paused the camera for 8 s)
            self._hold_at_floor(now, before)

    def _unpausing(self) -> bool:
        return self._need is not None and self._est < self._need

    def on_remb(self, now: float, bps: int) -> None:
        """A REMB from the subscriber (its receive-side estimate, bps)."""
        prev = self._remb
        self._remb = int(bps)
        if self._sent is None:
            return  # nothing to compare with yet
        # Only a falling REMB is news: a receiver's first REMBs describe what it
        # has received so far (Chrome starts at ~30 kbps and climbs), not its link.
        falling = prev is not None and bps < prev * (1.0 - REMB_DECREASE)
        if falling and bps < self._sent * REMB_BELOW_SENT:
            self._congested_at = now
            failed = self._congestion(now)
            target = bps / REMB_OVERUSE_BETA
            if failed is not None:
                target = min(target, self._withdraw(failed, self._sent, self._loss or 0.0)[0])
            if target < self._est:
                if target < self._est * (1.0 - REMB_EXPLAINS_CUT):
                    # The loss reports of the next CUT_HOLD_S describe the
                    # overload this REMB already answered (receiver reports lag
                    # by an interval): they must not cut a second time.
                    self._cut_at, self._cut_loss = now, 1.0
                self._set(now, target, "remb")

    # -- outputs ---------------------------------------------------------------
    def estimate(self, now: float) -> int:
        """The budget for allocate(), bps. Changes only on reports and REMBs."""
        return int(round(self._est))

    def state(self) -> dict[str, Any]:
        """For stats: the estimate, the last inputs, the climb wait and why the estimate last changed."""
        return {
            "estimate_bps": int(round(self._est)),
            "loss": self._loss,
            "sent_bps": None if self._sent is None else int(self._sent),
            "rtt_ms": None if self._rtt is None else round(self._rtt * 1000, 1),
            "remb_bps": self._remb,
            "climb_wait_s": self._wait,
            "hold_climb_wait_s": self._hold_wait,
            "climbing": self._climb is not None,
            "climbs": self._climbs,
            "failed_climbs": self._failed_climbs,
            "probes": self._probes,
            "failed_probes": self._failed_probes,
            "probing": self._probing,
            "reason": self._reason,
            "changed_at": self._changed_at,
        }

    # -- internals -------------------------------------------------------------
    def _heavy_loss(self, now: float, cut: float, loss: float, sent: float, fast: bool = False,
                    fresh: bool = False) -> None:
        """Confirmed congestion: cut the estimate (see DELIVERED_SLACK, CUT_HOLD_S) and fail a pending climb.
        ``fresh``: the loss is of what was sent after the last cut (see on_fast_loss)."""
        failed = self._congestion(now)
        target: Optional[float] = None
        within_hold = now - self._cut_at < CUT_HOLD_S - _EPS
        if not within_hold or fresh or cut > self._cut_loss + CUT_WORSE:
            self._cut_at, self._cut_loss = now, cut
            target = self._est * (1.0 - cut / 2.0)
            if sent > 0:
                through = sent * (1.0 - cut) if self._delivered is None else self._delivered
                slack = (FAST_SLACK if fresh else FAST_FIRST_SLACK) if fast else DELIVERED_SLACK
                target = min(target, through * slack)
            if within_hold:
                # a second, worse report right after a cut still straddles the
                # overload: it may halve the estimate again, not more (and a
                # fresh one may still, if the queue's delay was read short) ...
                target = max(target, self._est * REPEAT_CUT_FLOOR)
                margin = (self.floor_bps or 0.0) * FAST_FLOOR_MARGIN
                if not fresh and self._est >= margin - 1.0:
                    # ... nor, from a report, below the floor: behind a 600 ms queue
                    # a report 1 s after a drop read 85 % of a rate that had already
                    # fallen and paused a camera the link carried for 7.6 s (what
                    # comes after the hold, or fresh NACKs, pause if they must)
                    target = max(target, margin)
        if failed is not None:
            back, used = self._withdraw(failed, sent, loss)
            # A used probe caused the loss: back to where it started, even if what
            # got through (in reports straddling the switch) reads lower.
            target = back if target is None or used else min(target, back)
            if used:
                self._cut_at, self._cut_loss = now, 1.0  # explains any loss until the switch back lands
        if target is not None and target < self._est:
            # see _verify_cut; a withdrawn climb too: it goes back to where the link was
            # carried, but the loss that failed it may be the link's drop (a classroom
            # still climbing at a drop to 300 kbps was left at 537 kbps for 8 s, and the
            # next slide's key frame, paced at it, paused the camera)
            self._unverified_at = now
            self._congested_at = now
            if failed is None:
                # the link just failed to carry more: a hold-band climb now would
                # be a layer step it most likely cannot carry either
                self._hold_wait = max(self._hold_wait, HOLD_CLIMB_AFTER_CUT_S)
            reason = "climb failed" if failed else "loss>40%" if cut > LOSS_SEVERE else "loss>10%"
            self._set(now, target, reason + " (nack)" if fast else reason)

    def _clamp(self, bps: float) -> float:
        return min(max(bps, self._min), self._max)

    def _set(self, now: float, bps: float, reason: str) -> None:
        bps = self._clamp(bps)
        if bps != self._est:
            self._est = bps
            self._reason = reason
            self._changed_at = now

    def _congestion(self, now: float) -> Optional[_Climb]:
        """Confirmed loss over 10 % or a falling REMB: ends the clean run; fails a pending climb (returned).

        Whoever lowers the estimate sets ``_congested_at`` (which delays the
        reset of the climb wait)."""
        self._clean_since = None
        self._sent_hist.clear()
        failed, self._climb = self._climb, None
        if failed is not None:
            self._congested_at = now
            self._failed_climbs += 1
            self._wait = min(self._wait * 2.0, CLIMB_WAIT_MAX_S)
            self._hold_wait = min(self._hold_wait * 2.0, HOLD_CLIMB_WAIT_MAX_S)
        return failed

    @staticmethod
    def _withdraw(failed: _Climb, sent: float, loss: float) -> tuple[float, bool]:
        """Where a failed climb takes the estimate back to, and whether it had been used.

        Back to the estimate before the run's first climb (the allocation that
        was carried); if used (sent rose above 1.2 x what was sent before),
        to what the failing report measured if that is higher, but below the
        rate that failed (see PROBE_BACK_RATIO)."""
        used = failed.used_since is not None or sent >= failed.base_bps * PROBE_USED_RATIO
        back = failed.from_bps
        if used:
            back = max(back, min(sent * (1.0 - loss) * DELIVERED_SLACK, sent * PROBE_BACK_RATIO))
        return back, used

    def _judge_climb(self, now: float, prev_at: float, sent: float) -> None:
        """A report without confirmed heavy loss: a pending climb may be used, held, or forgotten."""
        climb = self._climb
        if climb is None:
            return
        if sent >= climb.base_bps * PROBE_USED_RATIO:
            if climb.used_since is None:
                climb.used_since = prev_at
            if now - climb.used_since >= CLIMB_CONFIRM_S - _EPS:
                self._climb = None
                self._wait = CLIMB_WAIT_S
                self._hold_wait = HOLD_CLIMB_WAIT_S
        elif climb.used_since is not None or now - climb.last_at > CLIMB_VERDICT_S + _EPS:
            # sent went back down for another reason, or the climb was never used
            self._climb = None

    def _hold_climb_due(self, now: float) -> bool:
        """In the hold band: continue an unused run, or start one after a long calm."""
        climb = self._climb
        if climb is not None:
            return climb.used_since is None and now - self._last_climb_at >= CLIMB_STEP_S - _EPS
        calm_since = max(self._congested_at, self._created, self._hold_series_at)
        wait = self._hold_wait
        if self._unpausing():
            wait = UNPAUSE_WAIT_S * self._hold_wait / HOLD_CLIMB_WAIT_S
            if self.can_probe and self._proof_stands(now):
                wait = min(wait, PROBE_CHAIN_S)  # the last probe carried: the next step follows
        return now - calm_since >= wait - _EPS

    def _climb_step(self, now: float, sent_ref: float, *, hold_band: bool, above: float = 0.0) -> bool:
        """Raise the estimate by one climb if that goes above ``above`` (and the estimate);
        if padding can be sent and a video is paused or steps up are known, ask for a
        probe instead."""
        if self.can_probe and (self._unpausing() or self._steps):
            return self._ask_probe(now, sent_ref, hold_band=hold_band)
        cap = max(sent_ref * PROBE_MAX_RATIO, sent_ref + PROBE_MIN_BPS)
        if hold_band and self._need is not None and self._unpausing():
            cap = min(cap, self._need * UNPAUSE_HEADROOM)
        target = min(max(self._est, sent_ref) * CLIMB_FACTOR, cap, self._max)
        if target <= max(self._est, above):
            return False
        if self._climb is None:
            self._climb = _Climb(base_bps=sent_ref, from_bps=self._est, last_at=now)
            if hold_band:
                self._hold_series_at = now
        else:
            self._climb.last_at = now
        self._last_climb_at = now
        self._climbs += 1
        self._set(now, target, "climb (2-10% loss)" if hold_band else "climb")
        return True


    # -- probes ------------------------------------------------------------------
    def _ask_probe(self, now: float, sent_ref: float, *, hold_band: bool) -> bool:
        if self._probing or self._probe_wanted is not None:
            return False
        proven_bps, _ = self._proven
        chained = self._proof_stands(now)
        # From what is sent, what was proven, or PROBE_FROM_ESTIMATE of the estimate,
        # whichever is most: a paused camera sends nothing, and 2 x the audio took
        # three probes (~10 s) back to a camera the estimate was 10 % short of.
        base = max(sent_ref, self._est * PROBE_FROM_ESTIMATE, proven_bps if chained else 0.0)
        unpausing = self._unpausing()
        steps = self._steps or ((self._need,) if self._need is not None else ())
        if unpausing and hold_band and self._need is not None and (self._loss or 0.0) >= LOSS_LOW:
            # a link in the hold band climbs only to bring a paused video back
            steps = tuple(b for b in steps if b <= self._need + _EPS)
        steps = tuple(b * UNPAUSE_HEADROOM for b in steps if b * UNPAUSE_HEADROOM > base * 1.05)
        if not steps:
            return False
        clean = self._clean_since is not None and now - self._clean_since >= self._wait - _EPS
        # For PROBE_FAIL_MEMORY_S after a probe failed, an unpausing probe goes at most
        # halfway to where it failed (see PROBE_FAIL_MEMORY_S), unless the link has
        # been clean since well after that failure for a whole climb wait: the link
        # it failed on was lossy, this one is not (from a 64 kbps link back at 5 Mbps
        # the probes crept up 81, 87 kbps).
        failed_bps, failed_at = self._failed_probe
        settle = 0.0 if self._failed_lossy else PROBE_FAIL_SETTLE_S
        changed = (self._clean_since is not None and self._clean_since >= failed_at + settle - _EPS
                   and now - self._clean_since >= CLIMB_WAIT_S - _EPS)
        halfway = (unpausing and not changed and now - failed_at <= PROBE_FAIL_MEMORY_S + _EPS
                   and failed_bps > base)
        if not unpausing:
            reach = base * PROBE_LAYER_RATIO
        elif clean and (chained or not halfway):
            # a paused video's link is proven in steps of PROBE_STEP, larger once it
            # has been clean for a whole climb wait, with no failure to remember or
            # after a probe that carried: a 64 kbps link with 5 % loss passed a probe
            # to 86 kbps on its token bucket and queue, and the next one, to 287 at
            # once, lost 34 % (a lossy link is rarely clean that long)
            reach = base * PROBE_CHAIN_STEP
        else:
            reach = base * PROBE_STEP
        within = [b for b in steps if b <= reach + _EPS]
        target = min(within[-1] if within else reach, self._max)
        if halfway:
            middle = (base + failed_bps) / 2.0
            # once the halving has come within a few percent of what is proven, a
            # little over where it failed (a link that recovers shows no other way
            # when it was clean all along; a simulated 64 kbps link back at 5 Mbps
            # waited out the whole memory, 60 s)
            target = min(target, middle if middle > base * 1.05 else max(failed_bps, base) * PROBE_RETRY_ABOVE)
        if target <= base * 1.05:
            return False
        self._probe_layer = not unpausing
        self._probe_wanted = target
        self._last_climb_at = now
        self._hold_series_at = now
        self._probes += 1
        return True

    def _proof_stands(self, now: float) -> bool:
        """A probe carried within PROBE_KEEP_S and nothing cut since: after a drop
        the rate it proved is the old link's (probes would start from it, or be
        held back by it)."""
        proven_at = self._proven[1]
        return now - proven_at <= PROBE_KEEP_S + _EPS and proven_at > self._cut_at

    def cancel_probe(self) -> None:
        """The probe taken stopped without telling anything of the link (its
        consumer closed, or none could carry padding): no verdict, no back-off."""
        self._probing = False

    def take_probe(self, now: Optional[float] = None) -> Optional[float]:
        """The total rate (bps) a probe should reach, once per probe asked for; None if none.

        ``now`` (the caller has just told the needs and steps of the allocation
        after a probe that carried): the next probe may follow at once, without
        waiting for the next receiver report, if the link has been clean for a
        whole climb wait (each step from a 64 kbps link back at 5 Mbps waited
        1.3 s for a report of the audio, the only stream flowing)."""
        chain, self._chain = self._chain, False
        if (chain and self.can_probe and now is not None and self._probe_wanted is None and self._loss is not None
                and self._loss < LOSS_LOW and self._clean_since is not None
                and now - self._clean_since >= self._wait - _EPS):
            sent_ref = max((sent for _, sent in self._sent_hist), default=self._sent or 0.0)
            self._ask_probe(now, sent_ref, hold_band=False)
        target, self._probe_wanted = self._probe_wanted, None
        if target is not None:
            self._probing = True
            self._lossy_before_probe = self._lossy_at
        return target

    def on_probe_result(self, now: float, target_bps: float, carried: bool) -> None:
        """The link carried the probe's rate (or not: a failed climb, with its back-off)."""
        self._probing = False
        if carried:
            self._chain = True
            self._proven = (float(target_bps), now)
            # the link carried more than the cut left: nothing left to verify (the
            # check would take the estimate back to 1.2 x what was sent, and the
            # layers the probe switched up straight back down)
            self._unverified_at = None
            # proof the link carries more: the clean-run wait a rough stretch doubled
            # (up to 8 s) would hold the climbs back once the link has recovered
            self._wait = CLIMB_WAIT_S
            if target_bps >= self._failed_probe[0] * PROBE_FAIL_FORGET:
                self._failed_probe = (0.0, -math.inf)  # it carried (nearly) what failed: that was noise, or gone
            if target_bps > self._est:
                self._set(now, target_bps, "probe")
            return
        self._failed_probe = (float(target_bps), now)
        self._failed_lossy = now - self._lossy_before_probe <= PROBE_FAIL_LOSSY_S + _EPS
        self._failed_probes += 1
        self._clean_since = None
        self._congested_at = now
        # the loss the receiver reports of the next CUT_HOLD_S tell is the probe's
        # padding overflowing the queue, which stopped: no cut for it
        self._cut_at, self._cut_loss = now, 1.0
        # a layer probe backs off as a failed climb does (a clean link whose next
        # layer does not fit is tried every 8 s, not every 4)
        cap = CLIMB_WAIT_MAX_S if self._probe_layer else max(PROBE_WAIT_MAX_S, CLIMB_WAIT_S)
        self._wait = min(self._wait * 2.0, cap)
        self._hold_wait = min(self._hold_wait * 2.0, HOLD_CLIMB_WAIT_MAX_S)


# -- the fast loss signal ------------------------------------------------------
# How many sequence numbers the first NACK after a quiet stretch is taken to
# cover at most, and how many recently NACKed numbers are remembered so that a
# repeated NACK is not counted again.
NACK_SPAN_MAX = 64
NACK_REMEMBER = 1024


class NackMeter:
    """Loss as one subscriber's NACKs of one stream tell it, an RTT after it
    happens (receiver reports come only every 0.5-1.5 s).

    A receiver NACKs when a packet arrives after a gap, listing every sequence
    number still missing (again and again until it arrives: aiortc resends
    its whole list, libwebrtc each number up to ~10 times). So a NACK's *new*
    numbers, against the sequence numbers since the previous NACK's highest
    one, are the loss of that stretch: the numbers in between that were not
    NACKed were received.
    """

    def __init__(self) -> None:
        self.log: deque[tuple[float, int, int]] = deque(maxlen=64)  # (time, newly missing, numbers covered)
        self.nacked = 0  # distinct sequence numbers reported missing
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self._hi: Optional[int] = None  # one past the highest number NACKed so far

    def add(self, now: float, lost: list[int]) -> bool:
        """One NACK's list of missing sequence numbers; True if it reported new ones."""
        new = 0
        top: Optional[int] = None
        for seq in lost:
            seq &= 0xFFFF
            if top is None or 0 < ((seq - top) & 0xFFFF) < 0x8000:
                top = seq
            if seq in self._seen:
                continue
            self._seen.add(seq)
            self._order.append(seq)
            new += 1
        while len(self._order) > NACK_REMEMBER:
            self._seen.discard(self._order.popleft())
        if not new or top is None:
            return False
        self.nacked += new
        hi = (top + 1) & 0xFFFF
        if self._hi is None:
            span = NACK_SPAN_MAX
        else:
            ahead = (hi - self._hi) & 0xFFFF
            if ahead >= 0x8000:  # all older than what an earlier NACK covered
                span, hi = 0, self._hi
            else:
                span = min(ahead, NACK_SPAN_MAX)
        self._hi = hi
        self.log.append((now, new, max(span, new)))
        return True

    def since(self, first: int) -> tuple[int, int]:
        """(missing, sequence numbers covered) from ``first`` on, up to the
        highest number NACKed: the loss of what was sent from ``first`` on, as
        far as the NACKs tell it yet (of the last NACK_REMEMBER numbers NACKed)."""
        if self._hi is None:
            return 0, 0
        span = (self._hi - first) & 0xFFFF
        if span == 0 or span >= 0x8000:
            return 0, 0
        lost = sum(1 for seq in self._order if ((seq - first) & 0xFFFF) < span)
        return lost, span

    def window(self, now: float, seconds: float) -> tuple[int, int]:
        """(missing, sequence numbers covered) by the NACKs of the last ``seconds``.
        The oldest of them counts only what it reports missing and the packet
        that revealed the gap: the clean stretch before it belongs to the time
        before the window, and counting it would water down the loss of a
        sudden rate drop (which is when this signal matters)."""
        lost = span = 0
        oldest: Optional[tuple[int, int]] = None
        for at, new, covered in reversed(self.log):
            if now - at > seconds + _EPS:
                break
            if oldest is not None:
                span += oldest[1]
            lost += new
            oldest = (new, covered)
        if oldest is not None:
            span += oldest[0] + 1
        return lost, span


# -- layer selection -----------------------------------------------------------
class LayerSelector:
    """One video consumer: the layer it forwards, with hold times so it does not flap.

    Down: as soon as the allocation says lower, straight to that layer, but
    not within ``down_hold_s`` of the previous switch (either way) unless the
    video must pause. Up: only after the allocation has said higher
    continuously for ``up_hold_s`` and at least ``up_hold_s`` after the last
    down-switch; one step at a time (from paused: the lowest layer), the hold
    restarting after each step.

    ``start_layer`` None (default): the first update() starts on the lowest
    layer (or stays paused if the allocation says pause) and steps up from
    there with the usual holds: a new consumer's first layer is a probe too,
    and the estimate it is allocated from may still be the initial guess.
    Otherwise the consumer starts on ``start_layer`` (e.g. the allocation's
    answer, for a link whose estimate has been verified) and the rules apply
    from the first update.
    """

    def __init__(
        self,
        now: float,
        layers: int,
        *,
        up_hold_s: float = UP_HOLD_S,
        down_hold_s: float = DOWN_HOLD_S,
        start_layer: Optional[int] = None,
    ) -> None:
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if start_layer is not None and not 0 <= start_layer < layers:
            raise ValueError(f"start_layer {start_layer} out of range for {layers} layers")
        self._layers = layers
        self._up_hold = up_hold_s
        self._down_hold = down_hold_s
        self._layer = start_layer
        self._fresh = start_layer is None
        self._last_change_at = -math.inf
        self._last_down_at = -math.inf
        self._up_since: Optional[float] = None
        self._history: list[tuple[float, Optional[int]]] = [(now, start_layer)]

    @property
    def layer(self) -> Optional[int]:
        """The layer forwarded now (None: paused, or no update yet)."""
        return self._layer

    def history(self) -> list[tuple[float, Optional[int]]]:
        """(time, layer) at construction and at each change since."""
        return list(self._history)

    def update(self, now: float, allowed: Optional[int], *, proven: bool = False) -> Optional[int]:
        """`allowed` = allocate()'s answer for this consumer (None: pause); returns the layer to forward
        now (None: paused). Index 0 = top layer; a larger index is a lower layer.

        ``proven``: the link was just shown to carry the allocation (a padding
        probe carried its rate): up to the allowed layer at once, without the
        up hold, whose only purpose is to let the link be judged first."""
        if allowed is not None:
            if allowed < 0:
                raise ValueError(f"allowed layer must be >= 0, got {allowed}")
            allowed = min(allowed, self._layers - 1)
        if self._fresh:
            self._fresh = False
            if allowed is not None:
                self._switch(now, self._layers - 1, down=False)
                self._up_since = now if allowed < self._layers - 1 else None
            return self._layer

        current, wanted = self._rank(self._layer), self._rank(allowed)
        if wanted > current:  # lower
            self._up_since = None
            if allowed is None or now - self._last_change_at >= self._down_hold - _EPS:
                self._switch(now, allowed, down=True)
        elif wanted < current and proven:
            self._switch(now, allowed, down=False)
            self._up_since = None
        elif wanted < current:  # higher
            if self._up_since is None:
                self._up_since = now
            if now - self._up_since >= self._up_hold - _EPS and now - self._last_down_at >= self._up_hold - _EPS:
                step = self._layers - 1 if self._layer is None else self._layer - 1
                self._switch(now, step, down=False)
                self._up_since = now if wanted < step else None
        else:
            self._up_since = None
        return self._layer

    def _rank(self, layer: Optional[int]) -> int:
        """Larger = less video; paused is below the lowest layer."""
        return self._layers if layer is None else layer

    def _switch(self, now: float, layer: Optional[int], *, down: bool) -> None:
        if layer == self._layer:
            return
        self._layer = layer
        self._last_change_at = now
        if down:
            self._last_down_at = now
        self._history.append((now, layer))
