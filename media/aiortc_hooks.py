"""Every use of aiortc's (and aioice's) private API, in one place.

synclass lets aiortc do ICE, DTLS and SRTP, and does RTP itself: incoming
packets are handed to a Producer before any depacketizing into frames or
decoding, and outgoing packets are written straight onto the subscriber's
SRTP session and UDP socket. aiortc offers no public API for that, so this
module reaches into its internals. It is pinned to aiortc 1.16.0 / aioice
0.13.0; ``tests/media/test_aiortc_hooks.py`` fails loudly when an upgrade
moves any of the names used here. Nothing else in synclass may touch a
private aiortc name.

Hooks, per object:
- publisher side (``RTCRtpReceiver``): the jitter buffer is replaced by a
  sink that hands each packet to the Producer (after aiortc has fed its
  statistics, REMB estimator and NACK generator, and unwrapped RTX); the
  decoder thread is stopped as soon as ``receive()`` started it; sender
  reports are observed for lip-sync.
- subscriber side (``RTCRtpSender``): aiortc's RTP loop is replaced by one
  that sends nothing (the Consumer sends), its RTCP loop by the Consumer's
  (truthful sender reports), its RTCP handler by the Consumer's (PLI, FIR,
  NACK, REMB, receiver reports); ``send()`` reports the negotiated
  parameters to the Consumer.
- transports (``RTCDtlsTransport``): a receiver's RTX SSRC is registered
  with the RTP router beside its media SSRC (aiortc drops retransmissions
  when two video m-lines share a transport).
- the wire: ``fast_sender()`` returns a synchronous function that SRTP-protects
  and ``sendto()``s a packet on the nominated ICE pair, skipping aiortc's four
  awaited layers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable, Optional, Protocol

import aioice.ice
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)

logger = logging.getLogger("synclass.media.hooks")

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

# --- decoder / encoder counters ------------------------------------------------
# aiortc creates codecs through these two module-level names; wrapping them
# counts every decoder or encoder made in this process. An SFU must keep both
# at zero.
COUNTERS: dict[str, int] = {"decoders_created": 0, "encoders_created": 0}

_original_get_decoder = aiortc.rtcrtpreceiver.get_decoder
_original_get_encoder = aiortc.rtcrtpsender.get_encoder


def _counting_get_decoder(codec: Any) -> Any:
    COUNTERS["decoders_created"] += 1
    return _original_get_decoder(codec)


def _counting_get_encoder(codec: Any) -> Any:
    COUNTERS["encoders_created"] += 1
    return _original_get_encoder(codec)


aiortc.rtcrtpreceiver.get_decoder = _counting_get_decoder  # type: ignore[assignment]
aiortc.rtcrtpsender.get_encoder = _counting_get_encoder  # type: ignore[assignment]


# --- retransmissions routed by their SSRC ----------------------------------------------
# aiortc registers a receiver's media SSRC with its transport's RTP router but
# not its RTX SSRC, and routes by payload type when the SSRC is unknown; two
# video m-lines on one transport (a camera and the courseware; three camera
# layers) share the RTX payload type, so every retransmission to either is
# dropped ("no receiver"). Measured in the link bench: of 142 camera and 10
# courseware packets lost on a 5 % link, none was recovered, and a slide deck
# stayed frozen until its next key frame. Registering the RTX SSRCs the
# session description announced (a=ssrc-group:FID) routes them; a browser's
# own RTP stack does so. Process-wide: the server's publish side (a teacher's
# layers) and synclass's Python clients alike.
_original_register_rtp_receiver = RTCDtlsTransport._register_rtp_receiver


def _register_rtp_receiver_with_rtx(self: RTCDtlsTransport, receiver: Any, parameters: RTCRtpReceiveParameters) -> None:
    _original_register_rtp_receiver(self, receiver, parameters)
    for encoding in parameters.encodings:
        if encoding.rtx is not None:
            self._rtp_router.ssrc_table[encoding.rtx.ssrc] = receiver


RTCDtlsTransport._register_rtp_receiver = _register_rtp_receiver_with_rtx  # type: ignore[method-assign]


# --- ICE host addresses -----------------------------------------------------------
_original_get_host_addresses = aioice.ice.get_host_addresses


def set_ice_host_addresses(addresses: tuple[str, ...] | list[str]) -> None:
    """Gather ICE host candidates only on ``addresses`` (empty: every interface).

    aioice leaves 127.0.0.1 out of its own list; loopback tests and test
    namespaces name their address here. Process-wide.
    """
    wanted = list(addresses)
    if not wanted:
        aioice.ice.get_host_addresses = _original_get_host_addresses  # type: ignore[assignment]
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in wanted if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses  # type: ignore[assignment]


def set_ice_consent(interval_s: float, failures: int) -> None:
    """How fast a vanished peer is noticed: consent checks every ``interval_s``
    seconds, given up after ``failures`` misses (aioice: 5 s × 6, RFC 7675)."""
    aioice.ice.CONSENT_INTERVAL = interval_s  # type: ignore[attr-defined]
    aioice.ice.CONSENT_FAILURES = failures  # type: ignore[attr-defined]


# --- the wire ---------------------------------------------------------------------
SendFn = Callable[[bytes], None]


def fast_sender(dtls: RTCDtlsTransport, rtcp: bool = False) -> Optional[SendFn]:
    """A synchronous ``send(packet)`` that SRTP-protects and ``sendto()``s on the
    nominated ICE pair, or ``None`` while DTLS is not connected.

    The returned function stays valid while the transport is connected; once
    aioice closes the socket (consent lost, peer gone) it drops the packet.
    """
    if dtls._state != State.CONNECTED or dtls._tx_srtp is None:
        return None
    connection = dtls.transport._connection
    pair = connection._nominated.get(1)
    if pair is None:
        return None
    protect = dtls._tx_srtp.protect_rtcp if rtcp else dtls._tx_srtp.protect
    udp = pair.protocol.transport
    addr = pair.remote_addr
    if udp is None:
        return None
    sendto = udp.sendto
    is_closing = udp.is_closing

    def send(packet: bytes) -> None:
        # asyncio's sendto on a closed unconnected UDP transport raises
        # AttributeError instead of dropping: check first.
        if not is_closing():
            sendto(protect(packet), addr)

    return send


def dtls_of(sender_or_receiver: RTCRtpSender | RTCRtpReceiver) -> RTCDtlsTransport:
    return sender_or_receiver.transport


def enlarge_receive_buffers(pc: Any, size: int) -> None:
    """Ask the kernel for ``size``-byte receive buffers on ``pc``'s ICE sockets.

    A publisher's socket must absorb its packets while the event loop fans a
    30-packet keyframe out to hundreds of subscribers; Linux's default 208 KiB
    overflows there (the kernel caps the request at net.core.rmem_max).
    """
    import socket

    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is None:
            continue
        for protocol in dtls.transport._connection._protocols:
            sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def vanish_peer_connection(pc: Any) -> None:
    """Black-hole a (client's) peer connection's UDP sockets: nothing more goes
    out or comes in, no DTLS close and no RTCP BYE. For tests and demos that
    play a classroom whose link died."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is None:
            continue
        for protocol in dtls.transport._connection._protocols:
            protocol.datagram_received = lambda data, addr: None
            if protocol.transport is not None:
                protocol.transport.sendto = lambda data, addr=None: None


# --- publisher side ------------------------------------------------------------------
class UpTrackSink(Protocol):
    """What a Producer offers the receiver hooks."""

    def on_rtp(self, packet: RtpPacket) -> None: ...

    def on_negotiated(self, mime_type: str, clock_rate: int, payload_types: dict[int, str]) -> None: ...

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None: ...


class _SinkJitterBuffer:
    """Stands in for aiortc's JitterBuffer: forwards instead of assembling frames."""

    __slots__ = ("_on_rtp",)

    def __init__(self, on_rtp: Callable[[RtpPacket], None]) -> None:
        self._on_rtp = on_rtp

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self._on_rtp(packet)
        return False, None


def install_receiver_hooks(receiver: RTCRtpReceiver, sink: UpTrackSink) -> None:
    """Make ``receiver`` hand every RTP packet to ``sink`` and decode nothing.

    Call after ``setRemoteDescription`` and before ``setLocalDescription`` (which
    starts the receiver).
    """
    if getattr(receiver, "_synclass_hooked", False):
        return
    receiver._synclass_hooked = True  # type: ignore[attr-defined]
    receiver._RTCRtpReceiver__jitter_buffer = _SinkJitterBuffer(sink.on_rtp)  # type: ignore[attr-defined]

    original_receive = receiver.receive
    original_rtcp = receiver._handle_rtcp_packet

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        await original_receive(parameters)
        # receive() starts a decoder thread; it would never get a frame, stop it.
        receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]
        codecs = [c for c in parameters.codecs if c.mimeType.lower() != "video/rtx"]
        if codecs:
            sink.on_negotiated(
                codecs[0].mimeType,
                codecs[0].clockRate,
                {c.payloadType: c.mimeType for c in parameters.codecs},
            )

    async def handle_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            sink.on_sender_report(packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        await original_rtcp(packet)

    receiver.receive = receive  # type: ignore[method-assign]
    receiver._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> Awaitable[None]:
    """Ask the publisher for a keyframe (RTCP PLI) on ``receiver``'s stream."""
    return receiver._send_rtcp_pli(media_ssrc)


def receiver_rtcp_ssrc(receiver: RTCRtpReceiver) -> Optional[int]:
    return receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined,no-any-return]


# --- subscriber side -------------------------------------------------------------------
class DownTrackHandler(Protocol):
    """What a Consumer offers the sender hooks."""

    def on_negotiated(
        self,
        ssrc: int,
        rtx_ssrc: int,
        payload_type: int,
        rtx_payload_type: Optional[int],
        mime_type: str,
        clock_rate: int,
        header_extensions: dict[str, int],
    ) -> None: ...

    def on_rtcp(self, packet: Any) -> None: ...

    def sender_report(self) -> Optional[tuple[int, int, int, int]]: ...

    def bind_report_now(self, trigger: Callable[[], None]) -> None:
        """``trigger()`` sends a sender report at once (and restarts the interval)."""

    def goodbye(self) -> None: ...


def install_sender_hooks(sender: RTCRtpSender, handler: DownTrackHandler) -> None:
    """Make ``sender`` a shell: the Consumer sends RTP, RTCP and handles feedback.

    Call right after the transceiver is created, before any ``send()``.
    """
    original_send = sender.send
    rtp_started: asyncio.Event = sender._RTCRtpSender__rtp_started  # type: ignore[attr-defined]
    rtp_exited: asyncio.Event = sender._RTCRtpSender__rtp_exited  # type: ignore[attr-defined]
    rtcp_started: asyncio.Event = sender._RTCRtpSender__rtcp_started  # type: ignore[attr-defined]
    rtcp_exited: asyncio.Event = sender._RTCRtpSender__rtcp_exited  # type: ignore[attr-defined]

    async def send(parameters: RTCRtpSendParameters) -> None:
        codecs = parameters.codecs
        media = codecs[0]
        rtx_pt = None
        for codec in codecs:
            if codec.mimeType.lower() == "video/rtx" and codec.parameters.get("apt") == media.payloadType:
                rtx_pt = codec.payloadType
        handler.on_negotiated(
            ssrc=sender._ssrc,
            rtx_ssrc=sender._rtx_ssrc,
            payload_type=media.payloadType,
            rtx_payload_type=rtx_pt,
            mime_type=media.mimeType,
            clock_rate=media.clockRate,
            header_extensions={ext.uri: ext.id for ext in parameters.headerExtensions},
        )
        await original_send(parameters)

    async def run_rtp(codec: Any) -> None:
        # The Consumer sends; this task only keeps aiortc's stop() happy.
        rtp_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        rtp_exited.set()

    wake = asyncio.Event()
    handler.bind_report_now(wake.set)

    async def run_rtcp() -> None:
        rtcp_started.set()
        try:
            while True:
                # RFC 3550: randomize the interval over [0.5, 1.5] × 1 s. (Not
                # wait_for: on 3.11 it swallows a cancellation that comes as the
                # event is set, and the stop would hang on rtcp_exited.)
                try:
                    async with asyncio.timeout(0.5 + random.random()):
                        await wake.wait()
                except TimeoutError:
                    pass
                wake.clear()
                report = handler.sender_report()
                if report is not None:
                    await _send_rtcp(sender, _sender_report_bytes(sender, *report))
        except asyncio.CancelledError:
            pass
        handler.goodbye()
        await _send_rtcp(sender, bytes(RtcpByePacket(sources=[sender._ssrc])))
        rtcp_exited.set()

    async def handle_rtcp(packet: Any) -> None:
        handler.on_rtcp(packet)

    sender.send = send  # type: ignore[method-assign]
    sender._run_rtp = run_rtp  # type: ignore[method-assign]
    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]
    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


def _sender_report_bytes(
    sender: RTCRtpSender, ntp: int, rtp_timestamp: int, packets: int, octets: int
) -> bytes:
    """A compound RTCP packet: SR followed by SDES with the sender's CNAME."""
    data = bytes(
        RtcpSrPacket(
            ssrc=sender._ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp, rtp_timestamp=rtp_timestamp, packet_count=packets, octet_count=octets
            ),
        )
    )
    cname = sender._RTCRtpSender__cname  # type: ignore[attr-defined]
    if cname:
        data += bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=sender._ssrc, items=[(1, cname.encode("utf8"))])]))
    return data


async def _send_rtcp(sender: RTCRtpSender, data: bytes) -> None:
    try:
        await sender.transport._send_rtp(data)
    except ConnectionError:
        pass


# RTCP packet classes, re-exported so the Consumer can dispatch on them
# without importing aiortc itself.
RTCP_CLASSES = {
    "rr": RtcpRrPacket,
    "sr": RtcpSrPacket,
    "psfb": RtcpPsfbPacket,
    "rtpfb": RtcpRtpfbPacket,
}
PSFB_PLI = RTCP_PSFB_PLI
PSFB_FIR = RTCP_PSFB_FIR
PSFB_APP = RTCP_PSFB_APP
RTPFB_NACK = RTCP_RTPFB_NACK
__all__ = [
    "COUNTERS",
    "RtcpPacket",
    "RtpPacket",
    "fast_sender",
    "install_receiver_hooks",
    "install_sender_hooks",
    "unpack_remb_fci",
]
