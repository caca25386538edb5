"""media/rtp.py: keyframe detection on captured packets, header bytes, clocks.

The VP8 and H.264 fixtures are the first 24 bytes of RTP payloads captured
once from aiortc 1.16.0's own encoders (``Vp8Encoder`` / ``H264Encoder``)
encoding 640x480 frames: frame 0 forced to a keyframe, frame 1 a delta
frame. They are kept as bytes so the tests check what real encoders send,
not what a re-encode on another libvpx/x264 would produce.
"""

from __future__ import annotations

import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media.rtp import (
    ExtensionLayout,
    abs_send_time_now,
    build_extension_block,
    h264_is_keyframe,
    keyframe_detector,
    ntp_time,
    ntp_to_unix,
    patch_header,
    seq_newer,
    vp8_frame_info,
    vp8_is_keyframe,
)

# --- captured from aiortc.codecs.vpx.Vp8Encoder (640x480) ----------------------------
# X=1 I=1, 15-bit picture id 0x0c45, S=1 PID=0, then P=0 and the 9d 01 2a start code
VP8_KEYFRAME_FIRST = bytes.fromhex("90808c45d08a019d012a8002e001393f00141c2216162266")
# same picture, second packet: S=0
VP8_KEYFRAME_LATER = bytes.fromhex("80808c456f8534ab9610ca717df39ce477b206505008b420")
# next picture (id 0x0c46), first packet: S=1 but P=1
VP8_DELTA_FIRST = bytes.fromhex("90808c46f19900e4e0a84fa612c07a886bdc33ffc34f5fed")
VP8_DELTA_LATER = bytes.fromhex("80808c4653e578f66d06d86b99c12325b5d155561c534022")

# --- captured from aiortc.codecs.h264.H264Encoder (640x480) ----------------------------
# STAP-A (type 24) whose first NAL unit (23 bytes) is the SPS (type 7)
H264_KEYFRAME_STAP_A = bytes.fromhex("7800176742c01fd900a03da10000030001000003003c8f18")
# FU-A (type 28), FU header S=1, type 5 (IDR slice)
H264_IDR_FU_A_START = bytes.fromhex("7c85888418ff7df2c479620000da8993a228166134c762f0")
# FU-A, FU header S=0, type 5: middle of the IDR slice
H264_IDR_FU_A_LATER = bytes.fromhex("7c054570affd54604211e9340f411c12c07cbccf22c50d5c")
# FU-A, S=1, type 1 (non-IDR slice): a delta frame
H264_DELTA_FU_A_START = bytes.fromhex("5c8188882cf1183a000202f83b89f5e3e7c2f6311f3fe373")
H264_DELTA_FU_A_LATER = bytes.fromhex("5c0147afd2ffe2495b4a4c2249bebfff0993b3fffda18218")
# single NAL unit packet, type 1 (non-IDR slice) — a small delta frame at 320x240
H264_DELTA_SINGLE_NAL = bytes.fromhex("419a38085f84020a8e0002005cf5470001002ee0a24c2664")


def test_vp8_keyframe_fixture_is_a_real_keyframe_of_640x480() -> None:
    # Guards the fixture itself: after the 4-byte descriptor and the 3-byte
    # frame tag come the start code and the 14-bit width and height.
    assert VP8_KEYFRAME_FIRST[7:10] == b"\x9d\x01\x2a"
    width, height = struct.unpack_from("<HH", VP8_KEYFRAME_FIRST, 10)
    assert (width & 0x3FFF, height & 0x3FFF) == (640, 480)


@pytest.mark.parametrize(
    "payload, expected",
    [
        pytest.param(VP8_KEYFRAME_FIRST, True, id="captured keyframe, first packet"),
        pytest.param(VP8_KEYFRAME_LATER, False, id="captured keyframe, later packet"),
        pytest.param(VP8_DELTA_FIRST, False, id="captured delta frame, first packet"),
        pytest.param(VP8_DELTA_LATER, False, id="captured delta frame, later packet"),
    ],
)
def test_vp8_is_keyframe_on_captured_packets(payload: bytes, expected: bool) -> None:
    assert vp8_is_keyframe(payload) is expected


# Descriptors built by hand from RFC 7741 section 4.2:
#   byte 0: X R N S R PID(3); if X: I L T K RSV(4); if I: M + 7 or 15 bit picture id;
#   if L: TL0PICIDX; if T or K: TID(2) Y KEYIDX(5); then the VP8 payload header,
#   whose lowest bit P is 0 on a key frame.
# The bytes that the parser must skip are chosen odd, so skipping one byte too
# few or too many lands on a byte with P=1 and fails the test.
@pytest.mark.parametrize(
    "payload, expected",
    [
        pytest.param(b"\x10\x00", True, id="no X, S=1, P=0"),
        pytest.param(b"\x10\x01", False, id="no X, S=1, P=1"),
        pytest.param(b"\x30\x00", True, id="N bit set does not matter"),
        pytest.param(b"\x00\x00", False, id="S=0 continues a frame"),
        pytest.param(b"\x11\x00", False, id="S=1 but partition 1"),
        pytest.param(b"\x14\x00", False, id="S=1 but partition 4"),
        pytest.param(b"\x90\x00\x00", True, id="X with no optional fields"),
        pytest.param(b"\x90\x80\x05\x00\x01", True, id="I with 7-bit picture id"),
        pytest.param(b"\x90\x80\x05\x01\x00", False, id="I with 7-bit picture id, P=1"),
        pytest.param(b"\x90\x80\x81\x23\x00", True, id="I with 15-bit picture id"),
        pytest.param(b"\x90\x80\x81\x23\x01", False, id="I with 15-bit picture id, P=1"),
        pytest.param(b"\x90\x40\x07\x00", True, id="L: TL0PICIDX"),
        pytest.param(b"\x90\x20\x41\x00", True, id="T: TID byte"),
        pytest.param(b"\x90\x10\x03\x00", True, id="K: KEYIDX byte"),
        pytest.param(b"\x90\x30\x43\x00", True, id="T and K share one byte"),
        pytest.param(b"\x90\xf0\x81\x23\x45\x67\x00", True, id="I(15) L T K"),
        pytest.param(b"\x90\xf0\x81\x23\x45\x67\x01", False, id="I(15) L T K, P=1"),
        pytest.param(b"\x90\xf0\x05\x45\x67\x00\x01", True, id="I(7) L T K"),
        pytest.param(b"\x80\x80\x05\x00", False, id="X I but S=0"),
    ],
)
def test_vp8_is_keyframe_reads_every_descriptor_variant(payload: bytes, expected: bool) -> None:
    assert vp8_is_keyframe(payload) is expected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x10", id="descriptor only"),
        pytest.param(b"\x90", id="X without its byte"),
        pytest.param(b"\x90\x80", id="I without picture id"),
        pytest.param(b"\x90\x80\x81", id="15-bit picture id cut in half"),
        pytest.param(b"\x90\x80\x81\x23", id="no payload header after 15-bit id"),
        pytest.param(b"\x90\x80\x05", id="no payload header after 7-bit id"),
        pytest.param(b"\x90\x40", id="L without TL0PICIDX"),
        pytest.param(b"\x90\xf0\x81\x23\x45\x67", id="all fields, no payload header"),
        pytest.param(VP8_KEYFRAME_FIRST[:4], id="captured keyframe cut after descriptor"),
    ],
)
def test_vp8_is_keyframe_is_false_on_truncated_payloads(payload: bytes) -> None:
    assert vp8_is_keyframe(payload) is False


@pytest.mark.parametrize(
    "payload, expected",
    [
        pytest.param(H264_KEYFRAME_STAP_A, True, id="captured STAP-A with SPS"),
        pytest.param(H264_IDR_FU_A_START, True, id="captured FU-A start of IDR"),
        pytest.param(H264_IDR_FU_A_LATER, False, id="captured FU-A middle of IDR"),
        pytest.param(H264_DELTA_FU_A_START, False, id="captured FU-A start of non-IDR"),
        pytest.param(H264_DELTA_FU_A_LATER, False, id="captured FU-A middle of non-IDR"),
        pytest.param(H264_DELTA_SINGLE_NAL, False, id="captured single NAL non-IDR"),
    ],
)
def test_h264_is_keyframe_on_captured_packets(payload: bytes, expected: bool) -> None:
    assert h264_is_keyframe(payload) is expected


# RFC 6184: NAL header F(1) NRI(2) type(5); STAP-A = type 24 then (16-bit size,
# NAL unit)*; FU-A = type 28 then the FU header S E R type(5).
@pytest.mark.parametrize(
    "payload, expected",
    [
        pytest.param(b"\x65\x88\x84", True, id="single NAL IDR"),
        pytest.param(b"\x25\x88", True, id="single NAL IDR with NRI 1"),
        pytest.param(b"\x67\x42\xc0", True, id="single NAL SPS"),
        pytest.param(b"\x68\xce", False, id="single NAL PPS"),
        pytest.param(b"\x06\x05", False, id="single NAL SEI"),
        pytest.param(b"\x41\x9a", False, id="single NAL non-IDR slice"),
        pytest.param(b"\x78\x00\x02\x67\x42\x00\x01\x68", True, id="STAP-A: SPS first"),
        pytest.param(b"\x78\x00\x01\x06\x00\x02\x65\x88", True, id="STAP-A: SEI then IDR"),
        pytest.param(b"\x78\x00\x01\x06\x00\x01\x68", False, id="STAP-A: SEI and PPS only"),
        pytest.param(b"\x78\x00\x00\x67", False, id="STAP-A with a zero size"),
        pytest.param(b"\x7c\x85\x88", True, id="FU-A start of IDR"),
        pytest.param(b"\x7c\x05\x88", False, id="FU-A middle of IDR"),
        pytest.param(b"\x7c\x45\x88", False, id="FU-A end of IDR"),
        pytest.param(b"\x7c\x81\x9a", False, id="FU-A start of non-IDR"),
    ],
)
def test_h264_is_keyframe_reads_single_nal_stap_a_and_fu_a(payload: bytes, expected: bool) -> None:
    assert h264_is_keyframe(payload) is expected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x78", id="STAP-A header only"),
        pytest.param(b"\x78\x00", id="STAP-A with half a size"),
        pytest.param(b"\x78\x00\x05", id="STAP-A size with no NAL unit"),
        pytest.param(b"\x7c", id="FU-A indicator only"),
        pytest.param(H264_KEYFRAME_STAP_A[:3], id="captured STAP-A cut before the SPS"),
    ],
)
def test_h264_is_keyframe_is_false_on_truncated_payloads(payload: bytes) -> None:
    assert h264_is_keyframe(payload) is False


@pytest.mark.parametrize(
    "mime_type, expected",
    [
        ("video/VP8", vp8_is_keyframe),
        ("video/vp8", vp8_is_keyframe),
        ("video/H264", h264_is_keyframe),
        ("audio/opus", None),
    ],
)
def test_keyframe_detector_picks_the_codec_test(mime_type: str, expected: object) -> None:
    assert keyframe_detector(mime_type) is expected


@pytest.mark.parametrize("mime_type", ["video/VP9", "video/AV1"])
def test_keyframe_detector_refuses_video_it_cannot_detect(mime_type: str) -> None:
    with pytest.raises(ValueError) as info:
        keyframe_detector(mime_type)
    assert str(info.value) == f"cannot forward {mime_type}: no keyframe detection for it"


# --- header extensions ------------------------------------------------------------------
@pytest.mark.parametrize(
    "elements, expected_hex",
    [
        pytest.param([(3, b"\x12\x34\x56")], "bede0001" "32123456", id="abs-send-time, no padding"),
        pytest.param([(1, b"\x85")], "bede0001" "10850000", id="audio level, padded"),
        pytest.param(
            [(3, b"\x12\x34\x56"), (1, b"\x85")], "bede0002" "32123456" "10850000", id="two elements"
        ),
        pytest.param([(14, bytes(range(16)))], "bede0005" "ef" + bytes(range(16)).hex() + "000000", id="id 14, 16 bytes"),
        pytest.param([], "bede0000", id="empty"),
    ],
)
def test_build_extension_block_writes_exact_bytes(elements: list[tuple[int, bytes]], expected_hex: str) -> None:
    assert build_extension_block(elements).hex() == expected_hex


@pytest.mark.parametrize(
    "elements, message",
    [
        ([(0, b"\x00")], "one-byte header extension id must be 1..14, got 0"),
        ([(15, b"\x00")], "one-byte header extension id must be 1..14, got 15"),
        ([(1, b"")], "one-byte header extension value must be 1..16 bytes, got 0"),
        ([(1, bytes(17))], "one-byte header extension value must be 1..16 bytes, got 17"),
        ([(1, b"\x01"), (2, bytes(17))], "one-byte header extension value must be 1..16 bytes, got 17"),
    ],
)
def test_build_extension_block_refuses_bad_elements(elements: list[tuple[int, bytes]], message: str) -> None:
    with pytest.raises(ValueError) as info:
        build_extension_block(elements)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "layout, abs_time, audio_level, expected_hex",
    [
        pytest.param(
            ExtensionLayout(abs_send_time=3), 0x123456, None, "90" + "00" * 11 + "bede0001" "32123456", id="video"
        ),
        pytest.param(
            ExtensionLayout(abs_send_time=3), 0x123456, (True, 5), "90" + "00" * 11 + "bede0001" "32123456",
            id="video ignores the audio level",
        ),
        pytest.param(
            ExtensionLayout(audio_level=1), 0x123456, (True, 0x85), "90" + "00" * 11 + "bede0001" "10850000",
            id="audio, voice, level masked to 7 bits",
        ),
        pytest.param(
            ExtensionLayout(audio_level=1), 0x123456, (False, 127), "90" + "00" * 11 + "bede0001" "107f0000",
            id="audio, no voice",
        ),
        pytest.param(
            ExtensionLayout(audio_level=1), 0x123456, None, "80" + "00" * 11, id="audio packet without a level"
        ),
        pytest.param(
            ExtensionLayout(abs_send_time=2, audio_level=4), 0xABCDEF, (True, 1),
            "90" + "00" * 11 + "bede0002" "22abcdef" "40810000", id="both",
        ),
        pytest.param(ExtensionLayout(), 0x123456, (True, 5), "80" + "00" * 11, id="none negotiated"),
    ],
)
def test_header_prefix_writes_exact_bytes(
    layout: ExtensionLayout, abs_time: int, audio_level: tuple[bool, int] | None, expected_hex: str
) -> None:
    assert layout.header_prefix(abs_time, audio_level).hex() == expected_hex


def test_patch_header_writes_exactly_bytes_1_to_11() -> None:
    buf = bytearray(range(100, 120))
    patch_header(buf, 0x80 | 96, 0x1234, 0xDEADBEEF, 0x01020304)
    assert bytes(buf) == bytes([100, 0xE0, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4]) + bytes(range(112, 120))


def test_a_patched_prefix_parses_in_aiortc_with_the_written_fields() -> None:
    abs_send_time_uri = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=3, uri=abs_send_time_uri)])
    )
    buf = bytearray(ExtensionLayout(abs_send_time=3).header_prefix(0x123456, None)) + VP8_KEYFRAME_FIRST
    patch_header(buf, 0x80 | 96, 65535, 0xFFFFFFFF, 0xCAFEBABE)

    packet = RtpPacket.parse(bytes(buf), extensions)

    assert (packet.marker, packet.payload_type, packet.sequence_number) == (1, 96, 65535)
    assert (packet.timestamp, packet.ssrc) == (0xFFFFFFFF, 0xCAFEBABE)
    assert packet.extensions.abs_send_time == 0x123456
    assert packet.payload == VP8_KEYFRAME_FIRST


# --- sequence numbers and clocks ---------------------------------------------------------
@pytest.mark.parametrize(
    "a, b, expected",
    [
        (1, 0, True),
        (0, 1, False),
        (5, 5, False),
        (0, 0xFFFF, True),  # wraparound
        (0xFFFF, 0, False),
        (100, 0xFFF0, True),  # wraparound by 116
        (0xFFF0, 100, False),
        (0x7FFF, 0, True),  # just under half the space
        (0x8000, 0, False),  # exactly half: not newer either way
        (0, 0x8000, False),
        (0x8001, 1, False),
    ],
)
def test_seq_newer(a: int, b: int, expected: bool) -> None:
    assert seq_newer(a, b) is expected


@pytest.mark.parametrize(
    "unix, expected",
    [
        (0.0, 2208988800 << 32),
        (1.5, (2208988801 << 32) | 0x80000000),
        (1700000000.25, ((1700000000 + 2208988800) << 32) | 0x40000000),
    ],
)
def test_ntp_time_is_seconds_since_1900_in_32_32_fixed_point(unix: float, expected: int) -> None:
    assert ntp_time(unix) == expected


@pytest.mark.parametrize("unix", [0.0, 1.5, 1700000000.123456, 1893456000.999999])
def test_ntp_to_unix_undoes_ntp_time(unix: float) -> None:
    assert ntp_to_unix(ntp_time(unix)) == pytest.approx(unix, abs=1e-6)


@pytest.mark.parametrize(
    "unix, expected",
    [
        (0.0, 0x000000),  # 2208988800 is a multiple of 64
        (1.5, 0x060000),
        (63.75, 0xFF0000),
        (64.0, 0x000000),  # 6 bits of seconds wrap every 64 s
        (1700000037.25, 0x950000),
        (1700000000.1, 0x006666),
    ],
)
def test_abs_send_time_now_is_6_18_fixed_point_ntp_seconds(unix: float, expected: int) -> None:
    assert abs_send_time_now(unix) == expected


def test_vp8_frame_info_reads_the_key_frame_size_and_frame_starts() -> None:
    # descriptor X=1 S=1 PID 0, I=1 with a 15-bit picture id; then a key frame
    # header: 3-byte frame tag (P=0), start code, 320 x 180
    head = bytes([0x90, 0x80, 0x81, 0x23])
    key = head + bytes([0x10, 0x02, 0x00]) + b"\x9d\x01\x2a" + (320).to_bytes(2, "little") + (180).to_bytes(2, "little")
    assert vp8_frame_info(key) == (True, True, (320, 180))
    assert vp8_is_keyframe(key)
    delta = head + bytes([0x11, 0x02, 0x00])  # P=1: inter frame
    assert vp8_frame_info(delta) == (True, False, None)
    middle = bytes([0x80, 0x80, 0x81, 0x23, 0x55])  # S=0: a continuation packet
    assert vp8_frame_info(middle) == (False, False, None)
    assert not vp8_is_keyframe(middle)
