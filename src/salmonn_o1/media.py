"""Decoding with PyAV: frames at 2 fps, audio as 16 kHz mono float32.

Frames are chosen by the released rule (every round(native_fps / fps)-th
frame; more than `max_frames` -> exactly `max_frames` spread by linspace).
Two ways to turn the rule's frame indices into frames (`frame_sampling`):
- "time" (our default): index i becomes the timestamp i / average_rate, and
  each target gets the decoded frame nearest to it in time, so
  variable-frame-rate files work. The frame rule counts the video stream's
  own duration (an audio track running on adds no frames).
- "index" (the release, whose decord reader counts the stream's packets and
  takes frame i in presentation order): the video packets are counted and
  their timestamps read first (demuxing only, no decoding); on a
  constant-frame-rate stream the rule is applied to that count and frame i is
  the i-th timestamp, so a container whose average rate is slightly off
  cannot shift a frame. A variable-frame-rate stream keeps time sampling:
  there the i-th frame can lie far from i / fps.
`duration_source` "frames" makes the duration frame count / average rate
(the release's) instead of the stream's declared one; `pad_audio` False keeps
an audio track that ends before the video at its own length.
Decoding seeks only when the next target is far ahead (a long video is not
decoded whole) and otherwise keeps decoding, which is fastest for long GOPs.
Every failure is one `MediaError` naming the file and the reason, including a
truncated file whose frames (or, for audio-only input, samples) stop well
short of its declared duration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np

from salmonn_o1.errors import MediaError
from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SEEK_AHEAD_SECONDS = 2.0  # seek when the next wanted frame is further ahead than this
# A stream that stops more than this short of its declared duration is a truncated file.
TRUNCATION_SLACK_SECONDS = 1.0
AUDIO_BLOCK_SECONDS = 1  # decoded audio resampled per block of this many seconds of input


FrameSampling = Literal["time", "index"]
DurationSource = Literal["stream", "frames"]
# A stream is constant-frame-rate when every gap between consecutive presentation timestamps is
# within one time-base tick (millisecond time bases round 33.37 ms to 33 or 34) or this fraction
# of the median gap; anything else (a dropped frame, a 5 fps stretch) is variable.
CONSTANT_RATE_TOLERANCE = 0.1


def release_frame_indices(num_frames: int, native_fps: float, fps: float = 2.0, max_frames: int = 60) -> np.ndarray:
    """The released rule on frame positions: step = max(round(native_fps / fps), 1) (Python's
    half-to-even round), indices range(0, N, step), or linspace(0, N - 1, max_frames) floored to
    int when there are more."""
    step = max(round(native_fps / fps), 1)
    indices = np.arange(0, num_frames, step)
    if len(indices) > max_frames:
        indices = np.linspace(0, num_frames - 1, max_frames).astype(int)
    return indices


def sample_frame_times(duration: float, native_fps: float, fps: float = 2.0, max_frames: int = 60) -> np.ndarray:
    """Target timestamps (s) of the frames to keep, by the released rule.

    native frames N = round(duration * native_fps); the rule's indices i become times i / native_fps.
    """
    if duration <= 0:
        return np.zeros(1)
    if not native_fps or native_fps <= 0 or not math.isfinite(native_fps):
        times = np.arange(0.0, duration, 1.0 / fps)
        return times if len(times) <= max_frames else np.linspace(0, times[-1], max_frames)
    total = max(1, int(round(duration * native_fps)))
    return release_frame_indices(total, native_fps, fps, max_frames) / native_fps


def is_constant_rate(pts: np.ndarray) -> bool:
    """Whether sorted integer presentation timestamps are evenly spaced (see CONSTANT_RATE_TOLERANCE)."""
    gaps = np.diff(np.asarray(pts, dtype=np.int64))
    if len(gaps) == 0:
        return True
    median = float(np.median(gaps))
    if median <= 0:
        return False
    return bool(np.all(np.abs(gaps - median) <= max(1.0, CONSTANT_RATE_TOLERANCE * median)))


def load_media(path: str | Path, fps: float = 2.0, max_frames: int = 60, kind: str | None = None,
               frame_size: int | None = None, *, frame_sampling: FrameSampling = "time",
               duration_source: DurationSource = "stream", pad_audio: bool = True) -> DecodedMedia:
    """A video (frames + audio), an audio file (audio only) or an image (one frame).

    frame_sampling, duration_source, pad_audio: how a video is sampled (module docstring);
    the defaults are ours, "index" / "frames" / False the release's.
    """
    if frame_sampling not in ("time", "index"):
        raise ValueError(f"frame_sampling must be 'time' or 'index', got {frame_sampling!r}")
    if duration_source not in ("stream", "frames"):
        raise ValueError(f"duration_source must be 'stream' or 'frames', got {duration_source!r}")
    path = _check_path(path)
    if kind == "image" or (kind is None and path.suffix.lower() in IMAGE_SUFFIXES):
        return load_image(path, frame_size)
    container = _open(path)
    with container:
        has_video = bool(container.streams.video) and kind != "audio"
        if not has_video and not container.streams.audio:
            raise MediaError(f"{path}: no audio stream" if kind == "audio" and container.streams.video
                             else f"{path}: no video or audio stream")
        if has_video:
            return _decode_video(container, path, fps, max_frames, frame_size, frame_sampling, duration_source,
                                 pad_audio)
        audio, error = _decode_audio_track(container, path)
        declared = container.duration / av.time_base if container.duration else 0.0
        # Only with a decoding error: a clean end short of the declared duration may just be a
        # duration estimated from the bit rate (VBR mp3).
        if error is not None and len(audio) / SAMPLE_RATE < declared - TRUNCATION_SLACK_SECONDS:
            raise MediaError(f"{path}: truncated or corrupt audio (samples stop at "
                             f"{len(audio) / SAMPLE_RATE:.2f} s of {declared:.2f} s; {error})")
        return DecodedMedia(None, np.zeros(0), audio, len(audio) / SAMPLE_RATE, True, "audio", str(path))


def load_video(path: str | Path, fps: float = 2.0, max_frames: int = 60, frame_size: int | None = None, *,
               frame_sampling: FrameSampling = "time", duration_source: DurationSource = "stream",
               pad_audio: bool = True) -> DecodedMedia:
    media = load_media(path, fps, max_frames, kind="video", frame_size=frame_size, frame_sampling=frame_sampling,
                       duration_source=duration_source, pad_audio=pad_audio)
    if media.kind != "video":
        raise MediaError(f"{path}: no video stream")
    return media


def load_audio(path: str | Path) -> DecodedMedia:
    return load_media(path, kind="audio")


def load_image(path: str | Path, frame_size: int | None = None) -> DecodedMedia:
    from PIL import Image, UnidentifiedImageError

    path = _check_path(path)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if frame_size:
                image = image.resize((frame_size, frame_size), Image.BICUBIC)
            frame = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise MediaError(f"{path}: not a readable image ({error})") from error
    return DecodedMedia(frame[None], np.zeros(1), None, 0.0, False, "image", str(path))


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a directory, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")
    return path


def _open(path: Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(f"{path}: unreadable or unsupported container ({error})") from error


def _stream_duration(container, stream) -> tuple[float, bool]:
    """(seconds, whether they are the stream's own): the stream's duration, else the container's.

    The stream's comes first: the container's is the longest of all streams, and an audio
    track that runs on past the video must not add frames (the release counts video frames).
    """
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base), True
    if container.duration:
        return container.duration / av.time_base, False
    return 0.0, False


@dataclass
class _PacketScan:
    """The video stream's packets as the release's reader sees them (demuxed, not decoded)."""

    count: int  # packets with data: the release's frame count
    times: np.ndarray  # sorted presentation times (s from the stream's start) of those with a timestamp
    constant_rate: bool  # every packet has a timestamp and they are evenly spaced
    error: av.error.FFmpegError | None  # what ended the scan early, if anything


def _scan_packets(container, stream, start: float) -> _PacketScan:
    pts, count, error = [], 0, None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and packet.pts is None:
                continue  # the flush packet PyAV adds at the end, not one of the file's
            count += 1
            if packet.pts is not None:
                pts.append(packet.pts)
    except av.error.FFmpegError as failure:
        error = failure
    pts = np.sort(np.asarray(pts, dtype=np.int64))
    times = pts * float(stream.time_base) - start if len(pts) else np.zeros(0)
    try:
        container.seek(0)
    except av.error.FFmpegError as failure:
        error = error or failure
    return _PacketScan(count, times, len(pts) == count and is_constant_rate(pts), error)


def _decode_video(container, path: Path, fps: float, max_frames: int, frame_size: int | None,
                  frame_sampling: FrameSampling = "time", duration_source: DurationSource = "stream",
                  pad_audio: bool = True) -> DecodedMedia:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    native_fps = float(stream.average_rate or stream.guessed_rate or 0)
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    declared, own_duration = _stream_duration(container, stream)
    duration = declared
    scan = None
    if frame_sampling == "index" or duration_source == "frames":
        scan = _scan_packets(container, stream, start)
    if duration_source == "frames" and scan.count and native_fps > 0:
        duration = scan.count / native_fps  # the release: len(decord reader) / its average fps
    if frame_sampling == "index" and scan.count and scan.constant_rate and native_fps > 0:
        targets = scan.times[release_frame_indices(scan.count, native_fps, fps, max_frames)]
    else:
        targets = sample_frame_times(duration, native_fps, fps, max_frames) if duration > 0 else None
    frames, times = [], []
    if targets is None:  # no duration known: decode everything, then subsample by time
        try:
            decoded = [(f.time - start, f) for f in container.decode(stream) if f.time is not None]
        except av.error.FFmpegError as error:
            raise MediaError(f"{path}: corrupt or truncated video ({error})") from error
        if not decoded:
            raise MediaError(f"{path}: no decodable video frames (zero-length video)")
        duration = decoded[-1][0] + (1 / native_fps if native_fps else 0)
        targets = sample_frame_times(duration, native_fps, fps, max_frames)
        source = iter(decoded)
    else:
        source = _Seekable(container, stream, start)
    # Keep, for each target, the decoded frame nearest to it in time (frames come in time order).
    try:
        current, following, exhausted = next(source, None), None, False
        for target in targets:
            if current is not None and target - current[0] > SEEK_AHEAD_SECONDS and isinstance(source, _Seekable):
                source.seek(target)
                current, following = next(source, None), None
            while current is not None and current[0] < target - 1e-6:
                if following is None:
                    following = next(source, None)
                    if following is None:
                        exhausted = True
                        break  # past the end: keep the last frame
                if following[0] - target > target - current[0]:
                    break  # the current frame is the nearer one
                current, following = following, None
            if current is None:
                exhausted = True
                break
            times.append(current[0])
            frames.append(_to_rgb(current[1], frame_size))
    except av.error.FFmpegError as failure:  # e.g. a frame that will not convert to RGB
        raise MediaError(f"{path}: corrupt video ({failure})") from failure
    error = source.error if isinstance(source, _Seekable) else None
    if not frames:
        reason = f"corrupt or truncated video ({error})" if error else "no decodable video frames (zero-length or truncated video)"
        raise MediaError(f"{path}: {reason}")
    if duration <= 0:
        duration = times[-1] + (1 / native_fps if native_fps else 1 / fps)
    audio, has_audio = None, bool(container.streams.audio)
    if has_audio:
        try:
            audio = _decode_audio(container, path)
        except MediaError:
            has_audio = False
    frame_step = 1 / native_fps if native_fps else 0
    video_end = None
    if exhausted:
        # The frames ran out before the last target: fine within a frame or so of the end, a
        # truncated file otherwise.
        video_end = (current[0] if current is not None else times[-1]) + frame_step
    elif scan is not None and len(scan.times):
        # Targets taken from the packets never run out: the packets' end is the frames' end.
        video_end = float(scan.times[-1]) + frame_step
        error = error or scan.error
    if video_end is not None and declared > 0:
        # Without the stream's own duration, the container's may be an audio track's that runs on:
        # then only an audio track stopping short as well is truncation.
        slack = max(TRUNCATION_SLACK_SECONDS, 2 * frame_step)
        audio_end = len(audio) / SAMPLE_RATE if audio is not None else 0.0
        if video_end < declared - slack and (own_duration or audio_end < declared - slack):
            detail = f"; {error}" if error else ""
            raise MediaError(
                f"{path}: truncated or corrupt video (frames stop at {video_end:.2f} s of {declared:.2f} s{detail})"
            )
    expected = int(round(duration * SAMPLE_RATE))
    if audio is None:
        audio = np.zeros(expected, np.float32)  # no track: silence as long as the video
    else:
        audio = _fit(audio, expected) if pad_audio else audio[:expected]
    return DecodedMedia(np.stack(frames), np.asarray(times), audio, float(duration), has_audio, "video", str(path))


class _Seekable:
    """Iterates (time, frame) of a stream from its start, and can jump ahead by seeking.

    A decoding error ends the iteration and is kept in `error` (the caller decides whether
    the frames so far are enough).
    """

    def __init__(self, container, stream, start: float):
        self.container, self.stream, self.start = container, stream, start
        self._frames = container.decode(stream)
        self.error: av.error.FFmpegError | None = None

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                frame = next(self._frames)
            except av.error.FFmpegError as error:
                self.error = error
                raise StopIteration from error
            if frame.time is not None:
                return frame.time - self.start, frame

    def seek(self, target: float) -> None:
        offset = int((target + self.start) / self.stream.time_base)
        try:
            self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as error:
            self.error, self._frames = error, iter(())
            return
        self._frames = self.container.decode(self.stream)


def _to_rgb(frame, frame_size: int | None) -> np.ndarray:
    if frame_size:
        return frame.to_ndarray(format="rgb24", width=frame_size, height=frame_size, interpolation="BICUBIC")
    return frame.to_ndarray(format="rgb24")


def _decode_audio(container, path: Path) -> np.ndarray:
    """The first audio stream as 16 kHz mono float32 (channels averaged, not FFmpeg's +3 dB downmix)."""
    return _decode_audio_track(container, path)[0]


def _decode_audio_track(container, path: Path) -> tuple[np.ndarray, av.error.FFmpegError | None]:
    """The audio and the decoding error that ended it early, if any (raises when nothing decoded).

    Decoded frames are gathered in an `av.AudioFifo` and resampled in blocks of
    AUDIO_BLOCK_SECONDS (the resampler is a streaming filter: the same samples as frame by frame,
    at a hundredth of the calls), and each block's channels are averaged straight into one growing
    mono buffer: no list of multi-channel pieces and no concatenation of a whole track, which for
    a 10-minute stereo track was a few hundred MB of transient memory.
    """
    error = None
    stream = container.streams.audio[0]
    resampler = fifo = None
    buffer = _MonoBuffer(_expected_samples(container, stream))

    def resample(frame) -> None:
        for out in resampler.resample(frame):
            buffer.append_mean(out.to_ndarray())

    try:
        container.seek(0)
        for frame in container.decode(stream):
            if resampler is None:
                resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=SAMPLE_RATE)
                fifo, block = av.AudioFifo(), max(frame.sample_rate, 1) * AUDIO_BLOCK_SECONDS
            frame.pts = None  # the FIFO would refuse a gap in the timestamps; the samples are what count
            fifo.write(frame)
            while fifo.samples >= block:
                resample(fifo.read(block))
        if resampler is not None:
            if fifo.samples:
                resample(fifo.read())
            resample(None)
    except av.error.FFmpegError as failure:
        if fifo is not None and fifo.samples:  # what decoded before the failure (not flushed, as before)
            resample(fifo.read())
        if not buffer.pieces:
            raise MediaError(f"{path}: corrupt audio stream ({failure})") from failure
        error = failure
    if not buffer.pieces:
        raise MediaError(f"{path}: audio stream has no decodable samples")
    audio = buffer.finish()
    np.clip(audio, -1.0, 1.0, out=audio)
    return audio, error


def _expected_samples(container, stream) -> int:
    """Output samples the declared duration promises, plus a second of slack (0 when unknown).

    Only a first guess for the buffer: an untouched tail of an `np.empty` costs no memory.
    """
    seconds, _ = _stream_duration(container, stream)
    return int(math.ceil(seconds * SAMPLE_RATE)) + SAMPLE_RATE if seconds > 0 else 0


class _MonoBuffer:
    """A growing float32 buffer that takes (channels, n) pieces and stores their channel mean."""

    def __init__(self, capacity: int = 0):
        self.data = np.empty(max(capacity, SAMPLE_RATE), np.float32)
        self.size = 0
        self.pieces = 0

    def append_mean(self, piece: np.ndarray) -> None:
        n = piece.shape[1]
        if self.size + n > len(self.data):
            grown = np.empty(max(2 * len(self.data), self.size + n), np.float32)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        # Per sample the same reduction as averaging the concatenated track (channels are the outer axis).
        piece.mean(axis=0, out=self.data[self.size:self.size + n])
        self.size += n
        self.pieces += 1

    def finish(self) -> np.ndarray:
        """The samples, the unused tail given back (in place when possible)."""
        data, self.data = self.data, np.empty(0, np.float32)
        try:
            data.resize(self.size, refcheck=False)
        except ValueError:  # does not own its memory: copy instead
            data = data[: self.size].copy()
        return data


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, (0, length - len(audio)))
