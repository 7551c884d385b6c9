"""Rendered tensors and the written mp4 agree: the same colour on screen and the
same dominant pitch for each event, after H.264/AAC and a PyAV decode."""

from __future__ import annotations

import av
import numpy as np
import pytest

from salmonn_o1.data.synthetic import generate_item, render_media, write_sample_mp4
from salmonn_o1.data.synthetic.render import BACKGROUND
from salmonn_o1.data.synthetic.timeline import COLOURS, SOUNDS


def _decode(path):
    """(frame times, RGB frames), (16 kHz mono audio) straight from PyAV."""
    with av.open(str(path)) as container:
        frames, times = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    return np.array(times), np.stack(frames), np.concatenate(chunks)


def _dominant(audio, start, end, rate=16000):
    segment = audio[int(start * rate) : int(end * rate)]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    return np.fft.rfftfreq(len(segment), 1 / rate)[int(np.argmax(spectrum))]


@pytest.mark.parametrize("index", [0, 1, 4, 5])  # alignment, counting, audio-only, glitch
def test_mp4_matches_rendered_media(tmp_path, index):
    sample = generate_item("test", index)
    path = write_sample_mp4(sample, tmp_path / "clip.mp4", fps=10, size=128)
    media = render_media(sample, fps=2.0, size=128)
    times, frames, audio = _decode(path)
    assert frames.shape[1:] == (128, 128, 3)
    assert abs(len(audio) / 16000 - sample.timeline.duration) < 0.2

    for t, rendered in zip(media.frame_times, media.frames):
        decoded = frames[int(np.argmin(np.abs(times - t)))]
        assert abs(times[int(np.argmin(np.abs(times - t)))] - t) < 1e-3
        # the shape's pixels: where the rendering is not background
        mask = np.any(rendered != BACKGROUND, axis=-1)
        if mask.sum() < 50:
            assert np.abs(decoded.astype(int) - BACKGROUND).mean() < 12
            continue
        core = mask & np.roll(mask, 2, 0) & np.roll(mask, -2, 0) & np.roll(mask, 2, 1) & np.roll(mask, -2, 1)
        colour = decoded[core].astype(float).mean(axis=0)
        expected = rendered[mask][0].astype(float)
        assert np.abs(colour - expected).max() < 30, (t, colour, expected)
        nearest = min(COLOURS, key=lambda name: np.abs(np.array(COLOURS[name]) - colour).sum())
        assert COLOURS[nearest] == tuple(expected.astype(int))

    for sound in sample.timeline.sounds:
        freq = SOUNDS[sound.kind][1]
        if freq == 0.0 or sound.kind == "thud":  # the chirp sweeps; the thud decays too fast to measure well
            continue
        a, b = sound.start + 0.03, sound.end - 0.03
        assert abs(_dominant(media.audio, a, b) - freq) < 0.05 * freq + 10
        assert abs(_dominant(audio, a, b) - freq) < 0.05 * freq + 10, (sound, _dominant(audio, a, b))
