"""Writing small test media with PyAV, and reading back what was encoded in them.

Every video frame is two flat colours that encode the frame's index (each
colour three base-8 digits, one per RGB channel, 32 levels apart, so
H.264/yuv420p rounding of a few levels cannot flip a digit). Audio is a phase-continuous sine whose pitch
follows a schedule [(start_s, hz), ...], so the decoded pitch changes can be
located in time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SR = 16_000  # the decoder's output rate
LEVELS = 16 + 32 * np.arange(8)  # digit d -> channel value 16 + 32 d
CODES = 8**3  # colours: three base-8 digits, one per channel
MAX_INDEX = CODES**2  # the left half of a frame carries index // CODES, the right half index % CODES


def colour_of(code: int) -> np.ndarray:
    """RGB (uint8) of a code < 512: base-8 digits in R (units), G (eights), B (64s)."""
    if not 0 <= code < CODES:
        raise ValueError(f"colour code {code} out of range")
    return LEVELS[[code % 8, (code // 8) % 8, code // 64]].astype(np.uint8)


def code_of(pixels: np.ndarray) -> int:
    """The code whose colour is nearest to the mean colour of (..., 3) pixels."""
    rgb = pixels.reshape(-1, 3).mean(axis=0)
    digits = np.clip(np.round((rgb - 16) / 32), 0, 7).astype(int)
    return int(digits[0] + 8 * digits[1] + 64 * digits[2])


def frame_image(index: int, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 frame for frame `index`: two flat halves (W a multiple of 32 keeps them on macroblocks)."""
    if not 0 <= index < MAX_INDEX:
        raise ValueError(f"frame index {index} does not fit in the colour code")
    image = np.empty((height, width, 3), np.uint8)
    image[:, : width // 2] = colour_of(index // CODES)
    image[:, width // 2:] = colour_of(index % CODES)
    return image


def _halves(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inner parts of the two halves (a margin away from the edge where chroma bleeds)."""
    h, w = frame.shape[:2]
    mh, mw = h // 4, w // 8
    return frame[mh:h - mh, mw:w // 2 - mw], frame[mh:h - mh, w // 2 + mw:w - mw]


def index_of(frame: np.ndarray) -> int:
    """The frame index a decoded (H, W, 3) frame encodes."""
    left, right = _halves(frame)
    return code_of(left) * CODES + code_of(right)


def colour_error(frame: np.ndarray, index: int) -> float:
    """Largest per-channel distance between the halves' mean colours and the colours of `index`."""
    left, right = _halves(frame)
    return float(max(
        np.abs(left.reshape(-1, 3).mean(axis=0) - colour_of(index // CODES)).max(),
        np.abs(right.reshape(-1, 3).mean(axis=0) - colour_of(index % CODES)).max(),
    ))


def tone(schedule: list[tuple[float, float]], seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """Phase-continuous sine: schedule[k] = (start, hz) holds from its start to the next one."""
    t = np.arange(int(round(seconds * rate))) / rate
    hz = np.zeros_like(t)
    for start, f in schedule:
        hz[t >= start] = f
    phase = 2 * np.pi * np.cumsum(hz) / rate
    return (amplitude * np.sin(phase)).astype(np.float32)


@dataclass
class Clip:
    """A written test file and what was put in it."""

    path: Path
    fps: float = 0.0  # nominal frame rate (0 for audio-only / images)
    frame_times: np.ndarray = field(default_factory=lambda: np.zeros(0))  # true pts (s) of every frame
    duration: float = 0.0
    schedule: list[tuple[float, float]] = field(default_factory=list)  # tone pitch schedule, if any
    amplitude: float = 0.5

    @property
    def num_frames(self) -> int:
        return len(self.frame_times)

    @property
    def changes(self) -> list[float]:
        return [start for start, _ in self.schedule[1:]]


def write_video(
    path: Path,
    num_frames: int,
    fps: int | Fraction,
    size: tuple[int, int] = (64, 48),
    pts: list[int] | None = None,
    audio: list[tuple[float, float]] | None = None,
    audio_seconds: float | None = None,
    audio_rate: int = 44_100,
    audio_layout: str = "stereo",
    codec: str = "libx264",
    container_format: str = "mp4",
    options: dict[str, str] | None = None,
    ticks_per_frame: int = 1,
    last_frame_ticks: int | None = None,
    audio_codec: str = "aac",
) -> Clip:
    """Colour-coded frames (pts in ticks of 1 / (fps * ticks_per_frame), default one frame apart)
    and an optional tone track.

    The audio is interleaved with the video, a video frame's worth at a time, like a real muxer sees it.
    `last_frame_ticks` gives the last frame another duration (mp4 then reports another average rate).
    """
    tick_rate = Fraction(fps) * ticks_per_frame  # ticks per second
    pts = [i * ticks_per_frame for i in range(num_frames)] if pts is None else list(pts)
    assert len(pts) == num_frames
    width, height = size
    video_end = float((pts[-1] + ticks_per_frame) / tick_rate) if pts else 0.0
    audio_seconds = video_end if audio_seconds is None else audio_seconds
    with av.open(str(path), "w", format=container_format, options=options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        if ticks_per_frame != 1:
            stream.codec_context.time_base = stream.time_base = 1 / tick_rate
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "16"}
        else:
            stream.bit_rate = 2_000_000
        sound = samples = None
        if audio is not None:
            sound = out.add_stream(audio_codec, rate=audio_rate, layout=audio_layout)
            samples = tone(audio, audio_seconds, audio_rate)
            channels = 2 if audio_layout == "stereo" else 1
            samples = np.tile(samples, (channels, 1))
        written = 0  # audio samples written so far

        def write_audio_until(seconds: float) -> None:
            nonlocal written
            end = min(samples.shape[1], int(round(seconds * audio_rate)))
            if end <= written:
                return
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, written:end]), format="fltp", layout=audio_layout
            )
            frame.sample_rate, frame.pts = audio_rate, written
            for packet in sound.encode(frame):
                out.mux(packet)
            written = end

        def mux_video(packets) -> None:
            for packet in packets:
                if last_frame_ticks is not None and packet.pts == pts[-1]:
                    packet.duration = last_frame_ticks
                out.mux(packet)

        if not pts:
            out.start_encoding()
        for index, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(frame_image(index, height, width), format="rgb24")
            frame.pts = p
            if ticks_per_frame != 1:
                frame.time_base = 1 / tick_rate
            mux_video(stream.encode(frame))
            if sound is not None:
                write_audio_until(float((p + ticks_per_frame) / tick_rate))
        mux_video(stream.encode(None))
        if sound is not None:
            write_audio_until(audio_seconds)
            for packet in sound.encode(None):
                out.mux(packet)
    return Clip(path, float(fps), np.asarray(pts, dtype=float) / float(tick_rate), video_end, list(audio or []))


def write_audio(
    path: Path,
    schedule: list[tuple[float, float]],
    seconds: float,
    rate: int,
    layout: str = "mono",
    codec: str = "aac",
    container_format: str | None = None,
    options: dict[str, str] | None = None,
) -> Clip:
    """An audio-only file (AAC in .m4a, or PCM in .wav) with a tone of the given schedule."""
    channels = 2 if layout == "stereo" else 1
    samples = np.tile(tone(schedule, seconds, rate), (channels, 1))
    pcm = codec.startswith("pcm_s16")
    with av.open(str(path), "w", format=container_format, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if pcm:  # s16 packed: one row of interleaved samples
            data = np.round(samples.T.reshape(1, -1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        else:
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return Clip(path, duration=seconds, schedule=list(schedule))


def dominant(audio: np.ndarray, freqs: list[float], window: float = 0.02, hop: float = 0.005):
    """Window centres (s) and, per window, the index into `freqs` of the strongest of those tones."""
    n, step = int(window * SR), int(hop * SR)
    t = np.arange(n) / SR
    basis = np.exp(-2j * np.pi * np.outer(freqs, t)) * np.hanning(n)
    windows = np.lib.stride_tricks.sliding_window_view(audio, n)[::step]
    power = np.abs(windows @ basis.T) ** 2
    centres = np.arange(len(windows)) * hop + window / 2
    return centres, power.argmax(axis=1)


def pitch_changes(audio: np.ndarray, freqs: list[float]) -> list[float]:
    """Times (s) where the dominant one of `freqs` switches (midpoint between the windows)."""
    centres, best = dominant(audio, freqs)
    switch = np.flatnonzero(np.diff(best)) + 1
    return [float((centres[i - 1] + centres[i]) / 2) for i in switch]


def peak_frequency(audio: np.ndarray, start: float, end: float) -> float:
    """The strongest frequency (Hz) of audio[start:end] by FFT (Hann window, parabolic peak)."""
    piece = audio[int(start * SR):int(end * SR)]
    spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece))))
    k = int(spectrum[1:].argmax()) + 1
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return float((k + shift) * SR / len(piece))
