"""Test media, written once per session with PyAV into a temporary folder (small and fast)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from avgen import Clip, frame_image, write_audio, write_video

# Pitch schedule of the main clip: 440 Hz, 1 kHz from 5.3 s, 440 Hz again from 9.7 s.
AV_SCHEDULE = [(0.0, 440.0), (5.3, 1000.0), (9.7, 440.0)]
# VFR: 2 s at 30 fps, 2 s at 5 fps, 2 s at 15 fps, then irregular gaps (pts in 1/30 s).
VFR_PTS = (list(range(0, 60)) + list(range(60, 120, 6)) + list(range(120, 180, 2))
           + [180, 181, 185, 193, 194, 207, 222, 223, 224, 240, 241, 255, 262, 270, 289])


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def av_clip(media_dir) -> Clip:
    """14 s, 25 fps H.264 + stereo 44.1 kHz AAC whose pitch changes at 5.3 s and 9.7 s."""
    return write_video(media_dir / "av14.mp4", 350, 25, audio=AV_SCHEDULE)


@pytest.fixture(scope="session")
def silent_clip(media_dir) -> Clip:
    """The same 14 s video, no audio track."""
    return write_video(media_dir / "video14.mp4", 350, 25)


@pytest.fixture(scope="session")
def short_clip(media_dir) -> Clip:
    """1 s, 25 fps, with a 440 Hz tone (mono 48 kHz AAC)."""
    return write_video(media_dir / "av1.mp4", 25, 25, audio=[(0.0, 440.0)], audio_rate=48_000,
                       audio_layout="mono")


@pytest.fixture(scope="session")
def long_clip(media_dir) -> Clip:
    """65 s, 25 fps at 32x32, with a tone stepping 440 -> 1000 Hz at 40 s (mono 16 kHz AAC)."""
    return write_video(media_dir / "av65.mp4", 65 * 25, 25, size=(32, 32), audio=[(0.0, 440.0), (40.0, 1000.0)],
                       audio_rate=16_000, audio_layout="mono")


@pytest.fixture(scope="session")
def mpeg4_clip(media_dir) -> Clip:
    """3 s MPEG-4 part 2 video at 10 fps with AAC audio."""
    return write_video(media_dir / "mpeg4.mp4", 30, 10, codec="mpeg4", audio=[(0.0, 440.0), (1.5, 1000.0)])


@pytest.fixture(scope="session")
def one_frame_clip(media_dir) -> Clip:
    return write_video(media_dir / "one_frame.mp4", 1, 25)


@pytest.fixture(scope="session")
def vfr_clip(media_dir) -> Clip:
    """Irregular frame timestamps (30 / 5 / 15 fps stretches, then random gaps)."""
    return write_video(media_dir / "vfr.mp4", len(VFR_PTS), 30, pts=VFR_PTS, audio=[(0.0, 440.0)])


@pytest.fixture(scope="session")
def audio_longer_clip(media_dir) -> Clip:
    """A 4 s video (10 fps) whose audio track runs on to 6 s."""
    return write_video(media_dir / "audio_longer.mp4", 40, 10, size=(32, 32), audio=[(0.0, 440.0)],
                       audio_seconds=6.0, audio_rate=16_000, audio_layout="mono")


@pytest.fixture(scope="session")
def m4a_clip(media_dir) -> Clip:
    """3 s of stereo 44.1 kHz AAC in an .m4a; pitch 440 -> 1000 Hz at 1.7 s."""
    return write_audio(media_dir / "tone.m4a", [(0.0, 440.0), (1.7, 1000.0)], 3.0, 44_100, layout="stereo",
                       container_format="mp4")


@pytest.fixture(scope="session")
def wav_clip(media_dir) -> Clip:
    """2.5 s of mono 22.05 kHz PCM WAV; pitch 1000 -> 440 Hz at 0.8 s."""
    return write_audio(media_dir / "tone.wav", [(0.0, 1000.0), (0.8, 440.0)], 2.5, 22_050, codec="pcm_s16le")


@pytest.fixture(scope="session")
def png_path(media_dir):
    from PIL import Image

    path = media_dir / "still.png"
    image = frame_image(77, 30, 40)
    image[:, :4] = 255  # a white stripe on the left: shows that the orientation survives
    Image.fromarray(image).save(path)
    return path


# ---------------------------------------------------------------- bad inputs
@pytest.fixture(scope="session")
def bad_inputs(media_dir, av_clip, silent_clip, m4a_clip) -> dict:
    """name -> (path, a word the MediaError must contain)."""
    bad = media_dir / "bad"
    bad.mkdir()
    out = {}
    out["missing"] = (bad / "nothing_here.mp4", "no such file")
    folder = bad / "folder.mp4"
    folder.mkdir()
    out["directory"] = (folder, "directory")
    empty = bad / "empty.mp4"
    empty.write_bytes(b"")
    out["empty"] = (empty, "empty")
    garbage = bad / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    out["garbage"] = (garbage, "unreadable")
    text = bad / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    out["text"] = (text, "unreadable")
    # Truncated: the index (moov) is at the end of a plain mp4, so cutting the file loses it.
    data = av_clip.path.read_bytes()
    cut = bad / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 2])
    out["truncated"] = (cut, "unreadable")
    # Truncated with the index at the front ("faststart"): it opens, but the frames stop half way.
    fast = write_video(bad / "faststart_full.mp4", 350, 25, audio=[(0.0, 440.0)],
                       options={"movflags": "faststart"})
    data = fast.path.read_bytes()
    cut = bad / "truncated_faststart.mp4"
    cut.write_bytes(data[: len(data) // 2])
    out["truncated_faststart"] = (cut, "truncated")
    # The same in Matroska (no per-stream duration: the container's is all there is).
    mkv = write_video(bad / "full.mkv", 350, 25, container_format="matroska")
    data = mkv.path.read_bytes()
    cut = bad / "truncated.mkv"
    cut.write_bytes(data[: len(data) // 2])
    out["truncated_mkv"] = (cut, "truncated")
    # Truncated audio-only file with the index at the front.
    m4a = write_audio(bad / "long.m4a", [(0.0, 440.0)], 8.0, 44_100, container_format="mp4",
                      options={"movflags": "faststart"})
    data = m4a.path.read_bytes()
    cut = bad / "truncated.m4a"
    cut.write_bytes(data[: len(data) // 2])
    out["truncated_audio"] = (cut, "truncated")
    # Zero-length video: a video stream without a single frame (beside 2 s of audio).
    zero = write_video(bad / "zero_length.mkv", 0, 25, audio=[(0.0, 440.0)], audio_seconds=2.0,
                       container_format="matroska")
    out["zero_length"] = (zero.path, "zero-length")
    # A valid mp4 with no stream in it (the muxer drops a video track that got no frame).
    no_streams = write_video(bad / "no_streams.mp4", 0, 25).path
    with av.open(str(no_streams)) as container:
        assert not container.streams, "the muxer kept the empty track: this is not a no-stream file"
    out["no_streams"] = (no_streams, "no video or audio stream")
    image = bad / "broken.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    out["broken_png"] = (image, "image")
    return out
