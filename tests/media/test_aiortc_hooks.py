"""media/aiortc_hooks.py: fails loudly when an aiortc or aioice upgrade moves a
private name the media plane relies on.

Every assertion names the hook that broke, so the failure says where to look
in aiortc_hooks.py, not only which attribute is missing.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect

import aioice.ice
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from media import aiortc_hooks as hooks


@pytest.fixture
async def pc():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    yield pc
    await pc.close()


# --- versions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "package, pinned",
    [("aiortc", hooks.AIORTC_VERSION), ("aioice", hooks.AIOICE_VERSION)],
)
def test_installed_versions_are_the_ones_the_hooks_were_written_for(package: str, pinned: str) -> None:
    installed = importlib.metadata.version(package)
    assert installed == pinned, (
        f"{package} {installed} is installed but media/aiortc_hooks.py was written for {pinned}: "
        "re-check every hook, then update the pin"
    )


# --- publisher side: RTCRtpReceiver ---------------------------------------------------------
async def test_receiver_still_has_the_private_names_the_receiver_hooks_use(pc: RTCPeerConnection) -> None:
    receiver = pc.addTransceiver("video", direction="recvonly").receiver

    jitter_buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    assert jitter_buffer is not None, "install_receiver_hooks: RTCRtpReceiver.__jitter_buffer is gone"
    assert callable(getattr(jitter_buffer, "add", None)), (
        "install_receiver_hooks: RTCRtpReceiver.__jitter_buffer has no add() to stand in for"
    )
    assert callable(getattr(receiver, "_RTCRtpReceiver__stop_decoder", None)), (
        "install_receiver_hooks (receive): RTCRtpReceiver.__stop_decoder() is gone"
    )
    assert hasattr(receiver, "_RTCRtpReceiver__rtcp_ssrc"), "receiver_rtcp_ssrc: RTCRtpReceiver.__rtcp_ssrc is gone"
    assert inspect.iscoroutinefunction(receiver._send_rtcp_pli), "send_pli: RTCRtpReceiver._send_rtcp_pli is gone"
    assert inspect.iscoroutinefunction(receiver._handle_rtcp_packet), (
        "install_receiver_hooks (sender reports): RTCRtpReceiver._handle_rtcp_packet is gone"
    )
    assert inspect.iscoroutinefunction(receiver.receive), "install_receiver_hooks: RTCRtpReceiver.receive is gone"
    assert list(inspect.signature(receiver.receive).parameters) == ["parameters"], (
        "install_receiver_hooks: RTCRtpReceiver.receive(parameters) changed its signature"
    )


def test_receiver_still_feeds_every_packet_to_the_jitter_buffer_attribute() -> None:
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__jitter_buffer.add(" in source, (
        "install_receiver_hooks: RTCRtpReceiver._handle_rtp_packet no longer calls self.__jitter_buffer.add(), "
        "so the sink that hands packets to the Producer is never called"
    )


def test_receiver_still_starts_its_decoder_thread_in_receive() -> None:
    source = inspect.getsource(RTCRtpReceiver.receive)
    assert "decoder_worker" in source, (
        "install_receiver_hooks (receive): RTCRtpReceiver.receive no longer starts the decoder thread "
        "that the hook stops; re-check how aiortc decodes"
    )


async def test_install_receiver_hooks_replaces_the_jitter_buffer_with_the_sink(pc: RTCPeerConnection) -> None:
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    seen: list[object] = []

    class Sink:
        def on_rtp(self, packet: object) -> None:
            seen.append(packet)

        def on_negotiated(self, mime_type: str, clock_rate: int, payload_types: dict[int, str]) -> None: ...

        def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None: ...

    hooks.install_receiver_hooks(receiver, Sink())
    hooks.install_receiver_hooks(receiver, Sink())  # a second call changes nothing

    jitter_buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert jitter_buffer.add("packet") == (False, None), "install_receiver_hooks: the sink must never ask for a PLI"
    assert seen == ["packet"], "install_receiver_hooks: the jitter buffer sink does not reach the Producer"


# --- subscriber side: RTCRtpSender ------------------------------------------------------------
async def test_sender_still_has_the_private_names_the_sender_hooks_use(pc: RTCPeerConnection) -> None:
    sender = pc.addTransceiver("video", direction="sendonly").sender

    for name in ("__rtp_started", "__rtp_exited", "__rtcp_started", "__rtcp_exited"):
        event = getattr(sender, "_RTCRtpSender" + name, None)
        assert isinstance(event, asyncio.Event), (
            f"install_sender_hooks (run_rtp/run_rtcp): RTCRtpSender.{name} is not an asyncio.Event any more, "
            "so aiortc's stop() would hang"
        )
    assert hasattr(sender, "_RTCRtpSender__cname"), "_sender_report_bytes: RTCRtpSender.__cname is gone"
    assert isinstance(sender._ssrc, int), "install_sender_hooks: RTCRtpSender._ssrc is gone"
    assert isinstance(sender._rtx_ssrc, int), "install_sender_hooks: RTCRtpSender._rtx_ssrc is gone"
    assert inspect.iscoroutinefunction(sender._run_rtp), "install_sender_hooks: RTCRtpSender._run_rtp is gone"
    assert list(inspect.signature(sender._run_rtp).parameters) == ["codec"], (
        "install_sender_hooks: RTCRtpSender._run_rtp(codec) changed its signature"
    )
    assert inspect.iscoroutinefunction(sender._run_rtcp), "install_sender_hooks: RTCRtpSender._run_rtcp is gone"
    assert inspect.iscoroutinefunction(sender._handle_rtcp_packet), (
        "install_sender_hooks: RTCRtpSender._handle_rtcp_packet is gone"
    )
    assert inspect.iscoroutinefunction(sender.send), "install_sender_hooks: RTCRtpSender.send is gone"
    assert isinstance(sender.transport, RTCDtlsTransport), "_send_rtcp: RTCRtpSender.transport is not a DTLS transport"
    assert inspect.iscoroutinefunction(sender.transport._send_rtp), "_send_rtcp: RTCDtlsTransport._send_rtp is gone"


def test_sender_send_still_starts_the_loops_the_hooks_replace() -> None:
    source = inspect.getsource(RTCRtpSender.send)
    assert "self._run_rtp(" in source, (
        "install_sender_hooks: RTCRtpSender.send no longer calls self._run_rtp(), "
        "so the instance override that silences aiortc's RTP loop has no effect"
    )
    assert "self._run_rtcp()" in source, (
        "install_sender_hooks: RTCRtpSender.send no longer calls self._run_rtcp(), "
        "so the Consumer's truthful sender reports are never sent"
    )


def test_dtls_transport_still_dispatches_rtcp_and_rtp_through_instance_attributes() -> None:
    rtcp = inspect.getsource(RTCDtlsTransport._handle_rtcp_data)
    assert "._handle_rtcp_packet(" in rtcp, (
        "install_sender_hooks/install_receiver_hooks: RTCDtlsTransport no longer routes RTCP "
        "through recipient._handle_rtcp_packet(), so the RTCP overrides are never called"
    )
    rtp = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "receiver._handle_rtp_packet(" in rtp, (
        "install_receiver_hooks: RTCDtlsTransport no longer hands RTP to receiver._handle_rtp_packet()"
    )


async def test_install_sender_hooks_overrides_the_loops_on_the_instance(pc: RTCPeerConnection) -> None:
    sender = pc.addTransceiver("video", direction="sendonly").sender

    class Handler:
        def on_negotiated(self, **kwargs: object) -> None: ...

        def on_rtcp(self, packet: object) -> None: ...

        def sender_report(self) -> None:
            return None

        def bind_report_now(self, trigger: object) -> None: ...

        def goodbye(self) -> None: ...

    hooks.install_sender_hooks(sender, Handler())  # type: ignore[arg-type]

    for name in ("send", "_run_rtp", "_run_rtcp", "_handle_rtcp_packet"):
        assert name in vars(sender), f"install_sender_hooks: {name} is not overridden on the instance"


# --- the wire: RTCDtlsTransport and aioice -------------------------------------------------------
async def test_dtls_transport_still_has_the_names_fast_sender_uses(pc: RTCPeerConnection) -> None:
    dtls = pc.addTransceiver("audio", direction="sendonly").sender.transport

    assert isinstance(dtls._state, State), "fast_sender: RTCDtlsTransport._state is not a State any more"
    assert hasattr(State, "CONNECTED"), "fast_sender: RTCDtlsTransport State.CONNECTED is gone"
    assert hasattr(dtls, "_tx_srtp"), "fast_sender: RTCDtlsTransport._tx_srtp is gone"
    connection = dtls.transport._connection
    assert isinstance(connection, aioice.ice.Connection), (
        "fast_sender: RTCIceTransport._connection is not an aioice Connection"
    )
    assert isinstance(connection._nominated, dict), "fast_sender: aioice Connection._nominated is not a dict any more"
    assert hooks.fast_sender(dtls) is None, "fast_sender: must return None before DTLS is connected"


async def test_fast_sender_sends_once_a_real_connection_is_up() -> None:
    hooks.set_ice_host_addresses(["127.0.0.1"])
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        a.addTransceiver("audio", direction="sendonly")
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        dtls = a.getTransceivers()[0].sender.transport
        for _ in range(100):
            if dtls._state == State.CONNECTED:
                break
            await asyncio.sleep(0.05)
        assert dtls._state == State.CONNECTED, "fast_sender: the loopback peer connection never connected"

        pair = dtls.transport._connection._nominated.get(1)
        assert pair is not None, "fast_sender: aioice no longer keeps the nominated pair under component 1"
        assert callable(getattr(pair.protocol.transport, "sendto", None)), (
            "fast_sender: CandidatePair.protocol.transport has no sendto()"
        )
        assert isinstance(pair.remote_addr, tuple), "fast_sender: CandidatePair.remote_addr is gone"
        assert callable(dtls._tx_srtp.protect) and callable(dtls._tx_srtp.protect_rtcp), (
            "fast_sender: RTCDtlsTransport._tx_srtp has no protect()/protect_rtcp()"
        )
        send_rtp = hooks.fast_sender(dtls)
        send_rtcp = hooks.fast_sender(dtls, rtcp=True)
        assert send_rtp is not None and send_rtcp is not None, "fast_sender: returned None on a connected transport"
        send_rtp(bytes([0x80, 111, 0, 1]) + bytes(4) + (1234).to_bytes(4, "big") + b"\xf8\xff\xfe")

        # An SR for a's SSRC, SRTCP-protected by fast_sender, must reach b's receiver.
        ssrc = a.getTransceivers()[0].sender._ssrc
        report = RtcpSrPacket(
            ssrc=ssrc,
            sender_info=RtcpSenderInfo(ntp_timestamp=1 << 32, rtp_timestamp=0, packet_count=4242, octet_count=1),
        )
        send_rtcp(bytes(report))
        receiver = b.getTransceivers()[0].receiver
        sent = None
        for _ in range(50):
            stats = [s for s in (await receiver.getStats()).values() if s.type == "remote-outbound-rtp"]
            if stats:
                sent = stats[0].packetsSent
                break
            await asyncio.sleep(0.02)
        assert sent == 4242, "fast_sender(rtcp=True): the protected SR did not reach the remote receiver"
    finally:
        await a.close()
        await b.close()


def test_aioice_still_has_the_names_the_ice_settings_change() -> None:
    assert callable(aioice.ice.get_host_addresses), "set_ice_host_addresses: aioice.ice.get_host_addresses is gone"
    assert list(inspect.signature(hooks._original_get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"], (
        "set_ice_host_addresses: aioice.ice.get_host_addresses(use_ipv4, use_ipv6) changed its signature"
    )
    assert isinstance(aioice.ice.CONSENT_INTERVAL, (int, float)), "set_ice_consent: aioice.ice.CONSENT_INTERVAL is gone"
    assert isinstance(aioice.ice.CONSENT_FAILURES, int), "set_ice_consent: aioice.ice.CONSENT_FAILURES is gone"
    gather = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses(" in gather, (
        "set_ice_host_addresses: aioice no longer looks up get_host_addresses() when gathering"
    )
    consent = inspect.getsource(aioice.ice.Connection.query_consent)
    assert "CONSENT_INTERVAL" in consent and "CONSENT_FAILURES" in consent, (
        "set_ice_consent: aioice's consent loop no longer reads CONSENT_INTERVAL/CONSENT_FAILURES"
    )


def test_set_ice_host_addresses_limits_gathering_and_empty_restores_aioice() -> None:
    hooks.set_ice_host_addresses(["127.0.0.1", "::1"])
    assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(False, True) == ["::1"]
    hooks.set_ice_host_addresses([])
    assert aioice.ice.get_host_addresses is hooks._original_get_host_addresses


def test_set_ice_consent_sets_aioice_timing() -> None:
    hooks.set_ice_consent(0.5, 2)
    assert (aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES) == (0.5, 2)


# --- codec counters ----------------------------------------------------------------------------
def test_aiortc_creates_codecs_through_the_counting_wrappers() -> None:
    assert aiortc.rtcrtpreceiver.get_decoder is hooks._counting_get_decoder, (
        "decoder counter: aiortc.rtcrtpreceiver.get_decoder is not the counting wrapper"
    )
    assert aiortc.rtcrtpsender.get_encoder is hooks._counting_get_encoder, (
        "encoder counter: aiortc.rtcrtpsender.get_encoder is not the counting wrapper"
    )
    assert "get_decoder(" in inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker), (
        "decoder counter: aiortc's decoder_worker no longer calls the module-level get_decoder()"
    )
    assert "get_encoder(" in inspect.getsource(RTCRtpSender._next_encoded_frame), (
        "encoder counter: RTCRtpSender._next_encoded_frame no longer calls the module-level get_encoder()"
    )


def test_the_counting_wrappers_count_each_codec_made() -> None:
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    before = dict(hooks.COUNTERS)
    decoder = aiortc.rtcrtpreceiver.get_decoder(vp8)
    encoder = aiortc.rtcrtpsender.get_encoder(vp8)
    assert type(decoder).__name__ == "Vp8Decoder" and type(encoder).__name__ == "Vp8Encoder"
    assert hooks.COUNTERS["decoders_created"] == before["decoders_created"] + 1, "decoder counter did not count"
    assert hooks.COUNTERS["encoders_created"] == before["encoders_created"] + 1, "encoder counter did not count"


async def test_publisher_sockets_get_the_enlarged_receive_buffer() -> None:
    """enlarge_receive_buffers reaches the ICE sockets through aioice's _protocols."""
    import socket

    from aiortc import RTCConfiguration, RTCPeerConnection

    from media.aiortc_hooks import enlarge_receive_buffers, set_ice_host_addresses

    set_ice_host_addresses(["127.0.0.1"])
    try:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        enlarge_receive_buffers(pc, 1 << 20)
        dtls = pc.getTransceivers()[0].receiver.transport
        sockets = [p.transport.get_extra_info("socket") for p in dtls.transport._connection._protocols]
        assert sockets, "aioice Connection._protocols no longer lists the candidate sockets"
        for sock in sockets:
            # Linux doubles the request (bookkeeping); capped by net.core.rmem_max
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 212992
        await pc.close()
    finally:
        set_ice_host_addresses([])


def test_rtp_routing_still_registers_only_media_ssrcs_through_the_patched_method() -> None:
    """The RTX-routing fix wraps RTCDtlsTransport._register_rtp_receiver and writes
    the router's ssrc_table; aiortc's route_rtp must still look SSRCs up there."""
    from aiortc.rtcdtlstransport import RtpRouter

    assert RTCDtlsTransport._register_rtp_receiver is hooks._register_rtp_receiver_with_rtx
    original = inspect.getsource(hooks._original_register_rtp_receiver)
    assert "encoding.ssrc" in original and "register_receiver" in original
    assert "self.ssrc_table.get(packet.ssrc)" in inspect.getsource(RtpRouter.route_rtp)
    router = RtpRouter()
    assert router.ssrc_table == {}
