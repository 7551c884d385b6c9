"""Every unusable input raises one MediaError naming the file and the reason, never a raw PyAV error."""

import subprocess
import sys
import textwrap

import av
import pytest

from salmonn_o1.errors import MediaError
from salmonn_o1.media import load_audio, load_media, load_video

BAD = ["missing", "directory", "empty", "garbage", "text", "truncated", "truncated_faststart", "truncated_mkv",
       "truncated_audio", "zero_length", "no_streams", "broken_png"]


def assert_media_error(call, path, reason):
    with pytest.raises(MediaError) as info:
        call(path)
    error = info.value
    assert type(error) is MediaError and not isinstance(error, av.error.FFmpegError)
    message = str(error)
    assert str(path) in message, message
    assert reason in message, f"expected {reason!r} in {message!r}"
    assert "\n" not in message, "one line"
    return message


@pytest.mark.parametrize("name", BAD)
def test_bad_input_raises_one_media_error(bad_inputs, name):
    path, reason = bad_inputs[name]
    assert_media_error(load_media, path, reason)


@pytest.mark.parametrize("name", ["missing", "directory", "empty", "garbage", "truncated", "truncated_faststart",
                                  "zero_length", "no_streams"])
def test_bad_input_to_load_video(bad_inputs, name):
    path, reason = bad_inputs[name]
    assert_media_error(load_video, path, reason)


def test_wrong_kind_of_file(silent_clip, wav_clip, png_path):
    assert_media_error(load_video, wav_clip.path, "no video stream")
    assert_media_error(load_audio, silent_clip.path, "no audio stream")


def test_the_same_bytes_whole_decode_fine(media_dir):
    """The truncated files are truncated copies of files that decode: the cut is what fails."""
    full = load_video(media_dir / "bad" / "faststart_full.mp4")
    assert full.num_frames == 30 and full.has_audio
    assert load_video(media_dir / "bad" / "full.mkv").num_frames == 30
    assert load_media(media_dir / "bad" / "long.m4a").duration == pytest.approx(8.0, abs=0.03)


def test_no_bad_input_crashes_the_process(bad_inputs):
    """A fresh interpreter loads every bad input in turn and exits normally (no segfault, no abort)."""
    paths = [str(path) for path, _ in bad_inputs.values()]
    script = textwrap.dedent(f"""
        from salmonn_o1.errors import MediaError
        from salmonn_o1.media import load_media
        failed = 0
        for path in {paths!r}:
            try:
                load_media(path)
            except MediaError:
                failed += 1
        print(failed)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(len(paths))
