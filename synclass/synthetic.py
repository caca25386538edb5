"""Synthetic media for the demo, the benchmarks and the tests.

A moving test pattern with a running clock (so a person looking at the demo
sees it is live) and a tone. These run on the *client* side: they encode,
the server never does.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time

import cv2
import numpy as np
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_PTIME = 0.020


class TestPatternTrack(MediaStreamTrack):
    """Colour bars that scroll, a moving square and the wall-clock time."""

    kind = "video"
    __test__ = False  # not a pytest test class despite its name

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30, label: str = "synclass") -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.fps = fps
        self.label = label
        self._start: float | None = None
        self._count = 0
        bars = np.array(
            [[192, 192, 192], [0, 192, 192], [192, 192, 0], [0, 192, 0], [192, 0, 192], [0, 0, 192], [192, 0, 0]],
            dtype=np.uint8,
        )
        idx = (np.arange(width * 2) * len(bars) // width) % len(bars)
        self._bars = np.ascontiguousarray(np.broadcast_to(bars[idx][None, :, :], (height, width * 2, 3)))

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.time()
        target = self._start + self._count / self.fps
        delay = target - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        n = self._count
        self._count += 1
        shift = (n * 4) % self.width
        img = self._bars[:, shift : shift + self.width].copy()
        size = max(16, self.height // 8)
        x = int((self.width - size) * (0.5 + 0.5 * math.sin(n / 20)))
        y = int((self.height - size) * (0.5 + 0.5 * math.cos(n / 27)))
        img[y : y + size, x : x + size] = 255
        stamp = time.strftime("%H:%M:%S") + f".{int((time.time() % 1) * 10)}"
        scale = self.height / 240
        cv2.putText(img, stamp, (10, int(40 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, int(2 * scale)))
        cv2.putText(img, self.label, (10, self.height - 12), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.6, (255, 255, 255), 1)
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = int(n * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone, beeping once a second, 20 ms frames of 48 kHz mono."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self._start: float | None = None
        self._samples = 0
        self._per_frame = int(AUDIO_RATE * AUDIO_PTIME)

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.time()
        target = self._start + self._samples / AUDIO_RATE
        delay = target - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (self._samples + np.arange(self._per_frame)) / AUDIO_RATE
        envelope = ((t % 1.0) < 0.25).astype(np.float64)
        samples = (np.sin(2 * np.pi * self.frequency * t) * envelope * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += self._per_frame
        return frame
