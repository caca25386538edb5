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


# --- courseware -----------------------------------------------------------------------
_SLIDE_BACKGROUNDS = ((250, 250, 247), (244, 247, 252), (252, 248, 240), (246, 250, 246))
_SLIDE_ACCENTS = ((40, 90, 170), (170, 60, 50), (40, 130, 80), (130, 70, 150))


def slide_image(width: int, height: int, index: int, progress: float = 0.0) -> np.ndarray:
    """An RGB lecture slide: a title bar, bullet lines of text and a chart or
    diagram on a light background, different for each ``index``; the only
    thing that moves within a slide is a small red pointer dot (the teacher
    pointing along the bullets, ``progress`` 0..1 through the slide), so it is
    static but for a few macroblocks between slide changes, like real
    courseware."""
    rng = np.random.default_rng(1000 + index)
    s = height / 720
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = _SLIDE_BACKGROUNDS[index % len(_SLIDE_BACKGROUNDS)]
    accent = _SLIDE_ACCENTS[index % len(_SLIDE_ACCENTS)]
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.rectangle(img, (0, 0), (width, int(90 * s)), accent, -1)
    cv2.putText(img, f"Lesson 3.{index + 1}: " + ("Fractions", "Photosynthesis", "Triangles", "Water cycle")[index % 4],
                (int(40 * s), int(62 * s)), font, 1.5 * s, (255, 255, 255), max(1, int(3 * s)), cv2.LINE_AA)
    words = ("the", "area", "of", "each", "part", "equals", "light", "energy", "sum", "angle", "rain",
             "numerator", "denominator", "leaf", "side", "cloud", "measure", "compare", "half", "quarter")
    lines = []
    for i in range(int(rng.integers(4, 7))):
        text = " ".join(words[int(k)] for k in rng.integers(0, len(words), int(rng.integers(4, 8))))
        y = int((150 + i * 70) * s)
        lines.append((int(70 * s), y))
        cv2.circle(img, (int(50 * s), y - int(10 * s)), max(2, int(7 * s)), accent, -1, cv2.LINE_AA)
        cv2.putText(img, text.capitalize(), (int(70 * s), y), font, 0.95 * s, (30, 30, 30), max(1, int(2 * s)), cv2.LINE_AA)
    left, top, right, bottom = int(width * 0.62), int(140 * s), width - int(50 * s), height - int(90 * s)
    if index % 2 == 0:  # a bar chart with axes
        cv2.line(img, (left, bottom), (right, bottom), (60, 60, 60), max(1, int(2 * s)))
        cv2.line(img, (left, top), (left, bottom), (60, 60, 60), max(1, int(2 * s)))
        bars = int(rng.integers(4, 7))
        step = (right - left) // (bars + 1)
        for b in range(bars):
            h = int((bottom - top) * float(rng.uniform(0.2, 0.95)))
            x = left + step // 2 + b * step
            colour = tuple(int(c) for c in rng.integers(60, 200, 3))
            cv2.rectangle(img, (x, bottom - h), (x + int(step * 0.7), bottom), colour, -1)
            cv2.putText(img, str(int(rng.integers(1, 99))), (x, bottom - h - int(8 * s)), font, 0.6 * s,
                        (40, 40, 40), 1, cv2.LINE_AA)
    else:  # a diagram: shapes joined by arrows
        cx, cy = (left + right) // 2, (top + bottom) // 2
        r = min(right - left, bottom - top) // 3
        cv2.circle(img, (cx, cy), r, accent, max(2, int(4 * s)), cv2.LINE_AA)
        pts = np.array([[cx, cy - r], [cx - r, cy + r // 2], [cx + r, cy + r // 2]], dtype=np.int32)
        cv2.polylines(img, [pts], True, (200, 120, 30), max(2, int(3 * s)), cv2.LINE_AA)
        for x, y in pts:
            cv2.rectangle(img, (int(x) - int(45 * s), int(y) - int(18 * s)), (int(x) + int(45 * s), int(y) + int(18 * s)),
                          (255, 255, 255), -1)
            cv2.putText(img, words[int(rng.integers(0, len(words)))], (int(x) - int(40 * s), int(y) + int(7 * s)),
                        font, 0.55 * s, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.putText(img, f"{index + 1}", (width - int(60 * s), height - int(25 * s)), font, 0.8 * s, (120, 120, 120), 1,
                cv2.LINE_AA)
    # the pointer: moves along the bullet lines through the slide
    position = min(max(progress, 0.0), 1.0) * (len(lines) - 1)
    (x0, y0), (x1, y1) = lines[int(position)], lines[min(int(position) + 1, len(lines) - 1)]
    f = position - int(position)
    px, py = int(x0 + 300 * s * f + (x1 - x0) * f), int(y0 + (y1 - y0) * f) - int(10 * s)
    cv2.circle(img, (px, py), max(3, int(9 * s)), (220, 30, 30), -1, cv2.LINE_AA)
    return img
