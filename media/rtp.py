"""RTP wire helpers for forwarding: no I/O, no aiortc.

Everything here works on bytes and is called on the hot packet path, so it
avoids objects: the forwarder builds one header template per incoming packet
and patches the 11 bytes after the first (marker/payload type, sequence
number, timestamp, SSRC) per subscriber with one ``struct.pack_into``.
"""

from __future__ import annotations

import struct
import time

RTP_VERSION_BYTE = 0x80  # V=2, no padding, no extension, no CSRC
RTP_VERSION_BYTE_EXT = 0x90  # V=2, extension present

# The one-byte header extension profile (RFC 8285).
ONE_BYTE_PROFILE = 0xBEDE

# NTP epoch (1900) to Unix epoch (1970), seconds.
NTP_EPOCH_OFFSET = 2208988800

_HEADER_PATCH = struct.Struct("!BHII")  # bytes 1..11: M|PT, seq, timestamp, SSRC
_U16 = struct.Struct("!H")


def patch_header(buf: bytearray, marker_pt: int, seq: int, timestamp: int, ssrc: int) -> None:
    """Rewrite byte 1 (marker bit | payload type), seq, timestamp and SSRC in place."""
    _HEADER_PATCH.pack_into(buf, 1, marker_pt, seq, timestamp, ssrc)


def abs_send_time_now(now: float | None = None) -> int:
    """The 24-bit abs-send-time value (6.18 fixed point seconds) for ``now``."""
    if now is None:
        now = time.time()
    return int((now + NTP_EPOCH_OFFSET) * (1 << 18)) & 0xFFFFFF


def ntp_time(now: float) -> int:
    """64-bit NTP timestamp for a Unix time."""
    seconds = now + NTP_EPOCH_OFFSET
    # NTP era 0 ends in February 2036: wrap like every NTP implementation does.
    return ((int(seconds) & 0xFFFFFFFF) << 32) | int((seconds % 1) * (1 << 32))


def ntp_to_unix(ntp: int) -> float:
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def build_extension_block(elements: list[tuple[int, bytes]]) -> bytes:
    """A one-byte-profile header extension block (RFC 8285) with its 4-byte header.

    ``elements`` are ``(id, value)`` with 1 <= id <= 14 and 1..16 byte values.
    """
    body = bytearray()
    for ext_id, value in elements:
        if not 1 <= ext_id <= 14:
            raise ValueError(f"one-byte header extension id must be 1..14, got {ext_id}")
        if not 1 <= len(value) <= 16:
            raise ValueError(f"one-byte header extension value must be 1..16 bytes, got {len(value)}")
        body.append((ext_id << 4) | (len(value) - 1))
        body += value
    while len(body) % 4:
        body.append(0)
    return struct.pack("!HH", ONE_BYTE_PROFILE, len(body) // 4) + bytes(body)


class ExtensionLayout:
    """Which header extensions a subscriber negotiated, by id (0 = not negotiated).

    The forwarder writes only what a receiver uses: abs-send-time on video
    (receive-side bandwidth estimation, REMB) and the audio level on audio
    (active speaker). MID is left out: subscribers demultiplex by the SSRC
    that the server's offer announced.
    """

    __slots__ = ("abs_send_time", "audio_level", "key")

    def __init__(self, abs_send_time: int = 0, audio_level: int = 0) -> None:
        self.abs_send_time = abs_send_time
        self.audio_level = audio_level
        self.key = (abs_send_time, audio_level)

    def header_prefix(self, abs_send_time: int, audio_level: tuple[bool, int] | None) -> bytes:
        """The first 12 bytes (to be patched) plus the extension block."""
        elements: list[tuple[int, bytes]] = []
        if self.abs_send_time:
            elements.append((self.abs_send_time, abs_send_time.to_bytes(3, "big")))
        if self.audio_level and audio_level is not None:
            voice, level = audio_level
            elements.append((self.audio_level, bytes([(0x80 if voice else 0) | (level & 0x7F)])))
        if not elements:
            return bytes([RTP_VERSION_BYTE]) + bytes(11)
        return bytes([RTP_VERSION_BYTE_EXT]) + bytes(11) + build_extension_block(elements)


def seq_newer(a: int, b: int) -> bool:
    """True if 16-bit sequence number ``a`` comes after ``b`` (RFC 1982)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def _vp8_header_at(payload: bytes) -> int:
    """Where the VP8 payload header starts after the RFC 7741 payload
    descriptor, for a packet that starts partition 0 (S=1, PID 0); -1 otherwise
    (or if the packet is too short to tell)."""
    size = len(payload)
    if size < 1:
        return -1
    b0 = payload[0]
    if not (b0 & 0x10) or (b0 & 0x07):  # S bit, PID
        return -1
    pos = 1
    if b0 & 0x80:  # X: extended control bits
        if size < 2:
            return -1
        b1 = payload[1]
        pos = 2
        if b1 & 0x80:  # I: picture id
            if size <= pos:
                return -1
            pos += 2 if payload[pos] & 0x80 else 1
        if b1 & 0x40:  # L: TL0PICIDX
            pos += 1
        if b1 & 0x30:  # T or K: TID/KEYIDX byte
            pos += 1
    return pos if pos < size else -1


def vp8_is_keyframe(payload: bytes) -> bool:
    """True if ``payload`` (an RTP VP8 payload, RFC 7741) starts a key frame.

    A key frame starts in the packet whose payload descriptor has S=1 and
    partition index 0, and whose VP8 payload header has the inverse key frame
    flag P cleared.
    """
    pos = _vp8_header_at(payload)
    return pos >= 0 and (payload[pos] & 0x01) == 0


def vp8_frame_info(payload: bytes) -> tuple[bool, bool, tuple[int, int] | None]:
    """(starts a frame, is a key frame, (width, height) of a key frame) of an
    RTP VP8 payload; the size comes from the key frame header (RFC 6386 9.1)."""
    pos = _vp8_header_at(payload)
    if pos < 0:
        return bool(payload) and bool(payload[0] & 0x10) and not (payload[0] & 0x07), False, None
    if payload[pos] & 0x01:
        return True, False, None
    body = payload[pos + 3 : pos + 10]
    size = None
    if len(body) >= 7 and body[:3] == b"\x9d\x01\x2a":
        size = (int.from_bytes(body[3:5], "little") & 0x3FFF, int.from_bytes(body[5:7], "little") & 0x3FFF)
    return True, True, size


_H264_KEY_NALS = (5, 7)  # IDR slice, SPS


def h264_is_keyframe(payload: bytes) -> bool:
    """True if ``payload`` (RFC 6184, packetization mode 0 or 1) starts an IDR/SPS."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in _H264_KEY_NALS:
        return True
    if nal_type == 24:  # STAP-A: 16-bit size before each NAL unit
        pos = 1
        while pos + 2 < len(payload):
            (nalu_size,) = _U16.unpack_from(payload, pos)
            pos += 2
            if nalu_size == 0 or pos >= len(payload):
                return False
            if payload[pos] & 0x1F in _H264_KEY_NALS:
                return True
            pos += nalu_size
        return False
    if nal_type == 28:  # FU-A: start bit and original type in the FU header
        return len(payload) > 1 and bool(payload[1] & 0x80) and (payload[1] & 0x1F) in _H264_KEY_NALS
    return False


def keyframe_detector(mime_type: str):  # type: ignore[no-untyped-def]
    """The keyframe test for a codec, or ``None`` for audio (every packet is usable)."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        return vp8_is_keyframe
    if mime == "video/h264":
        return h264_is_keyframe
    if mime.startswith("video/"):
        raise ValueError(f"cannot forward {mime_type}: no keyframe detection for it")
    return None
